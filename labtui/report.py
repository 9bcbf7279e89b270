"""A Markdown report of a lab session: the plan, the steps, what the doctor found, and every change
with its revert (the seed incident is such a report, written by hand)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from labtui.store import Store

DOCTOR_SCOPE = "doctor"


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"``{text}``"


def render_diagnosis_md(diag: dict[str, Any], heading: str = "##", title: str = "Doctor") -> list[str]:
    """Markdown for a stored diagnosis (Diagnosis.to_dict())."""
    out: list[str] = []
    status = diag.get("status", "?")
    out.append(f"{heading} {title}: {status}")
    facts = diag.get("facts") or {}
    when = diag.get("ran_at") or facts.get("timings", {}).get("finished")
    if when:
        out.append(f"_Run at {_when(when)}._")
    out.append("")
    pools = [p for p in facts.get("pools", []) if not p.get("disabled")]
    if pools:
        out.append("Pools: " + "; ".join(f"**{p['name']}** {p['cidr']} (ipipMode {p['ipip_mode']}, vxlanMode "
                                         f"{p['vxlan_mode']})" for p in pools))
    nodes = facts.get("nodes", [])
    if nodes:
        out.append("")
        out.append("| node | address | subnet (node) | port | port security | allowed-address-pairs |")
        out.append("|---|---|---|---|---|---|")
        for n in nodes:
            port = n.get("port") or {}
            out.append(f"| {_cell(n['name'])} | {_cell(n.get('address'))} | {_cell(n.get('calico_cidr') or n.get('iface_cidr'))} "
                       f"| {_cell(port.get('name') or port.get('id') or 'not in the cloud')} "
                       f"| {_cell(port.get('port_security') if port else '')} "
                       f"| {_cell(', '.join(port.get('allowed_address_pairs') or []) if port else '')} |")
    for u in diag.get("unchecked", []):
        out.append("")
        out.append(f"> could not check {u['what']}: {u['reason']}" + (f" -> {u['hint']}" if u.get("hint") else ""))
    matrix = diag.get("matrix")
    if matrix:
        names = [n["name"] for n in nodes] or sorted({m["src"] for m in matrix})
        res = {(m["src"], m["dst"]): m for m in matrix}
        out.append("")
        out.append("Pod-to-pod connectivity (ping from the probe pod on the row's node to the column's):")
        out.append("")
        out.append("| from \\ to | " + " | ".join(names) + " |")
        out.append("|---|" + "---|" * len(names))
        for a in names:
            cells = []
            for b in names:
                m = res.get((a, b))
                cells.append("-" if a == b else "?" if m is None else ("ok" if m["ok"] else "**FAIL**"))
            out.append(f"| {a} | " + " | ".join(cells) + " |")
    for c in diag.get("captures", []):
        out.append("")
        out.append(f"Capture on {c['node']}{' (simulated)' if c.get('simulated') else ''}: {_code(c['command'])}, "
                   f"saw {', '.join(c.get('seen') or []) or 'nothing'}")
        if c.get("lines"):
            out.append("")
            out.append("```")
            out.extend(c["lines"][:8])
            out.append("```")
    for i, f in enumerate(diag.get("findings", []), 1):
        out.append("")
        out.append(f"{heading}# {i}. {f['title']} ({f['severity']})")
        if f.get("pairs"):
            out.append("")
            out.append("Affected: " + ", ".join(p.replace("->", " → ") for p in f["pairs"]))
        out.append("")
        out.append(f["explanation"])
        if f.get("evidence"):
            out.append("")
            out.append("Evidence:")
            for e in f["evidence"]:
                text = e["text"].replace("\n", "\n  ")
                out.append(f"- [{e['source']}] {text}")
        if f.get("fixes"):
            out.append("")
            out.append("Cleared by fix option " + ", ".join(str(n) for n in f["fixes"]) + ".")
    opts = diag.get("options") or []
    if opts:
        out.append("")
        out.append(f"{heading}# Fix options")
        for o in opts:
            tag = " (recommended)" if o.get("recommended") else ""
            out.append("")
            out.append(f"**{o['number']}. {o['title']}**{tag}" + ("" if o.get("available", True) else
                                                                   f" — not possible: {o.get('unavailable_reason')}"))
            out.append("")
            out.append(o["why"] + " Cost: " + o["tradeoffs"])
            if o.get("actions"):
                out.append("")
                out.append("```")
                out.extend(f"$ {a['command']}" for a in o["actions"])
                out.append("```")
    return out


def session_report(store: Store, name: str, *, log_lines: int = 0) -> str:
    rec = store.get_session(name)
    lines: list[str] = [f"# Lab report: {rec.name}", ""]
    lines.append(f"- cloud: {rec.cloud or '(machines adopted, no cloud)'}")
    lines.append(f"- created: {_when(rec.created)}; last activity: {_when(rec.updated)}")
    lines.append(f"- stage: {rec.wizard} / {rec.step or 'start'}")
    if rec.health:
        lines.append(f"- health: {rec.health}")
    plan = rec.plan or {}
    lines += ["", "## Plan", ""]
    if plan:
        lines.append(f"Kubernetes {plan.get('kubernetes')}, Calico {plan.get('calico')}, encapsulation "
                     f"**{plan.get('encapsulation')}**; node subnet {plan.get('node_subnet')}, pods "
                     f"{plan.get('pod_cidr')}, services {plan.get('service_cidr')}.")
        lines += ["", "| node | address | role | user |", "|---|---|---|---|"]
        for n in plan.get("nodes", []):
            lines.append(f"| {_cell(n.get('name'))} | {_cell(n.get('address'))} | {_cell(n.get('role'))} | {_cell(n.get('user'))} |")
    else:
        adopted = rec.inputs.get("adopted") or {}
        lines.append("No plan saved." + (f" Adopted: {', '.join(adopted.get('nodes', []))}." if adopted else ""))
    runs = store.step_states(rec.id)
    if runs:
        lines += ["", "## Steps", "", "| stage | step | state | when | detail |", "|---|---|---|---|---|"]
        for run in sorted(runs.values(), key=lambda r: r.started):
            lines.append(f"| {run.wizard} | {run.step} | {run.state} | {_when(run.finished or run.started)} | {_cell(run.detail)[:160]} |")
    doctor = store.facts(rec.id, DOCTOR_SCOPE).get(DOCTOR_SCOPE, {})
    history = doctor.get("history") or []
    if history:
        lines += ["", "## Doctor runs", ""]
        for h in history:
            lines.append(f"- {_when(h.get('ts'))}: {h.get('status')} — {h.get('summary', '')}")
    first = doctor.get("first")
    last = doctor.get("last")
    if first and last and first.get("ran_at") != last.get("ran_at"):
        lines += [""] + render_diagnosis_md(first, "##", title="Doctor, first run")
        lines += [""] + render_diagnosis_md(last, "##", title="Doctor, last run")
    elif last:
        lines += [""] + render_diagnosis_md(last, "##")
    changes = store.changes(rec.id)
    lines += ["", "## Changes", ""]
    if not changes:
        lines.append("None: labtui changed nothing in this lab.")
    else:
        lines += ["| # | when | what | command | revert | reverted |", "|---|---|---|---|---|---|"]
        for c in changes:
            lines.append(f"| {c.id} | {_when(c.ts)} | {_cell(c.description)} | {_code(_cell(c.command))} | "
                         f"{_code(_cell(c.revert_command)) if c.revert_command else 'n/a'} | {_when(c.reverted) or 'no'} |")
    if log_lines:
        events = store.events(rec.id, limit=log_lines)
        lines += ["", f"## Command log (last {len(events)} lines)", "", "```"]
        for e in events:
            lines.append(f"{_dt.datetime.fromtimestamp(e.ts).strftime('%H:%M:%S')} {e.line()}")
        lines.append("```")
    return "\n".join(lines) + "\n"
