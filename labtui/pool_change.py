"""Set or revert one Calico IP pool's encapsulation now, through the executor: the one-call forms for
a caller that has already shown the exact change to the user (a screen's modal, a command's --yes).

They sit above the executor (labtui.execute) like the Runner; the change kind itself, with its
Action, is the catalogue's (labtui.changes.calico), below it.
"""

from __future__ import annotations

from labtui import events as ev
from labtui.adapters.interfaces import Shell
from labtui.changes.calico import calico_for, pool_action
from labtui.errors import LabError
from labtui.events import Event
from labtui.execute import Executor
from labtui.net.calico import ClusterState, IPPoolInfo
from labtui.net.modechange import ModeChange
from labtui.steps import StepContext
from labtui.store import Change


def set_pool_mode(ctx: StepContext, change: ModeChange, *, state: ClusterState | None = None,
                  shell: Shell | None = None, accept_warning: bool = False, wait_timeout: float | None = None,
                  poll: float | None = None) -> IPPoolInfo | None:
    """Apply one planned (and already shown) change through the executor; returns the pool as seen
    after. A pool already in the wanted mode changes and records nothing."""
    if change.noop:
        ctx.emit(Event(ev.INFO, f"IP pool {change.pool} already has {change.new.value}: nothing to change"))
        return state.pool(change.pool) if state is not None else None
    action = pool_action(change, accept_warning=accept_warning, shell=shell, state=state, wait_timeout=wait_timeout,
                         poll=poll)
    execution = Executor(ctx, step="calico").run([action], confirmed=True)
    seen: IPPoolInfo | None = execution.outcomes[-1].result
    return seen


def revert_pool_change(ctx: StepContext, record: Change) -> IPPoolInfo | None:
    """Undo one recorded pool change through the executor; returns the pool as seen after."""
    if record.reverted:
        raise LabError(f"change #{record.id} was already reverted", "nothing to do", code="already-reverted")
    Executor(ctx, step="calico").revert([record], confirmed=True)
    calico = calico_for(ctx)
    return calico.read_pool(calico.read_cluster(), (record.revert_data or {}).get("pool", ""))
