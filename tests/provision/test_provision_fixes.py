"""Provision fixes from the build audit (shared/facts/build-audit-2026-12.md), on the real OpenStack
test backend, each shown where a wrong provision would show it:

- F1: the group gets TCP 5473 (Typha) from itself when the plan's Calico install is the operator
  (the default): `labtui up --dry-run` lists the rule, a real provision creates it.
- F10: provision.dns_nameservers reaches the subnet (`--dns-nameserver`, API `dns_nameservers`).
- F13: 6443 from your SSH source when the control plane has a floating IP.
- F12: a disk=0 flavor (Nova refuses it to non-admins) is never chosen; a flavor under 20 GB neither.
- F9: behind NAT (a private address of yours, a public external network) the dry run warns and says how
  to set provision.ssh_cidr.
- user-data: no packages installed by cloud-init, /etc/hosts managed, apt through the plan's proxy.
"""

from __future__ import annotations

import base64
import json

import pytest
import yaml

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(600)]


def _dry_run(labtui, lab: str):
    code, out, err = labtui("up", lab, "--from", "provision", "--until", "provision", "--dry-run", "--json")
    assert code == 0, (out + err)[-3000:]
    steps = {s["step"]: s for st in json.loads(out)["stages"] for s in st["steps"]}
    return steps, err


def _commands(step) -> list[str]:
    return [a["command"] for a in step.get("actions") or []]


def test_dry_run_of_a_default_plan_lists_typha_and_the_api_rule(make_lab, labtui):
    lab = make_lab("fix1")
    steps, err = _dry_run(labtui, lab)
    rules = _commands(steps["security-group"])
    typha = [c for c in rules if "--dst-port 5473" in c]
    assert typha == ["openstack security group rule create --ingress --ethertype IPv4 --protocol tcp --dst-port 5473 "
                     "--remote-group labtui-fix1 --description 'labtui: typha' labtui-fix1"], rules
    assert any("--dst-port 6443 --remote-ip 198.51.100.7/32" in c for c in rules), rules  # kubectl from you


def test_dry_run_shows_the_subnets_dns_servers(make_lab, labtui):
    lab = make_lab("fix9", dns_nameservers=["9.9.9.9", "1.1.1.1"])
    steps, err = _dry_run(labtui, lab)
    subnet = next(a for a in steps["network"]["actions"] if a["title"].startswith("create subnet"))
    assert "--dns-nameserver 9.9.9.9 --dns-nameserver 1.1.1.1" in subnet["command"]
    assert '"dns_nameservers": ["9.9.9.9", "1.1.1.1"]' in subnet["api"]
    assert "DNS 9.9.9.9, 1.1.1.1" in steps["offer"]["detail"]


def test_manifest_install_without_typha_gets_no_5473(make_lab, labtui, store):
    lab = make_lab("fix2")
    store.save_inputs(lab, {"calico_install": "manifest"})  # the manifest install runs no Typha by default
    steps, _ = _dry_run(labtui, lab)
    assert not [c for c in _commands(steps["security-group"]) if "5473" in c]


def test_provision_creates_them_and_the_user_data_installs_no_packages(make_lab, labtui, store, empty):
    lab = make_lab("fix3", dns_nameservers=["9.9.9.9"])
    rec = store.get_session(lab)
    plan = dict(rec.plan, sources=dict(rec.plan["sources"], http_proxy="http://10.60.0.1:3142"))
    store.update_session(lab, plan=plan)
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    conn = empty.conn()
    pid = conn.current_project_id
    net = conn.network.find_network("labtui-fix3-net", project_id=pid)
    subnet = next(conn.network.subnets(network_id=net.id))
    assert subnet.dns_nameservers == ["9.9.9.9"]
    group = conn.network.find_security_group("labtui-fix3", project_id=pid)
    rules = {(r.protocol, r.port_range_min, r.remote_group_id, r.remote_ip_prefix)
             for r in conn.network.security_group_rules(security_group_id=group.id) if r.direction == "ingress"}
    assert ("tcp", 5473, group.id, None) in rules  # Typha from the group
    assert ("tcp", 6443, None, "198.51.100.7/32") in rules  # the API from your SSH source (floating IP)
    facts = store.facts(store.get_session(lab).id, "provision")["provision"]
    assert facts["way_in"]["api_cidr"] == "198.51.100.7/32"
    adm = empty.admin()
    for s in conn.compute.servers(details=True):
        data = yaml.safe_load(base64.b64decode(adm.compute.get_server(s.id).user_data).decode())
        assert data["manage_etc_hosts"] is True and data["apt"] == {"proxy": "http://10.60.0.1:3142"}
        assert "packages" not in data and not any("apt-get" in c or "containerd" in c for c in data["runcmd"])
    # the flavors chosen have a root disk of 20 GB or more (the backend is shared: others' flavors may be there)
    disks = {s.flavor["original_name"]: s.flavor["disk"] for s in conn.compute.servers(details=True)}
    assert disks and all(d >= 20 for d in disks.values()), disks


@pytest.fixture
def zero_disk_flavor(empty):
    """A disk=0 flavor only this module's project sees (so other tests' choices are untouched): the
    smallest a control plane fits, which is what labtui used to take."""
    from tests.provision.conftest import admin_conn

    adm = admin_conn()
    name = f"{empty.project}-zero"
    flavor = adm.compute.find_flavor(name, ignore_missing=True)
    if flavor is None:
        flavor = adm.compute.create_flavor(name=name, vcpus=2, ram=2048, disk=0, is_public=False)
        adm.compute.flavor_add_tenant_access(flavor, empty.project_id)
    yield name


def test_a_zero_disk_flavor_is_never_chosen_and_refused_when_named(make_lab, labtui, zero_disk_flavor, empty):
    conn = empty.conn()
    assert conn.compute.find_flavor(zero_disk_flavor) is not None  # the project sees it
    lab = make_lab("fix4")
    steps, err = _dry_run(labtui, lab)
    servers = [c for c in _commands(steps["machines"]) if c.startswith("openstack server create")]
    assert servers and not any(zero_disk_flavor in c for c in servers), servers
    chosen = {c.split("--flavor ", 1)[1].split()[0] for c in servers}
    assert all(conn.compute.find_flavor(f).disk >= 20 for f in chosen), chosen
    # named in the plan: refused with Nova's reason, before anything is created
    lab = make_lab("fix5", flavor_control_plane=zero_disk_flavor)
    code, out, err = labtui("provision", lab, "--dry-run", "--json")
    assert code != 0
    text = out + err
    assert f"flavor {zero_disk_flavor}: its disk is 0 GB" in text and "zero_disk_flavor" in text
    assert "Traceback" not in text


def test_a_named_flavor_under_20_gb_is_used_with_a_warning(make_lab, labtui):
    lab = make_lab("fix6", flavor_worker="prov.worker")  # 1 GB disk
    steps, err = _dry_run(labtui, lab)
    assert "flavor prov.worker has a 1 GB disk" in steps["offer"]["detail"]


def test_behind_nat_the_dry_run_warns_about_the_ssh_source(make_lab, labtui, monkeypatch):
    import labtui.adapters.provision as p

    monkeypatch.setattr(p, "my_address", lambda c: "192.168.1.23")  # a laptop at home, behind its router's NAT
    lab = make_lab("fix7", ssh_cidr=None)
    steps, err = _dry_run(labtui, lab)
    detail = steps["offer"]["detail"]
    assert "SSH from 192.168.1.23/32" in detail
    assert "192.168.1.23, a private address" in detail and "behind NAT" in detail
    assert "Set provision.ssh_cidr to your public address" in detail
    # a public address of yours: no warning
    monkeypatch.setattr(p, "my_address", lambda c: "198.51.100.9")
    steps, err = _dry_run(labtui, make_lab("fix8", ssh_cidr=None))
    assert "behind NAT" not in steps["offer"]["detail"]
