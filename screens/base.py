"""The base of every screen that works on one lab."""

from __future__ import annotations

from collections import deque
from typing import Callable

from rich.text import Text
from textual.screen import Screen

from labtui.events import Event
from labtui.session import LabSession

from screens.crash import CrashReporting
from screens.modals import prompts_for  # a host-key question inside any step gets the same dialog
from screens.widgets.command_log import CommandLog

FLUSH_SECONDS = 0.1
MAX_LINES_PER_FLUSH = 400


def row_in_full(table, row_key) -> Text:
    """Every cell of a table row with its column name, uncut (a table cuts long cells)."""
    text = Text()
    for column, cell in zip(table.columns.values(), table.get_row(row_key)):
        value = cell.plain if isinstance(cell, Text) else str(cell)
        if value:
            text.append(f"{column.label.plain}: ", style="bold")
            text.append(value + "   ")
    return text


class LabScreen(CrashReporting, Screen):
    """Opens the lab's LabSession, shows its engine events in the screen's CommandLog and closes
    the session when the screen goes away.

    Events arrive from worker threads at any rate (5 MB of command output, 30 nodes at once): they
    are queued and written to the log in bounded batches on a timer, so the event loop never runs
    a long burst of UI work."""

    lab: LabSession | None = None
    # binding ids (or id prefixes) left out of the footer when the terminal is narrower than
    # NARROW_WIDTH, so no footer label is cut at 80 columns; the keys still work and the help and
    # the palette list them
    FOOTER_NARROW_HIDE: tuple[str, ...] = ()
    NARROW_WIDTH = 110
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # -short: a 24-row terminal

    @property
    def active_bindings(self):  # type: ignore[override]
        bindings = super().active_bindings
        if not self.FOOTER_NARROW_HIDE or self.size.width >= self.NARROW_WIDTH:
            return bindings
        from dataclasses import replace

        def hidden(b) -> bool:
            return bool(b.id) and any(b.id == h or (h.endswith(".") and b.id.startswith(h))
                                      for h in self.FOOTER_NARROW_HIDE)

        return {key: (ab._replace(binding=replace(ab.binding, show=False)) if hidden(ab.binding) else ab)
                for key, ab in bindings.items()}

    def on_resize(self) -> None:
        self.refresh_bindings()

    def open_lab(self, name: str, *, confirm: Callable[[list], bool] | None = None) -> LabSession:
        self._events: deque[Event] = deque()
        self.lab = LabSession(self.app.store, name, emit=self._emit, confirm=confirm, prompts=prompts_for(self.app))
        self.set_interval(FLUSH_SECONDS, self._flush_events, name="command-log")
        return self.lab

    def _emit(self, event: Event) -> None:  # any thread: deque.append is atomic
        self._events.append(event)

    def _flush_events(self) -> None:
        if not self._events:
            return
        batch = []
        while self._events and len(batch) < MAX_LINES_PER_FLUSH:
            batch.append(self._events.popleft())
        logs = self.query(CommandLog)
        if logs:
            logs.first().add_events(batch)

    def on_unmount(self) -> None:
        if self.lab is not None:
            self._flush_events()
            self.lab.close()
