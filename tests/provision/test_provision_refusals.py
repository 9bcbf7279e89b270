"""What Provision refuses, before anything is created: quota shortfalls, names the lab did not
create, bad inputs. Each case asserts the message names the thing and that nothing was created."""

from __future__ import annotations

import json

import pytest

from tests.provision.conftest import NODE_SUBNET, admin_conn

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(600)]


def nothing_created(conn) -> None:
    pid = conn.current_project_id
    assert not [n for n in conn.network.networks(project_id=pid) if n.name.startswith("labtui-")]
    assert not [g for g in conn.network.security_groups(project_id=pid) if g.name.startswith("labtui-")]
    assert not [s for s in conn.compute.servers() if s.name.startswith("labtui-")]
    assert conn.compute.find_keypair("labtui-lab1", ignore_missing=True) is None


def failed_step(out: str) -> dict:
    data = json.loads(out)
    return next(s for s in data["steps"] if s["state"] == "failed")


def test_quota_shortfall_is_refused_before_anything_is_created(make_lab, labtui, empty, store):
    adm = admin_conn()
    adm.compute.update_quota_set(empty.project_id, instances=2, cores=3)
    lab = make_lab("lab1")
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 1
    step = failed_step(out)
    assert step["step"] == "quotas"
    assert "quota instances (servers): the plan needs 4 more, 2 left" in step["detail"]
    assert "quota cores (vCPUs): the plan needs 5 more, 3 left" in step["detail"]
    assert "smaller flavors" in step["detail"] and "fewer workers" in step["detail"] and "cloud admin" in step["detail"]
    nothing_created(empty.conn())
    assert not [c for c in store.changes(store.get_session(lab).id) if c.kind.startswith("cloud.")]


def test_a_name_the_lab_did_not_create_is_refused_and_left_alone(make_lab, labtui, empty):
    conn = empty.conn()
    theirs = conn.network.create_security_group(name="labtui-lab1", description="someone else's")
    lab = make_lab("lab1")
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 1
    step = failed_step(out)
    assert step["step"] == "quotas"
    assert f"a security group named labtui-lab1 ({theirs.id}) already exists and was not created by lab lab1" \
        in step["detail"]
    assert "never adopts" in step["detail"]
    same = conn.network.get_security_group(theirs.id)
    assert same.description == "someone else's" and not same.tags
    assert not [n for n in conn.network.networks(project_id=conn.current_project_id) if n.name.startswith("labtui-")]
    # teardown never touches it either
    code, out, err = labtui("teardown", lab, "--yes")
    assert code == 0
    assert conn.network.get_security_group(theirs.id).id == theirs.id


@pytest.mark.parametrize("provision, step_detail", [
    ({"image": "no-such-image"}, "Provision: Image: cloud prov has no active image named 'no-such-image'"),
    ({"flavor_worker": "prov.small"}, "Provision: Flavor (worker): flavor prov.small has 512 MB RAM: kubeadm refuses "
                                      "it for a worker (\"the system RAM (512 MB) is less than the minimum 1024 MB\")"),
    ({"flavor_control_plane": "prov.worker"}, "the number of available CPUs 1 is less than the required 2"),
    ({"external_network": "no-such-net"}, "Provision: External network: cloud prov has no external network "
                                          "'no-such-net'"),
    ({"public_key_file": "/nonexistent/id.pub"}, "Provision: Public key file: cannot read /nonexistent/id.pub"),
])
def test_bad_inputs_name_the_field_and_create_nothing(make_lab, labtui, empty, provision, step_detail):
    lab = make_lab("lab1", **provision)
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 1
    step = failed_step(out)
    assert step["step"] == "offer"
    assert step_detail in step["detail"]
    assert "Traceback" not in err
    nothing_created(empty.conn())


def test_a_bad_ssh_source_is_refused_with_the_plan_before_the_cloud_is_asked(pubkey):
    """The provision block's own checks run with the plan's (a plan file, the wizard): the field is
    named as on screen and nothing reaches the cloud."""
    from labtui.errors import ValidationFailed
    from labtui.model import Plan
    from tests.provision.conftest import plan_data

    with pytest.raises(ValidationFailed) as err:
        Plan.parse(plan_data("lab1", "prov", pubkey, ssh_cidr="10.0.0.300/8"))
    assert "SSH source: '10.0.0.300/8' is not a CIDR" in err.value.render()


def test_an_existing_network_whose_subnet_does_not_match_the_plan(make_lab, labtui, empty):
    conn = empty.conn()
    net = conn.network.create_network(name="their-net")
    conn.network.create_subnet(network_id=net.id, cidr="10.80.0.0/24", ip_version=4)
    lab = make_lab("lab1", network="their-net")
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 1
    step = failed_step(out)
    assert f"network their-net has no subnet {NODE_SUBNET} (it has: 10.80.0.0/24)" in step["detail"]
    assert "node subnet" in step["detail"]
    nothing_created(conn)

