"""Messages that carry engine events and results from worker threads to the UI."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from labtui.events import Event


class EngineEvent(Message):
    """An engine event (already redacted by the EventBus), posted from any thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class StepFinished(Message):
    def __init__(self, outcome: Any) -> None:
        super().__init__()
        self.outcome = outcome


class PreviewReady(Message):
    """What a step would do: its check's result, the teaching text it found (findings, diagnosis),
    and the actions it would run."""

    def __init__(self, step_id: str, actions: list, error: str | None = None, *, check: Any = None,
                 extra: Any = None) -> None:
        super().__init__()
        self.step_id = step_id
        self.actions = actions
        self.error = error
        self.check = check
        self.extra = extra
