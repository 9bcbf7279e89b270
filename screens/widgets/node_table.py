"""The Nodes screen's table: one widget of fixed height, one line per node, a cursor row."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

COLUMNS = ("Node", "Address", "Reachable", "OS", "Kernel", "Runtime", "Latency")
WIDTHS = (14, 28, 14, 22, 20, 20, 9)


def row_text(cells: list[Any]) -> Text:
    """One table line: the cells in fixed-width columns, cut with an ellipsis when too long."""
    line = Text(no_wrap=True, overflow="ellipsis")
    for cell, width in zip(cells, WIDTHS):
        text = cell if isinstance(cell, Text) else Text(str(cell))
        if text.cell_len > width - 1:
            text = text[: width - 2] + Text("…")
        line.append_text(text)
        line.append(" " * (width - text.cell_len))
    return line


class NodeTable(Widget, can_focus=True):
    """The nodes table as ONE widget of fixed height (one line per node, a cursor row).

    A DataTable re-renders every cell on each update and a list of row widgets re-lays the screen
    out; with 30 nodes either costs the event loop 100+ ms per update while SSH threads compete
    for the GIL. This renders a few dozen lines of text, and changing a row never changes layout."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="nodes.table.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="nodes.table.down"),
        Binding("home", "cursor_to(0)", "First", show=False, id="nodes.table.first"),
        Binding("end", "cursor_to(-1)", "Last", show=False, id="nodes.table.last"),
    ]
    DEFAULT_CSS = """
    NodeTable { height: auto; max-height: 32; padding: 0 1; }
    """
    COMPONENT_CLASSES = {"nodetable--cursor"}

    class Highlighted(Message):
        def __init__(self, table: "NodeTable", node: str | None) -> None:
            super().__init__()
            self.table = table
            self.node = node

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.order: list[str] = []
        self.rows: dict[str, list[Any]] = {}
        self.cursor = 0

    def add(self, node: str, cells: list[Any]) -> None:
        self.order.append(node)
        self.rows[node] = cells
        self.styles.height = len(self.order)
        self.refresh(layout=True)

    def set_cells(self, node: str, cells: list[Any]) -> None:
        if [str(c) for c in cells] != [str(c) for c in self.rows.get(node, [])]:
            self.rows[node] = cells
            self.refresh(layout=False)

    def cells(self, node: str) -> list[Any]:
        return self.rows.get(node, [])

    @property
    def selected(self) -> str | None:
        return self.order[self.cursor] if 0 <= self.cursor < len(self.order) else None

    def render(self) -> Text:
        lines = []
        for i, node in enumerate(self.order):
            line = row_text(self.rows[node])
            if i == self.cursor:
                line.stylize("reverse" if self.has_focus else "underline")
            lines.append(line)
        return Text("\n").join(lines) if lines else Text("")

    def _move(self, index: int) -> None:
        if not self.order:
            return
        index = max(0, min(len(self.order) - 1, index))
        if index != self.cursor:
            self.cursor = index
            self.refresh()
            self.post_message(self.Highlighted(self, self.selected))

    def action_cursor(self, delta: int) -> None:
        self._move(self.cursor + delta)

    def action_cursor_to(self, index: int) -> None:
        self._move(index if index >= 0 else len(self.order) - 1)

    def on_click(self, event: Any) -> None:
        self._move(event.y)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
