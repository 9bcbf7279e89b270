"""The doctor's words: findings, their evidence and explanations, and the text report.

An explanation names the pool, the port and the rule that actually drop the packets: when every
failing pair starts (or ends) at one node, that node's port and what it lacks; pairs dropped for
different reasons are listed by cause ("Where each failing pair is dropped"); a suggested rule is
never one the group already has.
"""

from __future__ import annotations

import json
import shlex
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from labtui.doctor.model import (
    ERROR,
    INFO,
    IPIP_PROTO,
    UDP,
    WARNING,
    DoctorFacts,
    Unchecked,
    active_pools,
    bird_runs,
    node_subnet,
    pool_path,
)
from labtui.doctor.paths import EPHEMERAL, Block, PathVerdict, _allowing_rule, _join_near
from labtui.net.calico import IPPoolInfo
from labtui.net.check import antispoof_admits

if TYPE_CHECKING:  # pragma: no cover
    from labtui.doctor.reason import Diagnosis

# --------------------------------------------------------------------------- findings


@dataclass
class Evidence:
    source: str  # "kube" | "neutron" | "ssh:node1" | "probe" | "tcpdump" | "bird"
    text: str


@dataclass
class Finding:
    id: str
    severity: str
    title: str
    explanation: str
    pairs: list[str] = field(default_factory=list)  # "node1->node2"
    evidence: list[Evidence] = field(default_factory=list)
    fixes: list[int] = field(default_factory=list)  # numbers of the FixOptions that clear it
    pool: str | None = None
    nodes: list[str] = field(default_factory=list)



def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _pairs_text(pairs: list[str], n_nodes: int) -> str:
    total = n_nodes * (n_nodes - 1)
    if total and len(pairs) == total:
        return f"all {total} node pairs"
    if len(pairs) <= 4:
        return _join(p.replace("->", " → ") for p in pairs)
    return f"{len(pairs)} of {total} node pairs"


def _subnets_summary(facts: DoctorFacts, names: Iterable[str]) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for n in facts.nodes:
        if n.name in names:
            sub, _ = node_subnet(n)
            by.setdefault(sub or "an unknown subnet", []).append(n.name)
    return by


def _node_evidence(facts: DoctorFacts, names: Iterable[str]) -> list[Evidence]:
    ev: list[Evidence] = []
    for n in facts.nodes:
        if n.name not in names:
            continue
        bits = []
        if n.iface_cidr:
            bits.append(f"{n.iface or 'interface'} {n.iface_cidr} (on the node)")
        if n.calico_cidr:
            bits.append(f"Calico IPv4Address {n.calico_cidr}")
        if bits:
            ev.append(Evidence(f"ssh:{n.name}" if n.iface_cidr else "kube", f"{n.name}: " + ", ".join(bits)))
        if n.port:
            p = n.port
            ev.append(Evidence("neutron",
                               f"{n.name}: port {p.label} fixed IP {', '.join(p.ipv4s) or '?'} on subnet "
                               f"{p.subnet_cidr or '?'}{' (' + p.subnet_name + ')' if p.subnet_name else ''}, "
                               f"port_security_enabled={str(p.port_security_enabled).lower()}, allowed_address_pairs="
                               f"{p.pair_addresses or '[]'}, security groups "
                               f"{', '.join(facts.groups[g].label if g in facts.groups else g for g in p.security_group_ids) or 'none'}"))
    return ev


def _group_evidence(facts: DoctorFacts, group_ids: Iterable[str]) -> list[Evidence]:
    ev = []
    for gid in dict.fromkeys(group_ids):
        g = facts.groups.get(gid)
        if g is None:
            continue
        ingress = [r.describe(facts.groups) for r in g.rules if r.direction == "ingress"]
        ev.append(Evidence("neutron", f"security group {g.label}: "
                           + ("; ".join(ingress) if ingress else "no ingress rules")))
    return ev


def _probe_evidence(verdicts: list[PathVerdict]) -> list[Evidence]:
    probes = [v.probe for v in verdicts if v.probe is not None]
    if not probes:
        return []
    bad = [p for p in probes if not p.ok]
    details = {p.detail for p in bad}
    if len(bad) > 3 and len(details) == 1:
        return [Evidence("probe", f"ping between the probe pods: {len(probes) - len(bad)} of {len(probes)} of these "
                                  f"pairs answer; every other one: {next(iter(details)) or 'no reply'}")]
    ev = []
    for p in probes[:8]:
        ev.append(Evidence("probe", f"ping from the probe pod on {p.src} ({p.src_ip or '?'}) to the one on "
                                    f"{p.dst} ({p.dst_ip or '?'}): {'replies' if p.ok else 'no reply'}"
                                    + (f", {p.detail}" if p.detail else "")))
    if len(probes) > 8:
        ev.append(Evidence("probe", f"... and {len(probes) - 8} more pairs (the matrix shows them all)"))
    return ev


def _capture_evidence(facts: DoctorFacts) -> list[Evidence]:
    ev = []
    for c in facts.captures:
        seen = ", ".join(c.seen) or "nothing"
        head = c.lines[:4]
        text = f"`{c.command}` on {c.node}{' (simulated)' if c.simulated else ''}: saw {seen}"
        if head:
            text += "\n    " + "\n    ".join(head)
        ev.append(Evidence("tcpdump", text))
    return ev


def _pool_evidence(pool: IPPoolInfo, facts: DoctorFacts) -> Evidence:
    owner = " (owned by the tigera-operator: change it through the Installation)" if pool.operator_managed else ""
    backend = f"; calico backend {facts.calico.backend}" if facts.calico.backend else ""
    return Evidence("kube", f"IPPool {pool.name}: cidr {pool.cidr}, {pool.modes}, natOutgoing "
                            f"{str(pool.nat_outgoing).lower()}{owner}{backend}")


def _first_port_block(verdicts: list[PathVerdict], code: str) -> Block | None:
    for v in verdicts:
        for b in v.blocks:
            if b.code == code:
                return b
    return None


def _classify(v: PathVerdict) -> str:
    codes = {b.code for b in v.blocks}
    if v.path == "direct":
        if "unroutable" in codes:
            return "direct-unroutable"
        if codes & {"antispoof-src", "antispoof-dst"}:
            return "direct-antispoofing"
        if "sg-ingress" in codes:
            return "direct-sg"
        return "direct-egress"
    if "sg-egress" in codes and "sg-ingress" not in codes:
        return f"{v.path}-egress"
    return f"{v.path}-sg"



def _port_ref(facts: DoctorFacts, node: str) -> str:
    n = facts.node(node)
    return f"port {n.port.label} of {node}" if n.port else f"{node} (no port known)"


def cause_label(facts: DoctorFacts, blk: Block, pool: IPPoolInfo | None = None) -> str:
    """The cause of a drop in words that do not depend on the pair (so pairs can be grouped by it)."""
    cidr = pool.cidr if pool else "the pod CIDR"
    if blk.code == "antispoof-src":
        n = facts.node(blk.node)
        have = ", ".join(n.port.pair_addresses) if n.port and n.port.pair_addresses else "none"
        return (f"{_port_ref(facts, blk.node)} drops pod sources (anti-spoofing): {cidr} is not among its "
                f"allowed-address-pairs ({have})")
    if blk.code == "antispoof-dst":
        return (f"{_port_ref(facts, blk.node)} drops packets to pod addresses (OVN's destination check): "
                f"{cidr} is not among its allowed-address-pairs")
    if blk.code == "sg-ingress":
        text = f"the ingress rules of {blk.where} do not let it in"
        if blk.near:
            text += f" (the rule {blk.near[0]} does not cover the sender)"
        return text
    if blk.code == "sg-egress":
        return f"the egress rules of {blk.where} do not let it out"
    if blk.code == "sg-reply":
        return f"the stateless {blk.where} has no rule for the replies"
    return "the router between the subnets has no route to the pod addresses"


def causes(facts: DoctorFacts, vs: list[PathVerdict], pool: IPPoolInfo | None = None) -> list[tuple[str, list[str]]]:
    """Failing pairs grouped by what drops them (a pair dropped in two places appears under both)."""
    by: dict[str, list[str]] = {}
    for v in vs:
        for blk in v.blocks:
            by.setdefault(cause_label(facts, blk, pool), []).append(v.pair)
    return sorted(by.items(), key=lambda kv: -len(kv[1]))


def _causes_text(facts: DoctorFacts, vs: list[PathVerdict], pool: IPPoolInfo | None) -> str:
    lines = [f"- {label}: {_pairs_text(pairs, len(facts.nodes))}" for label, pairs in causes(facts, vs, pool)]
    return "Where each failing pair is dropped:\n" + "\n".join(lines)


def _one_end(vs: list[PathVerdict]) -> tuple[str, str] | None:
    """("start", node) when every failing pair starts at one node, ("end", node) when they all end at one."""
    srcs, dsts = {v.src for v in vs}, {v.dst for v in vs}
    if len(srcs) == 1:
        return "start", next(iter(srcs))
    if len(dsts) == 1:
        return "end", next(iter(dsts))
    return None


def _backend_sentence(facts: DoctorFacts) -> str:
    nb = facts.neutron
    if nb.backend == "ovn":
        return ("This cloud runs OVN" + (f" (seen in its {nb.backend_source})" if nb.backend_source else "")
                + ": it checks the source at the sending port and the destination at the receiving port.")
    if nb.backend in ("ovs", "linuxbridge"):
        name = "ML2/OVS" if nb.backend == "ovs" else "ML2/linuxbridge"
        return (f"This cloud runs {name}" + (f" (seen in its {nb.backend_source})" if nb.backend_source else "")
                + ": only the sending port checks the source address.")
    return ("The cloud does not show its Neutron backend; the doctor assumes ML2/OVS, where only the sending "
            "port checks the source address (a ping towards these nodes still fails: its answers are dropped). On "
            "OVN the receiving port also drops packets to pod addresses it does not own; the fix is the same.")


def _explain_direct_antispoof(pool: IPPoolInfo, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    names = sorted({v.src for v in vs} | {v.dst for v in vs}, key=lambda n: [x.name for x in facts.nodes].index(n))
    subs = _subnets_summary(facts, names)
    sub_text = _join(f"{s} ({_join(ns)})" for s, ns in subs.items())
    one_subnet = len(subs) == 1
    blamed = list(dict.fromkeys(b.node for v in vs for b in v.blocks if b.code in ("antispoof-src", "antispoof-dst")))
    needing = [n.name for n in facts.nodes if n.port and n.port.port_security_enabled
               and any(pool_path(pool, n, o) == "direct" for o in facts.nodes if o is not n)]
    every_port = set(blamed) >= set(needing)
    # the example: a failing pair whose sender's port is one that drops it
    example = next((v for v in vs if any(b.code == "antispoof-src" and b.node == v.src for b in v.blocks)), vs[0])
    a, b = facts.node(example.src), facts.node(example.dst)
    pa = a.port
    pairs = ", ".join(pa.pair_addresses) if pa and pa.pair_addresses else "none"
    cross = "CrossSubnet" in (pool.ipip_mode, pool.vxlan_mode)
    enc = "IP-in-IP" if pool.ipip_mode == "CrossSubnet" else "VXLAN"
    if cross:
        title = (f"Pod traffic between nodes on one subnet leaves unencapsulated and OpenStack drops it "
                 f"(pool {pool.name} is {enc} CrossSubnet)")
        why_mode = (f"The Calico IP pool {pool.name} ({pool.cidr}) has {pool.modes}. CrossSubnet encapsulates "
                    f"({enc}) only when the destination node is on a different subnet; towards a node on the "
                    f"same subnet Calico routes the packet directly, unencapsulated, with the pod's own address "
                    f"as its source. ")
        if one_subnet:
            why_mode += f"All {_plural(len(names), 'node')} are on {next(iter(subs))}, so every cross-node pod packet leaves the VM that way"
        else:
            why_mode += f"The nodes are on {sub_text}, so the packets between nodes of the same subnet leave that way"
    else:
        title = f"Pod traffic leaves the nodes unencapsulated and OpenStack drops it (pool {pool.name} has no encapsulation)"
        why_mode = (f"The Calico IP pool {pool.name} ({pool.cidr}) has {pool.modes}: no encapsulation, so every "
                    f"cross-node pod packet leaves the VM with the pod's own address as its source")
    src_ip = "a pod address from " + pool.cidr
    head = (f"Pods on different nodes cannot reach each other: {_pairs_text([v.pair for v in vs], len(facts.nodes))} "
            f"are affected.\n\n{why_mode} (for example from {a.name} to {b.name}: source {src_ip}, not {a.name}'s "
            f"address {a.ip}).\n\n")
    mechanism = ("OpenStack Neutron's port security (anti-spoofing) only lets a packet leave a VM's port when its "
                 "source is the port's own fixed IP or one of its allowed-address-pairs. ")
    if every_port or len(blamed) > 1:
        text = head + mechanism + (
            f"Port {pa.label if pa else '?'} of {a.name} has fixed IP {', '.join(pa.ipv4s) if pa else '?'} and "
            f"allowed-address-pairs: {pairs}. So the packet is dropped on the hypervisor (iptables: the port's source "
            f"chain ends in \"Drop traffic without an IP/MAC allow rule\"; OVN: ls_in_port_sec_ip) before it ever "
            f"reaches {b.name}. Pods on the same node still talk, because their traffic never crosses a Neutron port. "
            f"{_backend_sentence(facts)}")
        if not every_port:
            text += "\n\n" + _causes_text(facts, vs, pool)
        text += (
            f"\n\nSwitching Calico to direct routing (no encapsulation) would fail for the same reason."
            f"{_vxlan_note(facts, pool) or _ipip_note(facts, pool)} "
            f"The fix is either to encapsulate every cross-node packet, so the outer source is the node's own address "
            f"(IPIP Always with IP protocol 4 allowed between the nodes, or VXLAN Always with UDP "
            f"{facts.calico.vxlan_udp_port}), or to let the ports send pod addresses (the pod CIDR as an "
            f"allowed-address-pair on every node port that lacks it).")
        return title, text
    # one port is the culprit: name it, and what it lacks
    culprit = facts.node(blamed[0])
    port = culprit.port
    end = _one_end(vs)
    where = (f"Every failing pair {'starts' if end[0] == 'start' else 'ends'} at {culprit.name}" if end
             else f"Every failing pair starts or ends at {culprit.name}")
    others = [n for n in facts.nodes if n is not culprit and n.port and n.port.port_security_enabled]
    have = [n.name for n in others if antispoof_admits(n.port, pool.cidr)]
    title = (f"Port {port.label} of {culprit.name} lacks the pod CIDR {pool.cidr} in its allowed-address-pairs: "
             f"OpenStack drops its pods' traffic")
    text = head + mechanism + (
        f"{where}. Its port {port.label} has fixed IP {', '.join(port.ipv4s) or '?'} and allowed-address-pairs: "
        f"{', '.join(port.pair_addresses) or 'none'}: it lacks {pool.cidr}"
        + (f", which the ports of {_join(have)} have" if have else "")
        + f". {_backend_sentence(facts)}\n\n" + _causes_text(facts, vs, pool)
        + f"\n\nThe smallest fix: add the pod CIDR to that one port, "
          f"`openstack port set --allowed-address ip-address={pool.cidr} {port.ref}` (Neutron merges it with the "
          f"pairs already there).")
    return title, text


def _vxlan_note(facts: DoctorFacts, pool: IPPoolInfo) -> str:
    """A VXLAN CrossSubnet pool whose UDP port the groups already allow: one mode change is enough."""
    if pool.vxlan_mode != "CrossSubnet" or len(facts.nodes) < 2:
        return ""
    port = facts.calico.vxlan_udp_port
    for a in facts.nodes:
        for b in facts.nodes:
            if a is not b and (a.port is None or b.port is None or _allowing_rule(
                    facts, b.port, "ingress", UDP, port, a.port, a.ip) is None):
                return ""
    return (f" The security groups already let UDP {port} (VXLAN) in between the nodes, so setting the pool to "
            f"vxlanMode Always is enough.")


def _ipip_note(facts: DoctorFacts, pool: IPPoolInfo | None = None) -> str:
    """The incident's second part: would IPIP pass the security groups today? (If it would, and the pool
    is IPIP CrossSubnet with BGP on, one mode change is the whole fix: say so.)"""
    from labtui.doctor.fixes import _node_group

    home = _node_group(facts)
    if home is None or len(facts.nodes) < 2:
        return ""
    a, b = facts.nodes[0], facts.nodes[1]
    if a.port is None or b.port is None:
        return ""
    if _allowing_rule(facts, b.port, "ingress", IPIP_PROTO, None, a.port, a.ip) is None:
        g = facts.groups.get(home)
        return (f" And switching to IPIP Always alone is not enough either: security group "
                f"{g.label if g else home} has no rule that lets IP protocol 4 in from the other nodes, so the "
                f"encapsulated packets would be dropped on the way in.")
    every = all(x.port is not None and y.port is not None
                and _allowing_rule(facts, y.port, "ingress", IPIP_PROTO, None, x.port, x.ip) is not None
                for x in facts.nodes for y in facts.nodes if x is not y)
    if every and pool is not None and pool.ipip_mode == "CrossSubnet" and bird_runs(facts) is not False:
        return (" The security groups already let IP protocol 4 in between the nodes, so setting the pool to "
                "ipipMode Always is enough.")
    return ""


def _explain_sg(kind: str, pool: IPPoolInfo, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    blocks = [b for v in vs for b in v.blocks if b.code in ("sg-ingress", "sg-egress")]
    egress = bool(blocks) and all(b.code == "sg-egress" for b in blocks)
    end = _one_end(vs)
    # the example pair: when every failing pair starts (or ends) at one node, one of its pairs
    v = vs[0]
    a, b = facts.node(v.src), facts.node(v.dst)
    blk = next((x for x in v.blocks if x.code in ("sg-ingress", "sg-egress")), None)
    blocking_port = facts.node(blk.node).port if blk else b.port
    gids = blocking_port.security_group_ids if blocking_port else []
    gnames = _join(facts.groups[g].label if g in facts.groups else g for g in gids) or "(none)"
    vport = facts.calico.vxlan_udp_port
    if kind == "ipip":
        proto = "IP protocol 4"
        mode = (f"pool {pool.name} ({pool.cidr}) has ipipMode {pool.ipip_mode}, so pod traffic from {a.name} to "
                f"{b.name} is wrapped in IP-in-IP: an outer packet of IP protocol 4 from {a.ip} to {b.ip}")
    else:
        proto = f"UDP {vport}"
        src = (f" (Felix's VXLAN port, from {facts.calico.vxlan_port_source or 'its configuration'})"
               if facts.calico.vxlan_port and facts.calico.vxlan_port != 4789 else "")
        mode = (f"pool {pool.name} ({pool.cidr}) has vxlanMode {pool.vxlan_mode}, so pod traffic from {a.name} to "
                f"{b.name} is wrapped in VXLAN: an outer UDP packet to port {vport}{src} from {a.ip} to {b.ip}")
    all_gids = list(dict.fromkeys(g for x in blocks for g in x.groups))
    all_names = _join(facts.groups[g].label if g in facts.groups else g for g in all_gids) or gnames
    title = (f"{'IP-in-IP (protocol 4)' if kind == 'ipip' else f'VXLAN (UDP {vport})'} between the nodes is not "
             f"allowed {'out' if egress else 'in'} by security group {all_names}")
    if end and end[0] == "start" and not egress:
        lead = (f"every failing pair starts at {end[1]}: the receiving ports' groups ({gnames}) let {proto} in from "
                f"the other nodes but not from {_port_ref(facts, end[1])}")
    elif end and end[0] == "end" and not egress:
        lead = f"every failing pair ends at {end[1]}: the groups on {_port_ref(facts, end[1])} ({gnames}) do not let {proto} in"
    elif egress:
        lead = f"the groups of {a.name}'s port ({gnames}) have no egress rule for {proto}: {blk.detail if blk else ''}"
    else:
        lead = (f"the security groups on {b.name}'s port ({gnames}) have no ingress rule that allows {proto} from the "
                f"other nodes, so Neutron drops it on the way in")
    near = list(dict.fromkeys(n for x in blocks for n in x.near))
    text = (
        f"Pods on different nodes cannot reach each other: {_pairs_text([x.pair for x in vs], len(facts.nodes))} are affected.\n\n"
        f"The {mode}. The outer source is {a.name}'s own address, so Neutron's anti-spoofing lets it out, but {lead}.")
    causes_list = causes(facts, vs, pool)
    if near and len(causes_list) == 1:
        text += f" The existing rule {_join_near(near)} does not cover these senders (a remote group covers only its members' ports)."
    if kind == "vxlan" and vport != 4789 and _group_has(facts, all_gids, "udp", 4789):
        text += (f" The group does allow UDP 4789, the standard VXLAN port, but Felix on this cluster sends VXLAN to "
                 f"UDP {vport}.")
    if len(causes_list) > 1:
        text += "\n\n" + _causes_text(facts, vs, pool)
    cmds = _missing_rule_commands(facts, kind)
    text += (f"\n\nThe fix: allow {proto} between the nodes, {'with' if len(cmds) > 1 else 'e.g.'} "
             + _join(f"`{c}`" for c in cmds)
             + (" (use the protocol number 4: some clouds translate the name 'ipip' to protocol 94)." if kind == "ipip" else "."))
    return title, text


def _missing_rule_commands(facts: DoctorFacts, kind: str) -> list[str]:
    """The rules the fix options would add for this tunnel in the current mode (so the explanation and
    the options agree, and a rule the group has is never suggested), as short commands."""
    from labtui.doctor.fixes import _network_actions

    proto = "4" if kind == "ipip" else "udp"
    out = []
    for act in _network_actions(facts, 1 if kind == "ipip" else 2):
        p = act.params
        if act.kind != "sg-rule" or p["protocol"] != proto:
            continue
        parts = ["openstack", "security", "group", "rule", "create"] + (["--egress"] if p["direction"] == "egress" else [])
        parts += ["--protocol", proto] + (["--dst-port", str(p["port_range_min"])] if p["port_range_min"] else [])
        remote = p["remote_group_id"]
        parts += (["--remote-group", facts.groups[remote].label if remote in facts.groups else remote] if remote
                  else ["--remote-ip", p["remote_ip_prefix"] or "0.0.0.0/0"])
        out.append(shlex.join(parts + [p["group_name"]]))
    return out or ["openstack security group rule create ..."]


def _group_has(facts: DoctorFacts, gids: list[str], proto: str, port: int | None, remote_group: str | None = None,
               direction: str = "ingress") -> bool:
    """Is there already a rule with exactly this protocol, port and (when given) remote group?"""
    for gid in gids:
        g = facts.groups.get(gid)
        for r in (g.rules if g else []):
            if r.direction != direction or str(r.protocol or "").lower() != proto:
                continue
            if port is not None and not (r.port_range_min is not None and r.port_range_min <= port <= (r.port_range_max or r.port_range_min)):
                continue
            if remote_group is not None and r.remote_group_id != remote_group:
                continue
            return True
    return False


def _explain_direct_sg(pool: IPPoolInfo, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    blocks = [b for v in vs for b in v.blocks if b.code in ("sg-ingress", "sg-egress")]
    egress = bool(blocks) and all(b.code == "sg-egress" for b in blocks)
    blocking = facts.node(blocks[0].node if blocks else vs[0].dst)
    gids = blocking.port.security_group_ids if blocking.port else []
    gnames = _join(facts.groups[g].label if g in facts.groups else g for g in gids) or "(none)"
    gref = facts.groups[gids[0]].label if gids and gids[0] in facts.groups else "SG"
    word, where = ("out", "out of the sending node") if egress else ("in", "into the destination node")
    title = f"Security group {gnames} does not let pod addresses {word} (direct pod traffic in pool {pool.name})"
    text = (
        f"Pod traffic in pool {pool.name} ({pool.cidr}, {pool.modes}) travels unencapsulated for "
        f"{_pairs_text([x.pair for x in vs], len(facts.nodes))}. The ports allow the pod addresses (no anti-spoofing "
        f"drop), but the {'egress' if egress else 'ingress'} rules of {gnames} do not cover "
        f"{'destinations' if egress else 'sources'} in {pool.cidr} for every protocol, so Neutron drops the packets "
        f"on the way {where}.")
    causes_list = causes(facts, vs, pool)
    if len(causes_list) > 1:
        text += "\n\n" + _causes_text(facts, vs, pool)
    cmd = shlex.join(["openstack", "security", "group", "rule", "create"] + (["--egress"] if egress else [])
                     + ["--remote-ip", pool.cidr, gref])
    text += f" Allow the pod CIDR {word}: `{cmd}`."
    return title, text


def _explain_unroutable(pool: IPPoolInfo, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    names = sorted({v.src for v in vs} | {v.dst for v in vs})
    subs = _subnets_summary(facts, names)
    title = f"Pod traffic between subnets is not encapsulated in pool {pool.name}, and the router cannot route it"
    text = (
        f"The nodes are on {_join(f'{s} ({_join(ns)})' for s, ns in subs.items())}. Pool {pool.name} ({pool.cidr}) has "
        f"{pool.modes}, so pod packets to a node on another subnet are sent unencapsulated to the subnet's "
        f"router, which knows nothing of the pod CIDR (and anti-spoofing drops them anyway unless the ports allow "
        f"the pod addresses). Affected: {_pairs_text([v.pair for v in vs], len(facts.nodes))}. Encapsulate at least "
        f"across subnets (ipipMode or vxlanMode CrossSubnet or Always)."
    )
    return title, text



# --------------------------------------------------------------------------- MTU, stateless groups, named rules

OVERHEAD = {"ipip": 20, "vxlan": 50, "direct": 0}
OVERHEAD_NAME = {"ipip": "IP-in-IP", "vxlan": "VXLAN", "direct": "no encapsulation"}


def mtu_findings(facts: DoctorFacts, verdicts: list[PathVerdict]) -> list[Finding]:
    """Calico's pod MTU plus the tunnel's overhead must fit the Neutron network's MTU: if not, small
    packets (ping) pass while large ones (TCP with full segments) are dropped or hang."""
    pod_mtu = facts.calico.mtu
    if not pod_mtu:
        return []
    worst: dict[str, tuple[int, list[str]]] = {}  # path -> (smallest network MTU on it, pairs)
    for v in verdicts:
        if v.path not in OVERHEAD:
            continue
        a, b = facts.node(v.src), facts.node(v.dst)
        mtus = [p.network_mtu for p in (a.port, b.port) if p is not None and p.network_mtu]
        if not mtus:
            continue
        net = min(mtus)
        if pod_mtu + OVERHEAD[v.path] > net:
            cur = worst.get(v.path)
            worst[v.path] = (min(net, cur[0]) if cur else net, (cur[1] if cur else []) + [v.pair])
    if not worst:
        return []
    net = min(m for m, _ in worst.values())
    path = max(worst, key=lambda p: OVERHEAD[p])
    need = net - max(OVERHEAD[p] for p in worst)
    pairs = [p for _, ps in worst.values() for p in ps]
    src = facts.calico.mtu_source or "Calico's configuration"
    if facts.calico.install_mode == "operator" or "Installation" in src:
        body = json.dumps({"spec": {"calicoNetwork": {"mtu": need}}}, separators=(",", ":"))
        cmds = [shlex.join(["kubectl", "patch", "installation", "default", "--type=merge", "-p", body])]
    else:
        body = json.dumps({"data": {"veth_mtu": str(need)}}, separators=(",", ":"))
        cmds = [shlex.join(["kubectl", "patch", "configmap", "calico-config", "-n", "kube-system", "--type=merge", "-p", body]),
                "kubectl rollout restart daemonset calico-node -n kube-system"]
    nets = sorted({n.port.network_name or "the node network" for n in facts.nodes if n.port and n.port.network_mtu == net})
    text = (
        f"Calico gives the pods an MTU of {pod_mtu} ({src}). Pod packets between nodes travel with "
        f"{OVERHEAD_NAME[path]} ({OVERHEAD[path]} bytes of overhead), so a full-size packet is "
        f"{pod_mtu + OVERHEAD[path]} bytes, but the Neutron network {_join(nets)} has an MTU of {net}"
        + (" (OpenStack VXLAN tenant networks are often 1450, OVN Geneve ones 1442)" if net < 1500 else "")
        + f". Small packets such as ping pass; large ones are dropped or fragmented, so TCP transfers hang "
          f"while ping works ({_pairs_text(pairs, len(facts.nodes))}).\n\n"
          f"The fix: a pod MTU of at most {net} - {max(OVERHEAD[p] for p in worst)} = {need}: "
        + " then ".join(f"`{c}`" for c in cmds)
        + ". Pods created before keep their old MTU until they are re-created.")
    ev = [Evidence("kube", f"Calico MTU {pod_mtu} ({src})")]
    ev += [Evidence("neutron", f"{n.name}: port {n.port.label} on network {n.port.network_name or '?'} with MTU {n.port.network_mtu}")
           for n in facts.nodes if n.port and n.port.network_mtu]
    return [Finding("mtu-too-large", ERROR, f"Calico's MTU {pod_mtu} is too large for the network's {net} with "
                    f"{OVERHEAD_NAME[path]}", text, pairs, ev, nodes=sorted({x for p in pairs for x in p.split('->')}))]


def stateless_finding(facts: DoctorFacts, bgp: list[PathVerdict]) -> Finding | None:
    groups = [g for g in facts.groups.values() if g.stateful is False
              and any(n.port and g.id in n.port.security_group_ids for n in facts.nodes)]
    if not groups:
        return None
    reply = [v for v in bgp if v.ok is False and any(b.code == "sg-reply" for b in v.blocks)]
    names = _join(g.label for g in groups)
    text = (f"Security group {names} is stateless (stateful: false): Neutron does not track connections for it, so "
            f"a reply is let in only by a rule of its own. Encapsulated pod traffic (IP protocol 4, UDP VXLAN) and "
            f"direct pod traffic use the same rule in both directions, which the per-pair check already covers; a TCP "
            f"connection such as BGP (TCP 179) gets its replies on an ephemeral port ({EPHEMERAL[0]}-{EPHEMERAL[1]}), "
            f"which needs an ingress rule for TCP from the other nodes.")
    if reply:
        text += (f" That rule is missing, so {_plural(len(reply), 'BGP session')} cannot come up: add "
                 f"`openstack security group rule create --protocol tcp --dst-port {EPHEMERAL[0]}:{EPHEMERAL[1]} "
                 f"--remote-group {groups[0].label} {groups[0].label}`.")
    else:
        text += " The groups have what the replies need."
    return Finding("stateless-group", WARNING if reply else INFO, f"Security group {names} is stateless", text,
                   [f"{v.src}<->{v.dst}" for v in reply],
                   [Evidence("neutron", f"security group {g.label}: stateful=false") for g in groups])


def ipip_named_finding(facts: DoctorFacts, verdicts: list[PathVerdict]) -> Finding | None:
    named = [(g, r) for g in facts.groups.values() for r in g.rules
             if r.direction == "ingress" and str(r.protocol or "").lower() == "ipip"]
    if not named:
        return None
    uses_ipip = any(v.path == "ipip" for v in verdicts)
    g0 = named[0][0]
    has_4 = any(str(r.protocol or "") == "4" for r in g0.rules if r.direction == "ingress")
    remote = named[0][1].remote_group_id
    cmd = shlex.join(["openstack", "security", "group", "rule", "create", "--protocol", "4"]
                     + (["--remote-group", facts.groups[remote].label if remote in facts.groups else remote] if remote
                        else ["--remote-ip", named[0][1].remote_ip_prefix or "0.0.0.0/0"]) + [g0.label])
    text = ("Neutron accepts the name 'ipip' and stores it, but older clouds with the iptables firewall driver "
            "render it with the Linux name table, where 'ipip' is protocol 94, not 4 (4 is 'ipencap'). Calico's "
            "IP-in-IP is protocol 4, so those clouds drop it although the rule looks right (CAPO #1489, "
            "magnum-cluster-api #72). "
            + ("The group also has a rule with protocol 4, so nothing is lost; the 'ipip' rule is redundant." if has_4 else
               f"Add the same rule with the number: `{cmd}` (Neutron may answer that it exists, since it maps 'ipip' to "
               f"4: then delete the 'ipip' rule first)."))
    return Finding("ipip-rule-by-name", WARNING if uses_ipip and not has_4 else INFO,
                   "A security-group rule says protocol 'ipip' instead of 4", text, [],
                   [Evidence("neutron", f"security group {g.label}: rule {r.id or '?'}: {r.describe(facts.groups)}")
                    for g, r in named])


def _dedupe(ev: list[Evidence]) -> list[Evidence]:
    seen, out = set(), []
    for e in ev:
        if (e.source, e.text) not in seen:
            seen.add((e.source, e.text))
            out.append(e)
    return out


def _dedupe_unchecked(items: list[Unchecked]) -> list[Unchecked]:
    seen, out = set(), []
    for u in items:
        if (u.source, u.what) not in seen:
            seen.add((u.source, u.what))
            out.append(u)
    return out



# --------------------------------------------------------------------------- text rendering


def render_text(diag: Diagnosis, verbose: bool = False) -> str:
    f = diag.facts
    lines = [f"Doctor for {f.cluster or 'the lab'}: {diag.status}"
             + (f" ({_plural(len(diag.problems), 'finding')})" if diag.problems else "")]
    pools = active_pools(f)
    if pools:
        lines.append("  pools: " + "; ".join(f"{p.name} {p.cidr} {p.modes}" for p in pools))
    if f.nodes:
        lines.append("  nodes: " + ", ".join(f"{n.name} {n.ip or '?'} ({node_subnet(n)[0] or '?'})" for n in f.nodes))
    for u in diag.unchecked:
        lines.append(f"  ! {u.line()}")
    if diag.verdicts:
        ok = sum(1 for v in diag.verdicts if v.ok)
        lines.append(f"  pod paths: {ok} of {len(diag.verdicts)} pass")
    if f.matrix is not None:
        lines.append(render_matrix(f))
    for i, fd in enumerate(diag.findings, 1):
        lines.append("")
        lines.append(f"[{fd.severity.upper()}] {i}. {fd.title}")
        if fd.pairs:
            lines.append(f"  pairs: {', '.join(fd.pairs)}")
        lines.append("\n\n".join(_wrap(para, "  ") for para in fd.explanation.split("\n\n")))
        if fd.evidence:
            lines.append("  evidence:")
            for e in fd.evidence if verbose else fd.evidence[:12]:
                lines.append(f"    - [{e.source}] {e.text}")
        if fd.fixes:
            lines.append("  fixed by option " + ", ".join(str(n) for n in fd.fixes))
    if diag.options:
        lines.append("")
        lines.append("Fix options (best first; apply with: labtui doctor NAME --fix N --yes):")
        for o in diag.options:
            tag = " [recommended]" if o.recommended else ""
            lines.append(f"  {o.number}. {o.title}{tag}" + ("" if o.available else f"  (not possible: {o.unavailable_reason})"))
            lines.append(_wrap(o.why, "       "))
            lines.append(_wrap("cost: " + o.tradeoffs, "       "))
            for a in sorted(o.actions, key=lambda x: (x.order, x.id)):
                lines.append(f"       $ {a.command}")
            if o.expected:
                lines.append(f"       {o.expected}")
    return "\n".join(lines)


def render_matrix(facts: DoctorFacts) -> str:
    names = [n.name for n in facts.nodes]
    res = {(p.src, p.dst): p for p in facts.matrix or []}
    width = max([len(n) for n in names] + [6])
    out = ["  connectivity (ping from the probe pod on ROW to the one on COLUMN):",
           "    " + " " * width + " " + " ".join(n.ljust(width) for n in names)]
    for a in names:
        cells = []
        for b in names:
            if a == b:
                cells.append("-".ljust(width))
            else:
                p = res.get((a, b))
                cells.append(("?" if p is None else ("ok" if p.ok else "FAIL")).ljust(width))
        out.append("    " + a.ljust(width) + " " + " ".join(cells))
    return "\n".join(out)


def _wrap(text: str, indent: str, width: int = 100) -> str:
    # never split a word or a command at its hyphens (`--remote-group`, `kube-system`)
    return "\n".join(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent,
                                   break_on_hyphens=False, break_long_words=False)
                     for line in text.splitlines() if line.strip())

