"""THE executor: every Action from every front end (wizard Runner, headless commands, screens,
the doctor, revert) runs here, and nowhere else.

It owns, once for everyone:
- the order: a mixed list runs layer by layer (nodes, cloud resources, network rules and ports,
  the cluster, Calico), stable within a layer; consecutive actions of one layer that say they are
  independent of each other (the same `Action.together` key, e.g. the rules of one security group,
  the ports of the nodes) are checked and run together, at most MAX_TOGETHER at a time; the
  outcomes keep the list's order (each change is recorded as it finishes), and a failure among
  them stops the run once the others of its batch finished (what they applied is recorded);
- idempotence: an Action whose catalogue kind says it is already in effect is reported as
  "already so" and records nothing; neither does a run that changed nothing (HTTP 409...);
- confirmation: the actions that will really change something and need it are shown to the
  front end's `confirm` callback, once, before anything runs;
- the cancel flag, events (start / output / done / failed) and timing;
- recording each applied change with its revert (`store.Change`), as it happens, so a failure
  mid-list keeps what was applied and `revert` undoes exactly that, newest first;
- verification: after a change runs, its kind checks the effect is there.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from labtui import events as ev
from labtui.changes import LAYER_ORDER, Applied, AppliedThenFailed, FailedCleanly, kind, layer_of
from labtui.errors import LabError
from labtui.events import Event
from labtui.steps import Action, Risk, StepContext
from labtui.store import Change

APPLIED = "applied"
ALREADY = "already"
FAILED = "failed"
PENDING = "pending"  # would run (dry run / not reached)
REFUSED = "refused"  # not confirmed
RAN = "ran"  # a read or local action ran (nothing to record)

MAX_TOGETHER = 8  # actions of one batch running at once (API calls, SSH commands)


@dataclass
class Outcome:
    action: Action
    status: str
    change: Change | None = None
    result: Any = None
    error: str = ""
    seconds: float = 0.0


@dataclass
class Execution:
    outcomes: list[Outcome] = field(default_factory=list)
    confirmed: bool = True

    @property
    def applied(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == APPLIED]

    @property
    def already(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == ALREADY]

    @property
    def changes(self) -> list[Change]:
        return [o.change for o in self.outcomes if o.change is not None]

    @property
    def results(self) -> dict[str, Any]:
        return {o.action.id: o.result for o in self.outcomes if o.result is not None}

    def summary(self) -> str:
        parts = []
        if self.applied:
            parts.append(f"{len(self.applied)} applied")
        if self.already:
            parts.append(f"{len(self.already)} already so")
        ran = [o for o in self.outcomes if o.status == RAN]
        if ran:
            parts.append(f"{len(ran)} ran")
        if not self.confirmed:
            parts.append("not confirmed")
        return ", ".join(parts) or "nothing to do"


class ExecutionStopped(LabError):
    """A run stopped at one action; what was applied before it is recorded (`execution`)."""

    def __init__(self, message: str, hint: str, execution: Execution, code: str = "stopped") -> None:
        super().__init__(message, hint, code=code)
        self.execution = execution


def order(actions: list[Action]) -> list[Action]:
    """Layer by layer (network before Calico), stable within a layer."""
    indexed = list(enumerate(actions))
    indexed.sort(key=lambda ia: (LAYER_ORDER.get(layer_of(ia[1]), 99), ia[0]))
    return [a for _, a in indexed]


def batches(actions: list[Action]) -> list[list[Action]]:
    """The ordered actions cut into what runs one after another: a run of consecutive actions of one
    layer with the same `together` key is one batch; every other action is a batch of its own."""
    out: list[list[Action]] = []
    for a in actions:
        last = out[-1][-1] if out else None
        if (last is not None and a.together is not None and last.together == a.together
                and layer_of(last) == layer_of(a)):
            out[-1].append(a)
        else:
            out.append([a])
    return out


def _each(fn: Callable[[Action], Any], batch: list[Action]) -> list[Any]:
    """fn over a batch: in order for one action, together for several (results in the batch's order)."""
    if len(batch) <= 1:
        return [fn(a) for a in batch]
    with ThreadPoolExecutor(min(MAX_TOGETHER, len(batch)), thread_name_prefix="labtui-exec") as pool:
        return list(pool.map(fn, batch))


def _is_already(ctx: StepContext, action: Action) -> bool:
    if not action.change:
        return False
    try:
        return kind(action.change).applied(ctx, action) is True
    except LabError as exc:
        ctx.emit(Event(ev.WARN, f"{action.title}: could not tell whether it is already so ({exc.message})",
                       node=action.target))
        return False


class Executor:
    """Runs Actions for one lab (a StepContext). `confirm` overrides the context's callback."""

    def __init__(self, ctx: StepContext, *, step: str | None = None,
                 confirm: Callable[[list[Action]], bool] | None = None) -> None:
        self.ctx = ctx
        self.step = step
        self.confirm = confirm if confirm is not None else ctx.confirm

    # ------------------------------------------------------------------ preview (dry run)

    def preview(self, actions: list[Action]) -> list[Outcome]:
        """What `run` would do, reading only: each action 'already' so or 'pending'."""
        return [Outcome(a, ALREADY if done else PENDING) for a, done in self._already(order(actions))]

    def _already(self, ordered: list[Action]) -> list[tuple[Action, bool]]:
        """Each action with whether it is already so (the checks of a batch made together)."""
        out: list[tuple[Action, bool]] = []
        for batch in batches(ordered):
            out += zip(batch, _each(lambda a: _is_already(self.ctx, a), batch))
        return out

    # ------------------------------------------------------------------ run

    def run(self, actions: list[Action], *, confirmed: bool = False, verify: bool = True) -> Execution:
        """Order, skip what is already so, confirm the rest once, run, record, verify.

        `confirmed=True` when the front end already showed these exact actions and the user said
        yes (the UI's modal). Raises ExecutionStopped at the first failure (what was applied before
        it stays recorded)."""
        ctx = self.ctx
        ordered = order(actions)
        todo: list[Action] = []
        execution = Execution()
        already: set[int] = set()
        for a, done in self._already(ordered):
            if done:
                already.add(id(a))
            else:
                todo.append(a)
        risky = [a for a in todo if a.needs_confirmation]
        if risky and not confirmed:
            if self.confirm is None or not self.confirm(risky):
                execution.confirmed = False
                ctx.emit(Event(ev.WARN, "not applied: the change was not confirmed", step=self.step))
                execution.outcomes = [Outcome(a, ALREADY if id(a) in already else REFUSED) for a in ordered]
                return execution
        for batch in batches(ordered):
            for a in batch:
                if id(a) in already:
                    ctx.emit(Event(ev.INFO, f"already so: {a.title} (nothing to change)", step=self.step,
                                   node=a.target, data={"action": a.id, "already": True}))
            run = [a for a in batch if id(a) not in already]
            if run and ctx.cancel.is_set():
                raise ExecutionStopped("stopped by the user", self._stopped_hint(execution), execution, code="cancelled")
            results = dict(zip(map(id, run), _each(lambda a: self._attempt(a, verify), run)))
            failed: _Failed | None = None
            for a in batch:  # outcomes in the list's order, whatever finished first
                if id(a) in already:
                    execution.outcomes.append(Outcome(a, ALREADY))
                    continue
                res = results[id(a)]
                if isinstance(res, _Failed):
                    execution.outcomes.append(res.outcome)
                    failed = failed or res
                else:
                    execution.outcomes.append(res)
            if failed is not None:
                exc, a = failed.error, failed.outcome.action
                raise ExecutionStopped(exc.message,
                                       ((exc.hint + "; ") if exc.hint else "") + f"stopped at '{a.title}': "
                                       + self._stopped_hint(execution, failed), execution,
                                       code=exc.code or "stopped") from exc
        return execution

    def _attempt(self, a: Action, verify: bool) -> "Outcome | _Failed":
        try:
            return self._run_one(a, verify)
        except _Failed as failed:
            return failed

    def _stopped_hint(self, execution: Execution, failed: "_Failed | None" = None) -> str:
        """What the run left, as checked: the changes recorded before the stop, and for the action
        that failed, what it left (recorded with its revert), or that it left nothing (checked by
        its kind), or that labtui cannot tell. "nothing was changed" only when that was checked."""
        name = self.ctx.session.name
        others = [o.change for o in execution.outcomes
                  if o.change is not None and (failed is None or o is not failed.outcome)]
        parts = []
        if others:
            parts.append(f"the {len(others)} change(s) applied before it are recorded and can be reverted "
                         f"(`labtui revert {name}` lists them)")
        if failed is None:  # stopped before the next batch started: nothing of it ran
            return parts[0] if parts else "nothing was changed; run it again when ready"
        a, exc, partial = failed.outcome.action, failed.error, failed.outcome.change
        if partial is not None:
            how = f"`labtui revert {name} {partial.id}`" + (f" ($ {partial.revert_command})" if partial.revert_command else "")
            if exc.code == "not-verified":
                said = f"'{a.title}' ran and is recorded as change #{partial.id}; undo it with {how}"
            else:
                said = (f"'{a.title}' changed part of what it does before it failed: that is recorded as change "
                        f"#{partial.id}; undo it with {how}")
            parts.insert(0, said)
        elif isinstance(exc, FailedCleanly):
            parts.insert(0, exc.checked)
            if not others:
                parts.append("nothing was changed; run it again when ready")
        else:
            parts.insert(0, f"labtui cannot tell whether '{a.title}' changed part of what it does before it failed "
                            "(nothing of it is recorded)" + (f"; its undo, if needed: $ {a.revert}" if a.revert else ""))
        return "; ".join(parts)

    def _run_one(self, a: Action, verify: bool) -> Outcome:
        ctx = self.ctx
        ctx.emit(Event(ev.ACTION_START, f"$ {a.command}", step=self.step, node=a.target,
                       data={"action": a.id, "kind": a.kind, "change": a.change}))
        started = time.monotonic()
        entry = kind(a.change) if a.change else None
        outcome: Outcome | None = None
        try:
            if entry is not None:
                applied = entry.run(ctx, a)
                if not isinstance(applied, Applied):
                    raise LabError(f"{a.title}: the change returned no result", "this is a bug in labtui")
                result = applied.result
            else:
                applied = None
                result = a.run(ctx, a) if a.run else None
            outcome = Outcome(a, RAN, result=result)
            if applied is not None:
                if applied.changed:
                    outcome.status = APPLIED
                    outcome.change = self._record(a, applied)
                else:
                    outcome.status = ALREADY
                    ctx.emit(Event(ev.INFO, f"already so: {a.title}" + (f" ({applied.note})" if applied.note else ""),
                                   step=self.step, node=a.target, data={"action": a.id, "already": True}))
                if verify and applied.changed and entry is not None:
                    problem = entry.verify(ctx, a, applied)
                    if problem:
                        raise LabError(problem, "look at the command log; the change is recorded and can be reverted",
                                       code="not-verified")
        except LabError as exc:
            ctx.emit(Event(ev.ACTION_FAILED, exc.render(), step=self.step, node=a.target, data={"action": a.id}))
            recorded = self._record(a, exc.applied) if isinstance(exc, AppliedThenFailed) else None
            if outcome is not None and outcome.change is not None:  # applied and recorded, then not verified
                recorded = outcome.change
            raise _Failed(Outcome(a, FAILED, change=recorded, error=exc.render(), seconds=time.monotonic() - started),
                          exc) from exc
        outcome.seconds = time.monotonic() - started
        ctx.emit(Event(ev.ACTION_DONE, f"done: {a.title} ({outcome.seconds:.2f}s)", step=self.step, node=a.target,
                       data={"action": a.id, "status": outcome.status}))
        return outcome

    def _record(self, a: Action, applied: Applied) -> Change:
        change = Change(kind=a.change or "", target=applied.target or a.target or "", description=a.title,
                        command=a.command, revert_command=applied.revert_command or a.revert,
                        revert_data=applied.revert_data)
        return self.ctx.record_change(change)

    # ------------------------------------------------------------------ revert

    def revert(self, changes: list[Change], *, keep_going: bool = False,
               confirmed: bool = False) -> tuple[list[Change], list[tuple[Change, str]]]:
        """Undo recorded changes, newest first. Returns (reverted, [(change, why not)]).

        Stops at the first failure unless `keep_going`, which names each change it cannot revert
        and continues with the rest."""
        ctx = self.ctx
        todo = sorted((c for c in changes if not c.reverted), key=lambda c: (c.id or 0), reverse=True)
        if not todo:
            return [], []
        if not confirmed:
            preview = [Action(id=f"revert:{c.id}", title=f"revert #{c.id}: {c.description}",
                              command=c.revert_command or f"(revert change #{c.id})", target=c.target,
                              risk=Risk.CHANGE) for c in todo]
            if self.confirm is None or not self.confirm(preview):
                ctx.emit(Event(ev.WARN, "not reverted: not confirmed"))
                return [], [(c, "not confirmed") for c in todo]
        done: list[Change] = []
        failed: list[tuple[Change, str]] = []
        for c in todo:
            if ctx.cancel.is_set():
                failed.append((c, "stopped by the user"))
                continue
            ctx.emit(Event(ev.ACTION_START, f"$ {c.revert_command or '(revert change #%s)' % c.id}", step=self.step,
                           node=c.target, data={"revert": c.id}))
            try:
                message = kind(c.kind).revert(ctx, c)
            except LabError as exc:
                ctx.emit(Event(ev.ACTION_FAILED, f"revert of #{c.id} ({c.description}): {exc.render()}",
                               step=self.step, node=c.target))
                failed.append((c, exc.render()))
                if not keep_going:
                    raise ExecutionStopped(f"revert of change #{c.id} failed: {exc.message}",
                                           (exc.hint or "") + f" ({len(done)} change(s) were reverted before it)",
                                           Execution(), code=exc.code or "revert-failed") from exc
                continue
            if c.id is not None:  # a change read from the store carries its id
                ctx.store.mark_reverted(c.id)
            ctx.emit(Event(ev.CHANGE, f"reverted change #{c.id}: {c.description} ({message})", step=self.step,
                           node=c.target, data={"command": c.revert_command, "change": c.id}))
            done.append(c)
        return done, failed


class _Failed(Exception):
    """One action failed (its outcome, with what it recorded, and the error)."""

    def __init__(self, outcome: Outcome, error: LabError) -> None:
        super().__init__(error.message)
        self.outcome = outcome
        self.error = error

