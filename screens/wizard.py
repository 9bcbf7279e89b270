"""The wizard screen: stages and steps on the left, the step (why, inputs, planned actions) in the
middle, the command log at the bottom. Steps run in thread workers; the UI never blocks."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Label, ListItem, ListView, Select, Static, Switch

from labtui.errors import LabError
from labtui.model import NAME_RE, encapsulation_choice
from labtui.session import LabSession
from labtui.steps import STATE_ICONS, InputField, Step, StepState, Wizard
from labtui.stages import available_wizards, wizard_for
from labtui.stages.plan import LabStep, ReviewStep

from screens.base import LabScreen
from screens.messages import PreviewReady, StepFinished
from screens.modals import HelpScreen
from screens.registry import SESSION_SCREENS
from screens.widgets.command_log import CommandLog
from screens.widgets.nodes_editor import NodesEditor

HELP = """Walk the lab step by step. The left column lists the stages and their steps with their state
(○ pending, ◐ running, ● done, ✗ failed). The middle explains **why** the step exists, asks for its
inputs and shows the exact commands it will run. Nothing that changes a node, the cloud or the
cluster runs without a confirmation that shows the exact change.

Your inputs are saved as you type: quit at any moment (or lose the terminal) and `labtui resume NAME`
brings you back to this step with everything you entered."""


class StepItem(ListItem):
    def __init__(self, wizard: Wizard | None, step: Step | None, label: str) -> None:
        super().__init__(Label(label), disabled=step is None)
        self.wizard = wizard
        self.step = step


class WizardScreen(LabScreen):
    CSS_PATH = "wizard.tcss"
    BINDINGS = [
        Binding("ctrl+s", "run", "Save & continue / run", id="wizard.run", priority=True),
        Binding("ctrl+up", "prev_step", "Prev step", id="wizard.prev"),
        Binding("ctrl+down", "next_step", "Next step", id="wizard.next"),
        Binding("ctrl+l", "toggle_log", "Log", id="wizard.log"),
        Binding("escape", "back", "Back", id="wizard.back"),
        Binding("f1,question_mark", "help", "Help", id="wizard.help"),
        *[Binding(e.key, f"open_screen('{e.id}')", e.title, id=f"wizard.screen.{e.id}") for e in SESSION_SCREENS],
    ]

    def __init__(self, session_name: str | None, then: str | None = None) -> None:
        super().__init__()
        self.session_name = session_name
        self.then = then
        self.lab: LabSession | None = None
        self.current: tuple[Wizard, Step] | None = None
        self._draft_timer = None
        self._step_busy = False

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="wizard-body"):
            yield ListView(id="steps")
            with VerticalScroll(id="step-pane"):
                yield Static("", id="step-title")
                yield Static("", id="step-why")
                yield Vertical(id="step-form")
                yield Static("", id="step-problems")
                yield Static("", id="step-actions")
                with Horizontal(id="step-buttons"):
                    yield Button("Save & continue (ctrl+s)", id="step-run", variant="primary")
        yield CommandLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labtui"
        if self.session_name:
            self._open_session(self.session_name)
        else:
            self.sub_title = "new lab"
            self._fill_step_list()
            self._show(wizard_for("plan"), wizard_for("plan").steps[0])

    def _open_session(self, name: str) -> None:
        self.open_lab(name, confirm=self._confirm_from_thread)
        self.sub_title = name
        log = self.query_one(CommandLog)
        log.add_events(self.app.store.events(self.lab.record.id, limit=1000))
        self._resume()

    # ------------------------------------------------------------------ engine plumbing
    def _confirm_from_thread(self, actions) -> bool:
        from screens.modals import ConfirmModal

        return self.app.ask_from_thread(ConfirmModal("Apply these changes?", actions))

    def _wizard_of(self, wizard_id: str) -> Wizard:
        wizard = wizard_for(wizard_id) or wizard_for("plan")
        return wizard

    @work(thread=True, exclusive=True, exit_on_error=False, group="resume")
    def _resume(self) -> None:
        lab = self.lab
        wizard = self._wizard_of(lab.record.wizard)
        try:
            point = lab.runner(wizard).resume()
        except LabError as exc:
            self.app.call_from_thread(self.notify, exc.render(), severity="error")
            point = None
        def land() -> None:
            self._fill_step_list()
            step = wizard.step(point.step) if point else wizard.steps[0]
            self._show(wizard, step)
            if point and point.changed:
                self.notify("\n".join(point.changed), title="Changed since last time", severity="warning", timeout=10)
            elif point:
                self.notify(f"resumed at {wizard.title} / {step.title}")
        self.app.call_from_thread(land)

    # ------------------------------------------------------------------ step list
    def _states(self) -> dict[tuple[str, str], str]:
        if self.lab is None:
            return {}
        out = {}
        for wizard in available_wizards():
            for sid, run in self.app.store.step_states(self.lab.record.id, wizard.id).items():
                out[(wizard.id, sid)] = run.state
        return out

    def _fill_step_list(self) -> None:
        lv = self.query_one("#steps", ListView)
        lv.clear()
        states = self._states()
        items = []
        for wizard in available_wizards():
            items.append(StepItem(None, None, wizard.title.upper()))
            for step in wizard.steps:
                state = StepState(states.get((wizard.id, step.id), "pending"))
                if state == StepState.RUNNING and not self._step_busy:
                    state = StepState.FAILED
                items.append(StepItem(wizard, step, f" {STATE_ICONS[state]} {step.title}"))
        lv.extend(items)
        self._select_current()

    def _select_current(self) -> None:
        if not self.current:
            return
        lv = self.query_one("#steps", ListView)
        for i, item in enumerate(lv.children):
            if isinstance(item, StepItem) and item.step is self.current[1]:
                lv.index = i
                break

    @on(ListView.Selected, "#steps")
    def _picked(self, event: ListView.Selected) -> None:
        item = event.item
        if isinstance(item, StepItem) and item.step is not None:
            if item.wizard.id != "plan" and (self.lab is None or not self.lab.record.plan):
                self.notify("save the plan first (Plan / Review and save)", severity="warning")
                return
            self._show(item.wizard, item.step)

    # ------------------------------------------------------------------ step pane
    def _show(self, wizard: Wizard, step: Step) -> None:
        self.current = (wizard, step)
        self.query_one("#step-title", Static).update(Text(f"{wizard.title} / {step.title}", style="bold"))
        self.query_one("#step-why", Static).update(Text(step.why, style="italic"))
        self.query_one("#step-problems", Static).update("")
        self.query_one("#step-actions", Static).update("")
        self.call_later(self._rebuild_form, step)
        has_inputs = bool(self._fields(step))
        self.query_one("#step-run", Button).label = "Save & continue (ctrl+s)" if has_inputs else "Run step (ctrl+s)"
        self._select_current()
        if isinstance(step, ReviewStep):
            self._show_review()
        elif not has_inputs and self.lab is not None:
            self._preview(wizard, step)

    async def _rebuild_form(self, step: Step) -> None:
        form = self.query_one("#step-form", Vertical)
        await form.remove_children()
        if self.current is None or self.current[1] is not step:
            return
        widgets = self._form_widgets(step)
        if widgets:
            await form.mount_all(widgets)
        self._focus_first()

    def _focus_first(self) -> None:
        for w in self.query_one("#step-form", Vertical).query("Input, Select, Switch"):
            if w.focusable and not w.disabled:
                w.focus()
                return

    def _fields(self, step: Step) -> list[InputField]:
        return list(step.fields)

    def _inputs(self) -> dict[str, Any]:
        return dict(self.lab.record.inputs) if self.lab else {}

    def _form_widgets(self, step: Step) -> list:
        widgets: list = []
        ctx = self.lab.ctx if self.lab else None
        values = step.defaults(ctx) if (ctx is not None and hasattr(step, "defaults")) else {}
        if ctx is None and hasattr(step, "defaults") and not isinstance(step, LabStep):
            values = {}
        inputs = self._inputs()
        for field in self._fields(step):
            if field.kind == "path":
                continue  # the inventory path lives inside the nodes editor
            value = inputs.get(field.name, values.get(field.name, field.default))
            widgets.append(Label(field.label + (f"  [dim]{field.help}[/]" if field.help else ""), classes="field-label"))
            wid = f"f-{field.name}"
            if isinstance(step, LabStep) and field.name == "name":
                widgets.append(Input(value=self.session_name or "", placeholder="study-lab", id=wid,
                                     disabled=self.lab is not None))
            elif isinstance(step, LabStep) and field.name == "cloud":
                choices, default, problem = step.cloud_choices()
                current = inputs.get("cloud", default)
                if current not in [c[0] for c in choices]:
                    current = default
                widgets.append(Select([(label, val) for val, label in choices], value=current, allow_blank=False, id=wid))
                if problem:
                    widgets.append(Static(Text(f"clouds.yaml: {problem}", style="yellow"), classes="field-note"))
            elif field.kind == "nodes":
                widgets.append(NodesEditor(value or [], id=wid))
            elif field.kind == "choice":
                options = [(label, val) for val, label in field.choices]
                if value not in [o[1] for o in options]:
                    value = field.default
                widgets.append(Select(options, value=value, allow_blank=False, id=wid))
                if field.name == "encapsulation":
                    widgets.append(Static(self._encapsulation_text(value), id="encap-why", classes="field-note"))
            elif field.kind == "bool":
                widgets.append(Switch(value=bool(value), id=wid))
            else:
                widgets.append(Input(value="" if value is None else str(value), id=wid))
        return widgets

    @staticmethod
    def _encapsulation_text(value: str) -> Text:
        choice = encapsulation_choice(value)
        text = Text()
        text.append("Why: ", style="bold")
        text.append(choice.why + "\n")
        text.append("Needs from the cloud: ", style="bold")
        text.append(choice.needs)
        return text

    def _collect(self, step: Step) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field in self._fields(step):
            wid = f"#f-{field.name}"
            found = self.query(wid)
            if not found:
                continue
            w = found.first()
            if isinstance(w, NodesEditor):
                values[field.name] = w.value()
            elif isinstance(w, Select):
                values[field.name] = "" if w.value is Select.BLANK else w.value
            elif isinstance(w, Switch):
                values[field.name] = w.value
            elif isinstance(w, Input):
                values[field.name] = w.value.strip()
        return values

    # drafts: every input is saved as it is typed (debounced), so a quit or a crash loses nothing
    @on(Input.Changed)
    @on(Select.Changed)
    @on(NodesEditor.Changed)
    def _draft_changed(self, event) -> None:
        if isinstance(event, Select.Changed) and event.select.id == "f-encapsulation":
            self.query_one("#encap-why", Static).update(self._encapsulation_text(event.value))
        if self.lab is None or self.current is None:
            return
        if self._draft_timer is not None:
            self._draft_timer.stop()
        self._draft_timer = self.set_timer(0.3, self._save_draft)

    def _save_draft(self) -> None:
        if self.lab is None or self.current is None:
            return
        values = {k: v for k, v in self._collect(self.current[1]).items() if k != "name"}
        if values:
            self.app.store.save_inputs(self.lab.name, values)
            self.lab.ctx.reload()

    # ------------------------------------------------------------------ running
    def action_run(self) -> None:
        if self.current is None or self._step_busy:
            return
        wizard, step = self.current
        values = self._collect(step)
        if self.lab is None:
            if not self._create_lab(values):
                return
        values.pop("name", None)
        if values:
            problems = step.validate(self.lab.ctx, values)
            self._show_problems(problems)
            self.app.store.save_inputs(self.lab.name, values)
            self.lab.ctx.reload()
            if any(p.severity == "error" for p in problems):
                self.notify("fix the inputs marked above", severity="error")
                return
        self._step_busy = True
        self.query_one("#step-run", Button).disabled = True
        self._run_step(wizard, step)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "step-run":
            self.action_run()

    def _create_lab(self, values: dict[str, Any]) -> bool:
        name = str(values.get("name", "")).strip()
        if not NAME_RE.match(name):
            self._show_problems_text(f"Lab name: {name!r} is not valid -> use lower-case letters, digits and '-'")
            self.notify("the lab needs a valid name", severity="error")
            return False
        try:
            self.app.store.create_session(name, cloud=values.get("cloud") or None)
        except LabError as exc:
            self._show_problems_text(exc.render())
            self.notify(exc.render(), severity="error")
            return False
        self.session_name = name
        self.open_lab(name, confirm=self._confirm_from_thread)
        self.sub_title = name
        self.query_one(f"#f-name", Input).disabled = True
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="step")
    def _run_step(self, wizard: Wizard, step: Step) -> None:
        try:
            outcome = self.lab.runner(wizard).run_step(step)
        except Exception as exc:  # noqa: BLE001 - never let a bug take the UI down; show it instead
            from labtui.steps import StepOutcome

            outcome = StepOutcome(step.id, StepState.FAILED, f"unexpected error: {exc!r}")
        self.post_message(StepFinished(outcome))

    def on_step_finished(self, message: StepFinished) -> None:
        self._step_busy = False
        self.query_one("#step-run", Button).disabled = False
        outcome = message.outcome
        self.lab.ctx.reload()
        if outcome.state == StepState.DONE:
            self.notify(f"done: {self.current[1].title}")
            self._advance()
        else:
            self._show_problems_text(outcome.detail)
            self.notify(outcome.detail or "the step did not finish", severity="error" if outcome.state == StepState.FAILED else "warning")
            self._fill_step_list()

    def _advance(self) -> None:
        wizard, step = self.current
        idx = wizard.index(step.id)
        if idx + 1 < len(wizard.steps):
            nxt = wizard.steps[idx + 1]
            self.app.store.update_session(self.lab.name, wizard=wizard.id, step=nxt.id)
            self._fill_step_list()
            self._show(wizard, nxt)
            return
        self._fill_step_list()
        if wizard.id == "plan" and self.then:
            self.action_open_screen(self.then)
            return
        following = [w for w in available_wizards()]
        ids = [w.id for w in following]
        if wizard.id in ids and ids.index(wizard.id) + 1 < len(ids):
            nxt_w = following[ids.index(wizard.id) + 1]
            self.app.store.update_session(self.lab.name, wizard=nxt_w.id, step=nxt_w.steps[0].id)
            self._show(nxt_w, nxt_w.steps[0])
            self.notify(f"{wizard.title} done: next stage {nxt_w.title}")
        else:
            self.notify(f"{wizard.title} done")

    # ------------------------------------------------------------------ previews and problems
    def _show_problems(self, problems: list) -> None:
        if not problems:
            self.query_one("#step-problems", Static).update("")
            return
        text = Text()
        for p in problems:
            style = "bold red" if p.severity == "error" else "yellow"
            text.append(f"{'✗' if p.severity == 'error' else '!'} {p.field}: {p.message}\n", style=style)
            if p.hint:
                text.append(f"    -> {p.hint}\n", style="dim")
        self.query_one("#step-problems", Static).update(text)

    def _show_problems_text(self, message: str) -> None:
        self.query_one("#step-problems", Static).update(Text(message, style="bold red"))

    def _show_review(self) -> None:
        review: ReviewStep = self.current[1]
        if self.lab is None:
            return
        ctx = self.lab.ctx
        data = review._data(ctx)
        text = Text()
        text.append(f"Lab {data.get('name')}   cloud: {data.get('cloud') or 'none (adopt machines)'}\n", style="bold")
        for n in data.get("nodes") or []:
            text.append(f"  {n.get('name'):12} {n.get('address'):16} {n.get('role', 'worker'):14} {n.get('user', 'ubuntu')}\n")
        text.append(f"Networks: nodes {data.get('node_subnet')}  pods {data.get('pod_cidr')}  services {data.get('service_cidr')}\n")
        enc = data.get("encapsulation")
        text.append(f"Kubernetes {data.get('kubernetes')}  Calico {data.get('calico')}  encapsulation {enc}\n")
        if enc:
            text.append("Needs from the cloud: " + encapsulation_choice(enc).needs + "\n", style="cyan")
        self.query_one("#step-actions", Static).update(text)
        self._show_problems(review.problems(ctx))

    def _preview(self, wizard: Wizard, step: Step) -> None:
        self.query_one("#step-actions", Static).update(Text("computing the planned actions...", style="dim"))
        self._compute_preview(wizard, step)

    @work(thread=True, exclusive=True, exit_on_error=False, group="preview")
    def _compute_preview(self, wizard: Wizard, step: Step) -> None:
        try:
            actions = step.plan(self.lab.ctx)
            self.post_message(PreviewReady(step.id, actions))
        except LabError as exc:
            self.post_message(PreviewReady(step.id, [], exc.render()))
        except Exception as exc:  # noqa: BLE001
            self.post_message(PreviewReady(step.id, [], f"could not plan this step: {exc!r}"))

    def on_preview_ready(self, message: PreviewReady) -> None:
        if not self.current or self.current[1].id != message.step_id:
            return
        if message.error:
            self.query_one("#step-actions", Static).update(Text(message.error, style="yellow"))
            return
        text = Text()
        if not message.actions:
            text.append("Nothing to do: running the step only checks and records.", style="dim")
        for a in message.actions:
            text.append(f"{a.title}\n", style="bold")
            text.append(a.render() + "\n\n")
        self.query_one("#step-actions", Static).update(text)

    # ------------------------------------------------------------------ navigation
    def _move(self, delta: int) -> None:
        lv = self.query_one("#steps", ListView)
        items = [i for i in lv.children if isinstance(i, StepItem) and i.step is not None]
        if not self.current:
            return
        idx = next((i for i, it in enumerate(items) if it.step is self.current[1]), 0)
        idx = max(0, min(len(items) - 1, idx + delta))
        target = items[idx]
        if target.wizard.id != "plan" and (self.lab is None or not self.lab.record.plan):
            self.notify("save the plan first", severity="warning")
            return
        self._show(target.wizard, target.step)

    def action_prev_step(self) -> None:
        self._move(-1)

    def action_next_step(self) -> None:
        self._move(1)

    def action_toggle_log(self) -> None:
        log = self.query_one(CommandLog)
        log.display = not log.display

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Wizard", HELP, self.BINDINGS))

    def action_open_screen(self, screen_id: str) -> None:
        if self.lab is None:
            self.notify("start the lab first", severity="warning")
            return
        self.app.open_session_screen(screen_id, self.lab.name)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_screen":
            from screens.registry import entry

            e = entry(str(parameters[0]))
            return bool(e and e.available and self.lab is not None)
        return True
