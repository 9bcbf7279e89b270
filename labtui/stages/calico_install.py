"""The Calico stage's first step: install Calico with the plan's version, pod CIDR and
encapsulation (through the operator by default, or as calico.yaml), then wait for calico-node
Ready on every node, reporting a pod stuck in ImagePullBackOff or CrashLoopBackOff with its reason.

Skipped on a cluster labtui did not build (a kubeconfig the user named): the existing steps read
whatever Calico is there."""

from __future__ import annotations

import time
from typing import Any

from labtui.changes.kube import CALICO_DIR, KUBECTL, calico_installed, calico_pods, cluster_nodes
from labtui.cluster import calico
from labtui.cluster.apt import proxy_settings
from labtui.errors import LabError
from labtui.paths import session_dir
from labtui.stages.nodes import saved_plan
from labtui.steps import Action, CheckResult, InputField, Risk, Step, StepContext

STUCK = ("ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError", "InvalidImageName")



def calico_files(ctx: StepContext) -> tuple[str, list[dict[str, Any]]]:
    """(mode, files) the install applies, in order."""
    from pathlib import Path


    plan = saved_plan(ctx)
    mode = ctx.inputs.get("calico_install") or "operator"
    local = ctx.inputs.get("calico_manifest")
    if local:
        p = Path(local).expanduser()
        if not p.is_file():
            raise LabError(f"the Calico manifest {p} does not exist", "give the path of a file you downloaded "
                           "(calico.yaml, or tigera-operator.yaml for the operator)", code="calico-manifest")
    if mode == "manifest":
        item: dict[str, Any] = {"name": "calico.yaml", "edit": True}
        if local:
            text = Path(local).expanduser().read_text()
            item["content"] = calico.edit_manifest(text, plan.pod_cidr, plan.encapsulation)
            item.pop("edit")
        else:
            item["url"] = calico.manifest_url(plan.calico, "calico.yaml", plan.sources.calico_manifests)
        return mode, [item]
    if mode != "operator":
        raise LabError(f"{mode!r} is not a Calico install mode", "choose operator or manifest", code="calico-install")
    files: list[dict[str, Any]] = []
    if local:
        files.append({"name": Path(local).name, "local": str(Path(local).expanduser())})
    else:
        files += [{"name": u.rsplit("/", 1)[-1], "url": u}
                  for u in calico.operator_manifests(plan.calico, plan.sources.calico_manifests)]
    files.append({"name": "installation.yaml", "content": calico.installation(plan.pod_cidr, plan.encapsulation)})
    return mode, files


def calico_status(ctx: StepContext) -> tuple[bool, str, list[str]]:
    """(all Ready, detail, stuck pods described)."""
    plan = saved_plan(ctx)
    cp = plan.control_plane.name
    pods = calico_pods(ctx, cp)
    nodes = cluster_nodes(ctx, cp)
    by_node = {p["node"]: p for p in pods}
    stuck = [f"{p['node']}: {p['namespace']}/{p['pod']} {p['reason']}" + (f" ({p['message']})" if p["message"] else "")
             for p in pods if p["reason"] in STUCK]
    missing = [n for n in nodes if n not in by_node]
    unready = [n for n, p in by_node.items() if not p["ready"]]
    not_ready_nodes = [n for n, r in nodes.items() if not r]
    if not nodes:
        return False, "no nodes", stuck
    if missing or unready or not_ready_nodes:
        parts = []
        if missing:
            parts.append("no calico-node on " + ", ".join(sorted(missing)))
        if unready:
            parts.append("calico-node not Ready on " + ", ".join(sorted(unready)))
        if not_ready_nodes:
            parts.append("NotReady: " + ", ".join(sorted(not_ready_nodes)))
        return False, "; ".join(parts), stuck
    return True, f"calico-node Ready and every node Ready ({len(nodes)})", stuck


class CalicoInstallStep(Step):
    id = "calico-install"
    title = "Install Calico"
    why = (
        "Calico gives pods their addresses and carries their traffic between nodes. labtui installs the\n"
        "plan's version with the plan's pod CIDR and encapsulation: through the tigera-operator (an\n"
        "Installation whose pool has the CIDR, the encapsulation and natOutgoing), or as calico.yaml\n"
        "(CALICO_IPV4POOL_CIDR, CALICO_IPV4POOL_IPIP / _VXLAN, the backend, no BIRD probes without BIRD).\n"
        "The files are fetched on the\n"
        "control plane from Calico's release, or uploaded from a file you give when it has no internet.\n"
        "Then it waits for calico-node Ready on every node and reports a pod that cannot start."
    )
    hint = "read the reason given for each stuck pod (an image that cannot be pulled: the nodes need internet " \
           "access or a registry mirror), fix it, then run the step again"
    fields = [
        InputField("calico_install", "Install Calico", kind="choice", default="operator", required=False,
                   choices=[("operator", "through the tigera-operator (recommended)"), ("manifest", "as calico.yaml")]),
        InputField("calico_manifest", "Manifest file to upload (empty: download on the control plane)", kind="path",
                   required=False, help="for a cloud without internet access"),
    ]

    def _applies(self, ctx: StepContext) -> bool:
        """Only on a cluster the Kubernetes stage built (its kubeadm init step is done)."""
        plan = ctx.plan
        if plan is None or not plan.nodes or ctx.inputs.get("kubeconfig"):
            return False
        run = ctx.store.step_states(ctx.session.id, "kubernetes").get("kubeadm-init")
        return run is not None and run.state == "done"

    def _why_not(self, ctx: StepContext) -> str:
        """Why the step does not apply: a cluster labtui did not build (a kubeconfig of yours, or a cluster
        reached without the Kubernetes stage), or a Kubernetes stage that has not run (or not finished) yet."""
        plan = ctx.plan
        not_built = "the cluster was not built by labtui's Kubernetes stage: Calico is read as it is"
        if plan is None or not plan.nodes or ctx.inputs.get("kubeconfig"):
            return not_built
        runs = ctx.store.step_states(ctx.session.id, "kubernetes")
        if not runs and (session_dir(ctx.session.name, ctx.store.home) / "admin.conf").exists():
            return not_built  # a cluster reached over SSH (Kubernetes API access) that labtui did not make
        run = runs.get("kubeadm-init")
        when = ("the Kubernetes stage has not run yet" if not runs
                else "the Kubernetes stage is not finished yet (kubeadm init is not done)"
                if run is None or run.state != "done" else "")
        return (f"{when}: labtui installs Calico on the cluster that stage builds, so run it first (for a cluster "
                "you already have, Calico is read as it is)")

    def check(self, ctx: StepContext) -> CheckResult:
        if not self._applies(ctx):
            return CheckResult(False, self._why_not(ctx), skip=True)
        cp = saved_plan(ctx).control_plane.name
        try:
            mode = calico_installed(ctx, cp)
            if mode is None:
                return CheckResult(False, "Calico is not installed")
            ok, detail, stuck = calico_status(ctx)
        except LabError as exc:
            return CheckResult(False, exc.render())
        if stuck:
            return CheckResult(False, "stuck: " + "; ".join(stuck), {"stuck": stuck})
        return CheckResult(ok, f"Calico installed ({mode}); {detail}", {"mode": mode})

    def plan(self, ctx: StepContext) -> list[Action]:
        plan = saved_plan(ctx)
        cp = plan.control_plane.name
        actions: list[Action] = []
        if calico_installed(ctx, cp) is None:
            import shlex


            proxy = proxy_settings(plan)
            mode, files = calico_files(ctx)
            lines = []
            verb = "create" if mode == "operator" else "apply"
            for f in files:
                dest = f"{CALICO_DIR}/{f['name']}"
                if f.get("url"):
                    lines.append(f"ssh {cp} sudo curl -fsSL {shlex.quote(f['url'])} -o {dest}"
                                 + ("   # through the plan's proxy" if proxy else ""))
                    if f.get("edit"):
                        lines.append(f"# labtui sets CALICO_IPV4POOL_CIDR={plan.pod_cidr} and the "
                                     f"{plan.encapsulation.value} modes in {dest}")
                elif f.get("local"):
                    lines.append(f"scp {f['local']} {cp}:{dest}")
                else:
                    lines.append(f"ssh {cp} sudo tee {dest} <<'EOF'\n{f['content'].strip()}\nEOF")
            lines += [f"ssh {cp} 'sudo {KUBECTL} {verb} -f {CALICO_DIR}/{f['name']}'" for f in files]
            actions.append(Action(
                id="calico-install", title=f"Install Calico {plan.calico} ({mode}, {plan.encapsulation.value}, "
                                           f"{plan.pod_cidr})", kind="ssh", target=cp, risk=Risk.CHANGE,
                change="kube.calico-install", command="\n".join(lines),
                revert=f"ssh {cp} 'sudo {KUBECTL} delete -f {CALICO_DIR}/…' (each file, newest first)",
                data={"node": cp, "mode": mode, "files": files, "pod_cidr": plan.pod_cidr, "proxy": proxy,
                      "encapsulation": plan.encapsulation.value, "step": self.id}))
        actions.append(Action(id="wait-calico", title="Wait for calico-node Ready on every node", kind="ssh",
                              target=cp, risk=Risk.READ, run=self._wait,
                              command=f"ssh {cp} 'sudo {KUBECTL} get pods -A -l k8s-app=calico-node -o wide --watch'"))
        return actions

    def _wait(self, ctx: StepContext, action: Action) -> dict[str, Any]:
        deadline = time.monotonic() + ctx.tuning.calico_wait
        last = ""
        while True:
            ok, detail, stuck = calico_status(ctx)
            if ok:
                return {"detail": detail}
            if stuck and time.monotonic() > deadline - ctx.tuning.calico_wait / 2:
                raise LabError("calico-node cannot start: " + "; ".join(stuck), self.hint, code="calico-stuck")
            if time.monotonic() > deadline:
                raise LabError(f"calico-node not Ready after {ctx.tuning.calico_wait:.0f} s: {detail}"
                               + ("; stuck: " + "; ".join(stuck) if stuck else ""), self.hint, code="calico-timeout")
            if detail != last:
                ctx.info(f"waiting: {detail}" + ("; " + "; ".join(stuck) if stuck else ""), step=self.id)
                last = detail
            if ctx.cancel.wait(ctx.tuning.calico_poll):
                raise LabError("stopped by the user", "run the step again", code="cancelled")
