"""Pure tests of labtui.net.check: what the network must allow, and how rules and ports are classified."""

from __future__ import annotations

import pytest

from labtui.net.check import AAP_QUOTA, evaluate, port_security_fixes
from labtui.net.fixes import PairsFix, RuleFix
from labtui.net.model import LabNetwork, LabNode, NodePort, SecurityGroup, SGRule
from labtui.net.requirements import CalicoNetworking, NodeRef, derive_requirements, encapsulated_pairs
from labtui.model import Encapsulation

SG = "sg-k8s"
POD = "172.16.0.0/16"
NODES = [("cp1", "10.100.200.4", "control-plane"), ("w1", "10.100.200.21", "worker"),
         ("w2", "10.100.200.22", "worker"), ("w3", "10.100.200.23", "worker")]


def refs(subnets: dict[str, str] | None = None) -> list[NodeRef]:
    return [NodeRef(n, r, ip, (subnets or {}).get(n, "10.100.200.0/24")) for n, ip, r in NODES]


def rule(rid: str, proto=None, lo=None, hi=None, group=None, prefix=None, direction="ingress") -> SGRule:
    return SGRule(rid, SG, direction, "IPv4", proto, lo, hi if hi is not None else lo, group, prefix)


INCIDENT_RULES = [
    rule("ssh", "tcp", 22, prefix="0.0.0.0/0"), rule("api", "tcp", 6443, prefix="0.0.0.0/0"),
    rule("etcd", "tcp", 2379, 2380, group=SG), rule("kubelet", "tcp", 10250, group=SG),
    rule("sched", "tcp", 10259, group=SG), rule("cm", "tcp", 10257, group=SG), rule("bgp", "tcp", 179, group=SG),
    rule("np", "tcp", 30000, 32767, prefix="0.0.0.0/0"), rule("icmp", "icmp", prefix="0.0.0.0/0"),
    rule("egress4", direction="egress"),
]


def lab(extra_rules=(), *, pairs=None, port_security=None, subnets=None, rules=None, groups_of=None) -> LabNetwork:
    net = LabNetwork("study", groups=[SecurityGroup(SG, "k8s", list(rules if rules is not None else INCIDENT_RULES) + list(extra_rules))])
    for name, ip, role in NODES:
        cidr = (subnets or {}).get(name, "10.100.200.0/24")
        port = NodePort(f"port-{name}", f"incident-{name}", fixed_ips=[{"ip_address": ip, "subnet_id": cidr}],
                        subnet_cidr=cidr, security_group_ids=list((groups_of or {}).get(name, [SG])),
                        port_security_enabled=(port_security or {}).get(name, True),
                        allowed_address_pairs=list((pairs or {}).get(name, [])), mac_address="fa:16:3e:00:00:01")
        net.nodes.append(LabNode(name, role, ip, True, f"srv-{name}", name, "ACTIVE", "name", [port]))
    return net


def net(enc: str, **kw) -> CalicoNetworking:
    return CalicoNetworking.for_encapsulation(enc, pod_cidr=POD, **kw)


def ids(reqs) -> list[str]:
    return [r.id for r in reqs]


# --------------------------------------------------------------------------- derivation


def test_ipip_always_needs_protocol_4_between_every_pair_and_bgp():
    reqs = {r.id: r for r in derive_requirements(net("IPIP"), refs())}
    assert reqs["ipip"].protocol == "4" and len(reqs["ipip"].pairs) == 12  # 4 nodes, both directions
    assert "IP-in-IP" in reqs["ipip"].reason and "anti-spoofing" in reqs["ipip"].reason
    assert reqs["bgp"].port_min == 179 and "BIRD" in reqs["bgp"].reason
    assert "vxlan" not in reqs and "pod-cidr-pairs" not in reqs and "typha" not in reqs


def test_vxlan_needs_udp_4789_and_no_bgp_by_default():
    reqs = {r.id: r for r in derive_requirements(net("VXLAN"), refs())}
    assert (reqs["vxlan"].protocol, reqs["vxlan"].port_min) == ("udp", 4789)
    assert "bgp" not in reqs and "ipip" not in reqs


def test_crosssubnet_on_one_subnet_needs_the_pod_cidr_on_the_ports_not_protocol_4():
    reqs = {r.id: r for r in derive_requirements(net("IPIPCrossSubnet"), refs())}
    assert reqs["ipip"].pairs == () and "switch to IPIP Always" in reqs["ipip"].unused_note
    assert reqs["pod-cidr-pairs"].kind == "pairs" and reqs["pod-cidr-pairs"].cidr == POD
    assert set(reqs["pod-cidr-pairs"].nodes) == {"cp1", "w1", "w2", "w3"}
    assert "SAME subnet" in reqs["pod-cidr-pairs"].reason and "anti-spoofing" in reqs["pod-cidr-pairs"].reason
    assert reqs["pod-traffic"].protocol is None and reqs["pod-traffic"].source == "pod-cidr"


def test_crosssubnet_across_two_subnets_encapsulates_only_between_them():
    subnets = {"w3": "10.100.201.0/24"}
    enc, plain = encapsulated_pairs(net("VXLANCrossSubnet"), refs(subnets))
    assert sorted(enc) == sorted([(n, "w3") for n in ("cp1", "w1", "w2")] + [("w3", n) for n in ("cp1", "w1", "w2")])
    assert ("w1", "w2") in plain and ("w3", "w1") not in plain
    reqs = {r.id: r for r in derive_requirements(net("VXLANCrossSubnet"), refs(subnets))}
    assert len(reqs["vxlan"].pairs) == 6
    assert reqs["pod-cidr-pairs"].nodes == ("cp1", "w1", "w2")  # w3 shares a subnet with no one


def test_no_encapsulation_needs_pairs_everywhere_and_bgp():
    reqs = {r.id: r for r in derive_requirements(net("None"), refs())}
    assert "ipip" not in reqs and "vxlan" not in reqs
    assert "Without encapsulation" in reqs["pod-cidr-pairs"].reason
    assert "bgp" in reqs


def test_bgp_and_typha_flags_and_roles():
    reqs = {r.id: r for r in derive_requirements(net("IPIP", bgp=False, typha=True), refs())}
    assert "bgp" not in reqs and reqs["typha"].port_min == 5473
    assert set(d for _, d in reqs["apiserver"].pairs) == {"cp1"}  # into the control plane only
    assert set(s for s, _ in reqs["kubelet"].pairs) == {"cp1"}  # from the control plane
    assert set(d for _, d in reqs["nodeport"].pairs) == {"w1", "w2", "w3"}
    assert reqs["etcd"].pairs == ()  # one control plane: nothing crosses the network
    assert reqs["ssh"].source == "anywhere"


def test_defaults_from_stored_cluster_facts():
    n = CalicoNetworking.from_facts({"ipipMode": "CrossSubnet", "vxlanMode": "Never", "typha": True})
    assert n.encapsulation == Encapsulation.IPIP_CROSS_SUBNET and n.bgp and n.typha
    n = CalicoNetworking.from_facts({"encapsulation": "VXLAN", "bgp": True}, pod_cidr=POD)
    assert n.bgp and n.pod_cidr == POD and n.vxlan_mode == "Always"


# --------------------------------------------------------------------------- evaluation


def test_incident_group_misses_ipip_and_the_fix_is_the_incidents_command():
    report = evaluate(lab(), net("IPIP"))
    assert report.summary() == "1 missing (ipip)"
    ipip = report.status("ipip")
    assert ipip.status == "missing" and "protocol 4" in ipip.detail
    [fix] = ipip.fixes
    assert isinstance(fix, RuleFix)
    assert fix.attrs()["protocol"] == "4" and fix.remote_group_id == SG == fix.security_group_id
    assert fix.command() == ("openstack security group rule create --ingress --ethertype IPv4 --protocol 4 "
                             "--remote-group k8s --description 'labtui: IP protocol 4 (IPIP) between the nodes' k8s")
    assert fix.api().startswith("POST /v2.0/security-group-rules ") and '"protocol": "4"' in fix.api()
    assert report.status("bgp").via[0].how == "exact" and report.status("apiserver").via[0].how == "prefix"


def test_exact_rule_satisfies_and_ipip_name_is_suspicious():
    ok = evaluate(lab([rule("p4", "4", group=SG)]), net("IPIP")).status("ipip")
    assert ok.status == "satisfied" and ok.via[0].how == "exact" and ok.via[0].rule_id == "p4"
    bad = evaluate(lab([rule("named", "ipip", group=SG)]), net("IPIP")).status("ipip")
    assert bad.status == "suspicious"
    assert "protocol 94" in bad.detail and "ipencap" in bad.detail and "--protocol 4" in bad.detail
    assert bad.fixes and bad.fixes[0].attrs()["protocol"] == "4"
    both = evaluate(lab([rule("named", "ipip", group=SG), rule("p4", "4", group=SG)]), net("IPIP")).status("ipip")
    assert both.status == "satisfied"


def test_any_protocol_rule_from_the_group_and_covering_prefix_satisfy():
    s = evaluate(lab([rule("all", group=SG)]), net("VXLAN")).status("vxlan")
    assert s.status == "satisfied" and s.via[0].how == "any-protocol"
    s = evaluate(lab([rule("pfx", "4", prefix="10.100.200.0/24")]), net("IPIP")).status("ipip")
    assert s.status == "satisfied" and s.via[0].how == "prefix"
    s = evaluate(lab([rule("world", "udp", 4789, prefix="0.0.0.0/0")]), net("VXLAN")).status("vxlan")
    assert s.status == "satisfied"


def test_prefix_missing_some_nodes_is_suspicious_and_names_them():
    s = evaluate(lab([rule("narrow", "4", prefix="10.100.200.0/28")]), net("IPIP")).status("ipip")
    assert s.status == "suspicious"
    assert "10.100.200.0/28 covers only some nodes" in s.detail
    assert "w1 (10.100.200.21)" in s.detail and "w3 (10.100.200.23)" in s.detail
    assert ("w1", "cp1") in s.uncovered and ("cp1", "w1") not in s.uncovered
    assert s.fixes and s.fixes[0].remote_group_id == SG


def test_wrong_port_range_does_not_count():
    s = evaluate(lab([rule("vx", "udp", 4000, 4100, group=SG)]), net("VXLAN")).status("vxlan")
    assert s.status == "missing"
    s = evaluate(lab([rule("vx", "udp", 4000, 5000, group=SG)]), net("VXLAN")).status("vxlan")
    assert s.status == "satisfied"


def test_egress_removed_or_narrowed_is_suspicious():
    rules = [r for r in INCIDENT_RULES if r.direction != "egress"]
    s = evaluate(lab(rules=rules), net("IPIP")).status("egress")
    assert s.status == "suspicious" and "removed" in s.detail
    assert s.fixes[0].direction == "egress" and s.fixes[0].command().startswith(
        "openstack security group rule create --egress --ethertype IPv4 --protocol any")
    narrow = rules + [rule("e443", "tcp", 443, prefix="0.0.0.0/0", direction="egress")]
    s = evaluate(lab(rules=narrow), net("IPIP")).status("egress")
    assert s.status == "suspicious" and "limited to" in s.detail


def test_pairs_classification_merge_partial_quota_and_port_security_off():
    full = {n: [{"ip_address": POD}] for n, _, _ in NODES}
    assert evaluate(lab(pairs=full), net("None")).status("pod-cidr-pairs").status == "satisfied"
    wider = {n: [{"ip_address": "172.16.0.0/12"}] for n, _, _ in NODES}
    assert evaluate(lab(pairs=wider), net("None")).status("pod-cidr-pairs").status == "satisfied"
    some = dict(full, w2=[{"ip_address": "10.100.200.250"}])
    s = evaluate(lab(pairs=some), net("None")).status("pod-cidr-pairs")
    assert s.status == "missing" and "not on w2" in s.detail
    [fix] = s.fixes
    assert isinstance(fix, PairsFix) and fix.existing == ("10.100.200.250",)
    assert fix.command() == "openstack port set --allowed-address ip-address=172.16.0.0/16 incident-w2"
    assert '"allowed_address_pairs": [{"ip_address": "10.100.200.250"}, {"ip_address": "172.16.0.0/16"}]' in fix.api()
    part = dict(full, w3=[{"ip_address": "172.16.5.0/24"}])
    assert evaluate(lab(pairs=part), net("None")).status("pod-cidr-pairs").status == "suspicious"
    full_quota = dict(full, w1=[{"ip_address": f"10.100.200.{200 + i}"} for i in range(AAP_QUOTA)])
    [fix] = evaluate(lab(pairs=full_quota), net("None")).status("pod-cidr-pairs").fixes
    assert fix.blocked and "quota" in fix.blocked
    off = dict.fromkeys(["cp1", "w1", "w2", "w3"], False)
    s = evaluate(lab(port_security=off), net("None"))
    assert s.status("pod-cidr-pairs").status == "satisfied"
    assert {m.how for m in s.status("pod-traffic").via} == {"port-security-off"}


def test_pod_traffic_from_the_group_counts_only_when_members_carry_the_pod_cidr():
    full = {n: [{"ip_address": POD}] for n, _, _ in NODES}
    any_from_group = [rule("all", group=SG)]
    assert evaluate(lab(any_from_group, pairs=full), net("None")).status("pod-traffic").status == "satisfied"
    assert evaluate(lab(any_from_group), net("None")).status("pod-traffic").status == "missing"
    fix = evaluate(lab(), net("None")).status("pod-traffic").fixes[0]
    assert fix.remote_ip_prefix == POD and fix.protocol is None


def test_nodes_not_in_the_cloud_are_unknown_not_failures():
    net_ = lab()
    net_.nodes.append(LabNode("w9", "worker", "10.100.200.99", False, note="not a server of cloud study"))
    report = evaluate(net_, net("IPIP"))
    ipip = report.status("ipip")
    assert "w9" in ipip.unknown and ipip.status == "missing"
    assert all(p[0] != "w9" and p[1] != "w9" for p in ipip.uncovered)
    assert report.status("bgp").status == "satisfied"


def test_rule_goes_to_each_nodes_group_when_they_share_none():
    groups = {"cp1": ["sg-cp"], "w1": ["sg-w"], "w2": ["sg-w"], "w3": ["sg-w"]}
    net_ = lab(rules=[], groups_of=groups)
    net_.groups = [SecurityGroup("sg-cp", "cp", []), SecurityGroup("sg-w", "workers", [])]
    fixes = evaluate(net_, net("IPIP")).status("ipip").fixes
    assert {(f.security_group_name, f.remote_ip_prefix) for f in fixes} == {("cp", "10.100.200.0/24"),
                                                                           ("workers", "10.100.200.0/24")}


def test_port_security_fixes_carry_what_the_revert_needs():
    fixes = port_security_fixes(lab(pairs={"w1": [{"ip_address": POD, "mac_address": "fa:16:3e:00:00:01"}]}))
    w1 = next(f for f in fixes if f.node == "w1")
    assert w1.security_group_ids == (SG,) and w1.allowed_address_pairs == ((POD, "fa:16:3e:00:00:01"),)
    assert w1.command() == "openstack port set --no-security-group --no-allowed-address --disable-port-security incident-w1"
    assert w1.revert_command() == ("openstack port set --enable-port-security --security-group k8s "
                                   "--allowed-address ip-address=172.16.0.0/16,mac-address=fa:16:3e:00:00:01 incident-w1")


@pytest.mark.parametrize("enc", [e.value for e in Encapsulation])
def test_every_requirement_has_a_plain_reason(enc):
    for r in derive_requirements(net(enc, typha=True), refs()):
        assert len(r.reason) > 40 and r.required_by and r.title
