"""`labtui`: launches the UI (lazily importing `screens`) or runs a headless command.

Feature modules add their subcommands through `COMMAND_MODULES`: each defines
`register(subparsers)` and sets `func=handler` on its parsers; a handler takes the parsed args
and returns the exit code. Handlers raise `LabError` for anything the user must hear about.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import threading
import time
from typing import Any

from labtui import __version__
from labtui.errors import LabError

COMMAND_MODULES = [
    "labtui.commands.nodes",
    "labtui.commands.cloud",
    "labtui.commands.calico",
    "labtui.commands.doctor",
    "labtui.commands.up",
    "labtui.commands.kubernetes",
    "labtui.commands.provision",
]


_print_lock = threading.Lock()


def eprint(text: str) -> None:
    """One whole line on stderr, even when worker threads report at the same time."""
    with _print_lock:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _store():
    from labtui.store import Store

    return Store()


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def session_summary(store, rec) -> dict[str, Any]:
    from labtui.session import lab_summary

    return lab_summary(store, rec)


def cmd_sessions(args: argparse.Namespace) -> int:
    store = _store()
    rows = [session_summary(store, r) for r in store.list_sessions()]
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
    from labtui.stages import wizard_for

    store = _store()
    if getattr(args, "plan_yaml", False):
        from labtui.commands.up import plan_yaml

        sys.stdout.write(plan_yaml(store, args.name))
        return 0
    rec = store.get_session(args.name)
    summary = session_summary(store, rec)
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


def _wizard_ids(store, rec) -> list[str]:
    from labtui.stages import WIZARD_ORDER

    seen = {r.wizard for r in store.step_states(rec.id).values()} | {rec.wizard}
    return [w for w in WIZARD_ORDER if w in seen]


def cmd_info(args: argparse.Namespace) -> int:
    from labtui import paths

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


def launch_ui(resume: str | None = None) -> int:
    from labtui.store import Store

    store = Store()  # a clear LabError (unwritable directory, newer schema) before any UI starts
    # lazy, by name: the engine never imports the UI; this is the one place that starts it
    app = importlib.import_module("screens.app").LabApp(store=store, resume=resume)
    app.run()
    return app.return_code or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labtui", description="A lab assistant from an OpenStack project to a working kubeadm + Calico cluster.")
    parser.add_argument("--version", action="version", version=f"labtui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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

    for modname in COMMAND_MODULES:
        if importlib.util.find_spec(modname) is not None:
            importlib.import_module(modname).register(sub)
    return parser


def _quiet_stdout() -> None:
    """After a closed pipe (`labtui ... | head`): send what is left to /dev/null, so Python's own
    flush at exit prints no traceback either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _crash(exc: BaseException) -> int:
    """A bug: one clear line for the user, the traceback in a 0600 file for the report."""
    from labtui.logs import write_crash

    where = write_crash(exc)
    try:
        print(f"labtui: unexpected error: {type(exc).__name__}: {exc}\n  -> this is a bug in labtui; the details are "
              f"in {where}", file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 70


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from labtui.logs import route_library_logs

    route_library_logs()  # paramiko's thread logs to labtui.log, never over the terminal or the UI
    try:
        if not argv:  # the UI: do not load the headless command modules on the way to the first frame
            return launch_ui()
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            return launch_ui()
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at exit
        return rc
    except LabError as exc:
        try:
            print(f"labtui: {exc.render()}", file=sys.stderr)
        except (OSError, ValueError):
            pass
        return 2
    except KeyboardInterrupt:
        try:
            print("labtui: interrupted", file=sys.stderr)
        except (OSError, ValueError):
            pass
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - no traceback ever reaches the user
        return _crash(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
