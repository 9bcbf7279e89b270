"""A lab session opened for work: its store record, its event bus (recorded, redacted) and context."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .events import Event, EventBus
from .model import Plan
from .paths import session_dir
from .steps import Action, Runner, StepContext, Wizard
from .store import SessionRecord, Store


class LabSession:
    """Open with `LabSession(store, name, emit=print_event)`; close when done (flushes the log)."""

    def __init__(
        self,
        store: Store,
        name: str,
        emit: Callable[[Event], None] | None = None,
        confirm: Callable[[list[Action]], bool] | None = None,
    ) -> None:
        self.store = store
        record = store.get_session(name)
        self.bus = EventBus()
        self.recorder = store.recorder(record.id)
        self.bus.subscribe(self.recorder)
        if emit is not None:
            self.bus.subscribe(emit)
        self.ctx = StepContext(store=store, session=record, emit=self.bus.emit, confirm=confirm)

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
        return Plan.model_validate(data) if data else None

    def runner(self, wizard: Wizard) -> Runner:
        return Runner(wizard, self.ctx)

    def service(self, key: str, factory: Callable[[], Any]) -> Any:
        """An adapter shared by the steps of this session (created once, closed with the session)."""
        if key not in self.ctx.services:
            self.ctx.services[key] = factory()
        return self.ctx.services[key]

    def close(self) -> None:
        self.recorder.flush()
        for svc in list(self.ctx.services.values()):
            close = getattr(svc, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing must not mask the real outcome
                    pass
        self.ctx.services.clear()

    def __enter__(self) -> "LabSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
