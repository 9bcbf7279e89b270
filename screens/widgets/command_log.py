"""The command log: every action, its exact command and its output, live."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import RichLog

from labtui import events as ev
from labtui.events import Event

STYLES = {
    ev.STEP_START: "bold cyan",
    ev.STEP_DONE: "bold green",
    ev.STEP_FAILED: "bold red",
    ev.ACTION_START: "bold",
    ev.ACTION_DONE: "green",
    ev.ACTION_FAILED: "red",
    ev.CHANGE: "bold magenta",
    ev.WARN: "yellow",
    ev.ERROR: "bold red",
}


class CommandLog(RichLog):
    """A RichLog that renders engine events; the last `max_lines` lines are kept."""

    DEFAULT_CSS = """
    CommandLog { height: 12; border: round $panel; }
    """

    def __init__(self, *, max_lines: int = 5000, **kwargs) -> None:
        super().__init__(max_lines=max_lines, wrap=False, markup=False, highlight=False, **kwargs)
        self.border_title = "Command log"

    @staticmethod
    def render_event(event: Event) -> Text:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
        text = Text(f"{stamp} ", style="dim")
        if event.node:
            text.append(f"[{event.node}] ", style="cyan")
        style = STYLES.get(event.kind, "")
        if event.kind == ev.ACTION_OUTPUT and event.stream == "stderr":
            style = "yellow"
        text.append(event.message, style=style)
        return text

    def add_event(self, event: Event) -> None:
        self.write(self.render_event(event))

    def add_events(self, events: list[Event]) -> None:
        for event in events:
            self.write(self.render_event(event))
