"""The doctor, pure: facts -> per-pair paths -> findings -> ranked fix plans.

No I/O here. `DoctorFacts` (labtui/doctor/model.py) is what the gatherers (labtui/doctor/gather.py)
collect from the nodes (SSH), the cloud (Neutron) and the cluster (Kubernetes API). `diagnose(facts)`:

1. reasons about every ordered pair of nodes (labtui/doctor/paths.py): which path a pod packet takes
   under the live pool mode, and where the cloud drops it (anti-spoofing at the sending port, and at
   the receiving one on OVN; the security groups, stateless ones included);
2. turns the failing pairs into findings grouped by cause, with explanations that name the pool, the
   port and the rule that drop them (labtui/doctor/explain.py), plus MTU, stateless groups, Felix's
   VXLAN port, rules named 'ipip' and calico-node health;
3. offers fix options, each simulated on the facts and ranked (labtui/doctor/fixes.py).

This module keeps every name the rest of labtui imports from `labtui.doctor.reason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labtui.doctor.explain import (  # noqa: F401 - re-exported
    Evidence,
    Finding,
    _capture_evidence,
    _classify,
    _dedupe,
    _dedupe_unchecked,
    _explain_direct_antispoof,
    _explain_direct_sg,
    _explain_sg,
    _explain_unroutable,
    _group_evidence,
    _join,
    _node_evidence,
    _plural,
    _pool_evidence,
    _probe_evidence,
    causes,
    ipip_named_finding,
    mtu_findings,
    render_matrix,
    render_text,
    stateless_finding,
)
from labtui.doctor.fixes import (  # noqa: F401 - re-exported
    ENCAP_BY_MODES,
    OPTION_TEXT,
    FixAction,
    FixOption,
    _link_fixes,
    fix_options,
    ordered_actions,
    simulate,
)
from labtui.doctor.model import (  # noqa: F401 - re-exported
    BGP_PORT,
    ERROR,
    ICMP,
    INFO,
    IPIP_PROTO,
    SEVERITY_ORDER,
    TCP,
    UDP,
    VXLAN_PORT,
    WARNING,
    BgpPeer,
    Calico,
    Capture,
    DoctorFacts,
    Neutron,
    Node,
    ProbeResult,
    Unchecked,
    _net,
    _to_plain,
    active_pools,
    bird_runs,
    node_subnet,
    pool_path,
    proto_number,
    same_subnet,
)
from labtui.doctor.paths import Block, PathVerdict, bgp_verdicts, pair_verdicts  # noqa: F401 - re-exported

@dataclass
class Diagnosis:
    facts: DoctorFacts
    verdicts: list[PathVerdict]
    bgp: list[PathVerdict]
    findings: list[Finding]
    options: list[FixOption]
    unchecked: list[Unchecked]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in (ERROR, WARNING)]

    @property
    def healthy(self) -> bool:
        return self.exit_code == 0

    @property
    def blocked_sources(self) -> list[Unchecked]:
        """The unchecked sources without which no verdict on pod traffic is possible."""
        return [u for u in self.unchecked if u.source in ("cloud", "kube", "nodes") and not u.skipped]

    @property
    def exit_code(self) -> int:
        if self.problems:
            return 1
        if self.blocked_sources:
            return 2
        if not self.facts.nodes or not active_pools(self.facts):
            return 2
        if any(v.ok is None for v in self.verdicts):
            return 2
        return 0

    @property
    def status(self) -> str:
        return {0: "healthy", 1: "findings", 2: "could not check"}[self.exit_code]

    def option(self, ref: str | int) -> FixOption:
        ref_s = str(ref).strip().lower()
        for o in self.options:
            if ref_s in (str(o.number), o.key):
                return o
        raise KeyError(ref)

    def finding(self, fid: str) -> Finding:
        for f in self.findings:
            if f.id == fid:
                return f
        raise KeyError(fid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.facts.cluster,
            "status": self.status,
            "exit_code": self.exit_code,
            "findings": [_to_plain(f) for f in self.findings],
            "options": [_to_plain(o) for o in self.options],
            "unchecked": [_to_plain(u) | {"line": u.line()} for u in self.unchecked],
            "paths": [
                {"src": v.src, "dst": v.dst, "pool": v.pool, "path": v.path, "same_subnet": v.same_subnet,
                 "ok": v.ok, "blocks": [_to_plain(b) for b in v.blocks],
                 "probe": _to_plain(v.probe) if v.probe else None}
                for v in self.verdicts
            ],
            "bgp": [{"a": v.src, "b": v.dst, "ok": v.ok} for v in self.bgp],
            "matrix": [_to_plain(p) for p in self.facts.matrix] if self.facts.matrix is not None else None,
            "captures": [_to_plain(c) for c in self.facts.captures],
            "facts": self.facts.to_dict(),
        }



def diagnose(facts: DoctorFacts, with_options: bool = True) -> Diagnosis:
    """Reason over the facts: per-pair verdicts, findings, and (optionally) the ranked fix options."""
    verdicts = pair_verdicts(facts)
    bird = bird_runs(facts)
    bgp = bgp_verdicts(facts) if bird else []
    findings: list[Finding] = []
    unchecked = list(facts.unchecked)
    n_nodes = len(facts.nodes)

    # -- pod traffic, grouped by pool and cause
    groups: dict[tuple[str, str], list[PathVerdict]] = {}
    for v in verdicts:
        if v.ok is False:
            groups.setdefault((v.pool, _classify(v)), []).append(v)
    pools = {p.name: p for p in facts.pools}
    for (pool_name, code), vs in groups.items():
        pool = pools[pool_name]
        if code == "direct-antispoofing":
            cross = "CrossSubnet" in (pool.ipip_mode, pool.vxlan_mode)
            fid = "crosssubnet-antispoofing" if cross else "direct-antispoofing"
            title, text = _explain_direct_antispoof(pool, facts, vs)
        elif code in ("ipip-sg", "ipip-egress"):
            fid, (title, text) = "ipip-blocked", _explain_sg("ipip", pool, facts, vs)
        elif code in ("vxlan-sg", "vxlan-egress"):
            fid, (title, text) = "vxlan-blocked", _explain_sg("vxlan", pool, facts, vs)
        elif code == "direct-unroutable":
            fid, (title, text) = "direct-unroutable", _explain_unroutable(pool, facts, vs)
        else:
            fid, (title, text) = "direct-sg-blocked", _explain_direct_sg(pool, facts, vs)
        if len([p for p in active_pools(facts)]) > 1:
            fid = f"{fid}:{pool.name}"
        names = list(dict.fromkeys([v.src for v in vs] + [v.dst for v in vs]))
        ev = [_pool_evidence(pool, facts)]
        ev += _node_evidence(facts, names)
        ev += _group_evidence(facts, [g for n in names for g in (facts.node(n).port.security_group_ids if facts.node(n).port else [])])
        for blk in dict.fromkeys(b.detail for v in vs[:2] for b in v.blocks):
            ev.append(Evidence("reasoning", blk))
        if code == "direct-antispoofing":
            nb = facts.neutron
            ev.append(Evidence("neutron", f"Neutron backend: {nb.backend} ({nb.backend_source or 'seen'})" if nb.backend
                               else "Neutron backend: not shown by the cloud (assumed ML2/OVS: the sending port checks)"))
        ev += _probe_evidence(vs)
        ev += _capture_evidence(facts)
        findings.append(Finding(fid, ERROR, title, text, [v.pair for v in vs], ev, pool=pool.name, nodes=names))

    # -- BGP (bird) between nodes
    if bird:
        bad = [v for v in bgp if v.ok is False]
        depends = any(v.path in ("ipip", "direct") for v in verdicts)
        if bad:
            gids = [g for v in bad for n in (v.src, v.dst) for g in (facts.node(n).port.security_group_ids if facts.node(n).port else [])]
            gnames = _join(dict.fromkeys(facts.groups[g].label if g in facts.groups else g for g in gids))
            sev = ERROR if depends else WARNING
            replies = all(b.code == "sg-reply" for v in bad for b in v.blocks)
            text = (
                "Calico runs BGP (bird) between the nodes to tell each node where the other nodes' pod addresses "
                "are. BGP is a TCP connection to port 179 between the node addresses, and "
                + (f"the security groups ({gnames}) are stateless: they let TCP 179 in, but not the replies that come "
                   f"back to the connecting node's ephemeral port, so no session comes up for "
                   f"{_plural(len(bad), 'node pair')}. " if replies else
                   f"the security groups ({gnames}) allow it in neither direction for {_plural(len(bad), 'node pair')}. ")
                + ("Without those sessions the nodes learn no routes to each other's pods (IPIP and direct routing "
                   "both depend on them), and calico-node reports itself not ready (bird is not ready). "
                   if depends else
                   "VXLAN does not need BGP routes, but calico-node's readiness check includes bird, so calico-node "
                   "stays not ready. ")
                + ("Allow TCP 179 from the nodes' own group." if not replies
                   else "The fix is a rule for the replies (see the stateless-group finding)."))
            ev = _group_evidence(facts, gids)
            for v in bad:
                for n in (v.src, v.dst):
                    node = facts.node(n)
                    if node.bgp_peers is not None:
                        down = [p for p in node.bgp_peers if not p.up]
                        if down:
                            ev.append(Evidence("bird", f"{n}: BGP peers not established: "
                                                       + ", ".join(f"{p.address} {p.state} {p.info}".strip() for p in down)))
            title = ("BGP sessions between the nodes cannot come up: the stateless group lets no replies in" if replies
                     else "BGP (TCP 179) between the nodes is not allowed")
            findings.append(Finding("bgp-blocked", sev, title,
                                    text, [f"{v.src}<->{v.dst}" for v in bad], _dedupe(ev),
                                    nodes=list(dict.fromkeys(n for v in bad for n in (v.src, v.dst)))))
        # observed BGP state, when it disagrees with the security groups
        down_nodes = {n.name: [p for p in (n.bgp_peers or []) if not p.up] for n in facts.nodes}
        down_nodes = {k: v for k, v in down_nodes.items() if v}
        if down_nodes and not bad:
            ev = [Evidence("bird", f"{n}: " + ", ".join(f"{p.address} {p.state} {p.info}".strip() for p in ps))
                  for n, ps in down_nodes.items()]
            findings.append(Finding(
                "bgp-down", WARNING, "Some BGP sessions between the nodes are not established",
                "The security groups allow TCP 179 between the nodes, yet bird reports sessions that are not "
                "Established. Look at calico-node's logs on these nodes (`kubectl logs -n <calico ns> <calico-node "
                "pod> -c calico-node`); a wrong node address (IP autodetection picking another interface) is a "
                "common cause.", [], ev, nodes=list(down_nodes)))
    if facts.calico.backend in ("vxlan", "none") or facts.calico.bgp is False:
        ipip_pools = [p for p in active_pools(facts) if p.ipip_mode in ("Always", "CrossSubnet")]
        if ipip_pools:
            findings.append(Finding(
                "ipip-without-bgp", ERROR, "IPIP is on but BGP (bird) is off",
                f"Pool {_join(p.name for p in ipip_pools)} uses IP-in-IP, which relies on BGP to distribute the "
                f"routes, but Calico's backend is {facts.calico.backend or 'without BGP'}. Use VXLAN instead "
                f"(vxlanMode Always), or enable BGP.",
                [], [_pool_evidence(p, facts) for p in ipip_pools]))

    # -- a rule that names the protocol 'ipip'
    uses_ipip = any(v.path == "ipip" for v in verdicts)
    named = ipip_named_finding(facts, verdicts)
    if named:
        findings.append(named)

    # -- MTU: Calico's pod MTU plus the tunnel overhead against the network's MTU
    findings.extend(mtu_findings(facts, verdicts))

    # -- stateless groups: replies need rules of their own
    sl = stateless_finding(facts, bgp)
    if sl:
        findings.append(sl)

    # -- ipip module
    if uses_ipip:
        missing = [n for n in facts.nodes if n.ipip_module is False]
        if missing:
            # a Ready calico-node in IPIP mode has a working tunl0, whatever /proc/modules says
            # (built-in ipip, or a container view of the modules): then it is only a note
            sev = WARNING if any(n.calico_ready is not True for n in missing) else INFO
            findings.append(Finding(
                "ipip-module", sev, "The ipip kernel module is not loaded on some nodes",
                f"IP-in-IP needs the kernel's ipip module (the tunl0 device). It is not loaded on "
                f"{_join(n.name for n in missing)}. calico-node normally loads it when it starts; if it is still "
                f"missing, run `sudo modprobe ipip` and make it permanent in /etc/modules-load.d/.",
                [], [Evidence(f"ssh:{n.name}", f"{n.name}: ipip not in /proc/modules") for n in missing],
                nodes=[n.name for n in missing]))

    # -- calico-node health
    sick = [n for n in facts.nodes if n.calico_ready is False]
    if sick:
        findings.append(Finding(
            "calico-node-not-ready", ERROR if len(sick) == n_nodes else WARNING,
            f"calico-node is not ready on {_join(n.name for n in sick)}",
            "calico-node programs the routes and tunnels on its node; while it is not ready, pods on that node "
            "may not reach other nodes. Other findings here (BGP blocked, a wrong mode) often explain it; "
            "otherwise read its log.",
            [], [Evidence("kube", f"{n.name}: calico-node pod {n.calico_pod or '?'} not ready"
                                  + (f", {n.calico_restarts} restarts" if n.calico_restarts else "")) for n in sick],
            nodes=[n.name for n in sick]))
    not_ready = [n for n in facts.nodes if n.k8s_ready is False]
    if not_ready:
        findings.append(Finding(
            "node-not-ready", WARNING, f"Kubernetes node {_join(n.name for n in not_ready)} is NotReady",
            "A NotReady node runs no new pods; the doctor's path reasoning still applies to it.",
            [], [Evidence("kube", f"{n.name}: Ready=False") for n in not_ready], nodes=[n.name for n in not_ready]))

    # -- subnet disagreement between the node and Neutron
    for n in facts.nodes:
        sub, where = node_subnet(n)
        if n.port and n.port.subnet_cidr and sub and _net(sub) != _net(n.port.subnet_cidr):
            findings.append(Finding(
                f"subnet-mismatch:{n.name}", INFO, f"{n.name}: the node and Neutron disagree on its subnet",
                f"{where} says {sub}, Neutron says {n.port.subnet_cidr}. Calico decides CrossSubnet from the node's "
                f"own view ({sub}).", [], _node_evidence(facts, [n.name]), nodes=[n.name]))

    # -- nodes that are not servers of this cloud
    portless = [n.name for n in facts.nodes if n.port is None]
    if portless and facts.sources.get("cloud"):
        unchecked.append(Unchecked("cloud:ports", f"the cloud side of {_join(portless)}",
                                   "no Neutron port with that node's address in this cloud",
                                   "if these machines are elsewhere, their network's filtering was not checked"))

    # -- live proof: compare with the reasoning
    if facts.matrix is not None:
        by_pair: dict[str, list[PathVerdict]] = {}
        for v in verdicts:
            by_pair.setdefault(v.pair, []).append(v)
        order = {n.name: i for i, n in enumerate(facts.nodes)}
        matrix = sorted(facts.matrix, key=lambda p: (order.get(p.src, 99), order.get(p.dst, 99)))
        facts.matrix[:] = matrix
        # a ping (or a TCP connect) needs its answer too: a failure is explained by either direction
        unexplained = [p for p in matrix if not p.ok and all(
            v.ok is not False for v in by_pair.get(f"{p.src}->{p.dst}", []) + by_pair.get(f"{p.dst}->{p.src}", []))]
        contradicted = [p for p in matrix if p.ok and any(v.ok is False for v in by_pair.get(f"{p.src}->{p.dst}", []))]
        if unexplained:
            unknown = [v for p in unexplained for v in by_pair.get(f"{p.src}->{p.dst}", []) if v.ok is None]
            if unknown:
                paths = sorted({v.path or "an unknown path" for v in unknown})
                direct = "direct" in paths
                title = "Pods cannot reach each other across nodes (the cloud side was not checked)"
                text = (f"The probe pods could not ping each other on {_plural(len(unexplained), 'node pair')}. "
                        f"Under the live pool mode these packets take the {_join(paths)} path. "
                        + ("Direct pod traffic carries pod source addresses, which OpenStack's anti-spoofing drops "
                           "unless every node port has the pod CIDR as an allowed-address-pair: the incident's cause. "
                           if direct else
                           "Encapsulated traffic needs the security groups to allow it between the nodes (IP protocol 4 "
                           "for IPIP, UDP 4789 for VXLAN). ")
                        + "The doctor could not read the cloud's ports and security groups to confirm it: run it with "
                          "--cloud NAME (clouds.yaml) for the full diagnosis and the fix.")
            else:
                title = "Pods cannot reach each other on some node pairs, for a reason not found in the configuration"
                text = ("The probe pods could not ping each other, although the pool mode, the ports and the security "
                        "groups should let the packets through. Look at the capture, calico-node's logs, and host "
                        "firewalls on the nodes.")
            findings.append(Finding(
                "probe-failed", ERROR, title, text,
                [f"{p.src}->{p.dst}" for p in unexplained],
                [Evidence("probe", f"{p.src} ({p.src_ip}) -> {p.dst} ({p.dst_ip}): {p.detail or 'no reply'}") for p in unexplained]
                + _capture_evidence(facts)))
        if contradicted:
            findings.append(Finding(
                "probe-contradicts", INFO, "Some pairs answered although the configuration says they should not",
                "The cloud may not enforce port security the way Neutron's API describes (e.g. a driver without "
                "anti-spoofing), or the facts are stale. Re-run the doctor.",
                [f"{p.src}->{p.dst}" for p in contradicted],
                [Evidence("probe", f"{p.src} -> {p.dst}: {p.detail or 'replies'}") for p in contradicted]))

    if not facts.nodes:
        unchecked.append(Unchecked("nodes", "anything", "the lab has no nodes", "add nodes to the plan or pass --nodes / --inventory"))
    elif facts.sources.get("kube") and not active_pools(facts):
        findings.append(Finding("no-pool", ERROR, "No enabled IPv4 Calico IP pool",
                                "The cluster has no enabled IPv4 IPPool, so pods get no addresses from Calico. "
                                "Is Calico installed?", [], [Evidence("kube", f"pools: {[p.name for p in facts.pools] or 'none'}")]))

    findings.sort(key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.id))
    diag = Diagnosis(facts, verdicts, bgp, findings, [], _dedupe_unchecked(unchecked))
    if with_options:
        diag.options = fix_options(diag)
        _link_fixes(diag)
    return diag


