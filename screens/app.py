"""The Textual App of labtui."""

from __future__ import annotations

import threading
from typing import Any, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from labtui.store import Store

from screens.commands import LabCommands
from screens.home import HomeScreen
from screens.registry import entry


class LabApp(App):
    TITLE = "labtui"
    COMMANDS = {LabCommands}  # one provider: the lab's commands first, then the screen's and Textual's
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", show=False, priority=True),
    ]

    def __init__(self, store: Store | None = None, resume: str | None = None) -> None:
        super().__init__()
        self.store = store or Store()
        self.resume_name = resume
        self._keymap_problem: str | None = None
        self._load_preferences()

    # ------------------------------------------------------------------ preferences
    def _load_preferences(self) -> None:
        """The remembered theme and the user's keymap file (bindings rebound by id)."""
        from labtui.errors import LabError

        from screens.settings import load_keymap, load_settings

        theme = load_settings().get("theme")
        if isinstance(theme, str) and theme in self.available_themes:
            self.theme = theme
        try:
            keymap = load_keymap()
        except LabError as exc:
            self._keymap_problem = exc.render()
            keymap = {}
        if keymap:
            self.set_keymap(keymap)

    def _theme_changed(self, theme: Any) -> None:
        from screens.settings import save_setting

        save_setting("theme", getattr(theme, "name", str(theme)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action of the current screen (with its key), then Textual's own (theme, keys, quit...).
        The palette (screens.commands) lists these after the lab's labs, screens and steps."""
        seen: set[str] = set()
        from screens.modals import keys_as_pressed

        for active in screen.active_bindings.values():
            b = active.binding
            # the lab's own bindings all carry an id; a focused widget's (a table's "Cursor down") do not
            if not b.id or not b.description or b.action in seen or not active.enabled:
                continue
            seen.add(b.action)
            yield SystemCommand(b.description, f"this screen's action; key: {keys_as_pressed(self, b)}",
                                lambda action=b.action, node=active.node: self.call_later(node.run_action, action))
        yield from super().get_system_commands(screen)

    def get_default_screen(self) -> Screen:
        return HomeScreen()  # the home screen is the base of the stack: one screen less to draw at start

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self._keymap_problem:
            self.notify(self._keymap_problem, title="Keymap not used", severity="error", timeout=15)
        if self.resume_name:
            self.open_wizard(self.resume_name)

    # ------------------------------------------------------------------ navigation
    def open_wizard(self, session_name: str | None, then: str | None = None) -> None:
        from screens.wizard import WizardScreen

        self.push_screen(WizardScreen(session_name, then=then))

    def open_adopt(self) -> None:
        """`D`: a cluster labtui did not build: kubeconfig, nodes, cloud; the rest is read live."""
        from screens.adopt import AdoptScreen

        self.push_screen(AdoptScreen())

    def action_new_lab(self) -> None:
        self.open_wizard(None)

    def action_go_home(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def open_session_screen(self, screen_id: str, session_name: str) -> None:
        e = entry(screen_id)
        if e is None or not e.available:
            self.notify(f"the {screen_id} screen is not available in this version", severity="warning")
            return
        self.push_screen(e.create(session_name))

    def current_session(self) -> str | None:
        for screen in reversed(self.screen_stack):
            name = getattr(screen, "session_name", None)
            if name:
                return name
        return None

    def goto_step(self, wizard_id: str, step_id: str) -> None:
        from labtui.stages import wizard_for

        from screens.wizard import WizardScreen

        for screen in reversed(self.screen_stack):
            if isinstance(screen, WizardScreen):
                while self.screen is not screen:
                    self.pop_screen()
                wizard = wizard_for(wizard_id)
                screen._show(wizard, wizard.step(step_id))
                return

    # ------------------------------------------------------------------ threads
    def ask_from_thread(self, screen: Screen) -> Any:
        """From a worker thread: show a modal and wait for its result (the UI keeps running)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def callback(result: Any) -> None:
            box["result"] = result
            done.set()

        self.call_from_thread(self.push_screen, screen, callback)
        while not done.wait(0.25):
            if not self.is_running:  # the app is closing: the question is refused, never hangs
                return None
        return box.get("result")
