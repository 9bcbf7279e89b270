"""BGP (bird) between the nodes: sessions the security groups block, sessions bird reports down, and
IPIP on without BGP."""

from __future__ import annotations

from labtui.doctor.findings import Evidence, Finding, Seen
from labtui.doctor.model import ERROR, WARNING, Unchecked, active_pools
from labtui.doctor.words import dedupe_evidence, group_evidence, join_words, plural, pool_evidence


def bgp_sessions(seen: Seen) -> list[Finding | Unchecked]:
    """BGP (TCP 179) between the nodes, when bird runs."""
    facts, verdicts, bgp, bird = seen.facts, seen.verdicts, seen.bgp, seen.bird
    findings: list[Finding | Unchecked] = []
    if bird:
        bad = [v for v in bgp if v.ok is False]
        depends = any(v.path in ("ipip", "direct") for v in verdicts)
        if bad:
            gids = [g for v in bad for n in (v.src, v.dst) for g in (facts.node(n).port.security_group_ids if facts.node(n).port else [])]
            gnames = join_words(dict.fromkeys(facts.groups[g].label if g in facts.groups else g for g in gids))
            sev = ERROR if depends else WARNING
            replies = all(b.code == "sg-reply" for v in bad for b in v.blocks)
            text = (
                "Calico runs BGP (bird) between the nodes to tell each node where the other nodes' pod addresses "
                "are. BGP is a TCP connection to port 179 between the node addresses, and "
                + (f"the security groups ({gnames}) are stateless: they let TCP 179 in, but not the replies that come "
                   f"back to the connecting node's ephemeral port, so no session comes up for "
                   f"{plural(len(bad), 'node pair')}. " if replies else
                   f"the security groups ({gnames}) allow it in neither direction for {plural(len(bad), 'node pair')}. ")
                + ("Without those sessions the nodes learn no routes to each other's pods (IPIP and direct routing "
                   "both depend on them), and calico-node reports itself not ready (bird is not ready). "
                   if depends else
                   "VXLAN does not need BGP routes, but calico-node's readiness check includes bird, so calico-node "
                   "stays not ready. ")
                + ("Allow TCP 179 from the nodes' own group." if not replies
                   else "The fix is a rule for the replies (see the stateless-group finding)."))
            ev = group_evidence(facts, gids)
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
                                    text, [f"{v.src}<->{v.dst}" for v in bad], dedupe_evidence(ev),
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
    return findings


def ipip_without_bgp(seen: Seen) -> list[Finding | Unchecked]:
    """IPIP relies on BGP's routes: a pool in IPIP mode with BGP off."""
    facts = seen.facts
    findings: list[Finding | Unchecked] = []
    if facts.calico.backend in ("vxlan", "none") or facts.calico.bgp is False:
        ipip_pools = [p for p in active_pools(facts) if p.ipip_mode in ("Always", "CrossSubnet")]
        if ipip_pools:
            findings.append(Finding(
                "ipip-without-bgp", ERROR, "IPIP is on but BGP (bird) is off",
                f"Pool {join_words(p.name for p in ipip_pools)} uses IP-in-IP, which relies on BGP to distribute the "
                f"routes, but Calico's backend is {facts.calico.backend or 'without BGP'}. Use VXLAN instead "
                f"(vxlanMode Always), or enable BGP.",
                [], [pool_evidence(p, facts) for p in ipip_pools]))
    return findings
