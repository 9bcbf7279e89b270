"""An API error mid-way (HTTP 409: the node's fixed IP is taken on an existing network) stops the
run with a message naming the resource; what was created stays recorded, and teardown after that
partial provision deletes exactly it. The dry run reads only."""

from __future__ import annotations

import json

import pytest

from tests.provision.conftest import NODE_SUBNET

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(600)]


def test_dry_run_creates_nothing_and_lists_every_action(make_lab, labtui, empty, store):
    lab = make_lab("lab1")
    code, out, err = labtui("provision", lab, "--dry-run", "--json")
    assert code == 0, err[-2000:]
    steps = {s["step"]: s for s in json.loads(out)["steps"]}
    titles = [a["title"] for s in steps.values() for a in s["actions"]]
    assert any(t.startswith("create network labtui-lab1-net") for t in titles)
    assert any("allow IP protocol 4 from the group itself" in t for t in titles)
    assert sum(t.startswith("create server ") for t in titles) == 4
    rule = next(a for a in steps["security-group"]["actions"] if "IP protocol 4" in a["title"])
    assert "--protocol 4 --remote-group labtui-lab1" in rule["command"] and rule["why"]
    assert all(a["status"] == "pending" for s in steps.values() for a in s["actions"])
    # nothing exists yet, so nothing is "already so": no warning that it "could not tell" (a rule of a group
    # that is not created yet is simply not there)
    assert "could not tell" not in err, err[-2000:]
    port = next(a for a in steps["machines"]["actions"] if a["title"].startswith("create port "))
    assert '"security_groups": ["<id of security group labtui-lab1>"]' in port["api"], port["api"]
    conn = empty.conn()
    assert not [n for n in conn.network.networks(project_id=conn.current_project_id) if n.name.startswith("labtui-")]
    assert not store.changes(store.get_session(lab).id)


def test_a_409_mid_way_names_the_resource_keeps_the_record_and_teardown_cleans_up(make_lab, labtui, empty, store):
    conn = empty.conn()
    pid = conn.current_project_id
    net = conn.network.create_network(name="their-net")
    conn.network.create_subnet(network_id=net.id, cidr=NODE_SUBNET, ip_version=4, name="their-subnet")
    squatter = conn.network.create_port(network_id=net.id, name="squatter", fixed_ips=[{"ip_address": "10.60.0.11"}])
    lab = make_lab("lab1", network="their-net", external_network=None)
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 1
    step = next(s for s in json.loads(out)["steps"] if s["state"] == "failed")
    assert step["step"] == "machines"
    assert "stopped at 'create port labtui-lab1-w1 (10.60.0.11)'" in step["detail"]
    assert "Traceback" not in err
    rec = store.get_session(lab)
    recorded = {(c.kind, c.target) for c in store.changes(rec.id) if not c.reverted}
    assert ("cloud.security-group", "labtui-lab1") in recorded and ("cloud.port", "labtui-lab1-cp1") in recorded
    assert not [s for s in conn.compute.servers()]
    # teardown after the partial provision: the lab's port, group and keypair; their network and port stay
    code, out, err = labtui("teardown", lab, "--yes", "--json")
    assert code == 0, err[-2000:]
    assert {p.name for p in conn.network.ports(project_id=pid) if not (p.device_owner or "").startswith("network:")} \
        == {"squatter"}
    assert conn.network.get_port(squatter.id).id == squatter.id
    assert {n.name for n in conn.network.networks(project_id=pid)} == {"their-net"}
    assert not [g for g in conn.network.security_groups(project_id=pid) if g.name.startswith("labtui-")]
