"""The Runner: walks a wizard's steps for one session (check -> plan -> confirm -> apply -> verify),
records each step's state in the store, and finds where a lab resumes.

It sits in the execute layer, above the executor it hands each step's actions to; the types of a
step (labtui.steps) sit below the change catalogue, so a change kind can name an Action without
importing the machinery that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labtui import events as ev
from labtui.errors import LabError
from labtui.events import Event
from labtui.execute import Executor
from labtui.steps import CheckResult, Step, StepContext, StepState, Wizard


@dataclass
class StepOutcome:
    step: str
    state: StepState
    detail: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    phase: str = ""  # where a step that did not finish stopped: check | blocked | plan | confirm | apply | verify


@dataclass
class ResumePoint:
    step: str  # where the wizard lands
    states: dict[str, StepState]
    changed: list[str]  # human sentences: what reality changed since the last run


class Runner:
    """Runs steps of a wizard for one session, recording step runs and events in the store."""

    def __init__(self, wizard: Wizard, ctx: StepContext) -> None:
        self.wizard = wizard
        self.ctx = ctx

    def states(self) -> dict[str, StepState]:
        runs = self.ctx.store.step_states(self.ctx.session.id, self.wizard.id)
        out = {}
        for s in self.wizard.steps:
            run = runs.get(s.id)
            state = StepState(run.state) if run else StepState.PENDING
            if state == StepState.RUNNING:  # the process died mid-step: it did not finish
                state = StepState.FAILED
            out[s.id] = state
        return out

    def _record(self, step: Step, state: StepState, detail: str = "", outputs: dict[str, Any] | None = None,
                land_on: str | None = None) -> None:
        self.ctx.store.record_step(self.ctx.session.id, self.wizard.id, step.id, state.value, detail, outputs,
                                   session_step=land_on)

    def stage_done(self) -> bool:
        """A stage is done only when every step is done or skipped with a reason."""
        return all(s in (StepState.DONE, StepState.SKIPPED) for s in self.states().values())

    def run_step(self, step: Step) -> StepOutcome:
        """check -> plan -> confirm -> apply -> verify, never forced past check(). Never raises
        LabError: a step that cannot complete ends FAILED (or PENDING when the user said no) with a
        message that says what is true and what to do."""
        ctx = self.ctx
        ctx.reload()
        ctx.emit(Event(ev.STEP_START, f"step: {step.title}", step=step.id))
        self._record(step, StepState.RUNNING, land_on=step.id)
        phase = "check"
        try:
            try:
                pre = step.check(ctx)
            except LabError as exc:
                raise LabError(f"could not check: {exc.message}", exc.hint, code=exc.code) from exc
            if pre.skip:
                return self._finish(step, StepState.SKIPPED, pre.detail or "does not apply to this lab", pre.data)
            if pre.done:
                return self._finish(step, StepState.DONE, pre.detail or "already satisfied", pre.data)
            if pre.blocked:  # a precondition failed: nothing is planned, nothing is offered
                phase = "blocked"
                raise LabError(pre.detail or "blocked", pre.hint or getattr(step, "hint", "")
                               or "fix what the finding says, then run the step again", code="blocked")
            phase = "plan"
            actions = step.plan(ctx)
            if not actions:
                raise LabError(pre.detail or "not done",
                               pre.hint or getattr(step, "hint", "") or "labtui has no automatic way to do this step; "
                               "read its explanation, do it by hand, then run it again", code="step-needs-user")
            phase = "apply"
            execution = Executor(ctx, step=step.id).run(actions)
            if not execution.confirmed:
                detail = "not applied: the change was not confirmed"
                self._record(step, StepState.PENDING, detail, land_on=step.id)
                return StepOutcome(step.id, StepState.PENDING, detail, phase="confirm")
            step.after_apply(ctx, execution)
            outputs = execution.results
            ctx.reload()
            phase = "verify"
            post = step.verify(ctx)
            if not post.done:
                raise LabError(f"still not done after {execution.summary()}: {post.detail}",
                               getattr(step, "hint", "") or "what is still wrong is said above; fix it (Show me how lists the "
                               "commands to run by hand) and run the step again",
                               code="step-not-verified")
            outputs.update(post.data)
            detail = post.detail
            if execution.outcomes and not execution.applied:
                detail = (detail + "; " if detail else "") + "nothing needed changing"
            return self._finish(step, StepState.DONE, detail, outputs)
        except LabError as exc:
            ctx.emit(Event(ev.STEP_FAILED, exc.render(), step=step.id))
            self._record(step, StepState.FAILED, exc.render(), land_on=step.id)
            return StepOutcome(step.id, StepState.FAILED, exc.render(), phase=phase)

    def _finish(self, step: Step, state: StepState, detail: str, outputs: dict[str, Any]) -> StepOutcome:
        idx = self.wizard.index(step.id)
        nxt = self.wizard.steps[idx + 1].id if idx + 1 < len(self.wizard.steps) else step.id
        self._record(step, state, detail, outputs, land_on=nxt)
        self.ctx.emit(Event(ev.STEP_DONE, f"done: {step.title}" + (f" ({detail})" if detail else ""), step=step.id))
        return StepOutcome(step.id, state, detail, outputs)

    def resume(self, recheck: bool = True) -> ResumePoint:
        """Land on the first step that is not done; re-check the done ones before it (reality may
        have changed) and say what changed."""
        states = self.states()
        changed: list[str] = []
        landing = None
        for step in self.wizard.steps:
            state = states[step.id]
            if state not in (StepState.DONE, StepState.SKIPPED):
                landing = step.id
                break
            if state == StepState.SKIPPED:
                continue
            if recheck:
                try:
                    res = step.check(self.ctx)
                except LabError as exc:
                    res = CheckResult(False, exc.render())
                if not res.done:
                    msg = f"{step.title}: was done, but is no longer satisfied" + (f" ({res.detail})" if res.detail else "")
                    changed.append(msg)
                    self.ctx.emit(Event(ev.WARN, msg, step=step.id))
                    self._record(step, StepState.PENDING, res.detail)
                    states[step.id] = StepState.PENDING
                    landing = step.id
                    break
        if landing is None:
            landing = self.wizard.steps[-1].id
        self.ctx.store.update_session(self.ctx.session.name, wizard=self.wizard.id, step=landing)
        return ResumePoint(landing, states, changed)
