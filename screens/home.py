"""Home: the saved labs. n new, enter resume, d delete, D doctor an existing cluster."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from labtui.cli import session_summary
from labtui.errors import LabError


HELP = """The labs you have started. A lab is one cluster you are building or repairing; it remembers
every input, every step and every command, so you can quit at any moment and come back.

Start with **n** (new lab): the plan wizard asks for the cloud, the nodes, the networks and the
Calico encapsulation. **D** is for a cluster labtui did not build: give its nodes and cloud, then
run the doctor."""


class HomeScreen(Screen):
    AUTO_FOCUS = "#sessions"
    DEFAULT_CSS = """
    #home-empty { padding: 1 2; color: $text-muted; }
    #sessions { height: 1fr; }
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

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="home-empty")
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labtui"
        self.sub_title = "labs"
        table = self.query_one("#sessions", DataTable)
        table.add_columns("Lab", "Cloud", "Stage / step", "Progress", "Last activity", "Health")
        self.refresh_sessions()

    def on_screen_resume(self) -> None:
        self.refresh_sessions()

    def refresh_sessions(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.clear()
        store = self.app.store
        rows = [session_summary(store, r) for r in store.list_sessions()]
        for r in rows:
            progress = f"{r['done_steps']}/{r['total_steps']}" if r["total_steps"] else ""
            table.add_row(r["name"], r["cloud"], f"{r['stage']} / {r['step_title']}", progress,
                          r["last_activity"], r["health"] or "-", key=r["name"])
        empty = self.query_one("#home-empty", Static)
        empty.update("" if rows else "No labs yet. Press n to start one, or D to doctor a cluster you already have.")
        empty.display = not rows

    def _selected(self) -> str | None:
        table = self.query_one("#sessions", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value)

    def action_new(self) -> None:
        self.app.open_wizard(None)

    def action_doctor(self) -> None:
        self.app.open_wizard(None, then="doctor")

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
