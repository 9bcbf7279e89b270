"""A lab session opened for work: its store record, its event bus (recorded, redacted) and context."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from labtui.events import Event, EventBus
from labtui.model import Plan
from labtui.paths import log_path, session_dir
from labtui.runner import ResumePoint, Runner
from labtui.stages import available_wizards, mark_not_applicable, next_wizard, wizard_for
from labtui.steps import Action, Prompts, StepContext, StepState, Wizard
from labtui.store import SessionRecord, Store


def ago(ts: float) -> str:
    delta = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{int(delta // size)}{unit} ago"
    return "just now"


def lab_summary(store: Store, rec: SessionRecord) -> dict[str, Any]:
    """One lab at a glance (`labtui sessions`, the home screen): the whole lab's progress (every
    stage's steps done or skipped), the stage and step it is at, its health."""
    done = total = 0
    stage_done = stage_total = 0
    for wizard in available_wizards():
        states = store.step_states(rec.id, wizard.id)
        finished = sum(1 for s in wizard.steps if s.id in states and states[s.id].state in ("done", "skipped"))
        total += len(wizard.steps)
        done += finished
        if wizard.id == rec.wizard:
            stage_done, stage_total = finished, len(wizard.steps)
    wizard = wizard_for(rec.wizard)
    step_title = rec.step or ""
    if wizard is not None:
        try:
            step_title = wizard.step(rec.step).title if rec.step else wizard.steps[0].title
        except KeyError:
            pass
    return {
        "name": rec.name,
        "cloud": rec.cloud or ("(adopted cluster)" if rec.inputs.get("adopted") else "(own machines)"),
        "stage": wizard.title if wizard else rec.wizard,
        "step": rec.step,
        "step_title": step_title,
        "done": done,
        "total": total,
        "done_steps": stage_done,  # in the current stage
        "total_steps": stage_total,
        "health": rec.health or "",
        "updated": rec.updated,
        "last_activity": ago(rec.updated),
    }


class LabSession:
    """Open with `LabSession(store, name, emit=print_event)`; close when done (flushes the log)."""

    def __init__(
        self,
        store: Store,
        name: str,
        emit: Callable[[Event], None] | None = None,
        confirm: Callable[[list[Action]], bool] | None = None,
        prompts: Prompts | None = None,
    ) -> None:
        self.store = store
        record = store.get_session(name)
        self.bus = EventBus()
        self.recorder = store.recorder(record.id)
        self.bus.subscribe(self.recorder)
        self.logfile = EventLogFile(log_path(store.home), record.name)
        self.bus.subscribe(self.logfile)
        if emit is not None:
            self.bus.subscribe(emit)
        self.ctx = StepContext(store=store, session=record, emit=self.bus.emit, confirm=confirm,
                               prompts=prompts or Prompts())

    @property
    def name(self) -> str:
        return self.ctx.session.name

    @property
    def record(self) -> SessionRecord:
        return self.ctx.session

    @property
    def dir(self) -> Path:
        return session_dir(self.name, self.store.home)

    def plan(self) -> Plan | None:
        """The saved plan, or None while the plan wizard has not saved one yet."""
        self.ctx.reload()
        data = self.ctx.session.plan
        return Plan.saved(data)

    def runner(self, wizard: Wizard) -> Runner:
        return Runner(wizard, self.ctx)

    def resume(self, wizard: Wizard) -> tuple[Wizard, ResumePoint]:
        """Where the lab stands: `wizard`'s resume point (its done steps re-checked); when that stage is
        finished and nothing changed (e.g. after `labtui up --until plan`), the first step not done of
        the next unfinished stage instead of the finished stage's last step."""
        finished = (StepState.DONE, StepState.SKIPPED)
        mark_not_applicable(self.ctx)  # a lab without a cloud: its Provision and Cloud steps say so now
        point = self.runner(wizard).resume()
        if point.changed or any(v not in finished for v in point.states.values()):
            return wizard, point
        nxt = next_wizard(wizard.id)
        while nxt is not None:
            runner = self.runner(nxt)
            if any(v not in finished for v in runner.states().values()):
                return nxt, runner.resume(recheck=False)
            nxt = next_wizard(nxt.id)
        return wizard, point

    def close(self) -> None:
        self.recorder.flush()
        self.logfile.close()
        self.ctx.adapters.close_all()
        self.ctx.memo.clear()

    def __enter__(self) -> "LabSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventLogFile:
    """Appends every (already redacted) event to labtui.log (0600), one line each."""

    def __init__(self, path: Path, session: str) -> None:
        self.path = path
        self.session = session
        self._lock = threading.Lock()
        self._fh = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._fh is None:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.chmod(self.path, 0o600)
                self._fh = os.fdopen(fd, "a", buffering=1)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(event.ts))
            node = f" [{event.node}]" if event.node else ""
            for line in (event.message or "").splitlines() or [""]:
                self._fh.write(f"{stamp} {self.session} {event.kind}{node} {line}\n")

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
