"""The labs themselves: `labtui sessions`, `show`, `resume`, `delete` and `info` (where labtui keeps its state)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from labtui import __version__, paths
from labtui.commands.launch import launch_ui
from labtui.commands.up import plan_yaml
from labtui.session import lab_summary
from labtui.stages import WIZARD_ORDER, wizard_for
from labtui.store import SessionRecord, Store


def _store() -> Store:
    return Store()


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def cmd_sessions(args: argparse.Namespace) -> int:
    store = _store()
    rows = [lab_summary(store, r) for r in store.list_sessions()]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("No labs yet. Start one with: labtui  (then press n)")
        return 0
    print(f"{'NAME':20} {'CLOUD':22} {'STAGE / STEP':34} LAST ACTIVITY")
    for r in rows:
        stage = f"{r['stage']} / {r['step_title']}"
        print(f"{r['name']:20} {r['cloud']:22} {stage:34} {r['last_activity']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store()
    if getattr(args, "plan_yaml", False):
        sys.stdout.write(plan_yaml(store, args.name))
        return 0
    rec = store.get_session(args.name)
    summary = lab_summary(store, rec)
    steps = []
    for wizard_id in _wizard_ids(store, rec):
        wizard = wizard_for(wizard_id)
        runs = store.step_states(rec.id, wizard_id)
        for step in (wizard.steps if wizard else []):
            run = runs.get(step.id)
            steps.append({"wizard": wizard_id, "step": step.id, "title": step.title,
                          "state": run.state if run else "pending", "detail": run.detail if run else ""})
    data = {**summary, "plan": rec.plan, "inputs": rec.inputs, "steps": steps,
            "changes": [c.__dict__ for c in store.changes(rec.id)], "events": store.count_events(rec.id)}
    if args.json:
        _print_json(data)
        return 0
    print(f"Lab {rec.name}  cloud: {summary['cloud']}  at: {summary['stage']} / {summary['step_title']}")
    if rec.plan:
        p = rec.plan
        print(f"  nodes: {', '.join(n['name'] + '=' + n['address'] + ' (' + n.get('role', 'worker') + ')' for n in p.get('nodes', []))}")
        print(f"  networks: nodes {p.get('node_subnet')}, pods {p.get('pod_cidr')}, services {p.get('service_cidr')}")
        print(f"  Kubernetes {p.get('kubernetes')}, Calico {p.get('calico')}, encapsulation {p.get('encapsulation')}")
    else:
        print("  plan: not saved yet; inputs so far: " + (", ".join(sorted(rec.inputs)) or "none"))
    for s in steps:
        icon = {"done": "●", "failed": "✗", "running": "◐", "skipped": "–"}.get(s["state"], "○")
        print(f"  {icon} {s['wizard']:8} {s['title']:34} {s['state']}" + (f"  {s['detail']}" if s["detail"] else ""))
    for c in data["changes"]:
        if c.get("reverted"):  # undone (a revert or the teardown): listed, marked as such
            print(f"  change #{c['id']}: {c['description']}  [reverted]")
        else:
            print(f"  change #{c['id']}: {c['description']}  (revert: {c['revert_command'] or 'n/a'})")
    return 0


def _wizard_ids(store: Store, rec: SessionRecord) -> list[str]:
    seen = {r.wizard for r in store.step_states(rec.id).values()} | {rec.wizard}
    return [w for w in WIZARD_ORDER if w in seen]


def cmd_info(args: argparse.Namespace) -> int:
    home = paths.state_home()
    data = {
        "version": __version__,
        "state_dir": str(home),
        "database": str(paths.db_path(home)),
        "known_hosts": str(paths.known_hosts_path(home)),
        "log": str(paths.log_path(home)),
        "sessions_dir": str(home / "sessions"),
        "LABTUI_HOME": os.environ.get("LABTUI_HOME"),
    }
    if args.json:
        _print_json(data)
    else:
        for k, v in data.items():
            print(f"{k:13} {v}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    store = _store()
    store.get_session(args.name)  # a clear error before any UI starts
    if args.headless:
        return cmd_show(argparse.Namespace(name=args.name, json=False))
    return launch_ui(resume=args.name)


def cmd_delete(args: argparse.Namespace) -> int:
    store = _store()
    store.get_session(args.name)
    if not args.yes:
        print(f"This deletes the lab {args.name!r} from labtui (not its machines). Re-run with --yes to confirm.")
        return 1
    store.delete_session(args.name)
    print(f"deleted lab {args.name}")
    return 0




def register(sub: Any) -> None:
    p = sub.add_parser("sessions", help="list the saved labs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sessions)

    p = sub.add_parser("show", help="show a lab: its plan and the state of each step")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plan-yaml", action="store_true",
                   help="print the lab's plan as a plan file for `labtui up NAME --plan FILE` (a template for a new lab)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("resume", help="reopen a lab in the UI at the step where it stopped")
    p.add_argument("name")
    p.add_argument("--headless", action="store_true", help="print where it stands instead of opening the UI")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("delete", help="delete a saved lab (not its machines)")
    p.add_argument("name")
    p.add_argument("--yes", action="store_true")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("info", help="where labtui keeps its state and logs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

