"""The one event channel: the engine emits Events, the store records them, the UI and CLI show them."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from labtui.redact import redact, redact_data

# Event kinds used across the engine.
STEP_START = "step.start"
STEP_DONE = "step.done"
STEP_FAILED = "step.failed"
STEP_SKIPPED = "step.skipped"
ACTION_START = "action.start"
ACTION_OUTPUT = "action.output"
ACTION_DONE = "action.done"
ACTION_FAILED = "action.failed"
CHANGE = "change"
INFO = "info"
WARN = "warn"
ERROR = "error"


@dataclass
class Event:
    kind: str
    message: str = ""
    step: str | None = None
    node: str | None = None
    stream: str | None = None  # "stdout" / "stderr" for action.output
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    def redacted(self) -> "Event":
        return Event(
            kind=self.kind,
            message=redact(self.message),
            step=self.step,
            node=self.node,
            stream=self.stream,
            data=redact_data(self.data),
            ts=self.ts,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for a log: `[node] message`."""
        prefix = f"[{self.node}] " if self.node else ""
        return f"{prefix}{self.message}"


Emit = Callable[[Event], None]


def null_emit(event: Event) -> None:  # a sink that drops events
    return None


class EventBus:
    """Fan an event out to subscribers; every event is redacted once, before anyone sees it."""

    def __init__(self) -> None:
        self._subs: list[Emit] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Emit) -> Callable[[], None]:
        with self._lock:
            self._subs.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subs:
                    self._subs.remove(fn)

        return unsubscribe

    def emit(self, event: Event) -> None:
        safe = event.redacted()
        with self._lock:
            subs = list(self._subs)
        for fn in subs:
            fn(safe)

    __call__ = emit
