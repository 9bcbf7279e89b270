"""`labtui cloud ...`: check and fix a lab's security groups and node ports on OpenStack.

    labtui cloud check NAME [--json] [--cloud CLOUD] [--encapsulation E] [--bgp|--no-bgp] [--typha|--no-typha]
    labtui cloud fix NAME [--yes] [--only REQ ...] [--disable-port-security NODE ...]
    labtui cloud revert NAME [CHANGE_ID ...] [--yes]

NAME is a lab (with a plan: its nodes and cloud). `check` exits 0 when every requirement is met,
1 when some are missing or suspicious. Progress and every API call go to stderr; results to stdout.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from labtui.adapters.openstack import session_cloud
from labtui.commands.common import confirmer, print_event
from labtui.errors import LabError
from labtui.execute import Executor
from labtui.session import LabSession
from labtui.stages.cloud import check, plan_fixes
from labtui.store import Store

STATUS_ICON = {"satisfied": "✓", "missing": "✗", "suspicious": "!"}


def _open(args: argparse.Namespace):
    store = Store()
    if not store.has_session(args.name):
        raise LabError(f"there is no lab named {args.name!r}",
                       "list them with `labtui sessions`; for machines labtui did not build, create one with "
                       "`labtui doctor NAME --adopt --nodes cp=ADDR,w1=ADDR --cloud CLOUD`", code="not-found")
    return LabSession(store, args.name, emit=print_event)


def _remember_cloud(lab, args: argparse.Namespace) -> None:
    """--cloud is saved into the lab only once it worked (a failed command saves nothing)."""
    if getattr(args, "cloud", None) and lab.ctx.inputs.get("cloud") != args.cloud:
        lab.store.save_inputs(lab.name, {"cloud": args.cloud})
        lab.store.update_session(lab.name, cloud=args.cloud)
        lab.ctx.reload()


def _check(lab, args: argparse.Namespace):
    report = check(lab.ctx, cloud=getattr(args, "cloud", None), encapsulation=getattr(args, "encapsulation", None),
                   bgp=getattr(args, "bgp", None), typha=getattr(args, "typha", None),
                   timeout=getattr(args, "timeout", None))
    _remember_cloud(lab, args)
    return report


def render_report(report) -> str:
    out: list[str] = []
    lab = report.lab
    out.append(f"Cloud {lab.cloud}: {report.networking.describe()}" +
               (f", pod CIDR {report.networking.pod_cidr}" if report.networking.pod_cidr else ""))
    for note in lab.notes:
        out.append(f"! {note}")
    groups = lab.groups_by_id
    out.append("")
    out.append("NODES")
    out.append(f"  {'NODE':10} {'ROLE':14} {'SERVER':14} {'PORT':22} {'FIXED IP':16} {'SUBNET':18} {'SECURITY':9} "
               f"{'GROUPS':18} PAIRS")
    for n in lab.nodes:
        if not n.found:
            out.append(f"  {n.name:10} {n.role:14} -- {n.note}")
            continue
        p = n.port
        if p is None:
            out.append(f"  {n.name:10} {n.role:14} {n.server_name or '-':14} -- {n.note or 'no port'}")
            continue
        gnames = ",".join(groups[g].label if g in groups else g[:8] for g in p.security_group_ids) or "-"
        pairs = ",".join(a.get("ip_address", "") for a in p.allowed_address_pairs) or "-"
        out.append(f"  {n.name:10} {n.role:14} {n.server_name or '(no server)':14} {p.label[:22]:22} {n.ip or '?':16} "
                   f"{p.subnet_cidr or '?':18} {'on' if p.port_security_enabled else 'OFF':9} {gnames[:18]:18} {pairs}")
    out.append("")
    out.append("RULES")
    for g in lab.groups:
        out.append(f"  group {g.label} ({g.id})")
        for r in g.rules:
            flag = "  ! protocol 'ipip' (see below)" if r.protocol == "ipip" else ""
            out.append(f"    {r.describe(groups)}{flag}")
    out.append("")
    out.append("REQUIREMENTS")
    for s in report.statuses:
        r = s.requirement
        out.append(f"  {STATUS_ICON[s.status]} {s.status:10} {r.title}   (required by {r.required_by})")
        if not s.ok:
            out.append(f"      {s.detail}")
            for f in s.fixes:
                out.append(f"      fix: $ {f.command()}" + (f"   [cannot: {f.blocked}]" if getattr(f, "blocked", None) else ""))
        elif s.via:
            out.append(f"      {s.detail}")
    out.append("")
    out.append(("OK: " if report.ok else "NOT OK: ") + report.summary())
    return "\n".join(out)


def session_cloud_check(lab, args: argparse.Namespace) -> None:
    """Connect (to --cloud when given) before reverting, so a wrong cloud fails before anything runs."""
    session_cloud(lab.ctx, getattr(args, "cloud", None), getattr(args, "timeout", None))
    _remember_cloud(lab, args)


def cmd_check(args: argparse.Namespace) -> int:
    with _open(args) as lab:
        report = _check(lab, args)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str))
        else:
            print(render_report(report))
    return 0 if report.ok else 1


def cmd_fix(args: argparse.Namespace) -> int:
    with _open(args) as lab:
        report = _check(lab, args)
        actions = plan_fixes(report, args.only or None, args.disable_port_security or None)
        if not actions:
            if report.ok:
                print(f"Nothing to fix: {report.summary()}")
                return 0
            print(render_report(report))
            print("labtui has no automatic fix for what is left (see the details above).")
            return 1
        execution = Executor(lab.ctx, step="fix", confirm=confirmer(args.yes)).run(actions)
        if not execution.confirmed:
            print("not applied")
            return 1
        print(f"Applied: {execution.summary()}")
        lab.ctx.memo.pop("cloud_report")
        after = _check(lab, args)
        recorded = [c for c in lab.store.changes(lab.record.id) if c.kind.startswith("openstack.") and not c.reverted]
        print(f"After the fixes: {after.summary()}")
        if recorded:
            print(f"Recorded changes: {', '.join('#' + str(c.id) for c in recorded)} "
                  f"(undo with: labtui cloud revert {args.name} [CHANGE_ID])")
        return 0 if after.ok else 1


def cmd_revert(args: argparse.Namespace) -> int:
    with _open(args) as lab:
        changes = [c for c in lab.store.changes(lab.record.id) if c.kind.startswith("openstack.") and not c.reverted]
        if args.change_ids:
            wanted = set(args.change_ids)
            unknown = wanted - {c.id for c in changes}
            if unknown:
                raise LabError(f"the lab {args.name} has no OpenStack change left to revert with id "
                               f"{', '.join('#' + str(i) for i in sorted(unknown))}",
                               f"see its changes with `labtui show {args.name}`", code="not-found")
            changes = [c for c in changes if c.id in wanted]
        if not changes:
            print(f"The lab {args.name} has no OpenStack change to revert.")
            return 0
        session_cloud_check(lab, args)
        done, refused = Executor(lab.ctx, step="revert", confirm=confirmer(args.yes, verb="Revert")).revert(changes)
        if not done and refused:
            print("not applied")
            return 1
        print(f"Reverted: {', '.join('#' + str(c.id) for c in done)}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the lab")
    p.add_argument("--cloud", help="the cloud in clouds.yaml (default: the lab's)")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for each API call (default 20)")


def _networking(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encapsulation", choices=["IPIP", "IPIPCrossSubnet", "VXLAN", "VXLANCrossSubnet", "None"],
                   help="check for this Calico encapsulation (default: the lab's target)")
    p.add_argument("--bgp", dest="bgp", action="store_true", default=None, help="Calico runs BGP (BIRD)")
    p.add_argument("--no-bgp", dest="bgp", action="store_false")
    p.add_argument("--typha", dest="typha", action="store_true", default=None, help="Calico runs Typha")
    p.add_argument("--no-typha", dest="typha", action="store_false")


def register(subparsers: Any) -> None:
    cloud = subparsers.add_parser("cloud", help="OpenStack: check and fix the lab's security groups and ports")
    sub = cloud.add_subparsers(dest="cloud_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("check", help="nodes, ports, groups and rules against what Calico and kubeadm need")
    _common(p)
    _networking(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("fix", help="create the missing rules and add the pod CIDR to the ports (asks first)")
    _common(p)
    _networking(p)
    p.add_argument("--yes", action="store_true", help="apply without asking")
    p.add_argument("--only", nargs="+", metavar="REQ", help="fix only these requirements (ids as in `check --json`)")
    p.add_argument("--disable-port-security", nargs="+", metavar="NODE",
                   help="also turn port security off on these nodes' ports (last resort: removes their groups)")
    p.set_defaults(func=cmd_fix)

    p = sub.add_parser("revert", help="undo recorded OpenStack changes (newest first)")
    _common(p)
    p.add_argument("change_ids", nargs="*", type=int, metavar="CHANGE_ID", help="default: all of this lab's")
    p.add_argument("--yes", action="store_true", help="apply without asking")
    p.set_defaults(func=cmd_revert)
