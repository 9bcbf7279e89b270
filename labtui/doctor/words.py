"""The doctor's shared words: joining names, plurals, pairs, evidence, and where a pair is dropped.

Every check family (labtui.doctor.checks) writes its explanations with these.
"""

from __future__ import annotations

from typing import Iterable

from labtui.doctor.findings import Evidence
from labtui.doctor.model import DoctorFacts, Unchecked, node_subnet
from labtui.doctor.paths import Block, PathVerdict
from labtui.net.calico import IPPoolInfo


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def join_words(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def pairs_text(pairs: list[str], n_nodes: int) -> str:
    total = n_nodes * (n_nodes - 1)
    if total and len(pairs) == total:
        return f"all {total} node pairs"
    if len(pairs) <= 4:
        return join_words(p.replace("->", " → ") for p in pairs)
    return f"{len(pairs)} of {total} node pairs"


def subnets_summary(facts: DoctorFacts, names: Iterable[str]) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for n in facts.nodes:
        if n.name in names:
            sub, _ = node_subnet(n)
            by.setdefault(sub or "an unknown subnet", []).append(n.name)
    return by


def node_evidence(facts: DoctorFacts, names: Iterable[str]) -> list[Evidence]:
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


def group_evidence(facts: DoctorFacts, group_ids: Iterable[str]) -> list[Evidence]:
    ev = []
    for gid in dict.fromkeys(group_ids):
        g = facts.groups.get(gid)
        if g is None:
            continue
        ingress = [r.describe(facts.groups) for r in g.rules if r.direction == "ingress"]
        ev.append(Evidence("neutron", f"security group {g.label}: "
                           + ("; ".join(ingress) if ingress else "no ingress rules")))
    return ev


def probe_evidence(verdicts: list[PathVerdict]) -> list[Evidence]:
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


def capture_evidence(facts: DoctorFacts) -> list[Evidence]:
    ev = []
    for c in facts.captures:
        seen = ", ".join(c.seen) or "nothing"
        head = c.lines[:4]
        text = f"`{c.command}` on {c.node}{' (simulated)' if c.simulated else ''}: saw {seen}"
        if head:
            text += "\n    " + "\n    ".join(head)
        ev.append(Evidence("tcpdump", text))
    return ev


def pool_evidence(pool: IPPoolInfo, facts: DoctorFacts) -> Evidence:
    owner = " (owned by the tigera-operator: change it through the Installation)" if pool.operator_managed else ""
    backend = f"; calico backend {facts.calico.backend}" if facts.calico.backend else ""
    return Evidence("kube", f"IPPool {pool.name}: cidr {pool.cidr}, {pool.modes}, natOutgoing "
                            f"{str(pool.nat_outgoing).lower()}{owner}{backend}")


def port_ref(facts: DoctorFacts, node: str) -> str:
    n = facts.node(node)
    return f"port {n.port.label} of {node}" if n.port else f"{node} (no port known)"


def cause_label(facts: DoctorFacts, blk: Block, pool: IPPoolInfo | None = None) -> str:
    """The cause of a drop in words that do not depend on the pair (so pairs can be grouped by it)."""
    cidr = pool.cidr if pool else "the pod CIDR"
    if blk.code == "antispoof-src":
        n = facts.node(blk.node)
        have = ", ".join(n.port.pair_addresses) if n.port and n.port.pair_addresses else "none"
        return (f"{port_ref(facts, blk.node)} drops pod sources (anti-spoofing): {cidr} is not among its "
                f"allowed-address-pairs ({have})")
    if blk.code == "antispoof-dst":
        return (f"{port_ref(facts, blk.node)} drops packets to pod addresses (OVN's destination check): "
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


def causes_text(facts: DoctorFacts, vs: list[PathVerdict], pool: IPPoolInfo | None) -> str:
    lines = [f"- {label}: {pairs_text(pairs, len(facts.nodes))}" for label, pairs in causes(facts, vs, pool)]
    return "Where each failing pair is dropped:\n" + "\n".join(lines)


def one_end(vs: list[PathVerdict]) -> tuple[str, str] | None:
    """("start", node) when every failing pair starts at one node, ("end", node) when they all end at one."""
    srcs, dsts = {v.src for v in vs}, {v.dst for v in vs}
    if len(srcs) == 1:
        return "start", next(iter(srcs))
    if len(dsts) == 1:
        return "end", next(iter(dsts))
    return None


def dedupe_evidence(ev: list[Evidence]) -> list[Evidence]:
    seen, out = set(), []
    for e in ev:
        if (e.source, e.text) not in seen:
            seen.add((e.source, e.text))
            out.append(e)
    return out


def dedupe_unchecked(items: list[Unchecked]) -> list[Unchecked]:
    seen, out = set(), []
    for u in items:
        if (u.source, u.what) not in seen:
            seen.add((u.source, u.what))
            out.append(u)
    return out
