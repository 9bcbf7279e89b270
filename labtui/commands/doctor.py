"""`labtui doctor` and `labtui report`.

    labtui doctor NAME [--json] [--no-live] [--junit FILE] [--failed] [--kubeconfig FILE] [--accept-new-host-keys]
    labtui doctor NAME --fix OPTION [--yes] [--accept-crd-warning]
    labtui doctor NAME --revert CHANGE_ID|all [--yes]
    labtui doctor NAME --adopt (--nodes cp=10.0.0.4,w1=10.0.0.21 | --inventory FILE) [--cloud CLOUD]
                       [--kubeconfig FILE] [--user USER] [--key FILE]      # a cluster labtui did not build
    labtui report NAME [--format md|json] [-o FILE] [--log N]

Exit codes of `doctor`: 0 healthy, 1 findings, 2 could not check (or an error).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from labtui.adapters.keystone import begin_login
from labtui.adapters.ssh import configure_session_ssh
from labtui.cloudconfig import ENV_CLOUD, load_clouds
from labtui.commands.common import eprint
from labtui.doctor.matrix import junit_xml, render_cells
from labtui.doctor.reason import render_text
from labtui.doctor.run import apply_fix, last_diagnosis, run_doctor
from labtui.errors import LabError
from labtui.execute import Executor
from labtui.inventory import load_inventory
from labtui.model import Plan, covering_subnet
from labtui.paths import write_private
from labtui.redact import redact, redact_data
from labtui.report import session_report, session_report_data
from labtui.session import LabSession
from labtui.steps import Tuning
from labtui.store import Store


def _print_event(event) -> None:
    # progress on stderr; the doctor's own conclusions ("doctor: [error] ...", "doctor: could not check ...")
    # are the result, printed once on stdout
    if event.message.startswith("doctor: ") and not event.message.startswith("doctor: facts"):
        return
    if event.kind in ("action.start", "action.done", "action.failed", "change", "warn", "error"):
        eprint(f"  {event.line()}")
    elif event.kind == "info" and event.message.startswith(("live proof", "doctor: facts", "live cluster")):
        eprint(f"  {event.line()}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="find why pods cannot talk across nodes, explain it, fix it",
                       description="Cross-check Calico's pool mode, the node subnets, the security groups and the "
                                   "ports; prove it with probe pods; explain; fix with approval. Exit code 0 healthy, "
                                   "1 findings, 2 could not check.")
    p.add_argument("name", help="the lab (with --adopt: the name of a new lab for an existing cluster)")
    p.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    p.add_argument("--no-live", action="store_true", help="skip the probe pods and the capture")
    p.add_argument("--junit", metavar="FILE", help="write the live matrix as JUnit XML (one test case per cell)")
    p.add_argument("--failed", action="store_true",
                   help="re-run only the matrix cells that failed last time (ICMP, TCP, MTU; cross, same node, host)")
    p.add_argument("--kubeconfig", help="kubeconfig of the cluster (default: the lab's admin.conf, fetched over SSH)")
    p.add_argument("--fix", metavar="OPTION", help="apply a fix option: 1/ipip, 2/vxlan, 3/pairs, 4/port-security-off")
    p.add_argument("--revert", metavar="CHANGE", help="revert a recorded change (its number) or 'all'")
    p.add_argument("--yes", action="store_true", help="apply without asking (headless confirmation)")
    p.add_argument("--accept-crd-warning", action="store_true",
                   help="allow patching crd.projectcalico.org/v1 directly when nothing better exists")
    p.add_argument("--accept-new-host-keys", action="store_true", help="trust unknown SSH host keys (shown on stderr)")
    g = p.add_argument_group("doctor a cluster labtui did not build")
    g.add_argument("--adopt", action="store_true", help="create the lab NAME from the options below, then run")
    g.add_argument("--nodes", help="name=address,... (the first is the control plane unless --control-plane)")
    g.add_argument("--inventory", help="an inventory file (labtui YAML, Ansible INI or kubespray hosts.yaml)")
    g.add_argument("--control-plane", help="which node is the control plane")
    g.add_argument("--cloud", help="the cloud in clouds.yaml whose security groups and ports to check")
    g.add_argument("--user", help="SSH user for the nodes (default: ubuntu, or the inventory's)")
    g.add_argument("--key", help="SSH private key file for the nodes")
    p.set_defaults(func=cmd_doctor)

    v = sub.add_parser("revert", help="list the changes labtui recorded for a lab, or revert one or all of them",
                       description="Every change labtui applies (node, cloud, Kubernetes, Calico) is recorded with how "
                                   "to undo it. Without CHANGE: list them. With a number or 'all': revert, newest "
                                   "first, through the same executor as everything else.")
    v.add_argument("name")
    v.add_argument("change", nargs="?", help="a change number (see the list) or 'all'")
    v.add_argument("--yes", action="store_true", help="revert without asking")
    v.add_argument("--accept-new-host-keys", action="store_true", help="trust unknown SSH host keys (shown on stderr)")
    v.set_defaults(func=cmd_revert)

    r = sub.add_parser("report", help="the story of a lab: symptom, cause, the change, proof before and after")
    r.add_argument("name")
    r.add_argument("--format", choices=("md", "json"), default="md", help="Markdown (default) or JSON")
    r.add_argument("-o", "--output", help="write to this file instead of stdout")
    r.add_argument("--log", type=int, default=0, metavar="N", help="include the last N lines of the command log")
    r.set_defaults(func=cmd_report)


# --------------------------------------------------------------------------- adopt


def parse_nodes_arg(text: str, control_plane: str | None = None, user: str | None = None,
                    key: str | None = None) -> list[dict[str, Any]]:
    nodes = []
    for i, item in enumerate(x.strip() for x in text.split(",") if x.strip()):
        name, eq, addr = item.partition("=")
        if not eq:
            addr, name = item, f"node{i + 1}"
        nodes.append({"name": name.strip(), "address": addr.strip(), "role": "worker"})
    if not nodes:
        raise LabError("--nodes lists no node", "write it as cp1=10.0.0.4,w1=10.0.0.21")
    return _finish_nodes(nodes, control_plane, user, key)


def _finish_nodes(nodes: list[dict[str, Any]], control_plane: str | None, user: str | None,
                  key: str | None) -> list[dict[str, Any]]:
    if control_plane:
        if not any(n["name"] == control_plane for n in nodes):
            raise LabError(f"--control-plane {control_plane}: no node of that name",
                           "use one of " + ", ".join(n["name"] for n in nodes))
        for n in nodes:
            n["role"] = "control-plane" if n["name"] == control_plane else "worker"
    elif not any(n.get("role") == "control-plane" for n in nodes):
        nodes[0]["role"] = "control-plane"
    for n in nodes:
        if user:
            n["user"] = user
        if key:
            n["key_file"] = str(Path(key).expanduser())
    return nodes


def adopt(store, args: argparse.Namespace) -> None:
    """Create a lab for a cluster labtui did not build: nodes (optional), cloud, kubeconfig."""
    if store.has_session(args.name):
        raise LabError(f"a lab named {args.name!r} already exists",
                       f"run `labtui doctor {args.name}` on it, or choose another name for --adopt")
    nodes: list[dict[str, Any]] = []
    if args.inventory:
        nodes = _finish_nodes(load_inventory(args.inventory), args.control_plane, args.user, args.key)
    elif args.nodes:
        nodes = parse_nodes_arg(args.nodes, args.control_plane, args.user, args.key)
    if not nodes and not args.kubeconfig and not args.cloud:
        raise LabError("--adopt needs something to look at",
                       "give the nodes (--nodes or --inventory), a --kubeconfig and/or a --cloud")
    plan: dict[str, Any] = {}
    if nodes:
        subnet = covering_subnet([n["address"] for n in nodes]) or "10.0.0.0/8"
        plan = Plan.parse({"name": args.name, "cloud": args.cloud, "nodes": nodes, "node_subnet": subnet}).model_dump(mode="json")
    inputs: dict[str, Any] = {"adopted": True}
    if args.cloud:
        inputs["cloud"] = args.cloud
    if args.kubeconfig:
        inputs["kubeconfig"] = str(Path(args.kubeconfig).expanduser().resolve())
    store.create_session(args.name, cloud=args.cloud, wizard="doctor", plan=plan, inputs=inputs)
    print(f"labtui: created the lab {args.name} for an existing cluster"
          + (f" ({len(nodes)} nodes)" if nodes else "") + (f", cloud {args.cloud}" if args.cloud else ""), file=sys.stderr)


# --------------------------------------------------------------------------- doctor


def _open(args: argparse.Namespace, log_in_early: bool = False):
    clouds = None
    if args.cloud:  # a name clouds.yaml does not define is refused before the lab remembers it
        if args.cloud != ENV_CLOUD:
            clouds = load_clouds()
            clouds.require(args.cloud)
    store = Store()
    early = _begin_login(store, args, clouds) if log_in_early else None  # before the session's imports
    if args.adopt:
        adopt(store, args)
    elif not store.has_session(args.name):
        raise LabError(f"there is no lab named {args.name!r}",
                       f"list them with `labtui sessions`, or doctor a cluster labtui did not build with "
                       f"`labtui doctor {args.name} --adopt --nodes cp=ADDR,w1=ADDR --cloud CLOUD --kubeconfig FILE`",
                       code="not-found")
    elif args.cloud:
        store.save_inputs(args.name, {"cloud": args.cloud})
    lab = LabSession(store, args.name, emit=_print_event, confirm=_confirm(args))
    lab.ctx.adapters.cloud_login = early  # the cloud connection takes its token (same cloud and identity)
    plan = lab.ctx.plan
    if plan is not None and plan.nodes:
        configure_session_ssh(lab.ctx, accept_new_host_keys=args.accept_new_host_keys, headless=True,
                              connect_timeout=8.0)
    return lab


def _begin_login(store, args: argparse.Namespace, clouds=None):
    """The lab's Keystone log-in, begun now with keystoneauth1 alone (labtui.adapters.keystone): the
    password check (about half a second of Keystone's time) then overlaps the imports that follow."""
    name = args.cloud
    if not name and not args.adopt and store.has_session(args.name):
        name = store.get_session(args.name).cloud_name
    return begin_login(name, Tuning.cloud_timeout, clouds)


def _confirm(args: argparse.Namespace):
    def confirm(actions) -> bool:
        print("labtui doctor will make these changes, in this order:", file=sys.stderr)
        for a in actions:
            print("  " + a.render().replace("\n", "\n  "), file=sys.stderr)
        if args.yes:
            return True
        if not sys.stdin.isatty():
            print("labtui: not applied; re-run with --yes to apply these changes", file=sys.stderr)
            return False
        try:
            answer = input("apply? [y/N] ").strip().lower()
        except EOFError:
            return False
        return answer in ("y", "yes")

    return confirm


class _Hangup(SystemExit):
    """SIGHUP (the terminal closed) or SIGTERM: unwinds like ctrl+c, so the probe pods are deleted."""


def _unwind_on_signals() -> None:
    """A closed terminal (SIGHUP) or a kill (SIGTERM) unwinds the stack like ctrl+c does, so every
    `finally` runs (the probe pods are deleted); only in the main thread, where Python delivers them."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, _frame):
        signal.signal(signum, signal.SIG_IGN)  # one unwind is enough
        raise _Hangup(128 + signum)

    for sig in (getattr(signal, "SIGHUP", None), signal.SIGTERM):
        if sig is not None:
            signal.signal(sig, handler)


def _last_failed_cells(lab) -> set[str]:
    last = last_diagnosis(lab.store, lab.record.id) or {}
    cells = last.get("cells") or []
    if not cells:
        raise LabError(f"--failed: no earlier live matrix in {lab.record.name}",
                       f"run `labtui doctor {lab.record.name}` once with the live proof (without --no-live)")
    failed = {c["id"] for c in cells if not c.get("ok")}
    if not failed:
        raise LabError(f"--failed: every cell of the last matrix passed ({len(cells)} cells)",
                       f"run `labtui doctor {lab.record.name}` for the whole matrix")
    return failed


def cmd_doctor(args: argparse.Namespace) -> int:
    if args.failed and args.no_live:
        raise LabError("--failed re-runs live matrix cells; it cannot go with --no-live", "drop one of the two")
    if args.junit and args.no_live:
        raise LabError("--junit writes the live matrix; it cannot go with --no-live", "drop one of the two")
    if args.junit:
        junit = Path(args.junit).expanduser()
        if not junit.parent.is_dir():
            raise LabError(f"--junit {args.junit}: the directory {junit.parent} does not exist", "create it first")
    _unwind_on_signals()
    lab = _open(args, log_in_early=not args.revert)
    try:
        if args.revert:
            return _revert(lab, args)
        only = _last_failed_cells(lab) if args.failed else None
        if only is not None:
            print(f"labtui: re-running the {len(only)} cell(s) that failed last time", file=sys.stderr)
        diag = run_doctor(lab.ctx, kubeconfig=args.kubeconfig, live=not args.no_live, only_cells=only)
        if args.fix:
            print(redact(render_text(diag)), file=sys.stderr if args.json else sys.stdout)
            try:
                opt = diag.option(args.fix)
            except KeyError:
                if not diag.options:
                    raise LabError(f"nothing to fix in {args.name}: {diag.status}",
                                   "the doctor found no blocked pod traffic to fix") from None
                raise LabError(f"there is no fix option {args.fix!r}",
                               "choose one of " + ", ".join(f"{o.number} ({o.key})" for o in diag.options)) from None
            _actions, after = apply_fix(lab.ctx, diag, opt, accept_crd_warning=args.accept_crd_warning,
                                        kubeconfig=args.kubeconfig, live=not args.no_live)
            if after is None:
                return 1
            diag = after
            print("", file=sys.stderr)
            print(f"After fix option {opt.number}:", file=sys.stderr)
        cells = getattr(diag, "cells", None) or []
        if args.junit:
            _write_junit(Path(args.junit).expanduser(), diag, cells)
        if args.json:
            data = diag.to_dict()
            data["cells"] = [c.to_dict() for c in cells]
            live = lab.store.facts(lab.record.id, "live").get("live", {}).get("live")
            if live:  # what the live cluster says about the plan's values, and where they disagree
                data["live"] = {k: live.get(k) for k in ("values", "sources", "disagree", "plan_updated")}
            print(json.dumps(redact_data(data), indent=2, sort_keys=True, default=str))
        else:
            text = render_text(diag)
            if cells:
                text += "\n\nThe live matrix" + (" (the cells that failed last time)" if only else "") + ":\n" \
                    + render_cells(cells, [n.name for n in diag.facts.nodes])
            print(redact(text))
        return diag.exit_code
    finally:
        lab.close()


def _write_junit(path: Path, diag, cells) -> None:
    matrix_unchecked = [u for u in diag.unchecked if u.source in ("matrix", "capture")]
    if not cells and not matrix_unchecked:
        raise LabError("--junit: the live matrix did not run, nothing to write",
                       "the doctor needs the cluster and SSH to the control plane for it (see the lines above)")
    seconds = float(diag.facts.timings.get("live") or 0.0)
    write_private(path, redact(junit_xml(cells, f"labtui doctor {diag.facts.cluster}".strip(),
                                         unchecked=matrix_unchecked, seconds=seconds)))
    print(f"wrote {path} ({len(cells)} cells, {sum(1 for c in cells if not c.ok)} failing)", file=sys.stderr)


def _revert(lab, args: argparse.Namespace) -> int:
    """Revert one recorded change or all of them (node, cloud, Calico alike), newest first, through
    the executor and the change catalogue; with `all`, a change that cannot be reverted is named and
    the rest continue. Exit 0 when everything asked for was reverted, 1 otherwise."""
    changes = [c for c in lab.store.changes(lab.record.id, include_reverted=False)]
    if args.revert != "all":
        try:
            wanted = int(str(args.revert).lstrip("#"))
        except ValueError:
            raise LabError(f"{args.revert!r} is not a change number or 'all'",
                           f"list the recorded changes with `labtui revert {args.name}`") from None
        changes = [c for c in changes if c.id == wanted]
        if not changes:
            raise LabError(f"no change #{wanted} to revert in {args.name}",
                           f"list them with `labtui revert {args.name}` (reverted ones are not listed again)")
    if not changes:
        print("nothing to revert")
        return 0
    print("labtui will revert, newest first:", file=sys.stderr)
    for c in sorted(changes, key=lambda c: c.id or 0, reverse=True):
        print(f"  #{c.id} {c.description}\n    $ {c.revert_command or '(reverted through the change catalogue)'}",
              file=sys.stderr)
    if not args.yes:
        print("labtui: not reverted; re-run with --yes", file=sys.stderr)
        return 1
    done, failed = Executor(lab.ctx, step="doctor-revert").revert(changes, keep_going=args.revert == "all",
                                                                  confirmed=True)
    print(f"reverted {len(done)} change(s)" + (f"; {len(failed)} could not be reverted:" if failed else ""))
    for c, why in failed:
        print(f"  #{c.id} {c.description}: {why}")
    return 0 if not failed else 1


def cmd_revert(args: argparse.Namespace) -> int:
    """`labtui revert NAME [CHANGE|all]`: the recorded changes, or revert them (see `_revert`)."""
    args.adopt, args.cloud, args.revert = False, None, args.change
    try:
        lab = _open(args)
    except LabError as exc:
        if exc.code != "not-found":
            raise
        raise LabError(exc.message, "list the labs with `labtui sessions`", code="not-found") from None
    try:
        if args.change is None:
            changes = lab.store.changes(lab.record.id, include_reverted=False)
            if not changes:
                print(f"{args.name}: no change to revert (labtui recorded none, or all were reverted)")
                return 0
            print(f"Changes recorded for {args.name} (revert one with `labtui revert {args.name} N`, or all):")
            for c in sorted(changes, key=lambda c: c.id or 0, reverse=True):
                print(f"  #{c.id} {c.description}\n    undo: $ {c.revert_command or '(through the change catalogue)'}")
            return 0
        return _revert(lab, args)
    finally:
        lab.close()


def cmd_report(args: argparse.Namespace) -> int:
    store = Store()
    if not store.has_session(args.name):
        raise LabError(f"there is no lab named {args.name!r}", "list them with `labtui sessions`", code="not-found")
    if args.format == "json":
        text = json.dumps(session_report_data(store, args.name, log_lines=args.log), indent=2, sort_keys=True,
                          default=str) + "\n"
    else:
        text = session_report(store, args.name, log_lines=args.log)
    if args.output:
        write_private(Path(args.output), text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text, end="")
    return 0
