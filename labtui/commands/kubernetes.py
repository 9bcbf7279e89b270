"""`labtui kubernetes NAME`: the Kubernetes stage's options for a lab, headless.

The stage itself runs with `labtui up NAME --from kubernetes --until calico`; this command sets
what it cannot guess and writes a kubeconfig for the user:

    labtui kubernetes lab1 --write-kubeconfig ~/.kube/lab1     # now (0600) if the cluster is built
    labtui kubernetes lab1 --calico-manifest ./calico.yaml --calico-install manifest
    labtui kubernetes lab1 --api-floating-ip 203.0.113.7        # an extra SAN on the API certificate
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from pathlib import Path
from typing import Any

from labtui.adapters.ssh import configure_session_ssh
from labtui.cluster.calico import edit_manifest
from labtui.commands.common import confirmer, print_event
from labtui.errors import LabError
from labtui.execute import Executor
from labtui.paths import session_dir
from labtui.session import LabSession
from labtui.stages.kubernetes import write_user_kubeconfig
from labtui.store import Store


def cmd_kubernetes(args: argparse.Namespace) -> int:
    store = Store()
    try:
        if not store.has_session(args.name):
            raise LabError(f"there is no lab named {args.name!r}", "list the labs with: labtui sessions", code="not-found")
        if args.revert:
            return _revert(store, args)
        values: dict[str, Any] = {}
        if args.calico_manifest is not None:
            if args.calico_manifest == "":
                values["calico_manifest"] = None
            else:
                p = Path(args.calico_manifest).expanduser().resolve()
                if not p.is_file():
                    raise LabError(f"--calico-manifest {args.calico_manifest}: no such file",
                                   "give the path of calico.yaml (or tigera-operator.yaml) you downloaded",
                                   code="calico-manifest")
                if args.calico_install == "manifest" or (args.calico_install is None and "calico-node" in p.read_text(errors="replace")
                                                         and "kind: Installation" not in p.read_text(errors="replace")):
                    edit_manifest(p.read_text(), "10.244.0.0/16", "IPIP")  # refuses a file that is not calico.yaml
                values["calico_manifest"] = str(p)
        if args.calico_install is not None:
            values["calico_install"] = args.calico_install
        if args.api_floating_ip is not None:
            try:
                values["api_floating_ip"] = str(ipaddress.ip_address(args.api_floating_ip)) if args.api_floating_ip else None
            except ValueError:
                raise LabError(f"--api-floating-ip {args.api_floating_ip!r} is not an IP address",
                               "give the floating IP the API is reached at, e.g. 203.0.113.7", code="bad-input") from None
        written = None
        if args.write_kubeconfig:
            values["write_kubeconfig"] = str(Path(args.write_kubeconfig).expanduser())
            src = session_dir(args.name, store.home) / "admin.conf"
            if src.exists():
                with LabSession(store, args.name) as lab:
                    written = write_user_kubeconfig(lab.ctx, values["write_kubeconfig"])
        if values:
            store.save_inputs(args.name, values)
        inputs = store.get_session(args.name).inputs
        shown = {k: inputs.get(k) for k in ("calico_install", "calico_manifest", "api_floating_ip", "write_kubeconfig")}
        if args.json:
            print(json.dumps({"lab": args.name, "options": shown, "kubeconfig_written": written}, indent=2, sort_keys=True))
            return 0
        for k, v in shown.items():
            print(f"{k}: {v if v is not None else '(default)'}")
        if written:
            print(f"Wrote the cluster's kubeconfig to {written} (0600): export KUBECONFIG={written}")
        elif args.write_kubeconfig:
            print(f"The cluster is not built yet: the kubeconfig is written to {values['write_kubeconfig']} by the "
                  f"Kubernetes stage's last step (labtui up {args.name} --from kubernetes)")
        return 0
    finally:
        store.close()


def _revert(store, args: argparse.Namespace) -> int:
    """Undo the cluster build's recorded changes (kube.*), newest first, naming what cannot be undone."""
    with LabSession(store, args.name, emit=print_event) as lab:
        changes = [c for c in store.changes(lab.record.id) if c.kind.startswith("kube.") and not c.reverted]
        if args.revert == "last":
            changes = changes[-1:]
        if not changes:
            print(f"The lab {args.name} has no cluster-build change to revert.")
            return 0
        if lab.ctx.plan is not None and lab.ctx.plan.nodes:
            configure_session_ssh(lab.ctx, headless=True, connect_timeout=8.0)
        done, failed = Executor(lab.ctx, step="revert", confirm=confirmer(args.yes, verb="Revert")).revert(
            changes, keep_going=True)
    if not done and failed and all(why == "not confirmed" for _, why in failed):
        print("Nothing was reverted (not confirmed).")
        return 1
    for c in done:
        print(f"reverted #{c.id}: {c.description}")
    for c, why in failed:
        print(f"not reverted #{c.id}: {c.description}: {why}")
    return 0 if not failed else 1


def register(sub: Any) -> None:
    p = sub.add_parser("kubernetes", help="the Kubernetes stage's options for a lab; write a kubeconfig for you",
                       description="Sets what the Kubernetes and Calico-install steps cannot guess; the stages run "
                                   "with `labtui up NAME --from kubernetes --until calico`.")
    p.add_argument("name", help="the lab")
    p.add_argument("--write-kubeconfig", metavar="PATH", help="write the cluster's admin kubeconfig there (0600)")
    p.add_argument("--calico-manifest", metavar="FILE",
                   help="upload this file instead of downloading Calico on the control plane (no internet there); "
                        "'' to forget it")
    p.add_argument("--calico-install", choices=["operator", "manifest"], help="install Calico through the operator "
                                                                             "(default) or as calico.yaml")
    p.add_argument("--api-floating-ip", metavar="IP", help="an address the API certificate must also be valid for")
    p.add_argument("--revert", choices=["last", "all"], help="undo the cluster build's recorded changes, newest "
                                                            "first (Calico deleted, kubeadm reset, packages removed...)")
    p.add_argument("--yes", action="store_true", help="with --revert: do it without asking")
    p.add_argument("--json", action="store_true", help="the result as JSON")
    p.set_defaults(func=cmd_kubernetes)
