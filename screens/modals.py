"""Every modal of the app: the confirmation that shows the exact change, a text prompt, help, a text
viewer, the host-key question (with the engine's Prompts that ask it), the Calico mode choice."""

from __future__ import annotations

import threading
from typing import Any, Iterable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from labtui.model import ENCAPSULATION_CHOICES, Encapsulation
from labtui.steps import Prompts

from screens.settings import KEYMAP_FILE, config_dir


def _action_lines(items: Iterable) -> list[str]:
    lines: list[str] = []
    for item in items:
        render = getattr(item, "render", None)
        lines.append(render() if callable(render) else str(item))
    return lines


class ConfirmModal(ModalScreen[bool]):
    """Ask before anything is changed. Shows the exact change (commands and API calls)."""

    BINDINGS = [
        Binding("y", "confirm", "Apply", id="confirm.yes"),
        Binding("n,escape", "cancel", "Cancel", id="confirm.no"),
    ]
    DEFAULT_CSS = """
    ConfirmModal { align: center middle; }
    ConfirmModal > Vertical { width: 90%; max-width: 120; height: auto; max-height: 90%;
        border: thick $warning; background: $surface; padding: 1 2; }
    ConfirmModal.-danger > Vertical { border: thick $error; }
    ConfirmModal #confirm-title { text-style: bold; margin-bottom: 1; }
    ConfirmModal VerticalScroll { height: auto; max-height: 24; }
    ConfirmModal .change { margin-bottom: 1; }
    ConfirmModal Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    ConfirmModal Button { margin-left: 2; }
    """

    def __init__(self, title: str, changes: Iterable, *, confirm_label: str = "Apply", danger: bool = False,
                 note: str | None = None) -> None:
        super().__init__(classes="-danger" if danger else "")
        self.title_text = title
        self.lines = _action_lines(changes)
        self.confirm_label = confirm_label
        self.danger = danger
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="confirm-title")
            with VerticalScroll():
                for line in self.lines:
                    yield Static(Text(line), classes="change")
            if self.note:
                yield Static(Text(self.note, style="italic"))
            with Horizontal():
                yield Button("Cancel (n)", id="cancel")
                yield Button(f"{self.confirm_label} (y)", id="confirm", variant="error" if self.danger else "warning")

    def on_mount(self) -> None:
        self._fit()
        self.query_one("#cancel", Button).focus()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """The list of changes scrolls; the buttons stay on screen (at 80x24 a long list pushed them off).
        Around the list: border 2, padding 2, title 2, buttons 4, the note 1-3, and the 10% margin."""
        room = int(self.app.size.height * 0.9) - 10 - (3 if self.note else 0)
        self.query_one(VerticalScroll).styles.max_height = max(3, min(24, room))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class PromptModal(ModalScreen["str | None"]):
    """Ask for one value (a path, a name, a passphrase with password=True). Never stored by the UI."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]
    DEFAULT_CSS = """
    PromptModal { align: center middle; }
    PromptModal > Vertical { width: 80; max-width: 100%; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    PromptModal Label { margin-bottom: 1; }
    """

    def __init__(self, question: str, *, value: str = "", password: bool = False, placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.password = password
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(value=self.value, password=self.password, placeholder=self.placeholder, id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


def keys_as_pressed(app, binding) -> str:
    """`f1,question_mark` -> `F1 / ?`, after the user's keymap (a binding with an id may be rebound)."""
    from textual.binding import Binding as _B

    keys = binding.key
    keymap = getattr(app, "_keymap", {}) or {}
    if binding.id and binding.id in keymap:
        keys = keymap[binding.id]
    shown = []
    for k in (k.strip() for k in keys.split(",") if k.strip()):
        try:
            shown.append(app.get_key_display(_B(k, binding.action, binding.description)))
        except Exception:  # a display problem must never hide the help
            shown.append(k)
    return " / ".join(dict.fromkeys(shown))


def _keymap_path() -> str:

    try:
        return str(config_dir() / KEYMAP_FILE)
    except Exception:
        return KEYMAP_FILE


class HelpScreen(ModalScreen[None]):
    """F1 / ?: what this screen is for, its keys as the user presses them, and the terms on screen."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 110; height: 85%; border: thick $accent;
        background: $surface; padding: 1 2; }
    """

    def __init__(self, title: str, text: str, bindings: Iterable = (), extra: str = "") -> None:
        super().__init__()
        self.help_title = title
        self.text = text
        self.bindings = list(bindings)
        self.extra = extra

    @property
    def markdown(self) -> str:
        keys = "\n".join(f"| `{keys_as_pressed(self.app, b)}` | {b.description} |"
                         for b in self.bindings if b.description)
        if self.bindings and "(id " not in keys:
            keys += "\n\nBinding ids (for the keymap): " + ", ".join(f"`{b.id}`" for b in self.bindings if b.id)
        table = f"\n\n| key | what it does |\n|---|---|\n{keys}" if keys else ""
        common = (
            "\n\n**Everywhere:** `^p` command palette (labs, steps, screens, every action of this screen, themes), "
            "`F1` / `?` this help, `esc` back, `^q` quit. Every command labtui runs is in the command log: "
            "select text with the mouse to copy it (over SSH too), or press `c` in the log to copy the last command. "
            f"Keys can be changed by their id in `{_keymap_path()}` (a `[keymap]` table, e.g. "
            '`"wizard.run" = "ctrl+r"`); the theme you pick in the palette is remembered.'
        )
        return f"# {self.help_title}\n\n{self.text}{table}{self.extra}{common}"

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown  # lazy: markdown-it is only needed when help opens

        with VerticalScroll():
            yield Markdown(self.markdown)

    def action_close(self) -> None:
        self.dismiss(None)


class TextModal(ModalScreen[None]):
    """A read-only text to select and copy (y or ctrl+c: the selection, else the line under the cursor)."""

    BINDINGS = [
        Binding("escape,q", "close", "Close", id="text.close"),
        Binding("y,ctrl+c", "copy", "Copy", id="text.copy", priority=True),
    ]
    DEFAULT_CSS = """
    TextModal { align: center middle; }
    TextModal > Vertical { width: 95%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    TextModal TextArea { height: 1fr; }
    """

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        from textual.widgets import TextArea

        with Vertical():
            yield Label(self.title_text)
            yield TextArea(self.text, read_only=True, soft_wrap=True, id="text")

    def on_mount(self) -> None:
        from textual.widgets import TextArea

        area = self.query_one(TextArea)
        area.focus()
        area.move_cursor(area.document.end)

    def action_copy(self) -> None:
        from textual.widgets import TextArea

        area = self.query_one(TextArea)
        text = area.selected_text or area.document.get_line(area.cursor_location[0])
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {len(text)} characters")

    def action_close(self) -> None:
        self.dismiss(None)


class HostKeyModal(ModalScreen[bool]):
    """Accept or refuse a host key seen for the first time, or replace one that CHANGED."""

    BINDINGS = [
        Binding("escape,n", "refuse", "Refuse", id="hostkey.refuse"),
        Binding("y", "accept", "Accept", id="hostkey.accept"),
    ]
    DEFAULT_CSS = """
    HostKeyModal { align: center middle; }
    HostKeyModal > Vertical { width: 96; max-width: 100%; height: auto; max-height: 100%; border: thick $warning; background: $surface; padding: 1 2; }
    HostKeyModal.-changed > Vertical { border: thick $error; }
    HostKeyModal #hostkey-title { text-style: bold; margin-bottom: 1; }
    HostKeyModal #hostkey-fp { text-style: bold; margin: 1 0; }
    HostKeyModal Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    HostKeyModal Button { margin-left: 2; }
    """

    def __init__(self, info: Any, changed: bool = False) -> None:
        super().__init__(classes="-changed" if changed else "")
        self.info = info
        self.changed = changed

    def compose(self) -> ComposeResult:
        info = self.info
        with Vertical():
            if self.changed:
                yield Label(f"The host key of {info.node} ({info.host}) has CHANGED", id="hostkey-title")
                yield Static(Text(
                    f"Stored: {info.known_fingerprint}" + (f"  (in {info.known_in})" if info.known_in else "") +
                    f"\nNow:    {info.fingerprint}\n\n"
                    "Was this VM rebuilt? Only then replace the stored key. If you did not rebuild it, someone "
                    "may be intercepting the connection: refuse, and do not connect."))
                label = "Replace the stored key (y)"
            else:
                yield Label(f"First connection to {info.node} ({info.host})", id="hostkey-title")
                yield Static("The authenticity of this host can't be established yet.")
                label = "Accept (y)"
            yield Static(Text(info.describe()), id="hostkey-fp")
            yield Static(Text("Compare it with the VM's console log (cloud-init prints its host keys at first boot) "
                              "or ask the machine's owner; `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on "
                              "the VM prints the same line.", style="dim"))
            with Horizontal():
                yield Button("Refuse (n)", id="refuse")
                yield Button(label, id="accept", variant="error" if self.changed else "warning")

    def on_mount(self) -> None:
        self.query_one("#refuse", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "accept")

    def action_accept(self) -> None:
        self.dismiss(True)

    def action_refuse(self) -> None:
        self.dismiss(False)


def prompts_for(app: Any) -> Any:
    """The engine's Prompts for a lab opened by this app: host-key and passphrase questions in
    modals. A question asked after the app stopped is refused, never hangs."""
    lock = threading.Lock()  # fan-out workers: one modal at a time, the others wait for it
    answers: dict[tuple[str, str], bool] = {}  # (host, fingerprint) -> the user's answer, asked once

    def ask(screen: Any) -> Any:
        if not getattr(app, "is_running", False):
            return None
        return app.ask_from_thread(screen)

    def host_key(info: Any) -> bool:
        key = (str(getattr(info, "host", "")), str(getattr(info, "fingerprint", "")))
        with lock:
            if key not in answers:
                answers[key] = bool(ask(HostKeyModal(info)))
            return answers[key]

    def forget_refusals() -> bool:
        """The user runs a step again: a key refused before is asked again (a refusal is remembered only
        so the background reads of one visit do not ask twice). True when there was one to forget."""
        with lock:
            refused = [k for k, v in answers.items() if not v]
            for k in refused:
                del answers[k]
        return bool(refused)

    prompts = Prompts(
        host_key=host_key,
        passphrase=lambda node, path: ask(PromptModal(f"Passphrase for {path} (to reach {node}; never stored):",
                                                      password=True)) or None,
    )
    prompts.forget_refusals = forget_refusals  # type: ignore[attr-defined]
    return prompts


class ModeSelect(ModalScreen["Encapsulation | None"]):
    """Pick an encapsulation for one pool; each choice says what it needs from the cloud."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="calico.mode.cancel")]
    DEFAULT_CSS = """
    ModeSelect { align: center middle; }
    ModeSelect > Vertical { width: 100; max-width: 100%; height: auto; max-height: 90%; border: thick $accent;
        background: $surface; padding: 1 2; }
    ModeSelect OptionList { height: auto; max-height: 30; }
    """

    def __init__(self, pool: str, current: Encapsulation) -> None:
        super().__init__()
        self.pool = pool
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Encapsulation for IP pool {self.pool} (now {self.current.value})")
            options = []
            for c in ENCAPSULATION_CHOICES:
                prompt = Text()
                prompt.append(c.label + ("  (current)" if c.value == self.current else ""), style="bold")
                prompt.append("\n" + c.needs, style="dim")
                options.append(Option(prompt, id=c.value.value))
            yield OptionList(*options, id="modes")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Encapsulation(event.option.id))

    def action_cancel(self) -> None:
        self.dismiss(None)
