"""The Calico stage: reach the API, read Calico, set the pool encapsulation this cloud needs, and
see calico-node Ready on every node. Cheap to import: the adapter is imported inside the steps."""

from __future__ import annotations

import time
from typing import Any

from labtui.adapters.calico import plan_change, read_cluster
from labtui.adapters.kube import kube_for
from labtui.adapters.kubeconfig import control_plane_shell
from labtui.changes.calico import pool_action
from labtui.errors import LabError
from labtui.model import ENCAPSULATION_CHOICES, Encapsulation, Role
from labtui.model import target_encapsulation as target
from labtui.stages.calico_install import CalicoInstallStep
from labtui.steps import Action, CheckResult, InputField, Risk, Step, StepContext, Wizard


def _kube(ctx: StepContext, refresh: bool = False, fetch: bool = False):
    """The session's client. Checks never fetch admin.conf (they only read); the first step's action does."""
    return kube_for(ctx, ctx.inputs.get("kubeconfig") or None, refresh=refresh, fetch=fetch or refresh)


def remember_state(ctx: StepContext, state) -> None:
    """The cluster's Calico state as session facts (scope "calico"; no secrets in it), shared by the
    stage, `labtui calico show` and the Calico screen."""
    data = state.to_dict()
    ctx.store.put_facts(ctx.session.id, "calico", {
        "server": data["server"], "kubernetes_version": data["kubernetes_version"], "install": data["install"],
        "pools": data["pools"], "nodes": data["nodes"], "node_subnets": data["node_subnets"],
        "warnings": data["warnings"],
    })
    ctx.memo.calico_state = state


def _read(ctx: StepContext):
    state = read_cluster(_kube(ctx))
    remember_state(ctx, state)
    return state


def target_encapsulation(ctx: StepContext) -> Encapsulation:
    """What this stage sets the pools to (labtui.model.target_encapsulation): its own choice, else the
    plan's. Not the live cluster's: that is what this stage may change."""
    try:
        plan = ctx.plan
        planned = plan.encapsulation if plan else None
    except (ValueError, LabError):  # a saved plan that does not validate: the value it holds still says what was planned
        planned = (ctx.session.plan or {}).get("encapsulation")
    return target(stage_choice=ctx.inputs.get("calico_encapsulation"), planned=planned,
                  wizard=ctx.inputs.get("encapsulation"))


class KubeAccessStep(Step):
    id = "kube-access"
    title = "Reach the Kubernetes API"
    expect = "Kubernetes v1.xx at https://ADDRESS:6443, reached directly or through an SSH tunnel."
    by_hand = "ssh CONTROL_PLANE sudo cat /etc/kubernetes/admin.conf > admin.conf && chmod 600 admin.conf\nkubectl --kubeconfig admin.conf version"
    glossary = ("kubeconfig",)
    why = (
        "labtui reads and changes Calico through the Kubernetes API, with the cluster's admin kubeconfig.\n"
        "It fetches /etc/kubernetes/admin.conf from the control plane over SSH (kept as a 0600 file in\n"
        "this lab's directory, never in the database or the log), or uses a kubeconfig you name. When\n"
        "the API address is private, labtui goes through an SSH tunnel via the control plane."
    )
    fields = [
        InputField("kubeconfig", "Kubeconfig file (empty: fetch admin.conf from the control plane)", kind="path",
                   required=False, help="for a cluster labtui did not build"),
    ]

    def check(self, ctx: StepContext) -> CheckResult:
        try:
            kc = _kube(ctx)
            version = kc.version().get("gitVersion", "?")
        except LabError as exc:
            return CheckResult(False, exc.render())
        return CheckResult(True, f"Kubernetes {version} at {kc.server} ({kc.via})",
                           {"server": kc.server, "via": kc.via, "kubernetes": version})

    def plan(self, ctx: StepContext) -> list[Action]:
        if ctx.inputs.get("kubeconfig"):
            return [Action(id="use-kubeconfig", title="Use the kubeconfig you named", kind="local", risk=Risk.READ,
                           command=f"export KUBECONFIG={ctx.inputs['kubeconfig']}",
                           run=lambda c, a: _kube(c, refresh=True).version())]
        plan = ctx.plan
        cp = next((n.name for n in (plan.nodes if plan else []) if n.role == Role.CONTROL_PLANE), "CONTROL_PLANE")
        return [Action(id="fetch-admin-conf", title="Fetch the admin kubeconfig from the control plane", kind="ssh",
                       risk=Risk.LOCAL, target=cp,
                       command=f"ssh {cp} 'sudo -n cat /etc/kubernetes/admin.conf' > admin.conf (0600, not shown)",
                       run=lambda c, a: _kube(c, refresh=True).version())]


class CalicoReadStep(Step):
    id = "calico-read"
    title = "Read Calico's state"
    expect = "Calico 3.x, operator or manifest install, and each IP pool with its ipipMode and vxlanMode."
    by_hand = "kubectl get installation default -o yaml   # operator installs\nkubectl get ippools -o wide   # or: calicoctl get ippool -o wide"
    glossary = ("IP pool", "CrossSubnet", "BGP")
    why = (
        "How Calico was installed decides how to change it safely: an operator install is changed through\n"
        "its Installation (the operator reverts direct edits of its pools), a manifest install through the\n"
        "Calico API or calicoctl. labtui also reads the backend (BGP or not), the pools and the node subnets\n"
        "Calico sees, which decide what CrossSubnet really does on this cluster."
    )

    def check(self, ctx: StepContext) -> CheckResult:
        try:
            state = _read(ctx)
        except LabError as exc:
            return CheckResult(False, exc.render())
        if state.install.mode not in ("operator", "manifest"):
            return CheckResult(False, state.install.describe())
        return CheckResult(True, state.install.describe(), {"pools": [p.name for p in state.pools]})

    def plan(self, ctx: StepContext) -> list[Action]:
        state = ctx.memo.calico_state or _read(ctx)
        if state.install.mode == "other":
            raise LabError(f"this cluster runs {state.install.cni}, not Calico",
                           "labtui's Calico stage applies to Calico clusters only")
        raise LabError("Calico is not installed on this cluster (no calico-node DaemonSet, no Installation)",
                       "install Calico (operator: tigera-operator.yaml then custom-resources.yaml with your pod CIDR "
                       "and encapsulation), then run this step again")


def _pools_to_change(state, target: Encapsulation):
    out = []
    for p in state.pools:
        if p.disabled or p.version != 4 or p.load_balancer:
            continue
        if (p.ipip_mode, p.vxlan_mode) != target.pool_modes:
            out.append(p)
    return out


class EncapsulationStep(Step):
    id = "encapsulation"
    title = "Pool encapsulation for this cloud"
    why = (
        "On OpenStack, Neutron drops packets whose source is not the port's own address. Pod traffic\n"
        "must therefore be encapsulated between the nodes (IPIP Always: protocol 4; VXLAN Always: UDP\n"
        "4789), or every port must allow the pod CIDR. CrossSubnet encapsulates only between subnets:\n"
        "with all nodes on one subnet it sends everything unencapsulated, and anti-spoofing drops it."
    )
    expect = "Every enabled IPv4 pool shows IPIPMODE Always (or the mode you chose) and VXLANMODE Never."
    by_hand = "calicoctl get ippool -o wide\ncalicoctl patch ippool default-ipv4-ippool -p '{\"spec\": {\"ipipMode\": \"Always\", \"vxlanMode\": \"Never\"}}'"
    glossary = ("IPIP", "VXLAN", "CrossSubnet", "anti-spoofing", "IP pool")
    fields = [
        InputField("calico_encapsulation", "Encapsulation", kind="choice", default=Encapsulation.IPIP.value,
                   choices=[(c.value.value, c.label) for c in ENCAPSULATION_CHOICES],
                   help="the plan's choice unless you change it here", required=False),
    ]

    def check(self, ctx: StepContext) -> CheckResult:
        try:
            state = _read(ctx)
        except LabError as exc:
            return CheckResult(False, exc.render())
        target = target_encapsulation(ctx)
        wrong = _pools_to_change(state, target)
        if not any(p.version == 4 and not p.disabled for p in state.pools):
            return CheckResult(False, "no enabled IPv4 pool")
        if wrong:
            return CheckResult(False, "; ".join(f"{p.name} is {p.mode_label}" for p in wrong) + f", the plan wants {target.value}")
        return CheckResult(True, f"every enabled IPv4 pool is {target.value}")

    def plan(self, ctx: StepContext) -> list[Action]:
        state = ctx.memo.calico_state or _read(ctx)
        kc = _kube(ctx)
        target = target_encapsulation(ctx)
        shell = control_plane_shell(ctx)
        # the confirmation shows the change (and, for the raw CRD, its warning in red): accepting it
        # there is the consent the warning asks for
        return [pool_action(plan_change(kc, state, pool.name, target, shell=shell), accept_warning=True, shell=shell,
                            state=state)
                for pool in _pools_to_change(state, target)]


class CalicoReadyStep(Step):
    id = "calico-ready"
    title = "calico-node Ready on every node"
    expect = "calico-node Ready on every node (READY 1/1 in kubectl get pods)."
    by_hand = "kubectl get pods -n calico-system -l k8s-app=calico-node -o wide   # kube-system for manifest installs"
    glossary = ()
    why = (
        "calico-node programs the routes and tunnels on each node. A node without a Ready calico-node\n"
        "cannot reach pods elsewhere, whatever the encapsulation."
    )
    wait_seconds = 300.0

    def _status(self, ctx: StepContext) -> tuple[bool, str]:
        state = _read(ctx)
        missing = [n.name for n in state.nodes if n.calico_pod is None]
        unready = [n.name for n in state.nodes if n.calico_pod is not None and not n.calico_pod.ready]
        if not state.nodes:
            return False, "no nodes"
        if missing or unready:
            parts = []
            if missing:
                parts.append("no calico-node on " + ", ".join(missing))
            if unready:
                parts.append("calico-node not Ready on " + ", ".join(unready))
            return False, "; ".join(parts)
        return True, f"calico-node Ready on all {len(state.nodes)} nodes"

    def check(self, ctx: StepContext) -> CheckResult:
        try:
            ok, detail = self._status(ctx)
        except LabError as exc:
            return CheckResult(False, exc.render())
        return CheckResult(ok, detail)

    def plan(self, ctx: StepContext) -> list[Action]:
        def wait(c: StepContext, a: Action) -> dict[str, Any]:
            deadline = time.monotonic() + self.wait_seconds
            while True:
                ok, detail = self._status(c)
                if ok or time.monotonic() > deadline:
                    return {"detail": detail}
                c.info(f"waiting: {detail}")
                if c.cancel.wait(5.0):
                    raise LabError("stopped by the user", "run the step again")

        return [Action(id="wait-calico-node", title="Wait for calico-node", kind="kube", risk=Risk.READ,
                       command="kubectl get pods -A -l k8s-app=calico-node -o wide --watch", run=wait)]


def build() -> Wizard:
    return Wizard("calico", "Calico", [CalicoInstallStep(), KubeAccessStep(), CalicoReadStep(), EncapsulationStep(), CalicoReadyStep()])
