"""`labtui cloud check / fix / revert` against the real OpenStack API (tests/harness/openstack).

The incident's layout: cp1, w1, w2, w3 booted by Nova on 10.100.200.0/24, each port in the
security group `k8s`, which has the usual Kubernetes rules but nothing for IP protocol 4.
"""

from __future__ import annotations

import pytest

from labtui.store import Store

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(300)]

POD = "172.16.0.0/16"


def req(data: dict, rid: str) -> dict:
    return next(r for r in data["requirements"] if r["id"] == rid)


def ipv4_ingress(rules, proto=None):
    return [r for r in rules if r.direction == "ingress" and r.ether_type == "IPv4" and (proto is None or r.protocol == proto)]


def test_check_reports_ipip_missing_with_its_reason(incident, make_lab, check_json):
    lab = make_lab(incident, "IPIP", extra_nodes=[{"name": "w9", "address": "10.100.200.99"}])
    code, data = check_json(lab)
    assert code == 1
    ipip = req(data, "ipip")
    assert ipip["status"] == "missing"
    assert "IP-in-IP" in ipip["detail"] and "protocol 4" in ipip["detail"] and "anti-spoofing" in ipip["detail"]
    assert ipip["required_by"] == "Calico IPIP (Always)"
    assert ipip["fixes"][0]["command"].startswith(
        "openstack security group rule create --ingress --ethertype IPv4 --protocol 4 --remote-group k8s ")
    assert ipip["fixes"][0]["command"].endswith(" k8s")
    assert '"protocol": "4"' in ipip["fixes"][0]["api"]
    # everything else the incident's group has is satisfied, by the rule that does it
    assert req(data, "bgp")["status"] == "satisfied" and req(data, "bgp")["via"][0]["how"] == "exact"
    assert req(data, "apiserver")["via"][0]["how"] == "prefix"
    assert data["summary"] == "1 missing (ipip)"
    # the four servers are found by name, with their ports; w9 is reported as not a server, not an error
    nodes = {n["name"]: n for n in data["nodes"]}
    assert all(nodes[n]["found"] and nodes[n]["matched_by"] == "name" for n in ("cp1", "w1", "w2", "w3"))
    w1 = nodes["w1"]["ports"][0]
    assert w1["fixed_ips"][0]["ip_address"] == "10.100.200.21"
    assert w1["subnet_cidr"] == "10.100.200.0/24" and w1["port_security_enabled"] is True
    assert w1["security_group_ids"] == [incident.security_group_id] and w1["allowed_address_pairs"] == []
    assert nodes["w9"]["found"] is False and "not a server of cloud labtui-admin" in nodes["w9"]["note"]


def test_check_human_output_and_command_log(incident, make_lab, labtui, store):
    lab = make_lab(incident, "IPIP")
    code, out, err = labtui("cloud", "check", lab)
    assert code == 1
    assert "✗ missing    IP protocol 4 (IPIP) between the nodes" in out
    assert "fix: $ openstack security group rule create --ingress --ethertype IPv4 --protocol 4 --remote-group k8s" in out
    assert "NOT OK: 1 missing (ipip)" in out
    # every API call is in the command log (stderr here, and the lab's recorded events)
    assert "GET /compute/v2.1/servers/detail" in err and "GET /v2.0/security-groups?id=" in err
    logged = [e.message for e in store.events(store.get_session(lab).id)]
    assert any("POST /v3/auth/tokens" in m for m in logged)
    assert any("GET /v2.0/ports?device_id=" in m for m in logged)


def test_fix_creates_protocol_4_from_the_group_itself_then_is_idempotent(incident, make_lab, labtui, check_json, store):
    lab = make_lab(incident, "IPIP")
    code, out, err = labtui("cloud", "fix", lab, "--yes")
    assert code == 0, out + err
    assert "After the fixes: all 10 requirements are met" in out
    rules = ipv4_ingress(incident.rules(), "4")
    assert len(rules) == 1
    rule = rules[0]
    assert rule.protocol == "4"  # the number as a string, never "ipip"
    assert rule.remote_group_id == incident.security_group_id == rule.security_group_id
    assert rule.remote_ip_prefix is None
    changes = store.changes(store.get_session(lab).id)
    assert [c.kind for c in changes] == ["openstack.sg-rule"]
    assert changes[0].revert_data == {"rule_id": rule.id, "security_group_id": incident.security_group_id}
    assert changes[0].revert_command == f"openstack security group rule delete {rule.id}"
    assert "--protocol 4 --remote-group k8s" in changes[0].command
    # again: nothing to do, no duplicate, no error
    code, out, err = labtui("cloud", "fix", lab, "--yes")
    assert code == 0 and "Nothing to fix" in out
    assert len(ipv4_ingress(incident.rules(), "4")) == 1
    # and the adapter itself treats Neutron's 409 for the same rule as done
    from labtui.adapters import openstack as cloud

    conn = cloud.connect("labtui-admin")
    res = cloud.create_rule(conn, security_group_id=incident.security_group_id, protocol="4",
                            remote_group_id=incident.security_group_id)
    assert res.created is False and res.id == rule.id
    assert len(ipv4_ingress(incident.rules(), "4")) == 1
    assert len(store.changes(store.get_session(lab).id)) == 1
    # revert removes the rule and marks the change
    code, out, err = labtui("cloud", "revert", lab, "--yes")
    assert code == 0, err
    assert ipv4_ingress(incident.rules(), "4") == []
    assert store.changes(store.get_session(lab).id)[0].reverted
    code, data = check_json(lab)
    assert req(data, "ipip")["status"] == "missing"


def test_fix_without_yes_changes_nothing(incident, make_lab, labtui):
    lab = make_lab(incident, "IPIP")
    code, out, err = labtui("cloud", "fix", lab)
    assert code == 1
    assert "$ openstack security group rule create --ingress --ethertype IPv4 --protocol 4 --remote-group k8s" in out
    assert 'API: POST /v2.0/security-group-rules {"security_group_rule":' in out
    assert "Re-run with --yes" in out and "not applied" in out
    assert ipv4_ingress(incident.rules(), "4") == []


def test_pairs_fix_keeps_an_existing_pair_and_revert_removes_exactly_what_was_added(incident, make_lab, labtui, check_json):
    conn = incident.conn
    vip = {"ip_address": "10.100.200.250", "mac_address": incident.port("w1").mac_address}
    conn.network.update_port(incident.node("w1").port_id, allowed_address_pairs=[vip])
    lab = make_lab(incident, "IPIPCrossSubnet")
    code, data = check_json(lab)
    pairs = req(data, "pod-cidr-pairs")
    assert pairs["status"] == "missing" and "anti-spoofing" in pairs["detail"]
    assert req(data, "ipip")["status"] == "satisfied" and "CrossSubnet" in req(data, "ipip")["detail"]
    assert req(data, "pod-traffic")["status"] == "missing"

    code, out, err = labtui("cloud", "fix", lab, "--yes", "--only", "pod-cidr-pairs")
    assert "openstack port set --allowed-address ip-address=172.16.0.0/16 incident-w1" in out
    w1 = {(p["ip_address"], p.get("mac_address")) for p in incident.port("w1").allowed_address_pairs}
    assert w1 == {(vip["ip_address"], vip["mac_address"]), (POD, incident.port("w1").mac_address)}
    for node in ("cp1", "w2", "w3"):
        assert [p["ip_address"] for p in incident.port(node).allowed_address_pairs] == [POD]
    code, data = check_json(lab)
    assert req(data, "pod-cidr-pairs")["status"] == "satisfied"

    # fixing again adds nothing
    code, out, err = labtui("cloud", "fix", lab, "--yes", "--only", "pod-cidr-pairs")
    assert [p["ip_address"] for p in incident.port("w2").allowed_address_pairs] == [POD]

    code, out, err = labtui("cloud", "revert", lab, "--yes")
    assert code == 0, err
    assert [(p["ip_address"], p["mac_address"]) for p in incident.port("w1").allowed_address_pairs] == \
        [(vip["ip_address"], vip["mac_address"])]
    for node in ("cp1", "w2", "w3"):
        assert incident.port(node).allowed_address_pairs == []


def test_crosssubnet_fix_all_makes_unencapsulated_pod_traffic_pass(incident, make_lab, labtui, check_json):
    lab = make_lab(incident, "IPIPCrossSubnet")
    code, out, err = labtui("cloud", "fix", lab, "--yes")
    assert code == 0, out + err
    code, data = check_json(lab)
    assert code == 0 and data["ok"]
    rule = next(r for r in ipv4_ingress(incident.rules()) if r.remote_ip_prefix == POD)
    assert rule.protocol is None  # any protocol from the pod CIDR


def test_a_rule_with_protocol_ipip_is_flagged(incident, make_lab, check_json, labtui):
    named = incident.conn.network.create_security_group_rule(
        security_group_id=incident.security_group_id, direction="ingress", ether_type="IPv4", protocol="ipip",
        remote_group_id=incident.security_group_id)
    lab = make_lab(incident, "IPIP")
    code, data = check_json(lab)
    ipip = req(data, "ipip")
    assert ipip["status"] == "suspicious"
    assert "protocol 94" in ipip["detail"] and "iptables" in ipip["detail"] and "--protocol 4" in ipip["detail"]
    # Neutron counts "ipip" and "4" with the same attributes as one rule (409): the fix replaces it
    assert ipip["fixes"][0]["command"].startswith(f"openstack security group rule delete {named.id} && "
                                                  "openstack security group rule create --ingress --ethertype IPv4 --protocol 4")
    code, out, err = labtui("cloud", "fix", lab, "--yes")
    assert code == 0, out + err
    assert [r.protocol for r in ipv4_ingress(incident.rules()) if r.protocol in ("4", "ipip")] == ["4"]
    code, data = check_json(lab)
    assert req(data, "ipip")["status"] == "satisfied"
    # the revert gives the user's rule back as it was
    code, out, err = labtui("cloud", "revert", lab, "--yes")
    assert code == 0, err
    assert [r.protocol for r in ipv4_ingress(incident.rules()) if r.protocol in ("4", "ipip")] == ["ipip"]


def test_a_prefix_rule_covering_all_nodes_counts_and_a_narrow_one_is_suspicious(incident, make_lab, check_json):
    net = incident.conn.network
    narrow = net.create_security_group_rule(security_group_id=incident.security_group_id, direction="ingress",
                                            ether_type="IPv4", protocol="4", remote_ip_prefix="10.100.200.0/28")
    lab = make_lab(incident, "IPIP")
    code, data = check_json(lab)
    ipip = req(data, "ipip")
    assert ipip["status"] == "suspicious"
    assert "10.100.200.0/28 covers only some nodes" in ipip["detail"]
    assert "w1 (10.100.200.21)" in ipip["detail"] and "cp1" not in ipip["detail"].split("misses")[1]
    net.delete_security_group_rule(narrow)
    net.create_security_group_rule(security_group_id=incident.security_group_id, direction="ingress",
                                   ether_type="IPv4", protocol="4", remote_ip_prefix="10.100.200.0/24")
    code, data = check_json(lab)
    ipip = req(data, "ipip")
    assert ipip["status"] == "satisfied" and {v["how"] for v in ipip["via"]} == {"prefix"}
    assert code == 0


def test_an_any_protocol_rule_from_the_group_covers_ipip_and_vxlan(incident, make_lab, check_json):
    incident.conn.network.create_security_group_rule(
        security_group_id=incident.security_group_id, direction="ingress", ether_type="IPv4",
        remote_group_id=incident.security_group_id)
    lab = make_lab(incident, "VXLAN")
    code, data = check_json(lab)
    assert req(data, "vxlan")["status"] == "satisfied" and req(data, "vxlan")["via"][0]["how"] == "any-protocol"
    code, data = check_json(lab, "--encapsulation", "IPIP")
    assert req(data, "ipip")["via"][0]["how"] == "any-protocol"


def test_removed_egress_is_suspicious_and_fix_restores_it(incident, make_lab, check_json, labtui):
    net = incident.conn.network
    for r in incident.rules():
        if r.direction == "egress" and r.ether_type == "IPv4":
            net.delete_security_group_rule(r)
    lab = make_lab(incident, "IPIP")
    code, data = check_json(lab)
    egress = req(data, "egress")
    assert egress["status"] == "suspicious" and "no egress rule at all (removed)" in egress["detail"]
    code, out, err = labtui("cloud", "fix", lab, "--yes")
    assert code == 0, out + err
    assert [r for r in incident.rules() if r.direction == "egress" and r.ether_type == "IPv4"]


def test_disable_port_security_is_explicit_destructive_and_reverts(incident, make_lab, labtui, check_json, store):
    lab = make_lab(incident, "None")
    code, out, err = labtui("cloud", "fix", lab, "--only", "egress", "--disable-port-security", "w3", "--yes")
    assert "(DESTRUCTIVE)" in out and "removes anti-spoofing AND every security group" in out
    assert "--no-security-group --no-allowed-address --disable-port-security incident-w3" in out
    port = incident.port("w3")
    assert port.is_port_security_enabled is False and port.security_group_ids == []
    code, data = check_json(lab)
    assert any(v["how"] == "port-security-off" for v in req(data, "pod-cidr-pairs")["via"])
    change = [c for c in store.changes(store.get_session(lab).id) if c.kind == "openstack.port-security"][0]
    assert change.revert_data["security_groups"] == [incident.security_group_id]
    code, out, err = labtui("cloud", "revert", lab, str(change.id), "--yes")
    assert code == 0, err
    port = incident.port("w3")
    assert port.is_port_security_enabled is True and port.security_group_ids == [incident.security_group_id]


def test_member_only_user_gets_a_clear_403(member_layout, make_lab, labtui):
    lab = make_lab(member_layout, "IPIPCrossSubnet", name="member-lab")
    code, out, err = labtui("cloud", "fix", lab, "--yes", "--only", "pod-cidr-pairs")
    assert code == 2
    assert "labtui: cloud labtui-member: not allowed to set allowed-address-pairs on port member-m-" in err
    assert "(HTTP 403:" in err and "is disallowed by policy" in err
    assert "-> your user's role in this project does not permit it" in err
    assert "Traceback" not in err
    # its own group is its to change: the rule fix works for the same user
    code, out, err = labtui("cloud", "fix", lab, "--yes", "--only", "ipip", "--encapsulation", "IPIP")
    assert code == 0, out + err
    member_layout.reset()


def test_wrong_password_unknown_cloud_and_no_network_service(incident, make_lab, labtui, store):
    lab = make_lab(incident, "IPIP")
    code, out, err = labtui("cloud", "check", lab, "--cloud", "labtui-badpass")
    assert code == 2
    assert "labtui: cloud labtui-badpass: the credentials were refused (HTTP 401) while trying to log in" in err
    assert "check username, password, project" in err
    assert "not-the-password" not in err + out

    code, out, err = labtui("cloud", "check", lab, "--cloud", "no-such-cloud")
    assert code == 2
    assert "cloud 'no-such-cloud' is not defined in" in err and "labtui-admin" in err

    code, out, err = labtui("cloud", "check", lab, "--cloud", "labtui-nonet")
    assert code == 2 and "labtui: cloud labtui-nonet: no network service (Neutron) in the catalog" in err
    assert "region_name" in err
    # the database never saw a password
    raw = Store().path.read_bytes()
    assert b"labtui-admin-pw" not in raw and b"not-the-password" not in raw


def test_nodes_named_differently_are_matched_to_their_servers_by_address(incident, store, cloud_env, check_json):
    plan = incident.plan(lab="renamed", encapsulation="IPIP")
    for node, name in zip(plan["nodes"], ("master", "worker-1", "worker-2", "worker-3")):
        node["name"] = name
    store.create_session("renamed", cloud=incident.cloud, wizard="cloud", plan=plan)
    code, data = check_json("renamed")
    nodes = {n["name"]: n for n in data["nodes"]}
    assert nodes["master"]["found"] and nodes["master"]["matched_by"] == "address"
    assert nodes["master"]["server"] == "cp1" and nodes["worker-2"]["server"] == "w2"
    assert nodes["worker-2"]["ports"][0]["id"] == incident.node("w2").port_id
    assert req(data, "ipip")["status"] == "missing" and req(data, "kubelet")["status"] == "satisfied"


def test_the_commands_labtui_shows_are_real_openstack_cli_commands(incident, make_lab, check_json, labtui, openstack_stack):
    """Run the exact commands labtui prints with the real `openstack` client (python-openstackclient,
    pinned with the services): they make the same change the API path makes."""
    import os
    import shlex
    import subprocess

    from tests.harness.openstack.stack import VENV

    def openstack(command: str) -> None:
        argv = shlex.split(command)
        assert argv[0] == "openstack"
        env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(openstack_stack.clouds_yaml), "OS_CLOUD": incident.cloud}
        res = subprocess.run([str(VENV / "bin" / "openstack"), *argv[1:]], env=env, capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr

    lab = make_lab(incident, "IPIP")
    code, data = check_json(lab)
    openstack(req(data, "ipip")["fixes"][0]["command"])
    [rule] = [r for r in incident.rules() if r.protocol == "4"]
    assert rule.remote_group_id == incident.security_group_id
    code, data = check_json(lab)
    assert code == 0 and req(data, "ipip")["status"] == "satisfied"

    from labtui.net.check import port_security_fixes
    from labtui.adapters.openstack import connect, discover

    lab_net = discover(connect(incident.cloud), incident.plan()["nodes"])
    fix = next(f for f in port_security_fixes(lab_net) if f.node == "w3")
    openstack(fix.command())
    port = incident.port("w3")
    assert port.is_port_security_enabled is False and port.security_group_ids == []
    openstack(fix.revert_command())
    port = incident.port("w3")
    assert port.is_port_security_enabled is True and port.security_group_ids == [incident.security_group_id]
