"""Revert the changes a doctor fix recorded, newest first (the Calico switch goes back before the
network closes again: the reverse of the safe order the fix used). The executor does the work."""

from __future__ import annotations

from labtui.steps import StepContext
from labtui.store import Change


def revert_changes(ctx: StepContext, changes: list[Change], *, keep_going: bool = False) -> list[Change]:
    """Revert each change through the executor (already confirmed by the caller); stops at the first
    failure unless `keep_going`. Returns the changes reverted."""
    from labtui.execute import Executor

    done, _failed = Executor(ctx, step="doctor-revert").revert(changes, keep_going=keep_going, confirmed=True)
    return done
