"""Home: the saved labs. n new, enter resume, d delete, D doctor a cluster labtui did not build."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from labtui.errors import LabError

from screens.crash import CrashReporting, worker_crash


HELP = """The labs you have started. A lab is one cluster you are building or repairing; it remembers
every input, every step and every command, so you can quit at any moment and come back.

**Progress** counts the steps done (or skipped because they do not apply) over the whole lab, with
the stage the lab is in. **Health** is what the doctor said last.

Start with **n** (new lab): the plan wizard asks for the cloud, the nodes, the networks and the
Calico encapsulation. **D** is for a cluster labtui did not build: give its kubeconfig (or let
labtui fetch it over SSH), its nodes and its cloud; everything else is read from the live cluster,
then the doctor runs."""


# Health before the long columns: it stays on screen at 80 columns
COLUMNS = ("Lab", "Progress", "Health", "Stage / step", "Cloud", "Active")


class HomeScreen(CrashReporting, Screen):
    AUTO_FOCUS = "#sessions"
    DEFAULT_CSS = """
    #home-empty { padding: 1 2; color: $text-muted; }
    #sessions { height: 1fr; }
    #lab-detail { height: auto; max-height: 4; padding: 0 1; background: $panel; }
    """
    BINDINGS = [
        Binding("n", "new", "New lab", id="home.new"),
        Binding("enter", "resume", "Resume", id="home.resume"),
        Binding("d", "delete", "Delete", id="home.delete"),
        Binding("D", "doctor", "Doctor a cluster", id="home.doctor"),
        Binding("r", "refresh", "Refresh", id="home.refresh", show=False),
        Binding("q", "app.quit", "Quit", id="home.quit"),
        Binding("f1,question_mark", "help", "Help", id="home.help"),
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="home-empty")
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Static("", id="lab-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labtui"
        self.sub_title = "labs"
        table = self.query_one("#sessions", DataTable)
        table.add_columns(*COLUMNS)
        self.refresh_sessions()

    def on_screen_resume(self) -> None:
        self.refresh_sessions()

    def action_refresh(self) -> None:
        self.refresh_sessions()

    def refresh_sessions(self) -> None:
        """The rows are computed in a thread (the stage modules import pydantic): the first frame and
        the keys never wait for them. No labs: the empty list is drawn at once."""
        if not self.app.store.list_sessions():
            self._fill([])
            return
        self._load_rows()

    @work(thread=True, exclusive=True, exit_on_error=False, group="home-rows")
    def _load_rows(self) -> None:
        store = self.app.store
        try:
            from labtui.session import lab_summary  # in this thread: the stage modules import pydantic

            records = store.list_sessions()
            rows = [lab_summary(store, rec) for rec in records]
        except Exception as exc:  # the list must never take the screen down
            msg = exc.render() if isinstance(exc, LabError) else "could not read the labs: " + worker_crash(exc, "labs")
            self.app.call_from_thread(self.notify, msg, severity="error")
            return
        self.app.call_from_thread(self._fill, rows)

    def _fill(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#sessions", DataTable)
        selected = self._selected()
        table.clear(columns=True)  # the widths follow the cut below (a column never shrinks by itself)
        table.add_columns(*COLUMNS)
        records = rows
        self.rows = {}
        cells = []
        for r in rows:
            self.rows[r["name"]] = r
            progress = f"{r['done']}/{r['total']} {r['stage']}" if r["total"] else r["stage"]
            health = r["health"].removeprefix("doctor: ") or "-"
            wide = self.size.width >= 120  # a large terminal: stage / step and cloud whole
            cells.append((r["name"], progress, health, _cut(f"{r['stage']} / {r['step_title']}", 60 if wide else 30),
                          _cut(r["cloud"], 40 if wide else 18), r["last_activity"]))
        health_width = self._health_width(cells)
        for name, progress, health, stage, cloud, active in cells:
            table.add_row(name, progress, _cut(health, health_width), stage, cloud, active, key=name)
        empty = self.query_one("#home-empty", Static)
        empty.update("" if records else "No labs yet. Press n to start one, or D to doctor a cluster you already have.")
        empty.display = not records
        if selected in self.rows:
            table.move_cursor(row=list(self.rows).index(selected))
        self._show_detail()

    def _health_width(self, cells: list[tuple[str, ...]]) -> int:
        """Health gets what the other columns leave of the screen's width (22 at 80 columns, the whole
        text on a wide terminal)."""
        if not cells:
            return 22
        others = sum(max(len(c[i]) for c in cells + [("Lab", "Progress", "", "Stage / step", "Cloud", "Active")])
                     for i in (0, 1, 3, 4, 5))
        room = self.size.width - others - 2 * 6 - 2  # each column's padding, the scroll bar
        return max(22, min(room, max(len(c[2]) for c in cells)))

    def on_resize(self) -> None:
        if self.rows:
            self._fill(list(self.rows.values()))

    def _show_detail(self) -> None:
        """The whole of the highlighted row: the table cuts long cells."""
        detail = self.query_one("#lab-detail", Static)
        name = self._selected()
        r = self.rows.get(name or "")
        detail.display = r is not None
        if r is None:
            return
        text = Text()
        text.append(r["name"], style="bold")
        text.append(f"  {r['done']} of {r['total']} steps done, at {r['stage']} / {r['step_title']}  ·  cloud {r['cloud']}"
                    f"  ·  {r['last_activity']}\n")
        text.append("Health: ", style="bold")
        text.append(r["health"] or "the doctor has not run yet")
        detail.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _selected(self) -> str | None:
        table = self.query_one("#sessions", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value)

    def action_new(self) -> None:
        self.app.open_wizard(None)

    def action_doctor(self) -> None:
        self.app.open_adopt()

    def action_resume(self) -> None:
        name = self._selected()
        if name:
            self.app.open_wizard(name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_wizard(str(event.row_key.value))

    def action_delete(self) -> None:
        from screens.modals import ConfirmModal

        name = self._selected()
        if not name:
            return

        def done(ok: bool | None) -> None:
            if not ok:
                self.notify(f"kept {name}")
                return
            try:
                self.app.store.delete_session(name)
            except LabError as exc:
                self.notify(exc.render(), severity="error")
                return
            self.notify(f"deleted lab {name}")
            self.refresh_sessions()

        self.app.push_screen(
            ConfirmModal(
                f"Delete the lab {name}?",
                [f"labtui: delete lab {name}: its plan, step history, command log and recorded changes",
                 "Nothing on the cloud, the nodes or the cluster is touched."],
                confirm_label="Delete", danger=True,
            ),
            done,
        )

    def action_help(self) -> None:
        from screens.modals import HelpScreen

        self.app.push_screen(HelpScreen("Labs", HELP, self.BINDINGS))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
