"""The report of a lab: the story the seed incident tells, from what labtui recorded.

    symptom -> the setup -> the cause in plain words -> the change (commands that run as printed)
    -> the proof before (the failing matrix, the unencapsulated capture of the first doctor run)
    and after (the passing matrix, the encapsulated capture of the latest run) -> the runs.

`session_report_data(store, name)` gathers it as plain data (`labtui report NAME --format json`);
`session_report(store, name)` renders it as Markdown. Nothing is cut: long texts stay whole,
commands keep their lines (here-documents intact) in fenced blocks, booleans are words, every
node's subnet is a network (10.100.200.0/24, not the address with its prefix), a change recorded
twice or one that changed nothing is listed once or not at all, and the health line is the
latest run's.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from typing import Any

from labtui.doctor.model import port_from_stored
from labtui.model import Plan
from labtui.redact import redact, redact_data
from labtui.store import Store

DOCTOR_SCOPE = "doctor"
LIVE_SCOPE = "live"
CHECK_TITLES = {"icmp": "ICMP ping", "tcp": "TCP 8080 (a listener in the probe pod)",
                "mtu": "ping at the path MTU, don't fragment"}
SCOPE_TITLES = {"cross": "pod to pod, across nodes", "same": "pod to pod, on one node", "host": "node to pod"}
SETUP_NAMES = [("kubernetes", "Kubernetes"), ("calico", "Calico"), ("encapsulation", "encapsulation"),
               ("node_subnet", "node subnet"), ("pod_cidr", "pod CIDR"), ("service_cidr", "service CIDR")]


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _cell(text: Any) -> str:
    return _word(text).replace("|", "\\|").replace("\n", " ")


def _word(value: Any) -> str:
    """A value as a reader says it: yes/no, not True/False; nothing for None."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _subnet(cidr: str | None) -> str | None:
    """'10.100.200.4/24' -> '10.100.200.0/24' (a subnet, not an address with its prefix)."""
    if not cidr:
        return None
    try:
        return str(ipaddress.ip_interface(cidr).network) if "/" in cidr else cidr
    except ValueError:
        return cidr


# --------------------------------------------------------------------------- the data


def _node_rows(diag: dict[str, Any] | None, plan: Plan | None) -> list[dict[str, Any]]:
    facts = (diag or {}).get("facts") or {}
    rows = []
    seen = set()
    for n in facts.get("nodes") or []:
        port = port_from_stored(n.get("port"))  # a labtui.net.model.NodePort (a run stored before it too)
        rows.append({
            "name": n.get("name"), "role": n.get("role"), "address": n.get("address") or n.get("ip"),
            "subnet": _subnet(n.get("calico_cidr") or n.get("iface_cidr")) or (port.subnet_cidr if port else None),
            "port": (port.name or port.id) if port else None,
            "port_security": ("on" if port.port_security_enabled else "off") if port else None,
            "allowed_address_pairs": port.pair_addresses if port else None,
        })
        seen.add(n.get("name"))
    for n in plan.nodes if plan else []:
        if n.name not in seen:
            rows.append({"name": n.name, "role": n.role.value, "address": n.address,
                         "subnet": None, "port": None, "port_security": None, "allowed_address_pairs": None})
    return rows


def _cells(diag: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every cell of a run's matrix; older runs stored only the cross-node pings."""
    if not diag:
        return []
    if diag.get("cells"):
        return list(diag["cells"])
    return [{"check": "icmp", "scope": "cross", "src": m["src"], "dst": m["dst"], "ok": m["ok"],
             "detail": m.get("detail", ""), "cause": "", "id": f"icmp:cross:{m['src']}->{m['dst']}"}
            for m in diag.get("matrix") or []]


def _matrix_summary(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for scope in SCOPE_TITLES:
        for check in CHECK_TITLES:
            mine = [c for c in cells if c["scope"] == scope and c["check"] == check]
            if mine:
                out.append({"scope": scope, "check": check, "pass": sum(1 for c in mine if c["ok"]), "total": len(mine)})
    return out


def _symptom(first: dict[str, Any] | None) -> str:
    if not first:
        return "The doctor has not run on this lab yet."
    cells = _cells(first)
    cross = [c for c in cells if c["scope"] == "cross" and c["check"] == "icmp"]
    same = [c for c in cells if c["scope"] == "same" and c["check"] == "icmp"]
    if not cross:
        if first.get("exit_code") == 0:
            return "No symptom: the doctor found every pod path open."
        problems = [f["title"] for f in first.get("findings") or [] if f.get("severity") in ("error", "warning")]
        return ("The doctor's first run, without the live proof, found: " + "; ".join(problems) + ".") if problems \
            else "The doctor's first run could not check the pod traffic (see below)."
    bad = [c for c in cross if not c["ok"]]
    if not bad:
        return f"No symptom: pods reached each other across nodes on all {len(cross)} node pairs."
    text = f"Pods on different nodes could not reach each other: {len(bad)} of {len(cross)} node pairs failed"
    if same and all(c["ok"] for c in same):
        text = "Pods on the same node could talk. " + text
    host = [c for c in cells if c["scope"] == "host" and c["check"] == "icmp" and c["src"] != c["dst"]]
    if host and all(c["ok"] for c in host):
        text += ", while each node itself reached every pod (packets with the node's own source address pass)"
    return text + "."


def _dedupe_changes(changes: list[Any]) -> list[Any]:
    """Once per (kind, target, command); none that changed nothing."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for c in changes:
        rd = c.revert_data or {}
        if isinstance(rd, dict) and "added" in rd and not rd["added"]:
            continue  # an allowed-address-pair that was there already
        key = (c.kind, c.target or "", (c.command or "").strip())
        if key in seen:
            continue
        seen.add(key)
        out.append(c)
    return out


def _proof(diag: dict[str, Any] | None) -> dict[str, Any] | None:
    if not diag:
        return None
    cells = _cells(diag)
    return {
        "ran_at": diag.get("ran_at"),
        "status": diag.get("status"),
        "pools": [f"{p['name']} {p['cidr']} (ipipMode {p['ipip_mode']}, vxlanMode {p['vxlan_mode']})"
                  for p in ((diag.get("facts") or {}).get("pools") or []) if not p.get("disabled")],
        "summary": _matrix_summary(cells),
        "cells": cells,
        "nodes": [n["name"] for n in ((diag.get("facts") or {}).get("nodes") or [])],
        "captures": [{"node": c.get("node"), "command": c.get("command"), "seen": c.get("seen") or [],
                      "lines": c.get("lines") or [], "simulated": bool(c.get("simulated"))}
                     for c in diag.get("captures") or []],
        "unchecked": [u.get("line") or f"{'skipped' if u.get('skipped') else 'could not check'} {u.get('what')}: {u.get('reason')}"
                      for u in diag.get("unchecked") or []],
    }


def session_report_data(store: Store, name: str, *, log_lines: int = 0) -> dict[str, Any]:
    rec = store.get_session(name)
    plan = Plan.saved(rec.plan)
    live = store.facts(rec.id, LIVE_SCOPE).get(LIVE_SCOPE, {}).get(LIVE_SCOPE) or {}
    doctor = store.facts(rec.id, DOCTOR_SCOPE).get(DOCTOR_SCOPE, {})
    first, last = doctor.get("first"), doctor.get("last")
    if first and last and first.get("ran_at") == last.get("ran_at"):
        last = None
    latest = last or first
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    live_values, live_sources = live.get("values") or {}, live.get("sources") or {}
    for key, _title in SETUP_NAMES:
        # an adopted lab: the live cluster's value; a built lab: its plan, or the live value it lacks
        # a value the saved plan did not set (a default filled in by the model) is no planned value
        planned = getattr(plan, key) if plan and key in plan.model_fields_set else None
        take_live = key in live_values and (rec.inputs.get("adopted") or planned in (None, ""))
        v = live_values.get(key) if take_live else planned
        values[key] = _word(v) or None
        if take_live and key in live_sources:
            sources[key] = live_sources[key]
    cause = [{"title": f["title"], "explanation": f["explanation"], "pairs": f.get("pairs") or [],
              "severity": f["severity"]}
             for f in (first or {}).get("findings") or [] if f.get("severity") in ("error", "warning")]
    changes = _dedupe_changes(store.changes(rec.id))
    history = doctor.get("history") or []
    open_items = []
    if latest and latest.get("exit_code") == 1:
        rec_opt = next((o for o in latest.get("options") or [] if o.get("recommended")), None)
        if rec_opt:
            open_items.append({"option": rec_opt["number"], "title": rec_opt["title"], "why": rec_opt.get("why", ""),
                               "commands": list(dict.fromkeys(a["command"] for a in rec_opt.get("actions") or []))})
    data = {
        "lab": {"name": rec.name, "cloud": rec.cloud, "created": _when(rec.created), "updated": _when(rec.updated),
                "stage": f"{rec.wizard} / {rec.step or 'start'}", "adopted": bool(rec.inputs.get("adopted")),
                "health": rec.health or (history[-1]["summary"] if history else None)},
        "setup": {"values": values, "sources": sources, "disagree": live.get("disagree") or {},
                  "replaced": live.get("replaced") or {},
                  "live_read_at": _when(live.get("read_at")), "nodes": _node_rows(latest, plan)},
        "symptom": _symptom(first),
        "cause": cause,
        "changes": [{"id": c.id, "when": _when(c.ts), "kind": c.kind, "target": c.target, "description": c.description,
                     "command": c.command, "revert_command": c.revert_command, "reverted": _when(c.reverted) or None}
                    for c in changes],
        "before": _proof(first),
        "after": _proof(last),
        "still_open": open_items,
        "steps": [{"stage": r.wizard, "step": r.step, "state": _word(r.state), "when": _when(r.finished or r.started),
                   "detail": r.detail or ""}
                  for r in sorted(store.step_states(rec.id).values(), key=lambda r: r.started)],
        "runs": [{"when": _when(h.get("ts")), "status": h.get("status"), "summary": h.get("summary", "")}
                 for h in history],
    }
    if log_lines:
        data["log"] = [f"{_dt.datetime.fromtimestamp(e.ts).strftime('%H:%M:%S')} {e.line()}"
                       for e in store.events(rec.id, limit=log_lines)]
    return redact_data(data)


# --------------------------------------------------------------------------- Markdown


def _fence(lines: list[str], lang: str = "") -> list[str]:
    body = "\n".join(lines)
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return [ticks + lang, *lines, ticks]


def _matrix_md(proof: dict[str, Any]) -> list[str]:
    cells = proof["cells"]
    if not cells:
        return ["No live matrix in this run" + (": " + "; ".join(proof["unchecked"]) if proof["unchecked"] else ".")]
    names = proof["nodes"] or list(dict.fromkeys(c["src"] for c in cells))
    by = {(c["check"], c["scope"], c["src"], c["dst"]): c for c in cells}
    out = ["Ping from the probe pod on the row's node to the column's (the diagonal: two pods on one node):", "",
           "| from \\ to | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for a in names:
        row = []
        for b in names:
            c = by.get(("icmp", "same" if a == b else "cross", a, b))
            row.append("-" if c is None else "ok" if c["ok"] else "**FAIL**")
        out.append(f"| {a} | " + " | ".join(row) + " |")
    out += ["", "| cells | pass |", "|---|---|"]
    for s in proof["summary"]:
        out.append(f"| {CHECK_TITLES[s['check']]}, {SCOPE_TITLES[s['scope']]} | {s['pass']} of {s['total']} |")
    causes: dict[str, list[str]] = {}
    for c in cells:
        if not c["ok"] and c.get("cause"):
            causes.setdefault(c["cause"], []).append(c.get("id") or f"{c['check']}:{c['scope']}:{c['src']}->{c['dst']}")
    for cause, ids in causes.items():
        out += ["", f"{len(ids)} failing cell(s): {cause}"]
    return out


def _capture_md(proof: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for c in proof["captures"]:
        seen = ", ".join({"direct": "unencapsulated pod packets", "ipip": "IP-in-IP (protocol 4) between the node "
                          "addresses", "vxlan": "VXLAN (UDP) between the node addresses"}.get(k, k)
                         for k in c["seen"]) or "nothing"
        out += ["", f"Capture on {c['node']}" + (" (simulated)" if c["simulated"] else "") + f": {seen}.", ""]
        out += _fence([f"$ {c['command']}", *c["lines"]], "")
    return out


def session_report(store: Store, name: str, *, log_lines: int = 0) -> str:
    d = session_report_data(store, name, log_lines=log_lines)
    lab, setup = d["lab"], d["setup"]
    lines: list[str] = [f"# Lab report: {lab['name']}", "", "What happened, why, what changed, and the proof.", ""]
    if lab["health"]:
        lines.append(f"**Health (latest run):** {lab['health']}")
        lines.append("")
    lines.append(f"Cloud {lab['cloud'] or '(none: machines only)'}; "
                 + ("a cluster labtui did not build (adopted); " if lab["adopted"] else "")
                 + f"created {lab['created']}, last activity {lab['updated']}, stage {lab['stage']}.")

    lines += ["", "## Symptom", "", d["symptom"]]

    lines += ["", "## The setup", ""]
    for key, title in SETUP_NAMES:
        v = setup["values"].get(key)
        if v:
            src = setup["sources"].get(key)
            lines.append(f"- {title}: {v}" + (f" (read from {src})" if src else ""))
    if lab["adopted"]:
        for key, pair in setup["replaced"].items():
            title = dict(SETUP_NAMES).get(key, key)
            lines.append(f"- {title}: the plan's default was {pair['plan']}, the live cluster says {pair['live']}")
    else:
        for key, pair in setup["disagree"].items():
            title = dict(SETUP_NAMES).get(key, key)
            lines.append(f"- **{title} disagrees:** the plan says {pair['plan']}, the live cluster {pair['live']}")
    cloud_cols = any(n["port"] for n in setup["nodes"]) or bool(lab["cloud"])
    if setup["nodes"]:
        lines += ["", "| node | role | address | subnet |" + (" port | port security | allowed-address-pairs |"
                                                              if cloud_cols else ""),
                  "|---|---|---|---|" + ("---|---|---|" if cloud_cols else "")]
        for n in setup["nodes"]:
            pairs = n["allowed_address_pairs"]
            row = f"| {_cell(n['name'])} | {_cell(n['role'])} | {_cell(n['address'])} | {_cell(n['subnet'])} |"
            if cloud_cols:
                row += (f" {_cell(n['port'] or 'not found in the cloud')} | {_cell(n['port_security'])} | "
                        f"{_cell(', '.join(pairs) if pairs else ('none' if pairs is not None else ''))} |")
            lines.append(row)

    lines += ["", "## The cause", ""]
    if not d["cause"]:
        lines.append("The doctor found nothing that blocks pod traffic." if d["before"] else "Not diagnosed yet.")
    for f in d["cause"]:
        lines += [f"**{f['title']}**"]
        for para in [p.strip() for p in f["explanation"].split("\n\n") if p.strip()]:
            lines += ["", para]
        lines.append("")

    lines += ["## The change", ""]
    if not d["changes"]:
        lines.append("None: labtui changed nothing in this lab.")
    for c in d["changes"]:
        state = f" (reverted {c['reverted']})" if c["reverted"] else ""
        lines += [f"{c['id']}. {c['description']}{state}, {c['when']}:", ""]
        lines += _fence((c["command"] or "").splitlines(), "sh")
        if c["revert_command"]:
            lines += ["", "To undo it:", ""]
            lines += _fence(c["revert_command"].splitlines(), "sh")
        lines.append("")

    lines += ["## Proof", ""]
    if d["before"]:
        title = "Before" if d["after"] else "The doctor's run"
        lines += [f"### {title} ({_when_text(d['before'])})", ""]
        if d["before"]["pools"]:
            lines += ["Pools: " + "; ".join(d["before"]["pools"]) + ".", ""]
        lines += _matrix_md(d["before"]) + _capture_md(d["before"])
    if d["after"]:
        lines += ["", f"### After ({_when_text(d['after'])})", ""]
        if d["after"]["pools"]:
            lines += ["Pools: " + "; ".join(d["after"]["pools"]) + ".", ""]
        lines += _matrix_md(d["after"]) + _capture_md(d["after"])
    if not d["before"]:
        lines.append("The doctor has not run yet: `labtui doctor " + lab["name"] + "`.")

    if d["still_open"]:
        lines += ["", "## Still open", ""]
        for o in d["still_open"]:
            lines += [f"The doctor recommends fix option {o['option']}, {o['title']}: {o['why']}", ""]
            lines += _fence(o["commands"], "sh")
            lines += ["", f"Apply it with `labtui doctor {lab['name']} --fix {o['option']} --yes`."]

    if d["steps"]:
        lines += ["", "## Steps", "", "| stage | step | state | when | detail |", "|---|---|---|---|---|"]
        for st in d["steps"]:
            lines.append(f"| {_cell(st['stage'])} | {_cell(st['step'])} | {_cell(st['state'])} | {st['when']} | "
                         f"{_cell(st['detail'])} |")
    if d["runs"]:
        lines += ["", "## Doctor runs", ""]
        for r in d["runs"]:
            lines.append(f"- {r['when']}: {r['summary'] or r['status']}")
    if d.get("log"):
        lines += ["", f"## Command log (last {len(d['log'])} lines)", ""]
        lines += _fence(d["log"])
    return redact("\n".join(lines).rstrip() + "\n")


def _when_text(proof: dict[str, Any]) -> str:
    return f"{_when(proof['ran_at'])}, {proof['status']}" if proof.get("ran_at") else str(proof.get("status"))
