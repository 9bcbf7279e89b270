"""`labtui nodes ...`: reach the lab's nodes over SSH without the UI.

    labtui nodes check NAME [--node N]... [--json] [--accept-new-host-keys] [--inventory FILE]
    labtui nodes facts NAME [NODE] [--json]              (stored facts, no SSH)
    labtui nodes run NAME NODE|--all [--sudo] [--timeout S] -- COMMAND...
    labtui nodes trust NAME NODE|--all [--replace] [--yes]
    labtui nodes ssh NAME NODE [--print]
    labtui nodes preflight NAME [--yes] [--accept-new-host-keys]
    labtui nodes revert NAME [CHANGE_ID] [--yes]

Unknown host keys are refused unless --accept-new-host-keys (or `trust` after comparing the
fingerprint); a changed host key is only replaced by `trust --replace`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import shlex
import sys
from typing import Any

from labtui.adapters.ssh import NodeSSH, configure_session_ssh
from labtui.adapters.sshkeys import HostKeyChanged, HostKeyUnknown
from labtui.commands.common import eprint
from labtui.errors import LabError
from labtui.inventory import load_inventory
from labtui.model import NodeSpec, Plan, guess_subnet
from labtui.nodes.facts import gather, load_facts, store_facts
from labtui.nodes.preflight import preflight
from labtui.session import LabSession
from labtui.stages.nodes import build
from labtui.steps import StepState
from labtui.store import Store

STATUS_KINDS = ("action.start", "action.done", "action.failed", "change", "warn", "error", "info",
                "step.start", "step.done", "step.failed")


def _progress(event) -> None:
    # progress goes to stderr: stdout stays clean for --json and command output
    if event.kind in STATUS_KINDS:
        eprint(f"  {event.line()}")


def _open(args: argparse.Namespace, emit=_progress, *, need_plan: bool = True):

    store = Store()
    inventory = getattr(args, "inventory", None)
    if not store.has_session(args.name):
        if not inventory:
            raise LabError(f"there is no lab named {args.name!r}",
                           "list them with `labtui sessions`, or pass --inventory FILE to check machines you already "
                           "have (a lab of that name is then created from the inventory)", code="not-found")
        _create_from_inventory(store, args.name, inventory, getattr(args, "subnet", None))
    lab = LabSession(store, args.name, emit=emit)
    if need_plan:
        plan = lab.plan()
        if plan is None or not plan.nodes:
            lab.close()
            raise LabError(f"the lab {args.name} has no saved plan with nodes yet",
                           "finish the plan stage in the UI (labtui resume NAME), or create a lab from an inventory "
                           "with `labtui nodes check NAME --inventory FILE`", code="no-plan")
    return lab


def _create_from_inventory(store, name: str, path: str, subnet: str | None = None) -> None:

    nodes = load_inventory(path)
    subnet = subnet or guess_subnet(n.get("address", "") for n in nodes)
    if subnet is None:  # aliases from ~/.ssh/config: their HostName tells the subnet

        probe = NodeSSH([NodeSpec.model_validate(n) for n in nodes])
        try:
            subnet = guess_subnet(probe.resolve(n["name"]).host for n in nodes)
        except LabError:
            subnet = None
        finally:
            probe.close()
    if subnet is None:
        raise LabError(f"cannot tell the node subnet from {path}", "pass --subnet CIDR (e.g. 10.100.200.0/24)", code="usage")
    plan = Plan.parse({"name": name, "cloud": None, "nodes": nodes, "node_subnet": subnet})
    data = plan.model_dump(mode="json")
    store.create_session(name, wizard="nodes", plan=data,
                         inputs={k: data[k] for k in ("nodes", "node_subnet", "pod_cidr", "service_cidr",
                                                       "kubernetes", "calico", "encapsulation")})
    print(f"labtui: created the lab {name} from {path} ({len(plan.nodes)} nodes, subnet {subnet})", file=sys.stderr)


def _ssh(lab, args: argparse.Namespace):

    options: dict[str, Any] = {"accept_new_host_keys": bool(getattr(args, "accept_new_host_keys", False)),
                               "headless": True}
    if getattr(args, "timeout", None):
        options["connect_timeout"] = min(float(args.timeout), 30.0)
    if getattr(args, "workers", None):
        options["max_workers"] = int(args.workers)
    if sys.stdin.isatty():

        def ask(node: str, path: str) -> str | None:
            try:
                return getpass.getpass(f"passphrase for {path} (for {node}; not stored): ") or None
            except (EOFError, KeyboardInterrupt):
                return None

        options["passphrase"] = ask
    return configure_session_ssh(lab.ctx, **options)


def _names(lab, args: argparse.Namespace) -> list[str]:
    plan = lab.plan()
    names = [n.name for n in plan.nodes]
    wanted = getattr(args, "node", None) or []
    if isinstance(wanted, str):
        wanted = [wanted]
    for w in wanted:
        if w not in names:
            raise LabError(f"no node named {w!r} in the lab {lab.name}", f"its nodes: {', '.join(names)}", code="not-found")
    return list(wanted) or names


# --------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:

    lab = _open(args)
    try:
        ssh = _ssh(lab, args)
        names = _names(lab, args)
        statuses = ssh.check_all(names)
        reachable = [n for n in names if statuses[n].reachable]
        facts_res = gather(ssh, reachable, step="facts") if reachable else {}
        facts = {}
        for name, res in facts_res.items():
            if res.ok:
                facts[name] = res.value
                store_facts(lab.store, lab.record.id, res.value)
            else:
                statuses[name].reachable = False
                statuses[name].error = res.message
        findings = preflight(lab.plan(), facts)
        if args.json:
            out = {"nodes": {}, "findings": [f.__dict__ for f in findings]}
            for n in names:
                st = statuses[n]
                entry: dict[str, Any] = {
                    "reachable": st.reachable, "latency_ms": round(st.latency_ms, 1) if st.latency_ms else None,
                    "user": st.user, "sudo": st.sudo, "error": st.error, "hint": st.hint, "code": st.code,
                    "facts": facts[n].to_dict() if n in facts else None,
                }
                if st.host_key is not None:
                    entry["host_key"] = {"host": st.host_key.host, "type": st.host_key.key_type,
                                         "fingerprint": st.host_key.fingerprint,
                                         "known_fingerprint": st.host_key.known_fingerprint}
                out["nodes"][n] = entry
            print(json.dumps(out, indent=2, sort_keys=True))
        else:
            print(f"{'NODE':14} {'ADDRESS':16} {'REACH':6} {'OS':22} {'KERNEL':18} {'RUNTIME':18} LATENCY")
            plan = lab.plan()
            for n in names:
                st, f = statuses[n], facts.get(n)
                addr = plan.node(n).address
                try:
                    host = ssh.resolve(n).host
                    addr = addr if host == addr else f"{addr}={host}"
                except LabError:
                    pass
                lat = f"{st.latency_ms:.0f} ms" if st.latency_ms is not None else "-"
                print(f"{n:14} {addr:16} {'yes' if st.reachable else 'NO':6} {(f.os if f else '-')[:22]:22} "
                      f"{(f.kernel if f else '-')[:18]:18} {(f.runtime_label if f else '-')[:18]:18} {lat}")
            seen: dict[str, list[str]] = {}
            for n in names:  # one message per distinct failure (a jump host fails all its nodes alike)
                st = statuses[n]
                if not st.reachable:
                    seen.setdefault(f"{st.error}\n  -> {st.hint}" if st.hint else st.error, []).append(n)
            for text, nodes_ in seen.items():
                also = f"   [{', '.join(nodes_)}]" if len(nodes_) > 1 else ""
                print(f"\n{text}{also}")
            shown = [f for f in findings if f.severity in ("error", "warning", "info")]
            if shown:
                print("\nPreflight:")
                for f in shown:
                    print(f"  {f.line()}")
                    if f.why:
                        print(f"          {f.why}")
                if any(f.fix for f in shown):
                    print(f"\nFix the fixable ones (shows the exact commands first): labtui nodes preflight {lab.name}")
        return 0 if all(statuses[n].reachable for n in names) else 1
    finally:
        lab.close()


# --------------------------------------------------------------------------- facts (stored)


def cmd_facts(args: argparse.Namespace) -> int:

    lab = _open(args, need_plan=False)
    try:
        facts = load_facts(lab.store, lab.record.id, args.node)
        if args.node and args.node not in facts:
            raise LabError(f"no facts stored for {args.node} in the lab {lab.name}",
                           f"gather them: labtui nodes check {lab.name} --node {args.node}", code="no-facts")
        if args.json:
            print(json.dumps({n: f.to_dict() for n, f in sorted(facts.items())}, indent=2, sort_keys=True))
        elif not facts:
            print(f"No node facts yet. Gather them: labtui nodes check {lab.name}")
        else:
            for n, f in sorted(facts.items()):
                print(f"{n}: {f.summary()}")
        return 0
    finally:
        lab.close()


# --------------------------------------------------------------------------- run


def seconds(text: str) -> float:
    """A --timeout value: a positive number of seconds (argparse refuses anything else, before any
    connection, with this message)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds (e.g. --timeout 10)")
    return value


def _seconds_option(text: str) -> float:
    try:
        return seconds(text)
    except argparse.ArgumentTypeError as exc:
        raise LabError(f"--timeout: {exc}", "give the seconds as a positive number, e.g. --timeout 10",
                       code="usage") from None


def _stoppable(text: str, pidfile: str) -> str:
    """`text` recording its process group in `pidfile` (removed when it ends)."""
    return f"echo $$ > {pidfile} 2>/dev/null\n(\n{text}\n)\nrc=$?\nrm -f {pidfile}\nexit $rc"


def _stop_remote(ssh, nodes: list[str], pidfile: str, *, sudo: bool) -> None:
    """After ctrl+c: SIGTERM to the process group each node recorded in `pidfile`, over new sessions,
    on every node at once."""
    stop = (f"p=$(cat {pidfile} 2>/dev/null) && g=$(ps -o pgid= -p \"$p\" | tr -d ' ') && "
            f"[ -n \"$g\" ] && kill -TERM -- -\"$g\"; rm -f {pidfile}")
    try:
        results = ssh.run_all(nodes, stop, sudo=sudo, timeout=10, stream=False, announce=False)
    except KeyboardInterrupt:
        results = {}
    for node in nodes:
        res = results.get(node)
        if res is not None and res.ok:
            eprint(f"labtui: {node}: stopped the remote command (its process group got SIGTERM)")
        else:
            eprint(f"labtui: {node}: could not stop the remote command; look with: labtui nodes run NAME {node} "
                   "-- ps -ef")


def _run_stoppable(ssh, nodes: list[str], text: str, *, sudo: bool, timeout: float) -> dict[str, Any]:
    """Run `text` on `nodes` in parallel (the adapter's fan-out, which gives ctrl+c back at once); on
    ctrl+c the remote commands are stopped too (closing the channel alone leaves them running: without
    a terminal sshd sends no hangup): each command records its process group in a file of its own, and
    the interrupt kills that group (TERM) over a new session. Returns {node: RunResult or LabError}."""
    pidfile = f"/tmp/labtui-run-{secrets.token_hex(8)}.pid"
    wrapped = _stoppable(text, pidfile)
    shown = ("sudo " if sudo else "") + text
    try:
        results = ssh.fan_out(nodes, lambda n: ssh.run(n, wrapped, sudo=sudo, timeout=timeout,
                                                       announce=len(nodes) > 1, display=f"ssh {n} {shlex.quote(shown)}"))
    except KeyboardInterrupt:
        _stop_remote(ssh, nodes, pidfile, sudo=sudo)
        raise
    return {n: (r.value if r.ok else r.error) for n, r in results.items()}


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.remote_command)
    # argparse hands options written between NODE and `--` to the remainder: take them back
    while command and command[0] != "--" and command[0].startswith("--"):
        opt = command.pop(0)
        if opt == "--all":
            args.all = True
        elif opt == "--sudo":
            args.sudo = True
        elif opt == "--accept-new-host-keys":
            args.accept_new_host_keys = True
        elif opt == "--timeout" and command:
            args.timeout = _seconds_option(command.pop(0))
        elif opt.startswith("--timeout="):
            args.timeout = _seconds_option(opt.split("=", 1)[1])
        else:
            raise LabError(f"unknown option {opt}", "options go before --, the command after it", code="usage")
    if args.node == "--":
        args.node = None
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise LabError("no command given", "write it after --, e.g. labtui nodes run lab node1 -- uname -a", code="usage")
    text = command[0] if len(command) == 1 else shlex.join(command)
    many = args.all or (args.node is None)
    prefix = many

    def emit(event) -> None:
        if event.kind == "action.output":
            out = sys.stdout if event.stream == "stdout" else sys.stderr
            for line in event.message.split("\n"):
                out.write(f"[{event.node}] {line}\n" if prefix else line + "\n")
            out.flush()
        elif event.kind in ("warn", "error", "change", "info") or (many and event.kind in ("action.done", "action.failed")):
            eprint(f"  {event.line()}")

    lab = _open(args, emit=emit)
    try:
        ssh = _ssh(lab, args)
        if args.node is None and not args.all:
            raise LabError("which node?", f"name one, or pass --all: labtui nodes run {lab.name} NODE -- {text}", code="usage")
        names = _names(lab, argparse.Namespace(node=None if args.all else args.node))
        timeout = args.timeout
        results = _run_stoppable(ssh, names, text, sudo=args.sudo, timeout=timeout)
        if len(names) == 1 and not args.all:
            res = results[names[0]]
            if isinstance(res, LabError):
                raise res
            if res.exit_code != 0:
                print(f"labtui: {names[0]}: exit code {res.exit_code} after {res.duration:.2f}s", file=sys.stderr)
            return res.exit_code if 0 <= res.exit_code < 256 else 1
        worst = 0
        for r in results.values():
            if isinstance(r, LabError):
                print(f"labtui: {r.render()}", file=sys.stderr)
                worst = 1
            elif r.exit_code != 0:
                worst = 1
        return worst
    finally:
        lab.close()


# --------------------------------------------------------------------------- trust


def cmd_trust(args: argparse.Namespace) -> int:

    lab = _open(args)
    try:
        if not args.all and args.node is None:
            raise LabError("which node?", f"labtui nodes trust {lab.name} NODE (or --all)", code="usage")
        ssh = _ssh(lab, argparse.Namespace())
        names = _names(lab, argparse.Namespace(node=None if args.all else args.node))

        def decide(info) -> bool:
            state = ssh.host_key_state(info)
            print(f"{info.node}: {info.host} {info.describe()}")
            if state == "known":
                print("  already trusted")
                return True
            if state == "changed":
                print(f"  CHANGED: the stored key is {info.known_fingerprint} ({info.known_in}).")
                print("  Was this VM rebuilt? Only then replace the stored key; otherwise someone may be in between.")
                if not args.replace:
                    print(f"  Not replaced. If you rebuilt it: labtui nodes trust {lab.name} {info.node} --replace",
                          file=sys.stderr)
                    return False
            if not args.yes:
                if not sys.stdin.isatty():
                    print("  Not stored: compare the fingerprint with the VM's console log, then re-run with --yes",
                          file=sys.stderr)
                    return False
                question = "Replace the stored key" if state == "changed" else "Trust this key"
                if input(f"  {question} for {info.host}? [y/N] ").strip().lower() not in ("y", "yes"):
                    print("  not stored")
                    return False
            path = ssh.trust_host_key(info, replace_changed=(state == "changed"))
            print(f"  {'replaced' if state == 'changed' else 'stored'} in {path}")
            return True

        rc = 0
        for n in names:
            for _attempt in range(4):  # the node, after its jump hosts
                try:
                    info = ssh.scan_host_key(n)
                except (HostKeyUnknown, HostKeyChanged) as exc:  # a jump host on the way
                    if decide(exc.info):
                        continue
                    rc = 1
                    break
                except LabError as exc:
                    print(f"labtui: {exc.render()}", file=sys.stderr)
                    rc = 1
                    break
                if not decide(info):
                    rc = 1
                break
        return rc
    finally:
        lab.close()


# --------------------------------------------------------------------------- ssh


def cmd_ssh(args: argparse.Namespace) -> int:
    lab = _open(args)
    try:
        ssh = _ssh(lab, argparse.Namespace())
        _names(lab, argparse.Namespace(node=args.node))
        argv = ssh.ssh_argv(args.node, args.remote_command or None)
    finally:
        lab.close()
    if args.print:
        print(shlex.join(argv))
        return 0
    os.execvp(argv[0], argv)
    return 0  # pragma: no cover - exec does not return


# --------------------------------------------------------------------------- preflight (the wizard)


def cmd_preflight(args: argparse.Namespace) -> int:

    def confirm(actions) -> bool:
        print("\nlabtui would change the nodes:", file=sys.stderr)
        for a in actions:
            print(f"  {a.title}\n    $ " + a.command.replace("\n", "\n      ") +
                  (f"\n    revert: {a.revert}".replace("\n", "\n      ") if a.revert else ""), file=sys.stderr)
        if args.yes:
            return True
        print("\nNot applied. Re-run with --yes to apply exactly these commands.", file=sys.stderr)
        return False

    lab = _open(args)
    lab.ctx.confirm = confirm
    try:
        _ssh(lab, args)
        wizard = build()
        runner = lab.runner(wizard)
        rc = 0
        for step in wizard.steps:
            outcome = runner.run_step(step)
            print(f"{step.title}: {outcome.state.value}" + (f" - {outcome.detail}" if outcome.detail else ""))
            if outcome.state != StepState.DONE:
                rc = 1
                break
        return rc
    finally:
        lab.close()


# --------------------------------------------------------------------------- revert


def cmd_revert(args: argparse.Namespace) -> int:
    lab = _open(args)
    try:
        changes = [c for c in lab.store.changes(lab.record.id, include_reverted=False) if c.kind.startswith("node.")]
        if args.change_id is not None:
            changes = [c for c in changes if c.id == args.change_id]
            if not changes:
                raise LabError(f"no node change #{args.change_id} to revert in the lab {lab.name}",
                               f"see the changes: labtui show {lab.name}", code="not-found")
        elif changes:
            changes = changes[-1:]
        if not changes:
            print("No node changes to revert.")
            return 0
        change = changes[0]
        data = change.revert_data
        print(f"Revert change #{change.id} on {change.target}: {change.description}\n  $ {change.revert_command}")
        if not args.yes:
            print("Not reverted. Re-run with --yes.", file=sys.stderr)
            return 1
        ssh = _ssh(lab, argparse.Namespace())
        res = ssh.run(data["node"], data["command"], sudo=bool(data.get("sudo")), announce=True)
        res.check(f"reverting change #{change.id}")
        lab.store.mark_reverted(change.id)
        print(f"reverted change #{change.id}")
        return 0
    finally:
        lab.close()


# --------------------------------------------------------------------------- parser


def register(subparsers: Any) -> None:
    nodes = subparsers.add_parser("nodes", help="reach the lab's nodes over SSH: check, facts, run, trust, ssh, preflight")
    sub = nodes.add_subparsers(dest="nodes_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser, accept: bool = True) -> None:
        p.add_argument("name", help="the lab")
        if accept:
            p.add_argument("--accept-new-host-keys", action="store_true",
                           help="trust host keys seen for the first time (never a changed one)")

    p = sub.add_parser("check", help="reach every node, gather facts, explain preflight findings")
    common(p)
    p.add_argument("--node", action="append", help="only this node (repeatable)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=seconds, default=None, help="connect timeout in seconds (default 10)")
    p.add_argument("--workers", type=int, default=None, help="parallel connections (default 16)")
    p.add_argument("--inventory", metavar="FILE", help="create the lab from an inventory if it does not exist")
    p.add_argument("--subnet", metavar="CIDR", help="the node subnet for a lab created from --inventory")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("facts", help="the node facts stored by the last check (no SSH)")
    p.add_argument("name", help="the lab")
    p.add_argument("node", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_facts)

    p = sub.add_parser("run", help="run a command on one node (or --all) with live output")
    common(p)
    p.add_argument("node", nargs="?", help="the node (omit with --all)")
    p.add_argument("--all", action="store_true", help="on every node, in parallel")
    p.add_argument("--sudo", action="store_true", help="run it with sudo (passwordless sudo only)")
    p.add_argument("--timeout", type=seconds, default=300.0, help="seconds before the command is stopped")
    p.add_argument("remote_command", nargs=argparse.REMAINDER, metavar="COMMAND", help="-- COMMAND...")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("trust", help="show a node's host key fingerprint and trust it (or replace a changed one)")
    p.add_argument("name", help="the lab")
    p.add_argument("node", nargs="?")
    p.add_argument("--all", action="store_true")
    p.add_argument("--replace", action="store_true", help="replace a CHANGED key (only if you rebuilt the VM)")
    p.add_argument("--yes", action="store_true", help="store without asking")
    p.set_defaults(func=cmd_trust)

    p = sub.add_parser("ssh", help="open a shell on a node with the system ssh (same settings as labtui)")
    p.add_argument("name", help="the lab")
    p.add_argument("node")
    p.add_argument("--print", action="store_true", help="print the ssh command instead of running it")
    p.add_argument("remote_command", nargs="?", metavar="COMMAND", help="a command instead of a shell")
    p.set_defaults(func=cmd_ssh)

    p = sub.add_parser("preflight", help="run the nodes stage: facts, findings, and the fixes (with --yes)")
    common(p)
    p.add_argument("--yes", action="store_true", help="apply the shown fixes without asking")
    p.set_defaults(func=cmd_preflight)

    p = sub.add_parser("revert", help="undo a recorded node change (the last one by default)")
    p.add_argument("name", help="the lab")
    p.add_argument("change_id", nargs="?", type=int)
    p.add_argument("--yes", action="store_true")
    p.set_defaults(func=cmd_revert)
