"""Security-group paths: encapsulated (IPIP, VXLAN) or direct pod traffic that a group does not let
in or out. The explanations name the group, the rule that does not cover the sender and the rules the
fix options would add (so the words and the options agree)."""

from __future__ import annotations

from dataclasses import replace

from labtui.doctor.fixes import network_actions, node_group
from labtui.doctor.model import IPIP_PROTO, UDP, DoctorFacts, bird_runs
from labtui.doctor.paths import PathVerdict, allowing_rule, join_near
from labtui.doctor.words import causes, causes_text, join_words, one_end, pairs_text, port_ref
from labtui.net.calico import IPPoolInfo
from labtui.net.fixes import RuleFix


def vxlan_note(facts: DoctorFacts, pool: IPPoolInfo) -> str:
    """A VXLAN CrossSubnet pool whose UDP port the groups already allow: one mode change is enough."""
    if pool.vxlan_mode != "CrossSubnet" or len(facts.nodes) < 2:
        return ""
    port = facts.calico.vxlan_udp_port
    for a in facts.nodes:
        for b in facts.nodes:
            if a is not b and (a.port is None or b.port is None or allowing_rule(
                    facts, b.port, "ingress", UDP, port, a.port, a.ip) is None):
                return ""
    return (f" The security groups already let UDP {port} (VXLAN) in between the nodes, so setting the pool to "
            f"vxlanMode Always is enough.")


def ipip_note(facts: DoctorFacts, pool: IPPoolInfo | None = None) -> str:
    """The incident's second part: would IPIP pass the security groups today? (If it would, and the pool
    is IPIP CrossSubnet with BGP on, one mode change is the whole fix: say so.)"""
    home = node_group(facts)
    if home is None or len(facts.nodes) < 2:
        return ""
    a, b = facts.nodes[0], facts.nodes[1]
    if a.port is None or b.port is None:
        return ""
    if allowing_rule(facts, b.port, "ingress", IPIP_PROTO, None, a.port, a.ip) is None:
        g = facts.groups.get(home)
        return (f" And switching to IPIP Always alone is not enough either: security group "
                f"{g.label if g else home} has no rule that lets IP protocol 4 in from the other nodes, so the "
                f"encapsulated packets would be dropped on the way in.")
    every = all(x.port is not None and y.port is not None
                and allowing_rule(facts, y.port, "ingress", IPIP_PROTO, None, x.port, x.ip) is not None
                for x in facts.nodes for y in facts.nodes if x is not y)
    if every and pool is not None and pool.ipip_mode == "CrossSubnet" and bird_runs(facts) is not False:
        return (" The security groups already let IP protocol 4 in between the nodes, so setting the pool to "
                "ipipMode Always is enough.")
    return ""


def explain_sg(kind: str, pool: IPPoolInfo, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    blocks = [b for v in vs for b in v.blocks if b.code in ("sg-ingress", "sg-egress")]
    egress = bool(blocks) and all(b.code == "sg-egress" for b in blocks)
    end = one_end(vs)
    # the example pair: when every failing pair starts (or ends) at one node, one of its pairs
    v = vs[0]
    a, b = facts.node(v.src), facts.node(v.dst)
    blk = next((x for x in v.blocks if x.code in ("sg-ingress", "sg-egress")), None)
    blocking_port = facts.node(blk.node).port if blk else b.port
    gids = blocking_port.security_group_ids if blocking_port else []
    gnames = join_words(facts.groups[g].label if g in facts.groups else g for g in gids) or "(none)"
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
    all_names = join_words(facts.groups[g].label if g in facts.groups else g for g in all_gids) or gnames
    title = (f"{'IP-in-IP (protocol 4)' if kind == 'ipip' else f'VXLAN (UDP {vport})'} between the nodes is not "
             f"allowed {'out' if egress else 'in'} by security group {all_names}")
    if end and end[0] == "start" and not egress:
        lead = (f"every failing pair starts at {end[1]}: the receiving ports' groups ({gnames}) let {proto} in from "
                f"the other nodes but not from {port_ref(facts, end[1])}")
    elif end and end[0] == "end" and not egress:
        lead = f"every failing pair ends at {end[1]}: the groups on {port_ref(facts, end[1])} ({gnames}) do not let {proto} in"
    elif egress:
        lead = f"the groups of {a.name}'s port ({gnames}) have no egress rule for {proto}: {blk.detail if blk else ''}"
    else:
        lead = (f"the security groups on {b.name}'s port ({gnames}) have no ingress rule that allows {proto} from the "
                f"other nodes, so Neutron drops it on the way in")
    near = list(dict.fromkeys(n for x in blocks for n in x.near))
    text = (
        f"Pods on different nodes cannot reach each other: {pairs_text([x.pair for x in vs], len(facts.nodes))} are affected.\n\n"
        f"The {mode}. The outer source is {a.name}'s own address, so Neutron's anti-spoofing lets it out, but {lead}.")
    causes_list = causes(facts, vs, pool)
    if near and len(causes_list) == 1:
        text += f" The existing rule {join_near(near)} does not cover these senders (a remote group covers only its members' ports)."
    if kind == "vxlan" and vport != 4789 and _group_has(facts, all_gids, "udp", 4789):
        text += (f" The group does allow UDP 4789, the standard VXLAN port, but Felix on this cluster sends VXLAN to "
                 f"UDP {vport}.")
    if len(causes_list) > 1:
        text += "\n\n" + causes_text(facts, vs, pool)
    cmds = _missing_rule_commands(facts, kind)
    text += (f"\n\nThe fix: allow {proto} between the nodes, {'with' if len(cmds) > 1 else 'e.g.'} "
             + join_words(f"`{c}`" for c in cmds)
             + (" (use the protocol number 4: some clouds translate the name 'ipip' to protocol 94)." if kind == "ipip" else "."))
    return title, text


def _missing_rule_commands(facts: DoctorFacts, kind: str) -> list[str]:
    """The rules the fix options would add for this tunnel in the current mode (so the explanation and
    the options agree, and a rule the group has is never suggested), as short commands."""
    proto = "4" if kind == "ipip" else "udp"
    out = []
    for act in network_actions(facts, 1 if kind == "ipip" else 2):
        rule = act.fix
        if not isinstance(rule, RuleFix) or rule.protocol != proto:
            continue
        remote = rule.remote_group_id
        if remote in facts.groups:  # a sentence names the remote group by its label
            rule = replace(rule, remote_group_name=facts.groups[remote].label)
        out.append(rule.short_command())
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


def explain_direct_sg(pool: IPPoolInfo, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    blocks = [b for v in vs for b in v.blocks if b.code in ("sg-ingress", "sg-egress")]
    egress = bool(blocks) and all(b.code == "sg-egress" for b in blocks)
    blocking = facts.node(blocks[0].node if blocks else vs[0].dst)
    gids = blocking.port.security_group_ids if blocking.port else []
    gnames = join_words(facts.groups[g].label if g in facts.groups else g for g in gids) or "(none)"
    gref = facts.groups[gids[0]].label if gids and gids[0] in facts.groups else "SG"
    word, where = ("out", "out of the sending node") if egress else ("in", "into the destination node")
    title = f"Security group {gnames} does not let pod addresses {word} (direct pod traffic in pool {pool.name})"
    text = (
        f"Pod traffic in pool {pool.name} ({pool.cidr}, {pool.modes}) travels unencapsulated for "
        f"{pairs_text([x.pair for x in vs], len(facts.nodes))}. The ports allow the pod addresses (no anti-spoofing "
        f"drop), but the {'egress' if egress else 'ingress'} rules of {gnames} do not cover "
        f"{'destinations' if egress else 'sources'} in {pool.cidr} for every protocol, so Neutron drops the packets "
        f"on the way {where}.")
    causes_list = causes(facts, vs, pool)
    if len(causes_list) > 1:
        text += "\n\n" + causes_text(facts, vs, pool)
    cmd = RuleFix(gids[0] if gids else "", gref, None, remote_ip_prefix=pool.cidr,
                  direction="egress" if egress else "ingress").short_command()
    text += f" Allow the pod CIDR {word}: `{cmd}`."
    return title, text
