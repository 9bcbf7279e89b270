"""`labtui calico ...`: read Calico's state and change a pool's encapsulation the supported way.

    labtui calico show NAME [--json] [--kubeconfig FILE] [--context CTX] [--refresh-kubeconfig]
    labtui calico set-mode NAME POOL MODE [--yes] [--accept-crd-warning] [--kubeconfig FILE] [--timeout S]
    labtui calico revert NAME [CHANGE_ID] [--yes]

NAME is a lab. With --kubeconfig, NAME may be a new lab for a cluster labtui did not build: it is
created (it remembers the kubeconfig's path, never its content).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from labtui.adapters.calico import plan_change, read_cluster
from labtui.adapters.kube import kube_for
from labtui.adapters.kubeconfig import control_plane_shell
from labtui.commands.common import print_event
from labtui.errors import LabError
from labtui.net.modechange import parse_encapsulation
from labtui.pool_change import revert_pool_change, set_pool_mode
from labtui.session import LabSession
from labtui.stages.calico import remember_state
from labtui.store import Store

MODES_HELP = "IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet or None (case-insensitive)"


def _open(args: argparse.Namespace):
    store = Store()
    if not store.has_session(args.name):
        if not getattr(args, "kubeconfig", None):
            raise LabError(f"there is no lab named {args.name!r}",
                           "list them with `labtui sessions`, or pass --kubeconfig FILE to work on a cluster "
                           "labtui did not build (a lab of that name is then created for it)", code="not-found")
        store.create_session(args.name, wizard="calico")
        print(f"labtui: created the lab {args.name} for the cluster in {args.kubeconfig}", file=sys.stderr)
    lab = LabSession(store, args.name, emit=print_event)
    if getattr(args, "context", None):
        store.save_inputs(args.name, {"kube_context": args.context})
        lab.ctx.reload()
    return lab


def _connect(lab, args: argparse.Namespace):
    kc = kube_for(lab.ctx, getattr(args, "kubeconfig", None), refresh=getattr(args, "refresh_kubeconfig", False))
    lab.ctx.remember_kubeconfig(getattr(args, "kubeconfig", None))
    return kc


def save_facts(lab, state) -> None:
    remember_state(lab.ctx, state)


SEVERITY_ICON = {"ok": "✓", "info": "·", "warn": "!", "bad": "✗"}


def render_state(state, via: str | None = None) -> str:
    out: list[str] = []
    how = f", {via}" if via else ""
    out.append(f"Cluster {state.server}  Kubernetes {state.kubernetes_version or '?'}  (read in {state.read_seconds:.2f} s{how})")
    out.append(state.install.describe())
    for w in state.warnings:
        out.append(f"! {w}")
    out.append("")
    out.append("IP POOLS")
    if not state.pools:
        out.append("  (none)")
    else:
        out.append(f"  {'NAME':24} {'CIDR':22} {'IPIP':12} {'VXLAN':12} {'NAT':4} {'DISABLED':9} {'SELECTOR':10} OWNER")
        for p in state.pools:
            out.append(f"  {p.name:24} {p.cidr:22} {p.ipip_mode:12} {p.vxlan_mode:12} {'yes' if p.nat_outgoing else 'no':4} "
                       f"{'yes' if p.disabled else 'no':9} {p.node_selector:10} {p.owner or '-'}")
        for m in state.meanings():
            out.append("")
            out.append(f"  {SEVERITY_ICON.get(m.severity, '·')} {m.pool}: {m.summary}")
            for d in m.details:
                out.append(f"      {d}")
            if m.needs:
                out.append("      needs between the nodes: " + "; ".join(m.needs))
    out.append("")
    out.append("NODES")
    out.append(f"  {'NAME':14} {'READY':6} {'ADDRESS':16} {'SUBNET':18} {'POD CIDR':16} {'TUNNEL':15} CALICO-NODE")
    for n in state.nodes:
        pod = n.calico_pod
        cn = f"{pod.name} {'ready' if pod.ready else 'NOT READY'}, {pod.restarts} restarts" if pod else "none"
        out.append(f"  {n.name:14} {'yes' if n.ready else 'NO':6} {n.address or '?':16} {n.subnet or '?':18} "
                   f"{n.pod_cidr or '-':16} {n.tunnel or '-':15} {cn}")
    return "\n".join(out)


def cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as lab:
        kc = _connect(lab, args)
        state = read_cluster(kc)
        save_facts(lab, state)
        if args.json:
            data = state.to_dict()
            data["via"] = kc.via
            data["kubeconfig"] = str(kc.kubeconfig)
            print(json.dumps(data, indent=2, sort_keys=True, default=str))
        else:
            print(render_state(state, kc.via))
    return 0


def _ask(prompt: str) -> str:
    try:
        return input(prompt)
    except EOFError:
        return ""


def cmd_set_mode(args: argparse.Namespace) -> int:
    parse_encapsulation(args.mode)  # a mode that does not exist is refused before any connection
    with _open(args) as lab:
        kc = _connect(lab, args)
        state = read_cluster(kc)
        shell = control_plane_shell(lab.ctx)
        change = plan_change(kc, state, args.pool, args.mode, shell=shell)
        if change.noop:
            print(f"IP pool {change.pool} already has {change.new.value} (ipipMode {change.new_modes[0]}, "
                  f"vxlanMode {change.new_modes[1]}): nothing to change")
            return 0
        print(f"Change: {change.description}")
        for line in change.lines():
            print(f"  {line}")
        accept = bool(args.accept_crd_warning)
        if args.yes:
            if change.warning and not accept:
                raise LabError("not applied: only the raw crd.projectcalico.org/v1 CRD is left, and its warning was not accepted",
                               "re-run with --accept-crd-warning as well, or install the Calico API server or calicoctl",
                               code="needs-consent")
        elif sys.stdin.isatty():
            if change.warning and not accept:
                accept = _ask("Type 'accept' to accept the warning above: ").strip().lower() == "accept"
                if not accept:
                    print("not applied")
                    return 1
            if _ask("Apply this change? [y/N] ").strip().lower() not in ("y", "yes"):
                print("not applied")
                return 1
        else:
            print("Re-run with --yes to apply it" + (" (and --accept-crd-warning)" if change.warning else "") + ".")
            return 1
        seen = set_pool_mode(lab.ctx, change, state=state, shell=shell, accept_warning=accept,
                             wait_timeout=args.timeout, poll=args.poll)
        rec = lab.store.changes(lab.record.id)[-1]
        print(f"IP pool {seen.name} now: ipipMode {seen.ipip_mode}, vxlanMode {seen.vxlan_mode}  "
              f"(change #{rec.id} recorded; revert: labtui calico revert {args.name} {rec.id})")
        try:
            save_facts(lab, read_cluster(kc))
        except LabError:
            pass
    return 0


def cmd_revert(args: argparse.Namespace) -> int:
    with _open(args) as lab:
        candidates = [c for c in lab.store.changes(lab.record.id, include_reverted=args.change_id is not None)
                      if c.kind == "calico.pool-mode"]
        if args.change_id is not None:
            candidates = [c for c in candidates if c.id == args.change_id]
            if not candidates:
                raise LabError(f"the lab {args.name} has no Calico change #{args.change_id}",
                               f"see its changes with `labtui show {args.name}`", code="not-found")
        if not candidates:
            raise LabError(f"the lab {args.name} has no Calico pool change left to revert", "nothing to do", code="not-found")
        record = candidates[-1]
        print(f"Revert change #{record.id}: {record.description}")
        print(f"  $ {record.revert_command}")
        if not args.yes:
            if not sys.stdin.isatty() or _ask("Apply this revert? [y/N] ").strip().lower() not in ("y", "yes"):
                print("Re-run with --yes to apply it." if not sys.stdin.isatty() else "not applied")
                return 1
        _connect(lab, args)
        lab.ctx.tuning.calico_wait, lab.ctx.tuning.calico_poll = args.timeout, args.poll
        seen = revert_pool_change(lab.ctx, record)
        print(f"IP pool {seen.name} back to ipipMode {seen.ipip_mode}, vxlanMode {seen.vxlan_mode} (change #{record.id} reverted)")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the lab")
    p.add_argument("--kubeconfig", metavar="FILE", help="a kubeconfig for a cluster labtui did not build "
                   "(default: the lab's admin.conf, fetched over SSH from the control plane)")
    p.add_argument("--context", help="the kubeconfig context to use")
    p.add_argument("--refresh-kubeconfig", action="store_true",
                   help="fetch a fresh /etc/kubernetes/admin.conf from the control plane first")


def register(subparsers: Any) -> None:
    calico = subparsers.add_parser("calico", help="Calico: IP pools, their encapsulation, calico-node per node")
    sub = calico.add_subparsers(dest="calico_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("show", help="install mode, API, backend, pools with what their mode means here, nodes")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("set-mode", help="change an IP pool's encapsulation the supported way (one patch)")
    _common(p)
    p.add_argument("pool", help="the IP pool, e.g. default-ipv4-ippool")
    p.add_argument("mode", help=MODES_HELP)
    p.add_argument("--yes", action="store_true", help="apply without asking")
    p.add_argument("--accept-crd-warning", action="store_true",
                   help="allow the last resort: patching the raw crd.projectcalico.org/v1 CRD")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the pool to show the mode")
    p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_set_mode)

    p = sub.add_parser("revert", help="undo a recorded pool change (the last one by default)")
    _common(p)
    p.add_argument("change_id", nargs="?", type=int)
    p.add_argument("--yes", action="store_true")
    p.add_argument("--timeout", type=float, default=90.0)
    p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_revert)
