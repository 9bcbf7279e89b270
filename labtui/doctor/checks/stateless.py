"""Stateless security groups: a reply is let in only by a rule of its own."""

from __future__ import annotations

from labtui.doctor.findings import Evidence, Finding, Seen
from labtui.doctor.model import INFO, WARNING, DoctorFacts, Unchecked
from labtui.doctor.paths import EPHEMERAL, PathVerdict
from labtui.doctor.words import join_words, plural
from labtui.net.fixes import RuleFix


def stateless_finding(facts: DoctorFacts, bgp: list[PathVerdict]) -> Finding | None:
    groups = [g for g in facts.groups.values() if g.stateful is False
              and any(n.port and g.id in n.port.security_group_ids for n in facts.nodes)]
    if not groups:
        return None
    reply = [v for v in bgp if v.ok is False and any(b.code == "sg-reply" for b in v.blocks)]
    names = join_words(g.label for g in groups)
    text = (f"Security group {names} is stateless (stateful: false): Neutron does not track connections for it, so "
            f"a reply is let in only by a rule of its own. Encapsulated pod traffic (IP protocol 4, UDP VXLAN) and "
            f"direct pod traffic use the same rule in both directions, which the per-pair check already covers; a TCP "
            f"connection such as BGP (TCP 179) gets its replies on an ephemeral port ({EPHEMERAL[0]}-{EPHEMERAL[1]}), "
            f"which needs an ingress rule for TCP from the other nodes.")
    if reply:
        text += (f" That rule is missing, so {plural(len(reply), 'BGP session')} cannot come up: add "
                 f"`{RuleFix(groups[0].id, groups[0].label, 'tcp', EPHEMERAL[0], EPHEMERAL[1], groups[0].id, groups[0].label).short_command()}`.")
    else:
        text += " The groups have what the replies need."
    return Finding("stateless-group", WARNING if reply else INFO, f"Security group {names} is stateless", text,
                   [f"{v.src}<->{v.dst}" for v in reply],
                   [Evidence("neutron", f"security group {g.label}: stateful=false") for g in groups])



def stateless_groups(seen: Seen) -> list[Finding | Unchecked]:
    """The node ports' stateless groups, and the BGP replies they drop."""
    found = stateless_finding(seen.facts, seen.bgp)
    return [found] if found else []
