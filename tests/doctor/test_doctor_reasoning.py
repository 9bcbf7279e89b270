"""The doctor's reasoning on facts alone: every scenario of issue 6, no I/O."""

from __future__ import annotations

import json

from labtui.doctor.fixes import ordered_actions, simulate
from labtui.doctor.model import ERROR, DoctorFacts, Node, ProbeResult, Unchecked, pool_path, same_subnet
from labtui.doctor.reason import diagnose, render_text
from labtui.net.calico import IPPoolInfo
from labtui.net.model import NodePort, SecurityGroup, SGRule
from tests.doctor.scenarios import PROTO4, SG, incident, with_rule


def _ids(diag):
    return [f.id for f in diag.findings]


# ------------------------------------------------------------------ the incident


def test_incident_found_with_the_incident_explanation():
    diag = diagnose(incident())
    assert diag.exit_code == 1 and diag.status == "findings"
    top = diag.findings[0]
    assert top.id == "crosssubnet-antispoofing" and top.severity == ERROR
    assert len(top.pairs) == 12  # every ordered pair of 4 nodes
    text = top.explanation
    # names the real pool, its mode, the subnet, the port, the pairs, the group and the mechanism
    for needle in ("default-ipv4-ippool", "172.16.0.0/16", "ipipMode CrossSubnet", "10.100.200.0/24",
                   "All 4 nodes", "k8s-cp-port", "10.100.200.4", "allowed-address-pairs: none",
                   "anti-spoofing", "same node", "direct routing", "would fail for the same reason",
                   "security group k8s has no rule that lets IP protocol 4 in"):
        assert needle in text, needle
    sources = {e.source for e in top.evidence}
    assert {"kube", "neutron", "reasoning"} <= sources
    assert any("port_security_enabled=true" in e.text for e in top.evidence)
    # the per-pair paths: direct, same subnet, blocked at the source port
    v = next(v for v in diag.verdicts if v.pair == "k8s-cp->k8s-w1")
    assert v.path == "direct" and v.same_subnet is True and v.ok is False
    assert {b.code for b in v.blocks} >= {"antispoof-src"}


def test_incident_options_ranked_option_1_first_and_safe_order():
    diag = diagnose(incident())
    assert [o.number for o in diag.options] == [1, 2, 3, 4]
    opt1 = diag.option(1)
    assert opt1.recommended and opt1.available and opt1.key == "ipip"
    acts = ordered_actions(opt1)
    kinds = [a.kind for a in acts]
    assert kinds == ["sg-rule", "pool-mode"]  # open the network first, then switch the pool
    rule = acts[0]
    assert rule.params["protocol"] == "4"  # never "ipip"
    assert rule.params["remote_group_id"] == SG and rule.params["security_group_id"] == SG
    assert "--protocol 4 --remote-group k8s" in rule.command and rule.command.endswith(" k8s")
    pool = acts[1]
    assert pool.params["ipipMode"] == "Always" and pool.params["vxlanMode"] == "Never"
    assert '{"spec":{"ipipMode":"Always","vxlanMode":"Never"}}' in pool.command
    assert "CrossSubnet" in pool.revert
    assert diag.option(4).discouraged and not diag.option(4).recommended
    assert diag.findings[0].fixes[0] == 1
    # the simulation of option 1 leaves nothing broken
    after = diagnose(simulate(diag.facts, opt1.actions))
    assert after.exit_code == 0, render_text(after)
    assert all(v.path == "ipip" and v.ok for v in after.verdicts)


def test_option_2_vxlan_adds_udp_4789_then_switches():
    diag = diagnose(incident())
    opt = diag.option("vxlan")
    acts = ordered_actions(opt)
    assert [a.kind for a in acts] == ["sg-rule", "pool-mode"]
    assert acts[0].params["protocol"] == "udp" and acts[0].params["port_range_min"] == 4789
    assert acts[1].params["vxlanMode"] == "Always" and acts[1].params["ipipMode"] == "Never"
    assert diagnose(simulate(diag.facts, opt.actions)).exit_code == 0


def test_option_3_pairs_on_every_node_port_merged():
    facts = incident(pairs={2: ["10.100.200.250"]})  # a pair already on one port is kept
    diag = diagnose(facts)
    opt = diag.option(3)
    pairs = [a for a in opt.actions if a.kind == "port-pairs"]
    assert sorted(a.params["node"] for a in pairs) == ["k8s-cp", "k8s-w1", "k8s-w2", "k8s-w3"]
    assert all(a.params["cidr"] == "172.16.0.0/16" for a in pairs)
    w2 = next(a for a in pairs if a.params["node"] == "k8s-w2")
    assert w2.params["existing"] == ["10.100.200.250"]
    assert "port unset --allowed-address ip-address=172.16.0.0/16" in w2.revert
    # CrossSubnet on one subnet already routes directly: no pool switch, but pods must be let in
    assert not [a for a in opt.actions if a.layer == "calico"]
    rules = [a for a in opt.actions if a.kind == "sg-rule"]
    assert rules and rules[0].params["remote_ip_prefix"] == "172.16.0.0/16" and rules[0].params["protocol"] is None
    after = simulate(facts, opt.actions)
    assert "10.100.200.250" in after.node("k8s-w2").port.pair_addresses
    assert diagnose(after).exit_code == 0


def test_option_4_port_security_off_is_destructive_and_revertible():
    diag = diagnose(incident())
    opt = diag.option(4)
    assert all(a.kind == "port-security-off" and a.risk == "destructive" for a in opt.actions)
    assert len(opt.actions) == 4
    a = opt.actions[0]
    assert "--disable-port-security" in a.command and "--no-security-group" in a.command
    assert "--enable-port-security" in a.revert and "--security-group k8s" in a.revert
    assert diagnose(simulate(diag.facts, opt.actions)).exit_code == 0


def test_operator_pool_is_fixed_through_the_installation():
    diag = diagnose(incident(operator=True))
    acts = ordered_actions(diag.option(1))
    calico = [a for a in acts if a.layer == "calico"]
    assert len(calico) == 1 and calico[0].kind == "installation-encapsulation"
    assert calico[0].params["encapsulation"] == "IPIP" and calico[0].params["previous"] == "IPIPCrossSubnet"
    assert "kubectl patch installation default --type=json" in calico[0].command
    assert "/spec/calicoNetwork/ipPools/0/encapsulation" in calico[0].command
    assert acts[-1] is calico[0]
    assert any("tigera-operator" in e.text for e in diag.findings[0].evidence)


# ------------------------------------------------------------------ the other scenarios of the issue
# (most of them are cases as data now: tests/doctor/cases/*.yaml)




def test_two_subnets_pairs_mixed_paths():
    # 2 nodes on each of two subnets, protocol 4 allowed: cross-subnet pairs pass by IPIP, the pairs
    # inside a subnet go direct and are dropped
    facts = with_rule(incident(subnets=["10.1.0.0/24", "10.1.0.0/24", "10.2.0.0/24", "10.2.0.0/24"]), PROTO4)
    diag = diagnose(facts)
    bad = {v.pair for v in diag.verdicts if v.ok is False}
    assert bad == {"k8s-cp->k8s-w1", "k8s-w1->k8s-cp", "k8s-w2->k8s-w3", "k8s-w3->k8s-w2"}
    assert diag.findings[0].id == "crosssubnet-antispoofing"
    assert "so the packets between nodes of the same subnet leave that way" in diag.findings[0].explanation
    # option 3 keeps CrossSubnet (encapsulation still needed across subnets)
    opt3 = diag.option(3)
    assert not [a for a in opt3.actions if a.layer == "calico"]
    assert diagnose(simulate(facts, opt3.actions)).exit_code == 0




















def test_calico_node_not_ready_and_module():
    facts = with_rule(incident(ipip="Always"), PROTO4)
    facts.nodes[2].calico_ready = False
    facts.nodes[2].calico_restarts = 7
    facts.nodes[3].ipip_module = False
    diag = diagnose(facts)
    assert "calico-node-not-ready" in _ids(diag) and "ipip-module" in _ids(diag)
    assert "7 restarts" in diag.finding("calico-node-not-ready").evidence[0].text


# ------------------------------------------------------------------ subnets and paths


def test_crosssubnet_uses_the_node_view_of_the_subnet():
    a = Node("a", address="10.0.0.5", iface_cidr="10.0.0.5/16", port=NodePort("p", subnet_cidr="10.0.1.0/24"))
    b = Node("b", address="10.0.1.7", iface_cidr="10.0.1.7/16", port=NodePort("q", subnet_cidr="10.0.1.0/24"))
    assert same_subnet(a, b) is True
    diag = diagnose(DoctorFacts(nodes=[a, b]))
    assert "subnet-mismatch:a" in _ids(diag)


def test_pool_path_table():
    Pool = IPPoolInfo

    a = Node("a", iface_cidr="10.0.0.5/24")
    b = Node("b", iface_cidr="10.0.0.6/24")
    c = Node("c", iface_cidr="10.0.9.6/24")
    assert pool_path(Pool("p", "1.0.0.0/16", "CrossSubnet"), a, b) == "direct"
    assert pool_path(Pool("p", "1.0.0.0/16", "CrossSubnet"), a, c) == "ipip"
    assert pool_path(Pool("p", "1.0.0.0/16", "Always"), a, b) == "ipip"
    assert pool_path(Pool("p", "1.0.0.0/16", "Never", "CrossSubnet"), a, c) == "vxlan"
    assert pool_path(Pool("p", "1.0.0.0/16", "Off", "Never"), a, c) == "direct"


# ------------------------------------------------------------------ live proof and unknowns


def test_matrix_evidence_and_unexplained_failures():
    facts = with_rule(incident(ipip="Always"), PROTO4)
    facts.matrix = [ProbeResult(a.name, b.name, not (a.name == "k8s-w3" and b.name == "k8s-w1"), "172.16.0.1",
                                "172.16.1.1", "3/3 replies") for a in facts.nodes for b in facts.nodes if a is not b]
    diag = diagnose(facts)
    f = diag.finding("probe-failed")
    assert f.pairs == ["k8s-w3->k8s-w1"] and diag.exit_code == 1
    assert "k8s-w3" in render_text(diag) and "FAIL" in render_text(diag)


def test_matrix_confirms_the_incident():
    facts = incident()
    facts.matrix = [ProbeResult(a.name, b.name, False, None, None, "100% packet loss")
                    for a in facts.nodes for b in facts.nodes if a is not b]
    diag = diagnose(facts)
    assert "probe-failed" not in _ids(diag)
    assert any(e.source == "probe" and "100% packet loss" in e.text for e in diag.findings[0].evidence)


def test_nothing_reachable_is_exit_2():
    facts = DoctorFacts(cluster="x", nodes=[Node("a"), Node("b")],
                        unchecked=[Unchecked("cloud", "the security groups and ports", "cloud 'lab' unreachable"),
                                   Unchecked("kube", "the Calico pools", "API unreachable")])
    diag = diagnose(facts)
    assert diag.exit_code == 2 and diag.status == "could not check"
    assert "could not check the security groups" in render_text(diag)


def test_cloud_unreachable_but_kube_is_exit_2():
    facts = incident()
    for n in facts.nodes:
        n.port = None
    facts.groups = {}
    facts.unchecked.append(Unchecked("cloud", "the security groups and ports", "timeout"))
    assert diagnose(facts).exit_code == 2


def test_facts_round_trip_and_json():
    facts = incident()
    facts.matrix = [ProbeResult("k8s-cp", "k8s-w1", False)]
    again = DoctorFacts.from_dict(json.loads(json.dumps(facts.to_dict())))
    assert again == facts
    data = diagnose(facts).to_dict()
    json.dumps(data)
    assert data["status"] == "findings" and data["findings"][0]["id"] == "crosssubnet-antispoofing"


def test_render_text_reads_well():
    text = render_text(diagnose(incident()))
    assert "[ERROR] 1." in text and "[recommended]" in text and "$ openstack security group rule create" in text
    assert "labtui doctor NAME --fix N --yes" in text


# ------------------------------------------------------------------ reasoning cases as data (tests/doctor/cases)
#
# One YAML file per case: `facts` (the incident's facts with changes, or a whole DoctorFacts dict under
# `raw`) and `expect` (findings, ranked options, texts). A new case costs a file, no code; the format
# is described in tests/doctor/cases/README.md.

import copy  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from labtui.doctor.model import Neutron  # noqa: E402
from tests.doctor.scenarios import NAMES  # noqa: E402

CASES = sorted((pathlib.Path(__file__).parent / "cases").glob("*.yaml"))


def _sg(value):
    return SG if value == "SG" else value


def build_facts(spec: dict) -> DoctorFacts:
    if "raw" in spec:
        return DoctorFacts.from_dict(spec["raw"])
    facts = incident(**(spec.get("incident") or {}))
    for gid, g in (spec.get("groups") or {}).items():
        grp = facts.groups.setdefault(_sg(gid), SecurityGroup(_sg(gid), g.get("name", gid)))
        if "stateful" in g:
            grp.stateful = g["stateful"]
        if g.get("drop_rules"):
            grp.rules = [r for r in grp.rules if r.id not in g["drop_rules"]]
        if g.get("only_rules") is not None:
            grp.rules = []
        for r in g.get("rules") or g.get("only_rules") or []:
            r = dict(r)
            r["remote_group_id"] = _sg(r.pop("remote_group", None))
            grp.rules.append(SGRule(security_group_id=grp.id, **r))
    for name, changes in (spec.get("ports") or {}).items():
        names = NAMES if name == "all" else [name]
        for n in names:
            port = facts.node(n).port
            for key, value in changes.items():
                setattr(port, key, [_sg(v) for v in value] if key == "security_group_ids" else copy.deepcopy(value))
    for key, value in (spec.get("calico") or {}).items():
        setattr(facts.calico, key, value)
    if "neutron" in spec:
        facts.neutron = Neutron(**spec["neutron"])
    if "matrix_fails_at" in spec:  # a live matrix where every ping from or to these nodes fails
        bad = set(spec["matrix_fails_at"])
        facts.matrix = [ProbeResult(a.name, b.name, not ({a.name, b.name} & bad), detail="2/2 replies"
                                    if not ({a.name, b.name} & bad) else "100% packet loss")
                        for a in facts.nodes for b in facts.nodes if a is not b]
    return facts


def _has_all(text: str, needles: list[str], what: str) -> None:
    for needle in needles or []:
        assert needle in text, f"{what}: {needle!r} not in:\n{text}"


def _has_none(text: str, needles: list[str], what: str) -> None:
    for needle in needles or []:
        assert needle not in text, f"{what}: {needle!r} should not be in:\n{text}"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_reasoning_case(path):
    case = yaml.safe_load(path.read_text())
    diag = diagnose(build_facts(case["facts"]))
    exp = case["expect"]
    report = render_text(diag)
    if "status" in exp:
        assert diag.status == exp["status"], report
    if "findings" in exp:
        assert [f.id for f in diag.findings] == exp["findings"], report
    if "paths" in exp:  # {"ipip ok": 12, "direct blocked": 4}: the per-pair verdicts by path and outcome
        got: dict[str, int] = {}
        for v in diag.verdicts:
            key = f"{v.path} {'ok' if v.ok else 'blocked' if v.ok is False else 'unknown'}"
            got[key] = got.get(key, 0) + 1
        assert got == exp["paths"], report
    for fid, fexp in (exp.get("finding") or {}).items():
        f = diag.finding(fid)
        if "severity" in fexp:
            assert f.severity == fexp["severity"], f
        if "pairs" in fexp:
            want = fexp["pairs"]
            assert (len(f.pairs) == want) if isinstance(want, int) else (sorted(f.pairs) == sorted(want)), f.pairs
        _has_all(f.title + "\n" + f.explanation, fexp.get("says"), f"finding {fid}")
        _has_none(f.title + "\n" + f.explanation, fexp.get("never_says"), f"finding {fid}")
        _has_all("\n".join(e.text for e in f.evidence), fexp.get("evidence"), f"evidence of {fid}")
        if "fixed_by" in fexp:
            assert f.fixes == fexp["fixed_by"], f.fixes
    if "options" in exp:
        assert [o.number for o in diag.options] == exp["options"], report
    if "recommended" in exp:
        rec = [o.number for o in diag.options if o.recommended]
        assert rec == ([exp["recommended"]] if exp["recommended"] else []), report
    for num, oexp in (exp.get("option") or {}).items():
        o = diag.option(num)
        if "available" in oexp:
            assert o.available == oexp["available"], o.unavailable_reason
        _has_all(o.unavailable_reason, oexp.get("not_possible_because"), f"option {num}")
        if "actions" in oexp:
            assert [a.kind for a in ordered_actions(o)] == oexp["actions"], [a.command for a in o.actions]
        commands = "\n".join(a.command for a in ordered_actions(o))
        _has_all(commands, oexp.get("commands"), f"commands of option {num}")
        _has_none(commands, oexp.get("never_commands"), f"commands of option {num}")
        _has_all(o.title + "\n" + o.why + "\n" + o.expected, oexp.get("says"), f"option {num}")
        _has_none(o.title + "\n" + o.why + "\n" + o.expected, oexp.get("never_says"), f"option {num}")
        if oexp.get("heals"):
            after = diagnose(simulate(diag.facts, o.actions))
            assert after.exit_code == 0, render_text(after)
    # the text report never cuts a word or a command at a hyphen
    assert not [line for line in report.splitlines() if re.search(r"\w-$", line.rstrip())], report
    # the rules of every case: an option never claims every path passes while naming a blocked one, a
    # plan never holds a rule its group already has, and an available plan leaves no path blocked
    for o in diag.options:
        assert not ("every pod path" in o.expected and "still blocked" in o.expected), o.expected
        for a in o.actions:
            if a.kind == "sg-rule":
                g = diag.facts.groups.get(a.params["security_group_id"])
                assert not any(
                    r.direction == a.params["direction"] and r.protocol == a.params["protocol"]
                    and r.port_range_min == a.params["port_range_min"] and r.remote_group_id == a.params["remote_group_id"]
                    and r.remote_ip_prefix == a.params["remote_ip_prefix"] for r in (g.rules if g else [])), a.command
        if o.available:
            after = diagnose(simulate(diag.facts, o.actions), with_options=False)
            assert not [v for v in after.verdicts + after.bgp if v.ok is False], (o.number, render_text(after))
