"""The doctor, pure: facts -> per-pair paths -> findings -> ranked fix plans.

No I/O here. `DoctorFacts` (labtui/doctor/model.py) is what the gatherers (labtui/doctor/gather.py)
collect from the nodes (SSH), the cloud (Neutron) and the cluster (Kubernetes API). `diagnose(facts)`:

1. reasons about every ordered pair of nodes (labtui/doctor/paths.py): which path a pod packet takes
   under the live pool mode, and where the cloud drops it (anti-spoofing at the sending port, and at
   the receiving one on OVN; the security groups, stateless ones included);
2. walks CHECKS: one function per check, grouped by family in labtui/doctor/checks/ (pod paths with
   anti-spoofing and security-group paths, BGP, IPIP, MTU, stateless groups, node health, coverage,
   the live proof), each turning the facts and verdicts into findings with their explanations;
3. offers fix options, each simulated on the facts and ranked (labtui/doctor/fixes.py).

`render_text` says the diagnosis as text (`labtui doctor`).
"""

from __future__ import annotations

import textwrap

from labtui.doctor.checks import bgp, coverage, health, ipip, live, mtu, pod_paths, stateless
from labtui.doctor.findings import Check, Diagnosis, Finding, Seen
from labtui.doctor.fixes import fix_options, link_fixes
from labtui.doctor.model import SEVERITY_ORDER, DoctorFacts, Unchecked, active_pools, bird_runs, node_subnet
from labtui.doctor.paths import bgp_verdicts, pair_verdicts
from labtui.doctor.words import dedupe_unchecked, plural

# Every check, in the order its findings and unchecked sources are gathered (findings are then sorted
# by severity and id). A new check: a function `(Seen) -> list[Finding | Unchecked]` in its family's
# module under labtui/doctor/checks/ (or a new module there), added here, and a test case.
CHECKS: list[Check] = [
    pod_paths.pod_traffic,  # anti-spoofing, security-group paths, routing, per pool and cause
    bgp.bgp_sessions,
    bgp.ipip_without_bgp,
    ipip.ipip_rule_by_name,
    mtu.pod_mtu,
    stateless.stateless_groups,
    ipip.ipip_module,
    health.calico_node,
    health.node_ready,
    health.subnet_mismatch,
    coverage.portless_nodes,
    live.probe_matrix,
    coverage.nodes_and_pools,
]


def diagnose(facts: DoctorFacts, with_options: bool = True) -> Diagnosis:
    """Reason over the facts: per-pair verdicts, findings, and (optionally) the ranked fix options."""
    verdicts = pair_verdicts(facts)
    bird = bird_runs(facts)
    seen = Seen(facts, verdicts, bgp_verdicts(facts) if bird else [], bird)
    findings: list[Finding] = []
    unchecked = list(facts.unchecked)
    for check in CHECKS:
        for item in check(seen):
            if isinstance(item, Unchecked):
                unchecked.append(item)
            else:
                findings.append(item)
    findings.sort(key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.id))
    diag = Diagnosis(facts, verdicts, seen.bgp, findings, [], dedupe_unchecked(unchecked))
    if with_options:
        diag.options = fix_options(diag, _without_options)
        link_fixes(diag, _without_options)
    return diag


def _without_options(facts: DoctorFacts) -> Diagnosis:
    return diagnose(facts, with_options=False)


# --------------------------------------------------------------------------- text rendering


def render_text(diag: Diagnosis, verbose: bool = False) -> str:
    f = diag.facts
    lines = [f"Doctor for {f.cluster or 'the lab'}: {diag.status}"
             + (f" ({plural(len(diag.problems), 'finding')})" if diag.problems else "")]
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
