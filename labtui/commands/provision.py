"""`labtui provision NAME` and `labtui teardown NAME`: the lab's machines on OpenStack.

    labtui provision NAME [--dry-run] [--yes] [--json]
    labtui teardown NAME [--dry-run] [--yes] [--json]

provision walks the Provision stage (labtui.stages.provision) through the same Runner as the
wizard: quotas and name clashes are checked before anything is created; each step shows its
exact commands and asks once (--yes applies without asking). --dry-run reads only and says,
action by action, what exists already and what would be created.

teardown lists everything this lab created (its record, plus resources carrying its tag) in
delete order with the exact commands, asks once, deletes, and marks the lab "torn down" (the
lab record stays until `labtui delete NAME`). Progress goes to stderr; results to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from labtui.commands.common import confirmer, eprint, print_event
from labtui.errors import LabError
from labtui.execute import Executor
from labtui.session import LabSession
from labtui.stages import provision as prov
from labtui.stages import teardown
from labtui.steps import StepState
from labtui.store import Store


def _open(name: str, yes: bool, verb: str):
    store = Store()
    if not store.has_session(name):
        raise LabError(f"there is no lab named {name!r}", "list them with `labtui sessions`", code="not-found")
    return LabSession(store, name, emit=print_event, confirm=confirmer(yes, heading=f"{verb}:", out=eprint))


def cmd_provision(args: argparse.Namespace) -> int:
    with _open(args.name, args.yes, "Provision") as lab:
        ctx = lab.ctx
        wizard = prov.build()
        if args.dry_run:
            return _dry_run(lab, wizard, args.json)
        runner = lab.runner(wizard)
        results = []
        code = 0
        for step in wizard.steps:
            out = runner.run_step(step)
            results.append({"step": step.id, "title": step.title, "state": out.state.value, "detail": out.detail})
            if out.state not in (StepState.DONE, StepState.SKIPPED):
                code = 1
                break
        ctx.reload()
        data = {"lab": args.name, "steps": results, "resources": _resources(ctx)}
        if code and data["resources"]:
            # stopped mid-way (an API error, a refusal): what exists is recorded and tagged
            data["next"] = (f"{len(data['resources'])} resource(s) created so far are recorded with their delete: run "
                            f"`labtui provision {args.name}` again to finish (it finds them and creates only what is "
                            f"missing, never a second one), or `labtui teardown {args.name}` to remove them")
        if args.json:
            print(json.dumps(data, indent=2, sort_keys=True, default=str))
        else:
            for r in results:
                icon = {"done": "●", "skipped": "–", "failed": "✗"}.get(r["state"], "○")
                print(f"{icon} {r['title']:30} {r['state']}" + (f"  {r['detail']}" if r["detail"] else ""))
            if code == 0 and results and results[0]["state"] == "done":
                print(f"Provisioned: the lab's nodes are ready for the Nodes stage (labtui nodes check {args.name}).")
            elif data.get("next"):
                print(data["next"][0].upper() + data["next"][1:] + ".")
        return code


def _resources(ctx) -> list[dict[str, Any]]:
    return [{"id": c.id, "kind": c.kind, "target": c.target, "description": c.description,
             "resource": (c.revert_data or {}).get("id"), "delete": c.revert_command}
            for c in ctx.store.changes(ctx.session.id) if c.kind.startswith("cloud.") and not c.reverted]


def _dry_run(lab, wizard, as_json: bool) -> int:
    ctx = lab.ctx
    rows: list[dict[str, Any]] = []
    for step in wizard.steps:
        res = step.check(ctx)  # reads only; raises LabError for bad input, quota shortfall, name clash
        row: dict[str, Any] = {"step": step.id, "title": step.title, "done": res.done, "skip": res.skip,
                               "detail": res.detail, "actions": []}
        if not res.skip and not res.done and step.id != "host-keys":
            for o in Executor(ctx, step=step.id).preview(step.plan(ctx)):
                row["actions"].append({"title": o.action.title, "status": o.status, "command": o.action.command,
                                       "api": o.action.api, "why": o.action.data.get("why")})
        rows.append(row)
        if res.skip:
            continue
    if as_json:
        print(json.dumps({"lab": lab.name, "dry_run": True, "steps": rows}, indent=2, sort_keys=True, default=str))
        return 0
    print(f"Dry run: nothing is created. Lab {lab.name}:")
    for row in rows:
        state = "skipped" if row["skip"] else ("done" if row["done"] else "to do")
        print(f"  {row['title']:30} {state}" + (f"  {row['detail']}" if row["detail"] else ""))
        for a in row["actions"]:
            print(f"    [{a['status']}] {a['title']}\n      $ {a['command']}")
    _ = prov
    return 0


def cmd_teardown(args: argparse.Namespace) -> int:
    with _open(args.name, args.yes, "Teardown") as lab:
        ctx = lab.ctx
        if (ctx.plan is None or not ctx.plan.cloud) and not ctx.session.cloud:
            if args.json:
                print(json.dumps({"lab": args.name, "deleted": [], "failed": [], "nothing": True}, indent=2))
            else:
                print(f"Nothing to tear down: lab {args.name} adopted its machines (no cloud); labtui created none.")
            return 0
        items = teardown.teardown_plan(ctx)
        listing = [{"kind": c.kind, "target": c.target, "description": c.description, "command": c.revert_command,
                    "recorded": c.id is not None} for c in items]
        if not items:
            if args.json:
                print(json.dumps({"lab": args.name, "deleted": [], "failed": [], "nothing": True}, indent=2))
            else:
                print(f"Nothing to tear down: lab {args.name} has no cloud resource left.")
            if not args.dry_run:
                ctx.store.update_session(ctx.session.name, health="torn down")
            return 0
        if args.dry_run:
            if args.json:
                print(json.dumps({"lab": args.name, "dry_run": True, "would_delete": listing}, indent=2))
            else:
                print(f"Dry run: teardown of lab {args.name} would delete, in this order:")
                for x in listing:
                    print(f"  $ {x['command']}\n      undoes: {x['description']}")
            return 0
        eprint(f"Teardown of lab {args.name} deletes, in this order:")
        for x in listing:
            eprint(f"  $ {x['command']}\n      undoes: {x['description']}")
        if not args.yes:
            ok = False
            if sys.stdin.isatty():
                try:
                    ok = input(f"Delete these {len(items)} resource(s)? [y/N] ").strip().lower() in ("y", "yes")
                except EOFError:
                    ok = False
            else:
                eprint("Not deleted: re-run with --yes to delete exactly these resources.")
            if not ok:
                return 1
        done, failed = teardown.teardown(ctx, items, confirmed=True)
        ctx.memo.provision_ids = None
        data = {"lab": args.name, "deleted": [c.description for c in done],
                "failed": [{"what": c.description, "why": why} for c, why in failed]}
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            print(f"Deleted {len(done)} resource(s) of lab {args.name}.")
            for c, why in failed:
                print(f"  could not delete {c.description}: {why}")
            if not failed:
                print(f"The lab record stays, marked torn down (delete it with: labtui delete {args.name} --yes).")
        return 0 if not failed else 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("provision", help="OpenStack: create the lab's network, group, keypair and servers")
    p.add_argument("name", help="the lab")
    p.add_argument("--dry-run", action="store_true", help="read only: show what exists and what would be created")
    p.add_argument("--yes", action="store_true", help="create without asking")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_provision)

    p = subparsers.add_parser("teardown", help="OpenStack: delete everything this lab created")
    p.add_argument("name", help="the lab")
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.add_argument("--yes", action="store_true", help="delete without asking")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_teardown)
