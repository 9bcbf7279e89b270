"""`labtui up NAME`: walk every stage of a lab headless, through the same Runner and the same steps
as the wizard (like `k0sctl apply`).

    labtui up NAME [--plan FILE] [--yes] [--from STAGE] [--until STAGE] [--dry-run] [--json]
    labtui show NAME --plan-yaml        # a plan file to start from

Each step is checked; a step that is not done shows its actions and applies them on --yes (or asks
on a terminal); the walk stops at the first step it cannot complete, with its reason, and the next
run resumes there (every step is checked again: reality may have changed). --dry-run prints every
Action it would run and changes nothing on the nodes, the cloud or the cluster.

Exit codes: 0 every stage is done; 1 a step needs the user (not confirmed, or it cannot complete by
itself); 2 something could not be checked (or bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from labtui.adapters.ssh import configure_session_ssh
from labtui.commands.common import confirmer, print_event
from labtui.errors import LabError, ValidationFailed
from labtui.execute import ALREADY, Executor
from labtui.model import DEFAULT_CALICO, DEFAULT_KUBERNETES, Encapsulation, Plan, SourcesSpec
from labtui.session import LabSession
from labtui.stages import available_wizards
from labtui.stages.plan import provision_inputs, sources_inputs, sources_summary
from labtui.steps import StepState
from labtui.store import DryRunStore, Store

PLAN_INPUT_KEYS = ("cloud", "nodes", "node_subnet", "pod_cidr", "service_cidr", "kubernetes", "calico",
                   "encapsulation", "provision", "sources")


# --------------------------------------------------------------------------- plan files


def read_plan_file(path: str, name: str) -> dict[str, Any]:
    """A plan file (YAML) validated with the plan wizard's own rules; returns the plan's data."""
    import yaml


    p = Path(path).expanduser()
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise LabError(f"plan file {path} does not exist", "write one with `labtui show NAME --plan-yaml > plan.yaml`",
                       code="plan-file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(f"plan file {path} cannot be read: {exc}", "check the path and its permissions",
                       code="plan-file") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise LabError(f"plan file {path} is not valid YAML{at}: {getattr(exc, 'problem', exc)}",
                       "fix the file; `labtui show NAME --plan-yaml` prints a valid one to start from",
                       code="plan-file") from None
    if not isinstance(raw, dict):
        raise LabError(f"plan file {path} must be a mapping of plan fields (name, cloud, nodes, ...)",
                       "start from `labtui show NAME --plan-yaml`", code="plan-file")
    if raw.get("name") not in (None, name):
        raise LabError(f"plan file {path} is for the lab {raw.get('name')!r}, not {name!r}",
                       f"run `labtui up {raw.get('name')} --plan {path}`, or change its name field", code="plan-file")
    data = {**raw, "name": name}
    unknown = sorted(set(data) - set(Plan.model_fields))
    if unknown:
        raise LabError(f"plan file {path}: unknown field(s) {', '.join(unknown)}",
                       "the fields are " + ", ".join(sorted(Plan.model_fields)), code="plan-file")
    try:
        plan = Plan.parse(data)
    except ValidationFailed as exc:
        errors = [p for p in exc.problems if p.severity == "error"]
        lines = "\n".join("  " + p.render() for p in errors)
        raise LabError(f"plan file {path} is not valid:\n{lines}", "fix these fields and run it again",
                       code="invalid") from None
    except ValueError as exc:
        raise LabError(f"plan file {path} is not valid: {exc}", "fix these fields and run it again",
                       code="invalid") from None
    return plan.model_dump(mode="json")


def plan_yaml(store, name: str) -> str:
    """The lab's plan as a plan file (or a template with the defaults for a lab not created yet)."""
    import yaml


    if store.has_session(name):
        rec = store.get_session(name)
        data = dict(rec.plan or {})
        if not data:
            data = {k: rec.inputs[k] for k in PLAN_INPUT_KEYS if k in rec.inputs}
        data = {"name": name, **data}
    else:
        data = {"name": name, "cloud": None,
                "nodes": [{"name": "cp1", "address": "10.0.0.11", "role": "control-plane", "user": "ubuntu"},
                          {"name": "w1", "address": "10.0.0.21", "role": "worker", "user": "ubuntu"}],
                "node_subnet": "10.0.0.0/24", "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16",
                "kubernetes": DEFAULT_KUBERNETES, "calico": DEFAULT_CALICO, "encapsulation": Encapsulation.IPIP.value,
                "sources": SourcesSpec().model_dump()}
    order = list(Plan.model_fields)
    data = {k: data[k] for k in sorted(data, key=lambda k: order.index(k) if k in order else len(order))
            if not (data[k] is None and k not in ("cloud",))}
    data["nodes"] = [{k: v for k, v in n.items() if v not in (None, "")} for n in data.get("nodes") or []]
    head = ("# labtui plan file: `labtui up NAME --plan FILE` creates or updates the lab from it.\n"
            "# cloud: a cloud in clouds.yaml, or null to adopt machines you already have.\n"
            "# encapsulation: IPIP | IPIPCrossSubnet | VXLAN | VXLANCrossSubnet | None (IPIP Always is the safe\n"
            "#   choice on OpenStack: it needs a security-group rule with IP protocol 4 between the nodes).\n"
            "# sources: where the nodes get packages, manifests and images (the upstream defaults; behind a proxy\n"
            "#   set http_proxy, or point kubernetes_repo, docker_repo, calico_manifests, registry_mirror at a mirror).\n")
    return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def plan_inputs(data: dict[str, Any]) -> dict[str, Any]:
    """The plan wizard's inputs for a plan: its fields, the Create or adopt step's prov_* and the
    Sources step's src_* (so the wizard shows what the file says)."""
    inputs = {k: data.get(k) for k in PLAN_INPUT_KEYS if k in data}
    if inputs.get("cloud") is None:
        inputs["cloud"] = ""
    inputs.update(provision_inputs(data.get("provision"), data.get("cloud")))  # the wizard's Create or adopt step
    inputs.update(sources_inputs(data.get("sources")))  # the wizard's Sources step
    return inputs


def sources_line(data: dict[str, Any]) -> str:
    return "Sources: " + sources_summary(data.get("sources"))


def apply_plan_file(store, name: str, data: dict[str, Any]) -> bool:
    """Create or update the lab from a validated plan: the plan wizard's inputs and the saved plan.
    Returns True when something changed."""
    inputs = plan_inputs(data)
    if not store.has_session(name):
        store.create_session(name, cloud=data.get("cloud") or None)
        changed = True
    else:
        rec = store.get_session(name)
        changed = rec.plan != data or any(rec.inputs.get(k) != v for k, v in inputs.items())
    if changed:
        store.save_inputs(name, inputs)
        store.update_session(name, plan=data, cloud=data.get("cloud") or None)
    return changed


# --------------------------------------------------------------------------- the walk


def _stages(start: str | None, until: str | None):
    wizards = available_wizards()
    ids = [w.id for w in wizards]
    for label, value in (("--from", start), ("--until", until)):
        if value is not None and value not in ids:
            raise LabError(f"{label} {value}: there is no such stage", "the stages are " + ", ".join(ids),
                           code="bad-stage")
    lo = ids.index(start) if start else 0
    hi = ids.index(until) if until else len(ids) - 1
    if lo > hi:
        raise LabError(f"--from {start} comes after --until {until}", "the stages run in this order: " + ", ".join(ids),
                       code="bad-stage")
    return wizards[lo:hi + 1]


def _line(text: str, as_json: bool) -> None:
    """A result line on stdout (with --json the JSON document is the result: nothing else there)."""
    if not as_json:
        print(text, flush=True)


def walk(lab, stages, *, dry_run: bool, as_json: bool) -> tuple[int, list[dict[str, Any]]]:
    """Run (or, dry, preview) every step of these stages; stop at the first that does not finish."""
    report: list[dict[str, Any]] = []
    rc = 0
    said: dict[str, str] = {}  # dry run: a problem already told (its message -> the step that told it)
    for wizard in stages:
        runner = lab.runner(wizard)
        stage = {"stage": wizard.id, "title": wizard.title, "steps": []}
        report.append(stage)
        _line(f"{wizard.title}", as_json)
        for step in wizard.steps:
            entry: dict[str, Any] = {"step": step.id, "title": step.title}
            stage["steps"].append(entry)
            if dry_run:
                rc = max(rc, _preview_step(lab, step, entry, as_json, said))
                continue
            outcome = runner.run_step(step)
            entry.update(state=outcome.state.value, detail=outcome.detail)
            icon = {"done": "●", "skipped": "–", "pending": "○", "failed": "✗"}.get(outcome.state.value, "?")
            _line(f"  {icon} {step.title}: {outcome.detail or outcome.state.value}", as_json)
            if outcome.state in (StepState.DONE, StepState.SKIPPED):
                continue
            entry["phase"] = outcome.phase
            code = 2 if outcome.phase == "check" else 1
            if outcome.phase == "confirm":
                entry["next"] = f"re-run with --yes to apply (labtui up {lab.name} --yes)"
                _line(f"    -> {entry['next']}", as_json)
            else:
                entry["next"] = f"fix what it says, then run `labtui up {lab.name}` again (it resumes here)"
            return code, report
        stage["done"] = runner.stage_done() if not dry_run else None
    return rc, report


def _preview_step(lab, step, entry: dict[str, Any], as_json: bool, said: dict[str, str] | None = None) -> int:
    """Dry run of one step: check it; when not done, list the Actions it would run (already-so ones
    marked). Reads only. A problem in the plan's inputs is told once, where it is first met; the steps
    after it that meet it again refer to it."""
    ctx = lab.ctx
    said = {} if said is None else said
    try:
        pre = step.check(ctx)
    except LabError as exc:
        if exc.message in said:
            entry.update(state="unknown", detail=f"not checked: the input problem named at {said[exc.message]}")
            _line(f"  ? {step.title}: not checked (the input problem named at {said[exc.message]})", as_json)
            return 1
        if exc.code == "invalid" or getattr(exc, "input_field", None):  # the plan's input is wrong (e.g. a public
            # key file that is not there, an image the cloud does not have)
            said[exc.message] = step.title
            entry.update(state="invalid", detail=exc.render(), next=exc.hint or "")
            _line(f"  ✗ {step.title}: the plan's input is wrong: {exc.message}", as_json)
            if exc.hint:
                _line(f"    -> {exc.hint}", as_json)
            return 1
        entry.update(state="unknown", detail=f"cannot be checked now: {exc.message}")
        _line(f"  ? {step.title}: cannot be checked before the steps above are applied ({exc.message})", as_json)
        return 0
    if pre.skip or pre.done:
        entry.update(state="skipped" if pre.skip else "done", detail=pre.detail)
        _line(f"  {'–' if pre.skip else '●'} {step.title}: {pre.detail or 'already satisfied'}", as_json)
        return 0
    if pre.blocked:  # a precondition failed: nothing would be offered, so nothing is planned
        entry.update(state="blocked", detail=pre.detail, next=pre.hint)
        _line(f"  ✗ {step.title}: {pre.detail}", as_json)
        if pre.hint:
            _line(f"    -> {pre.hint}", as_json)
        return 1
    try:
        actions = step.plan(ctx)
    except LabError as exc:
        entry.update(state="needs-user", detail=exc.render())
        _line(f"  ✗ {step.title}: {exc.message}", as_json)
        return 1
    preview = Executor(ctx, step=step.id).preview(actions)
    entry.update(state="would-apply", detail=pre.detail,
                 actions=[{"id": o.action.id, "title": o.action.title, "command": o.action.command,
                           "api": o.action.api, "revert": o.action.revert, "risk": o.action.risk.value,
                           "change": o.action.change, "status": "already so" if o.status == ALREADY else "would run"}
                          for o in preview])
    _line(f"  ○ {step.title}: {pre.detail or 'not done'}", as_json)
    for o in preview:
        mark = "already so" if o.status == ALREADY else "would run"
        _line(f"      [{mark}] {o.action.title}", as_json)
        for text in o.action.render().splitlines():
            _line(f"        {text}", as_json)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    store = DryRunStore() if args.dry_run else Store()  # a dry run reads the lab's record, never writes it
    stages = _stages(args.from_stage, args.until)
    data = read_plan_file(args.plan, args.name) if args.plan else None
    if data is None and not store.has_session(args.name):
        raise LabError(f"there is no lab named {args.name!r}",
                       f"create it from a plan file: `labtui show {args.name} --plan-yaml > plan.yaml`, edit it, then "
                       f"`labtui up {args.name} --plan plan.yaml`", code="not-found")
    if data is not None and args.dry_run and not store.has_session(args.name):
        print(f"Plan file {args.plan}: valid ({len(data.get('nodes') or [])} nodes, "
              f"{data.get('encapsulation')}). The lab {args.name} does not exist yet: a dry run changes nothing, "
              f"so it stops here. Run without --dry-run to create it (changes still ask first).")
        print(sources_line(data))
        return 0
    if data is not None and not args.dry_run:
        if apply_plan_file(store, args.name, data):
            print(f"Plan of {args.name} saved from {args.plan}", file=sys.stderr)
    lab = LabSession(store, args.name, emit=print_event if not args.quiet else None,
                     confirm=confirmer(args.yes, out=(lambda s: print(s, file=sys.stderr)) if args.json else print))
    try:
        if data is not None and args.dry_run:  # the plan file in memory only: nothing is saved
            lab.ctx.session.plan = data
            lab.ctx.session.inputs.update(plan_inputs(data))
            lab.ctx.reload = lambda: None  # keep the in-memory plan for this dry run
        if args.dry_run:
            _line(sources_line(lab.ctx.session.plan or {}), args.json)
        plan = lab.ctx.plan
        if plan is not None and plan.nodes:
            configure_session_ssh(lab.ctx, accept_new_host_keys=args.accept_new_host_keys, headless=True,
                                  connect_timeout=8.0)
        rc, report = walk(lab, stages, dry_run=args.dry_run, as_json=args.json)
    finally:
        lab.close()
    done = rc == 0 and not args.dry_run
    if args.json:
        print(json.dumps({"lab": args.name, "dry_run": args.dry_run, "exit_code": rc, "done": done,
                          "sources": _customised(lab.ctx.plan),
                          "stages": report}, indent=2, sort_keys=True, default=str))
    elif done and (args.from_stage or args.until):
        print(f"Every stage of {args.name} from {stages[0].title} to {stages[-1].title} is done.")
    elif done:
        print(f"Every stage of {args.name} is done.")
    elif args.dry_run:
        print("Dry run: nothing was changed.")
    return rc


def _customised(plan: Plan | None) -> dict[str, str]:
    """The plan's sources that differ from upstream (empty: all upstream)."""
    return plan.sources.customised if plan is not None else {}


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="walk every stage of a lab headless (the wizard's steps), applying on --yes",
                       description="Checks each step of each stage in order; shows the changes a step needs and "
                                   "applies them on --yes (or asks on a terminal); stops at the first step it cannot "
                                   "complete and resumes there next time. Exit 0 all done, 1 a step needs you, "
                                   "2 something could not be checked.")
    p.add_argument("name", help="the lab")
    p.add_argument("--plan", metavar="FILE", help="create or update the lab from a plan file (YAML; start from "
                                                  "`labtui show NAME --plan-yaml`)")
    p.add_argument("--yes", action="store_true", help="apply the changes without asking")
    p.add_argument("--from", dest="from_stage", metavar="STAGE", help="start at this stage")
    p.add_argument("--until", metavar="STAGE", help="stop after this stage")
    p.add_argument("--dry-run", action="store_true", help="print every action it would run; change nothing")
    p.add_argument("--json", action="store_true", help="the result as JSON on stdout (progress on stderr)")
    p.add_argument("--accept-new-host-keys", action="store_true",
                   help="trust SSH host keys seen for the first time (a changed key is still refused)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_up)
