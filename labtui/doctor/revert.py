"""Revert the changes a doctor fix recorded, newest first: the Calico switch goes back before the
network closes again (the reverse of the safe order the fix used)."""

from __future__ import annotations

from typing import Any

from labtui import events as ev
from labtui.errors import LabError
from labtui.events import Event
from labtui.steps import StepContext
from labtui.store import Change


def revert_changes(ctx: StepContext, changes: list[Change]) -> list[Change]:
    """Revert each change (already ordered newest first); stops at the first failure."""
    done: list[Change] = []
    for c in changes:
        if c.reverted:
            continue
        ctx.emit(Event(ev.ACTION_START, f"$ {c.revert_command}", node=c.target, data={"revert": c.id}))
        try:
            revert_one(ctx, c)
        except LabError as exc:
            ctx.emit(Event(ev.ACTION_FAILED, exc.render(), node=c.target))
            raise LabError(f"revert of change #{c.id} failed: {exc.message}",
                           (exc.hint or "") + f" ({len(done)} change(s) were reverted before it)") from exc
        ctx.emit(Event(ev.ACTION_DONE, f"reverted #{c.id}: {c.description}", node=c.target))
        done.append(c)
    return done


def revert_one(ctx: StepContext, change: Change) -> Any:
    if change.kind == "calico.pool-mode":
        from labtui.adapters.kube import control_plane_shell, kube_for, read_cluster, revert_recorded

        kc = kube_for(ctx, ctx.inputs.get("kubeconfig"))
        return revert_recorded(ctx, kc, read_cluster(kc), change, shell=control_plane_shell(ctx),
                               wait_timeout=float(ctx.tuning.calico_wait),
                               poll=float(ctx.tuning.calico_poll))
    if change.kind.startswith("openstack."):
        from labtui.adapters import openstack as cloud
        from labtui.doctor.run import cloud_name, cloud_service

        conn = cloud_service(ctx, cloud_name(ctx) or "")
        msg = cloud.revert_change(conn, change)
        ctx.store.mark_reverted(change.id)
        ctx.emit(Event(ev.CHANGE, f"reverted change #{change.id}: {change.description} ({msg})",
                       data={"command": change.revert_command}))
        return None
    raise LabError(f"change #{change.id} ({change.kind}) has no automatic revert",
                   f"revert it by hand: {change.revert_command or 'see the command log'}")
