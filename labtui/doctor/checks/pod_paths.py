"""Pod traffic between nodes: the failing pairs, grouped by pool and by what drops them, each group
one finding explained by its family (anti-spoofing, security-group paths, routing)."""

from __future__ import annotations

from labtui.doctor.checks.antispoof import explain_direct_antispoof
from labtui.doctor.checks.sg_paths import explain_direct_sg, explain_sg
from labtui.doctor.findings import Evidence, Finding, Seen
from labtui.doctor.model import ERROR, DoctorFacts, Unchecked, active_pools
from labtui.doctor.paths import PathVerdict
from labtui.doctor.words import (
    capture_evidence,
    group_evidence,
    join_words,
    node_evidence,
    pairs_text,
    pool_evidence,
    probe_evidence,
    subnets_summary,
)
from labtui.net.calico import IPPoolInfo


def classify(v: PathVerdict) -> str:
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


def explain_unroutable(pool: IPPoolInfo, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    names = sorted({v.src for v in vs} | {v.dst for v in vs})
    subs = subnets_summary(facts, names)
    title = f"Pod traffic between subnets is not encapsulated in pool {pool.name}, and the router cannot route it"
    text = (
        f"The nodes are on {join_words(f'{s} ({join_words(ns)})' for s, ns in subs.items())}. Pool {pool.name} ({pool.cidr}) has "
        f"{pool.modes}, so pod packets to a node on another subnet are sent unencapsulated to the subnet's "
        f"router, which knows nothing of the pod CIDR (and anti-spoofing drops them anyway unless the ports allow "
        f"the pod addresses). Affected: {pairs_text([v.pair for v in vs], len(facts.nodes))}. Encapsulate at least "
        f"across subnets (ipipMode or vxlanMode CrossSubnet or Always)."
    )
    return title, text


def pod_traffic(seen: Seen) -> list[Finding | Unchecked]:
    """Pod traffic, grouped by pool and cause."""
    facts, verdicts = seen.facts, seen.verdicts
    findings: list[Finding | Unchecked] = []
    groups: dict[tuple[str, str], list[PathVerdict]] = {}
    for v in verdicts:
        if v.ok is False:
            groups.setdefault((v.pool, classify(v)), []).append(v)
    pools = {p.name: p for p in facts.pools}
    for (pool_name, code), vs in groups.items():
        pool = pools[pool_name]
        if code == "direct-antispoofing":
            cross = "CrossSubnet" in (pool.ipip_mode, pool.vxlan_mode)
            fid = "crosssubnet-antispoofing" if cross else "direct-antispoofing"
            title, text = explain_direct_antispoof(pool, facts, vs)
        elif code in ("ipip-sg", "ipip-egress"):
            fid, (title, text) = "ipip-blocked", explain_sg("ipip", pool, facts, vs)
        elif code in ("vxlan-sg", "vxlan-egress"):
            fid, (title, text) = "vxlan-blocked", explain_sg("vxlan", pool, facts, vs)
        elif code == "direct-unroutable":
            fid, (title, text) = "direct-unroutable", explain_unroutable(pool, facts, vs)
        else:
            fid, (title, text) = "direct-sg-blocked", explain_direct_sg(pool, facts, vs)
        if len([p for p in active_pools(facts)]) > 1:
            fid = f"{fid}:{pool.name}"
        names = list(dict.fromkeys([v.src for v in vs] + [v.dst for v in vs]))
        ev = [pool_evidence(pool, facts)]
        ev += node_evidence(facts, names)
        ev += group_evidence(facts, [g for n in names for g in (facts.node(n).port.security_group_ids if facts.node(n).port else [])])
        for blk in dict.fromkeys(b.detail for v in vs[:2] for b in v.blocks):
            ev.append(Evidence("reasoning", blk))
        if code == "direct-antispoofing":
            nb = facts.neutron
            ev.append(Evidence("neutron", f"Neutron backend: {nb.backend} ({nb.backend_source or 'seen'})" if nb.backend
                               else "Neutron backend: not shown by the cloud (assumed ML2/OVS: the sending port checks)"))
        ev += probe_evidence(vs)
        ev += capture_evidence(facts)
        findings.append(Finding(fid, ERROR, title, text, [v.pair for v in vs], ev, pool=pool.name, nodes=names))
    return findings
