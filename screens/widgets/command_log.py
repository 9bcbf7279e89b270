"""The command log: every action, its exact command and its output, live. Long lines wrap. `c`
copies the last command, `v` opens the whole log as text to select and copy any part of it (the
copy goes to the terminal's clipboard with OSC 52, so it works over SSH too)."""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from textual.binding import Binding
from textual.widgets import RichLog

from labtui import events as ev
from labtui.events import Event

from screens.modals import TextModal


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
    """A RichLog that renders engine events; the last `max_lines` lines are kept (as text too, for copying)."""

    BINDINGS = [
        Binding("c", "copy_last", "Copy last command", id="log.copy_last"),
        Binding("v", "select_text", "Select & copy", id="log.select"),
    ]
    DEFAULT_CSS = """
    CommandLog { height: 12; border: round $panel; }
    CommandLog:focus { border: round $accent; }
    """

    def __init__(self, *, max_lines: int = 5000, **kwargs) -> None:
        super().__init__(max_lines=max_lines, wrap=True, markup=False, highlight=False, **kwargs)
        self.border_title = "Command log"
        self.border_subtitle = "c copy last command · v select & copy"
        self.plain: deque[str] = deque(maxlen=max_lines)
        self.last_command: str | None = None

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

    def _remember(self, event: Event, text: Text) -> None:
        self.plain.append(text.plain)
        if event.kind == ev.ACTION_START and event.message.startswith("$ "):
            self.last_command = event.message[2:]

    def add_event(self, event: Event) -> None:
        text = self.render_event(event)
        self._remember(event, text)
        self.write(text)

    def add_events(self, events: list[Event]) -> None:
        for event in events:
            self.add_event(event)

    def action_copy_last(self) -> None:
        if not self.last_command:
            self.app.notify("no command in the log yet", severity="warning")
            return
        self.app.copy_to_clipboard(self.last_command)
        self.app.notify(f"copied: {self.last_command[:70]}")

    def action_select_text(self) -> None:
        self.app.push_screen(TextModal("Command log: select with the mouse or shift+arrows, y copies",
                                       "\n".join(self.plain)))
