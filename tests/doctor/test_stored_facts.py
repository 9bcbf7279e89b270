"""Stored doctor facts: the doctor's facts are the one network model's types (labtui.net.model
NodePort / SecurityGroup / SGRule, labtui.net.calico IPPoolInfo) and round-trip through JSON; a
diagnosis stored before that (the doctor's own Port / Group / Rule / Pool field names) still opens,
diagnoses the same, and its report still shows each node's port."""

from __future__ import annotations

import json

from labtui.doctor.model import DoctorFacts
from labtui.doctor.reason import diagnose
from labtui.net.calico import IPPoolInfo
from labtui.net.model import NodePort, SecurityGroup, SGRule
from tests.doctor.scenarios import SG, incident

# two nodes of the incident as a session saved before the one network model stored them
OLD_PORT = {"id": "port-1", "name": "k8s-w1-port", "fixed_ips": ["10.100.200.21"], "subnet_cidr": "10.100.200.0/24",
            "subnet_name": "lab-subnet", "network": "lab-net", "mac": "fa:16:3e:00:00:01", "security_groups": [SG],
            "port_security": True, "allowed_address_pairs": ["10.100.200.250"], "mtu": 1450}
OLD_FACTS = {
    "cluster": "old", "cloud": "lab",
    "nodes": [
        {"name": "k8s-cp", "role": "control-plane", "address": "10.100.200.4", "iface": "ens3",
         "iface_cidr": "10.100.200.4/24", "calico_cidr": "10.100.200.4/24",
         "port": {**OLD_PORT, "id": "port-0", "name": "k8s-cp-port", "fixed_ips": ["10.100.200.4"],
                  "allowed_address_pairs": [], "mac": "fa:16:3e:00:00:00"}},
        {"name": "k8s-w1", "role": "worker", "address": "10.100.200.21", "iface": "ens3",
         "iface_cidr": "10.100.200.21/24", "calico_cidr": "10.100.200.21/24", "port": OLD_PORT},
    ],
    "groups": {SG: {"id": SG, "name": "k8s", "stateful": True, "rules": [
        {"id": "r-egress", "direction": "egress", "ethertype": "IPv4", "protocol": None, "port_min": None,
         "port_max": None, "remote_group_id": None, "remote_ip_prefix": None, "description": ""},
        {"id": "r-bgp", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_min": 179,
         "port_max": 179, "remote_group_id": SG, "remote_ip_prefix": None, "description": ""}]}},
    "pools": [{"name": "default-ipv4-ippool", "cidr": "172.16.0.0/16", "ipip_mode": "CrossSubnet",
               "vxlan_mode": "Never", "nat_outgoing": True, "disabled": False, "node_selector": "all()",
               "managed_by_operator": True, "installation_index": 0}],
    "calico": {"install_mode": "operator", "backend": "bird", "bgp": True, "api": "v3"},
    "sources": {"cloud": True, "kube": True, "ssh": True},
}


def test_facts_are_the_net_model_and_round_trip():
    facts = incident()
    port = facts.node("k8s-w1").port
    assert isinstance(port, NodePort) and isinstance(facts.groups[SG], SecurityGroup)
    assert all(isinstance(r, SGRule) for r in facts.groups[SG].rules) and isinstance(facts.pools[0], IPPoolInfo)
    data = json.loads(json.dumps(facts.to_dict()))
    stored = data["nodes"][1]["port"]
    assert stored["port_security_enabled"] is True and stored["security_group_ids"] == [SG]
    assert stored["fixed_ips"][0]["ip_address"] == "10.100.200.21" and "security_groups" not in stored
    assert data["groups"][SG]["rules"][0]["port_range_min"] is None
    assert DoctorFacts.from_dict(data) == facts


def test_a_diagnosis_stored_before_the_one_network_model_still_opens():
    old = DoctorFacts.from_dict(json.loads(json.dumps(OLD_FACTS)))
    w1 = old.node("k8s-w1").port
    assert (w1.ipv4s, w1.pair_addresses, w1.security_group_ids) == (["10.100.200.21"], ["10.100.200.250"], [SG])
    assert (w1.port_security_enabled, w1.network_mtu, w1.network_name, w1.mac_address) == (True, 1450, "lab-net",
                                                                                            "fa:16:3e:00:00:01")
    bgp = old.groups[SG].rules[1]
    assert (bgp.port_range_min, bgp.port_range_max, bgp.ether_type, bgp.security_group_id) == (179, 179, "IPv4", SG)
    assert old.pools[0].operator_managed and old.pools[0].installation_index == 0
    # and the doctor reasons on it as on the same facts gathered today: the incident, both ways
    diag = diagnose(old)
    assert [f.id for f in diag.findings][:1] == ["crosssubnet-antispoofing"]
    assert sorted(diag.findings[0].pairs) == ["k8s-cp->k8s-w1", "k8s-w1->k8s-cp"]
    assert any(a.kind == "installation-encapsulation" for a in diag.option(1).actions)


def test_the_report_reads_old_and_new_stored_facts(store):
    from labtui.report import session_report_data

    for name, facts in (("old", OLD_FACTS), ("new", incident(n=2, pairs={1: ["10.100.200.250"]}).to_dict())):
        store.create_session(name, cloud="lab", wizard="doctor", plan={})
        rec = store.get_session(name)
        store.put_facts(rec.id, "doctor", {"last": {"status": "findings", "exit_code": 1, "facts": facts}})
        rows = {n["name"]: n for n in session_report_data(store, name)["setup"]["nodes"]}
        assert rows["k8s-w1"]["port"] == "k8s-w1-port" and rows["k8s-w1"]["port_security"] == "on"
        assert rows["k8s-w1"]["allowed_address_pairs"] == ["10.100.200.250"]
        assert rows["k8s-cp"]["subnet"] == "10.100.200.0/24"
