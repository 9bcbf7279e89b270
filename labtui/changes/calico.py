"""Calico IP pool encapsulation, through each supported path (the operator's Installation, the
projectcalico.org/v3 API, calicoctl on the control plane, or the raw v1 CRD after an accepted
warning): one request setting ipipMode and vxlanMode together, then wait until the pool shows it.

`pool_action(change)` is the Action for a planned `net.modechange.ModeChange`; the executor runs it.
The one-call forms for a caller that has already shown the exact change to the user (a screen's
modal, a command's --yes) run it through the executor: labtui.pool_change (above the executor).
"""

from __future__ import annotations

from labtui.adapters.calico import Calico
from labtui.adapters.interfaces import CalicoAPI, Shell
from labtui.adapters.kube import kube_for
from labtui.adapters.kubeconfig import control_plane_shell
from labtui.changes import Applied, AppliedThenFailed, ChangeKind, register
from labtui.errors import LabError
from labtui.model import Encapsulation
from labtui.net.calico import ClusterState, IPPoolInfo
from labtui.net.modechange import ApiCall, ModeChange
from labtui.steps import Action, Risk, StepContext
from labtui.store import Change


def pool_action(change: ModeChange, *, accept_warning: bool = False, shell: Shell | None = None,
                state: ClusterState | None = None, wait_timeout: float | None = None,
                poll: float | None = None) -> Action:
    """The Action for one ModeChange (command, API request, revert; a warning makes it destructive)."""
    return Action(
        id=f"pool-{change.pool}", title=change.description, command=change.command, kind="kube",
        target=f"ippool/{change.pool}", risk=Risk.DESTRUCTIVE if change.warning else Risk.CHANGE,
        revert=change.revert_command, api=change.api.render() if change.api else None, change="calico.pool-mode",
        data={"change": change, "render": change.render(), "warning": change.warning, "accept_warning": accept_warning, "shell": shell,
              "state": state, "wait_timeout": wait_timeout, "poll": poll})


def calico_for(ctx: StepContext) -> CalicoAPI:
    """The Calico side of the lab's cluster (through the session's Kubernetes client)."""
    return Calico(kube_for(ctx, ctx.inputs.get("kubeconfig") or None))


def _shell(ctx: StepContext, given: Shell | None = None) -> Shell | None:
    if given is not None:
        return given
    return control_plane_shell(ctx)


def change_from_record(record: Change) -> ModeChange:
    """The ModeChange that undoes a recorded calico.pool-mode change."""
    data = record.revert_data or {}
    ra = data.get("revert_api")
    return ModeChange(
        pool=data["pool"], cidr=data.get("cidr", "?"), method=data["method"],
        old=Encapsulation(data["old"]), new=Encapsulation(data["new"]),
        old_modes=(data["ipipMode"], data["vxlanMode"]), new_modes=Encapsulation(data["new"]).pool_modes,
        command=record.command, revert_command=record.revert_command or "",
        revert_api=ApiCall(**ra) if ra else None,
        revert_remote_command=data.get("revert_remote_command"),
        installation_index=data.get("installation_index"),
    )


@register
class PoolMode(ChangeKind):
    kind = "calico.pool-mode"
    layer = "calico"

    def applied(self, ctx: StepContext, action: Action) -> bool | None:
        """The live pool already shows the wanted modes (read now: a plan made from an older read,
        or a change applied meanwhile from another screen, must not be applied twice)."""
        change: ModeChange = action.data["change"]
        if change.noop:
            return True
        calico = calico_for(ctx)
        state = action.data.get("state") or ctx.memo.calico_state or calico.read_cluster()
        seen = calico.read_pool(state, change.pool)
        return seen is not None and (seen.ipip_mode, seen.vxlan_mode) == change.new_modes

    def run(self, ctx: StepContext, action: Action) -> Applied:
        change: ModeChange = action.data["change"]
        d = action.data
        calico = calico_for(ctx)
        state = d.get("state") or ctx.memo.calico_state or calico.read_cluster()
        accept = bool(d.get("accept_warning"))
        try:
            seen = calico.apply_change(state, change, shell=_shell(ctx, d.get("shell")), accept_warning=accept,
                                emit=ctx.emit, wait_timeout=float(d.get("wait_timeout") or ctx.tuning.calico_wait),
                                poll=float(d.get("poll") or ctx.tuning.calico_poll))
        except LabError as exc:
            if change.sent:  # it reached the cluster (the wait failed): recorded with its revert all the same
                raise AppliedThenFailed(exc, Applied(True, change.revert_data(), target=f"ippool/{change.pool}")) from exc
            raise
        finally:
            ctx.memo.calico_state = None
        return Applied(True, change.revert_data(), result=seen, target=f"ippool/{change.pool}")

    def verify(self, ctx: StepContext, action: Action, applied: Applied) -> str | None:
        seen: IPPoolInfo | None = applied.result
        want = action.data["change"].new_modes
        if seen is not None and (seen.ipip_mode, seen.vxlan_mode) != want:
            return f"IP pool {seen.name} shows ipipMode {seen.ipip_mode}, vxlanMode {seen.vxlan_mode}"
        return None

    def revert(self, ctx: StepContext, change: Change) -> str:
        mode = change_from_record(change)
        calico = calico_for(ctx)
        calico.apply_change(calico.read_cluster(), mode, shell=_shell(ctx), accept_warning=True, emit=ctx.emit,
                     wait_timeout=float(ctx.tuning.calico_wait), poll=float(ctx.tuning.calico_poll), revert=True)
        ctx.memo.calico_state = None
        return f"IP pool {mode.pool} back to {mode.old.value}"
