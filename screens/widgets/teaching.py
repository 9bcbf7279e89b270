"""How a step teaches: what its check found (findings with their full advice, the doctor's diagnosis),
the commands to do it by hand, and the glossary of the terms on screen. Pure rendering: Rich Text."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from labtui.glossary import explain, terms_in


SEV = {"error": ("✗", "bold red"), "warning": ("!", "yellow"), "info": ("i", "cyan"), "ok": ("✓", "green")}


def findings_text(findings: list[dict[str, Any]]) -> Text:
    """A preflight-style list of findings ({severity, node, title, why}), each with its whole advice."""
    t = Text()
    shown = [f for f in findings if f.get("severity") in ("error", "warning", "info")]
    if not shown:
        return t
    t.append("What the check found\n", style="bold")
    for f in sorted(shown, key=lambda f: ("error", "warning", "info").index(f.get("severity", "info"))):
        icon, style = SEV.get(f.get("severity", "info"), ("·", ""))
        where = f"{f['node']}: " if f.get("node") else ""
        t.append(f" {icon} {where}{f.get('title', '')}\n", style=style)
        if f.get("why"):
            t.append(f"   {f['why']}\n")
    return t


def diagnosis_text(diag: Any) -> Text:
    """The doctor's diagnosis: findings with their explanation, the pod-to-pod matrix, the fix options."""
    t = Text()
    style = {0: "bold green", 1: "bold red", 2: "bold yellow"}[diag.exit_code]
    ok = sum(1 for v in diag.verdicts if v.ok)
    t.append(f"Diagnosis: {diag.status}", style=style)
    t.append(f"  (pod paths passing: {ok}/{len(diag.verdicts)})\n")
    for p in [p for p in diag.facts.pools if not p.disabled]:
        t.append(f"  pool {p.name} {p.cidr}: {p.modes}\n", style="dim")
    for f in diag.findings:
        icon, fstyle = SEV.get(f.severity, ("·", "bold"))
        t.append(f"\n{icon} {f.title}\n", style=fstyle)
        if f.explanation:
            t.append(f.explanation.strip() + "\n")
        for e in f.evidence[:4]:
            t.append(f"  [{e.source}] ", style="cyan")
            t.append(e.text + "\n", style="dim")
    for u in diag.unchecked:
        t.append(f"\n? could not check {u.what}: {u.reason}\n", style="yellow")
        if u.hint:
            t.append(f"  what to do: {u.hint}\n", style="italic")
    matrix = getattr(diag.facts, "matrix", None)
    if matrix:
        names = [n.name for n in diag.facts.nodes]
        res = {(m.src, m.dst): m for m in matrix}
        width = max(8, *(len(n) + 1 for n in names))
        t.append("\nPod to pod, live (from \\ to)\n", style="bold")
        t.append(" " * width + "".join(n.ljust(width) for n in names) + "\n", style="bold")
        for a in names:
            t.append(a.ljust(width), style="bold")
            for b in names:
                m = res.get((a, b))
                if a == b:
                    t.append("-".ljust(width), style="dim")
                elif m is None:
                    t.append("?".ljust(width), style="yellow")
                else:
                    t.append(("ok" if m.ok else "FAIL").ljust(width), style="green" if m.ok else "bold red")
            t.append("\n")
    if diag.options and diag.exit_code != 0:
        t.append("\nFix options (the step applies the one chosen above, after a confirmation)\n", style="bold")
        for o in sorted(diag.options, key=lambda o: o.rank):
            ostyle = "bold green" if o.recommended else ("red" if o.discouraged else "bold")
            t.append(f" {o.number}. {o.title}" + ("  [recommended]" if o.recommended else "") + "\n", style=ostyle)
            if not o.available:
                t.append(f"    not possible here: {o.unavailable_reason}\n", style="dim red")
            t.append(f"    {o.why}\n")
            for a in o.actions:
                t.append(f"    $ {a.command}\n", style="dim")
    return t


def glossary_markdown(terms: list[str]) -> str:

    rows = explain(terms)
    if not rows:
        return ""
    return "\n\n## Terms on this screen\n\n" + "\n".join(f"- **{k}**: {v}" for k, v in rows)


def step_terms(step: Any) -> list[str]:

    own = list(getattr(step, "glossary", ()) or ())
    found = terms_in(getattr(step, "title", ""), getattr(step, "why", ""), getattr(step, "expect", ""))
    return own + [t for t in found if t not in own]
