"""Calico IP pool encapsulation, through each supported path (the operator's Installation, the
projectcalico.org/v3 API, calicoctl on the control plane, or the raw v1 CRD after an accepted
warning): one request setting ipipMode and vxlanMode together, then wait until the pool shows it.

`pool_action(change)` is the Action for a planned `net.modechange.ModeChange`; the executor runs it.
`set_pool_mode(...)` and `revert_pool_change(...)` are the one-call forms for a caller that has
already shown the exact change to the user (a screen's modal, a command's --yes).
"""

from __future__ import annotations

from typing import Any

from labtui.changes import Applied, AppliedThenFailed, ChangeKind, register
from labtui.errors import LabError
from labtui.steps import Action, Risk


def pool_action(change: Any, *, accept_warning: bool = False, shell: Any = None, state: Any = None,
                wait_timeout: float | None = None, poll: float | None = None) -> Action:
    """The Action for one ModeChange (command, API request, revert; a warning makes it destructive)."""
    return Action(
        id=f"pool-{change.pool}", title=change.description, command=change.command, kind="kube",
        target=f"ippool/{change.pool}", risk=Risk.DESTRUCTIVE if change.warning else Risk.CHANGE,
        revert=change.revert_command, api=change.api.render() if change.api else None, change="calico.pool-mode",
        data={"change": change, "render": change.render(), "warning": change.warning, "accept_warning": accept_warning, "shell": shell,
              "state": state, "wait_timeout": wait_timeout, "poll": poll})


def _kube(ctx: Any):
    from labtui.adapters.kube import kube_for

    return kube_for(ctx, ctx.inputs.get("kubeconfig") or None)


def _shell(ctx: Any, given: Any = None):
    if given is not None:
        return given
    from labtui.adapters.kubeconfig import control_plane_shell

    return control_plane_shell(ctx)


def change_from_record(record: Any) -> Any:
    """The ModeChange that undoes a recorded calico.pool-mode change."""
    from labtui.model import Encapsulation
    from labtui.net.modechange import ApiCall, ModeChange

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

    def applied(self, ctx: Any, action: Action) -> bool | None:
        """The live pool already shows the wanted modes (read now: a plan made from an older read,
        or a change applied meanwhile from another screen, must not be applied twice)."""
        from labtui.adapters.calico import read_cluster, read_pool

        change = action.data["change"]
        if change.noop:
            return True
        kc = _kube(ctx)
        state = action.data.get("state") or ctx.memo.calico_state or read_cluster(kc)
        seen = read_pool(kc, state, change.pool)
        return seen is not None and (seen.ipip_mode, seen.vxlan_mode) == change.new_modes

    def run(self, ctx: Any, action: Action) -> Applied:
        from labtui.adapters.calico import apply_change, read_cluster

        change = action.data["change"]
        d = action.data
        kc = _kube(ctx)
        state = d.get("state") or ctx.memo.calico_state or read_cluster(kc)
        accept = bool(d.get("accept_warning"))
        try:
            seen = apply_change(kc, state, change, shell=_shell(ctx, d.get("shell")), accept_warning=accept,
                                emit=ctx.emit, wait_timeout=float(d.get("wait_timeout") or ctx.tuning.calico_wait),
                                poll=float(d.get("poll") or ctx.tuning.calico_poll))
        except LabError as exc:
            if change.sent:  # it reached the cluster (the wait failed): recorded with its revert all the same
                raise AppliedThenFailed(exc, Applied(True, change.revert_data(), target=f"ippool/{change.pool}")) from exc
            raise
        finally:
            ctx.memo.calico_state = None
        return Applied(True, change.revert_data(), result=seen, target=f"ippool/{change.pool}")

    def verify(self, ctx: Any, action: Action, applied: Applied) -> str | None:
        seen = applied.result
        want = action.data["change"].new_modes
        if seen is not None and (seen.ipip_mode, seen.vxlan_mode) != want:
            return f"IP pool {seen.name} shows ipipMode {seen.ipip_mode}, vxlanMode {seen.vxlan_mode}"
        return None

    def revert(self, ctx: Any, change: Any) -> str:
        from labtui.adapters.calico import apply_change, read_cluster

        mode = change_from_record(change)
        kc = _kube(ctx)
        apply_change(kc, read_cluster(kc), mode, shell=_shell(ctx), accept_warning=True, emit=ctx.emit,
                     wait_timeout=float(ctx.tuning.calico_wait), poll=float(ctx.tuning.calico_poll), revert=True)
        ctx.memo.calico_state = None
        return f"IP pool {mode.pool} back to {mode.old.value}"


def set_pool_mode(ctx: Any, change: Any, *, state: Any = None, shell: Any = None, accept_warning: bool = False,
                  wait_timeout: float | None = None, poll: float | None = None) -> Any:
    """Apply one planned (and already shown) change through the executor; returns the pool as seen
    after. A pool already in the wanted mode changes and records nothing."""
    from labtui.execute import Executor

    if change.noop:
        from labtui import events as ev
        from labtui.events import Event

        ctx.emit(Event(ev.INFO, f"IP pool {change.pool} already has {change.new.value}: nothing to change"))
        return state.pool(change.pool) if state is not None else None
    action = pool_action(change, accept_warning=accept_warning, shell=shell, state=state, wait_timeout=wait_timeout,
                         poll=poll)
    execution = Executor(ctx, step="calico").run([action], confirmed=True)
    return execution.outcomes[-1].result


def revert_pool_change(ctx: Any, record: Any) -> Any:
    """Undo one recorded pool change through the executor; returns the pool as seen after."""
    from labtui.adapters.calico import read_cluster, read_pool
    from labtui.adapters.kube import kube_for
    from labtui.execute import Executor

    if record.reverted:
        raise LabError(f"change #{record.id} was already reverted", "nothing to do", code="already-reverted")
    Executor(ctx, step="calico").revert([record], confirmed=True)
    kc = kube_for(ctx, ctx.inputs.get("kubeconfig") or None)
    return read_pool(kc, read_cluster(kc), (record.revert_data or {}).get("pool", ""))
