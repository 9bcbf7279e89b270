"""IP-in-IP on the nodes and in the groups: a rule naming the protocol 'ipip' (protocol 94 on some
clouds), and the ipip kernel module."""

from __future__ import annotations

from labtui.doctor.findings import Evidence, Finding, Seen
from labtui.doctor.model import INFO, WARNING, DoctorFacts, Unchecked
from labtui.doctor.paths import PathVerdict
from labtui.doctor.words import join_words
from labtui.net.fixes import RuleFix


def ipip_rule_by_name(seen: Seen) -> list[Finding | Unchecked]:
    """A security-group rule that says protocol 'ipip' instead of 4."""
    named = ipip_named_finding(seen.facts, seen.verdicts)
    return [named] if named else []


def ipip_named_finding(facts: DoctorFacts, verdicts: list[PathVerdict]) -> Finding | None:
    named = [(g, r) for g in facts.groups.values() for r in g.rules
             if r.direction == "ingress" and str(r.protocol or "").lower() == "ipip"]
    if not named:
        return None
    uses_ipip = any(v.path == "ipip" for v in verdicts)
    g0 = named[0][0]
    has_4 = any(str(r.protocol or "") == "4" for r in g0.rules if r.direction == "ingress")
    remote = named[0][1].remote_group_id
    cmd = RuleFix(g0.id, g0.label, "4", remote_group_id=remote,
                  remote_group_name=facts.groups[remote].label if remote in facts.groups else remote,
                  remote_ip_prefix=named[0][1].remote_ip_prefix).short_command()
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


def ipip_module(seen: Seen) -> list[Finding | Unchecked]:
    """The ipip kernel module, when a path uses IP-in-IP."""
    facts, verdicts = seen.facts, seen.verdicts
    uses_ipip = any(v.path == "ipip" for v in verdicts)
    findings: list[Finding | Unchecked] = []
    if uses_ipip:
        missing = [n for n in facts.nodes if n.ipip_module is False]
        if missing:
            # a Ready calico-node in IPIP mode has a working tunl0, whatever /proc/modules says
            # (built-in ipip, or a container view of the modules): then it is only a note
            sev = WARNING if any(n.calico_ready is not True for n in missing) else INFO
            findings.append(Finding(
                "ipip-module", sev, "The ipip kernel module is not loaded on some nodes",
                f"IP-in-IP needs the kernel's ipip module (the tunl0 device). It is not loaded on "
                f"{join_words(n.name for n in missing)}. calico-node normally loads it when it starts; if it is still "
                f"missing, run `sudo modprobe ipip` and make it permanent in /etc/modules-load.d/.",
                [], [Evidence(f"ssh:{n.name}", f"{n.name}: ipip not in /proc/modules") for n in missing],
                nodes=[n.name for n in missing]))
    return findings
