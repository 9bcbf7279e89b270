"""The wizard screen: stages and steps on the left, the step in the middle (why, what to expect, its
inputs, what its check found, the exact commands it will run, "show me how" and "do it for me"), the
command log at the bottom. Steps run in thread workers through the engine's Runner (check -> plan ->
confirm -> apply -> verify, never forced past check); the UI never blocks.

This module is the screen itself: its layout, opening and re-checking a lab, the step list, showing
a step, running it and its preview in workers, moving on, and the keys. Three mixins hold the rest:
screens.wizard_form (the step's input form, drafts and the problems marked on it),
screens.wizard_panel (the teaching panel: the check's verdict, the preview, the review, "show me
how") and screens.wizard_dialogs (the engine's confirmation and the teardown)."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, ListView, Select, Static, Switch

from labtui import events as ev
from labtui.errors import LabError
from labtui.events import Event
from labtui.model import NAME_RE
from labtui.runner import StepOutcome
from labtui.session import LabSession
from labtui.stages import available_wizards, mark_not_applicable, wizard_for
from labtui.stages.plan import ReviewStep
from labtui.steps import STATE_ICONS, CheckResult, Step, StepState, Wizard

from screens.base import LabScreen
from screens.crash import worker_crash
from screens.messages import PreviewReady, StepFinished
from screens.modals import HelpScreen
from screens.registry import SESSION_SCREENS, entry
from screens.widgets.command_log import CommandLog
from screens.widgets.nodes_editor import NodesEditor
from screens.widgets.step_item import StepItem
from screens.widgets.teaching import diagnosis_text, findings_text, glossary_markdown, step_terms
from screens.wizard_dialogs import WizardDialogsMixin
from screens.wizard_form import StepFormMixin
from screens.wizard_panel import StepPanelMixin


HELP = """Walk the lab step by step. The left column lists the stages and their steps with their state
(○ pending, ◐ running, ● done, ✗ failed, – skipped: does not apply). The middle explains **why** the
step exists and **what you should see** when it worked, asks for its inputs, shows what its check
found and the exact commands it will run. **Show me how** lists the commands to do it by hand;
**Do it for me** runs it. Nothing that changes a node, the cloud or the cluster runs without a
confirmation that shows the exact change.

A check that finds work for the next step says so ("1 rule missing: the next step adds it"): that is
not a failure. A stage is done only when every step in it is done or skipped with a reason.

Your inputs are saved as you type: quit at any moment (or lose the terminal) and `labtui resume NAME`
brings you back to this step with everything you entered."""

NARROW = 110  # below this width the step list is narrower and the screen keys leave the footer


class WizardScreen(StepFormMixin, StepPanelMixin, WizardDialogsMixin, LabScreen):
    CSS_PATH = "wizard.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-wide")]
    FOOTER_NARROW_HIDE = ("wizard.screen.",)  # N S C D: in the help and the palette at 80 columns
    NARROW_WIDTH = NARROW
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("ctrl+s", "run", "Do it", id="wizard.run"),  # not priority: typed keys reach the input first
        Binding("f2", "show_how", "Show me how", id="wizard.how"),
        Binding("ctrl+up", "prev_step", "Prev step", id="wizard.prev", show=False),
        Binding("ctrl+down", "next_step", "Next step", id="wizard.next", show=False),
        Binding("ctrl+l", "toggle_log", "Log", id="wizard.log"),
        Binding("escape", "back", "Back", id="wizard.back"),
        Binding("f1,question_mark", "help", "Help", id="wizard.help"),
        Binding("ctrl+t", "teardown", "Teardown", id="wizard.teardown", show=False),
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
        self._engine = threading.Lock()  # one engine call (preview or run) at a time per lab
        self._show_how = False
        self._preview_actions: list = []
        self._problems: list = []
        self._busy_since: float | None = None
        self._busy_what = ""
        self._teardown_since: float | None = None
        self._teardown_what = ""
        self._rechecking = False
        self._conditional: list[tuple[tuple[str, Any], list]] = []  # ((field, value), its widgets)

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="wizard-body"):
            yield ListView(id="steps")
            with VerticalScroll(id="step-pane"):
                yield Static("", id="step-title")
                yield Static("", id="step-why")
                yield Static("", id="step-expect")
                yield Vertical(id="step-form")
                yield Static("", id="step-problems")
                yield Static("", id="step-status")
                yield Static("", id="step-actions")
                yield Static("", id="step-how")
                with Horizontal(id="step-buttons"):
                    yield Button("Do it for me", id="step-run", variant="primary")
                    yield Button("Show me how", id="step-how-button")
                    yield Button("Use IPIP Always", id="use-always", variant="warning")
        yield CommandLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labtui"
        self.query_one("#use-always").display = False
        self.query_one("#step-how").display = False
        self.set_interval(0.5, self._tick, name="busy-ticker")
        if self.session_name:
            self._open_session(self.session_name)
        else:
            self.sub_title = "new lab"
            self._fill_step_list()
            self._show(wizard_for("plan"), wizard_for("plan").steps[0])


    def on_screen_resume(self) -> None:
        """Back from the Doctor, Security, Calico or Nodes screen: what they applied shows here."""
        if self.lab is None:
            return
        # what another screen changed must be read again; but never under a running step or check:
        # back from its own confirmation (or host-key) dialog, the worker goes on with this memo, and
        # clearing it there broke the Provision stage's rule batch ("'NoneType' object does not
        # support item assignment", issue 18 item 2)
        if not self._step_busy and not self._rechecking and not any(
                w.is_running and w.node is self for w in self.app.workers):
            self.lab.ctx.memo.clear()
        self.lab.ctx.reload()
        self._fill_step_list()
        if self.current is not None and not self._step_busy:
            self._show(*self.current)

    def _open_session(self, name: str) -> None:
        """Show the lab at once (its stored step), then re-check the steps done before it in the
        background, with progress; land where reality says."""
        self.open_lab(name, confirm=self._confirm_from_thread)
        self.sub_title = name
        log = self.query_one(CommandLog)
        log.add_events(self.app.store.events(self.lab.record.id, limit=1000))
        rec = self.lab.record
        wizard = self._wizard_of(rec.wizard)
        try:
            step = wizard.step(rec.step) if rec.step else wizard.steps[0]
        except KeyError:
            step = wizard.steps[0]
        self._fill_step_list()
        self._show(wizard, step, preview=False)
        self._rechecking = True
        self._set_busy("re-checking the steps done before this one (reality may have changed)")
        self._resume()

    # ------------------------------------------------------------------ engine plumbing
    def _wizard_of(self, wizard_id: str) -> Wizard:
        return wizard_for(wizard_id) or wizard_for("plan")

    @work(thread=True, exclusive=True, exit_on_error=False, group="resume")
    def _resume(self) -> None:
        lab = self.lab
        wizard = self._wizard_of(lab.record.wizard)
        try:
            with self._engine:
                wizard, point = lab.resume(wizard)
        except Exception as exc:  # a re-check that breaks must not take the screen with it
            msg = exc.render() if isinstance(exc, LabError) else "could not re-check: " + worker_crash(exc, "re-check")
            self.app.call_from_thread(self.notify, msg, severity="error")
            point = None

        def land() -> None:
            self._rechecking = False
            self._set_busy(None)
            self.lab.ctx.reload()
            self._fill_step_list()
            if point is None:
                if self.current:
                    self._show(*self.current)
                return
            step = wizard.step(point.step)
            if self._user_moved and self.current is not None:
                self._show(*self.current)  # the user went elsewhere meanwhile: stay there
            else:
                self._show(wizard, step)
            if point.changed:
                self.notify("\n".join(point.changed), title="Changed since last time", severity="warning", timeout=10)
            else:
                self.notify(f"resumed at {wizard.title} / {step.title}")
        self.app.call_from_thread(land)

    _user_moved = False

    # ------------------------------------------------------------------ busy / progress
    def _set_busy(self, what: str | None) -> None:
        self._busy_what = what or ""
        self._busy_since = time.monotonic() if what else None
        if not what:
            self._header_idle()
        self._tick()

    def _header_idle(self) -> None:
        if self.lab is not None and self._teardown_since is None and self._busy_since is None:
            self.sub_title = self.lab.name

    def _set_teardown(self, what: str | None) -> None:
        """The teardown's progress: it holds the status line until it ends (a step's check finishing in
        the background meanwhile does not hide it)."""
        if what and self._teardown_since is None:
            self._teardown_since = time.monotonic()
        self._teardown_what = what or ""
        if not what:
            self._teardown_since = None
            self.query_one("#step-status", Static).update("")  # the step the lab lands on says the rest
            self._header_idle()
        self._tick()

    def _tick(self) -> None:
        since, what = self._busy_since, self._busy_what
        if self._teardown_since is not None:
            since, what = self._teardown_since, self._teardown_what
        if since is None:
            return
        seconds = time.monotonic() - since
        spinner = "◐◓◑◒"[int(seconds * 2) % 4]
        self.query_one("#step-status", Static).update(
            Text(f"{spinner} {what}... {seconds:.0f} s (the command log shows each command)", style="cyan"))
        if self.lab is not None:  # the header is always on screen (at 80x24 the status line may be below the fold)
            short = what.split(":")[0].split(" (")[0][:32]
            self.sub_title = f"{self.lab.name} · {spinner} {short} {seconds:.0f} s"

    # ------------------------------------------------------------------ step list
    def _states(self) -> dict[tuple[str, str], Any]:
        if self.lab is None:
            return {}
        out = {}
        for wizard in available_wizards():
            for sid, run in self.app.store.step_states(self.lab.record.id, wizard.id).items():
                out[(wizard.id, sid)] = run
        return out

    def _state_of(self, runs: dict, wizard: Wizard, step: Step) -> StepState:
        run = runs.get((wizard.id, step.id))
        state = StepState(run.state) if run else StepState.PENDING
        if state == StepState.RUNNING and not self._step_busy:
            state = StepState.FAILED
        return state

    def stage_done(self, wizard: Wizard) -> bool:
        """The engine's rule: every step done or skipped with a reason."""
        if self.lab is None:
            return False
        return self.lab.runner(wizard).stage_done()

    def _fill_step_list(self) -> None:
        lv = self.query_one("#steps", ListView)
        lv.clear()
        runs = self._states()
        items = []
        for wizard in available_wizards():
            head = wizard.title.upper()
            if self.lab is not None and self.stage_done(wizard):
                head += " ●"
            items.append(StepItem(None, None, head))
            for step in wizard.steps:
                state = self._state_of(runs, wizard, step)
                items.append(StepItem(wizard, step, f"{STATE_ICONS[state]} {step.title}"))
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
            if item.wizard.id != "plan" and (self.lab is None or not self.lab.record.plan) and not self._adopted():
                self.notify("save the plan first (Plan / Review and save)", severity="warning")
                return
            self._user_moved = True
            self._show(item.wizard, item.step)

    def _adopted(self) -> bool:
        return bool(self.lab is not None and self.lab.record.inputs.get("adopted"))

    # ------------------------------------------------------------------ step pane
    def _show(self, wizard: Wizard, step: Step, preview: bool = True) -> None:
        self.current = (wizard, step)
        self._show_how = False
        self._preview_actions = []
        self._problems = []
        self.query_one("#step-title", Static).update(Text(f"{wizard.title} / {step.title}", style="bold"))
        why = (step.why or "").replace("-\n", "-").replace("\n", " ")  # one paragraph that wraps to the pane
        self.query_one("#step-why", Static).update(Text(why, style="italic"))
        expect = getattr(step, "expect", "")
        self.query_one("#step-expect", Static).update(
            Text.assemble(("What you should see: ", "bold"), expect) if expect else "")
        self.query_one("#step-expect").display = bool(expect)
        self.query_one("#step-problems", Static).update("")
        self.query_one("#step-actions", Static).update("")
        self.query_one("#step-how", Static).display = False
        self.query_one("#use-always").display = False
        if not self._rechecking:
            self._set_busy(None)
            self.query_one("#step-status", Static).update(self._last_run_text(wizard, step))
        self.call_later(self._rebuild_form, step)
        has_inputs = bool(self._fields(step))
        self.query_one("#step-run", Button).label = (
            "Save the plan" if isinstance(step, ReviewStep) else "Continue" if self._skip_reason(step)
            else "Save & continue" if has_inputs else "Do it for me")
        self._select_current()
        if isinstance(step, ReviewStep):
            self._show_review()
        elif preview and self.lab is not None and not has_inputs:
            self._preview(wizard, step)
        elif preview and self.lab is not None and self._has_plan(step):
            self._preview(wizard, step)

    @staticmethod
    def _has_plan(step: Step) -> bool:
        """Steps with inputs that also run something (not the plan wizard's input steps)."""
        return type(step).__module__ != "labtui.stages.plan"

    # drafts: every input is saved as it is typed (debounced), so a quit or a crash loses nothing
    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    @on(NodesEditor.Changed)
    def _draft_changed(self, event) -> None:
        if isinstance(event, Select.Changed) and event.select.id == "f-encapsulation":
            for why in self.query("#encap-why"):  # none when the form was rebuilt since (another step shown)
                why.update(self._encapsulation_text(event.value))
        if isinstance(event, Select.Changed) and self._conditional and event.select.id:
            self._apply_conditions({event.select.id[2:]: event.value})
        if isinstance(event, Input.Changed) and event.input.has_class("path") and event.input.id:
            notes = self.query(f"#note-{event.input.id[2:]}")
            if notes:
                notes.first().update(self._path_note(event.value))
        if isinstance(event, Input.Changed) and event.input.id == "f-name" and self._name_watch:
            self._check_name(event.value)  # the error the user is correcting follows the typing
        if self.lab is None or self.current is None:
            return
        if self._draft_timer is not None:
            self._draft_timer.stop()
        self._draft_timer = self.set_timer(0.3, self._save_draft)

    # ------------------------------------------------------------------ running
    def action_run(self) -> None:
        if self.current is None or self._step_busy:
            return
        if self._rechecking:
            self.notify("re-checking the lab; run the step when it has finished", severity="warning")
            return
        wizard, step = self.current
        for editor in self.query(NodesEditor):  # a row filled in the form but not added is not dropped
            had = editor.pending()
            if not editor.commit_pending():
                self.notify("the node in the form was not added: fix the field named above, or clear the form (New)",
                            severity="error")
                return
            if had:
                self.notify(f"added the node from the form ({len(editor.nodes)} node(s) now)")
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
                self._focus_problem(problems)
                return
        if isinstance(step, ReviewStep):
            errors = [p for p in step.problems(self.lab.ctx) if p.severity == "error"]
            if errors:
                self._show_problems(step.problems(self.lab.ctx))
                self.notify("the plan has problems: fix them in their step (listed above)", severity="error")
                return
        forget = getattr(self.lab.ctx.prompts, "forget_refusals", None)
        if forget is not None and forget():  # a host key refused before is asked again on this run
            self.lab.ctx.memo.node_facts = None
        self._step_busy = True
        self.query_one("#step-run", Button).disabled = True
        self._set_busy(f"{step.title}: checking, then doing what is needed")
        self._fill_step_list()
        self._run_step(wizard, step)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "step-run":
            self.action_run()
        elif event.button.id == "step-how-button":
            self.action_show_how()
        elif event.button.id == "use-always":
            self._use_always()

    _name_problem = False
    _name_watch = False  # after a refused name, the field is checked as it is typed

    def _check_name(self, value: str) -> bool:
        """The lab name's error, shown while it is wrong and cleared as soon as it is right."""
        name = str(value or "").strip()
        self._name_problem = not NAME_RE.match(name)
        if self._name_problem:
            self._show_problems_text(f"Lab name: {name!r} is not valid -> use lower-case letters, digits and '-'")
        elif self.app.store.has_session(name):
            self._name_problem = True
            self._show_problems_text(f"Lab name: a lab named {name!r} already exists -> choose another name, or "
                                     "resume it from the home screen")
        else:
            self._show_problems_text("")
        return not self._name_problem

    def _create_lab(self, values: dict[str, Any]) -> bool:
        name = str(values.get("name", "")).strip()
        if not self._check_name(name):
            self._name_watch = True
            self.notify("the lab needs a valid name", severity="error")
            self.query_one("#f-name", Input).focus()
            return False
        try:
            self.app.store.create_session(name, cloud=values.get("cloud") or None)
        except LabError as exc:
            self._show_problems_text(exc.render())
            self._name_problem = self._name_watch = True  # e.g. taken: each keystroke says whether it still is wrong
            self.notify(exc.render(), severity="error")
            self.query_one("#f-name", Input).focus()
            return False
        self.session_name = name
        self.open_lab(name, confirm=self._confirm_from_thread)
        self.sub_title = name
        self.query_one("#f-name", Input).disabled = True
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="step")
    def _run_step(self, wizard: Wizard, step: Step) -> None:
        try:
            with self._engine:
                outcome = self.lab.runner(wizard).run_step(step)
        except Exception as exc:  # never let a bug take the UI down; show it instead

            outcome = StepOutcome(step.id, StepState.FAILED, worker_crash(exc, f"step {wizard.id}/{step.id}"))
            try:  # the command log and labtui.log say it too

                self.lab.ctx.emit(Event(ev.STEP_FAILED, outcome.detail, step=step.id))
            except Exception:  # reporting a bug must not hide it
                pass
        self.post_message(StepFinished(outcome))

    def on_step_finished(self, message: StepFinished) -> None:
        self._step_busy = False
        self._set_busy(None)
        self.query_one("#step-run", Button).disabled = False
        outcome = message.outcome
        self.lab.ctx.reload()
        wizard, step = self.current
        if wizard.id == "plan":  # the plan may have gained or lost its cloud: the steps that do not apply say so

            mark_not_applicable(self.lab.ctx)
        if outcome.state in (StepState.DONE, StepState.SKIPPED):
            word = "skipped" if outcome.state == StepState.SKIPPED else "done"
            # a check that found work for the next step says so in its detail: show its words
            self._brief(f"{word}: {step.title}" + (f"\n{outcome.detail}" if outcome.detail else ""),
                        timeout=8 if outcome.detail else 4)
            self._advance()
        else:
            self.query_one("#step-status", Static).update(self._outcome_text(outcome))
            self.notify(outcome.detail or "the step did not finish",
                        severity="error" if outcome.state == StepState.FAILED else "warning", timeout=10)
            self._fill_step_list()
            if type(step).__module__ != "labtui.stages.plan":  # show what the check finds now
                self._preview(wizard, step, keep_status=True)

    def _brief(self, text: str, timeout: float = 4) -> None:
        """A step's good news as one toast at a time (the step list and the command log keep it): at 80x24
        stacked toasts covered the next step's fields. On a small terminal it goes away sooner."""
        self.app.clear_notifications()
        small = self.app.size.width < 100 or self.app.size.height < 30
        self.notify(text, timeout=min(timeout, 3) if small else timeout)

    def _advance(self) -> None:
        wizard, step = self.current
        idx = wizard.index(step.id)
        while idx + 1 < len(wizard.steps) and self._skip_reason(wizard.steps[idx + 1]):
            # an input step that does not apply (Machines without a cloud): recorded as skipped, with its reason
            skipped = wizard.steps[idx + 1]
            outcome = self.lab.runner(wizard).run_step(skipped)
            self._brief(f"skipped: {skipped.title}" + (f"\n{outcome.detail}" if outcome.detail else ""))
            idx += 1
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
        if not self.stage_done(wizard):
            runs = self._states()
            open_steps = [s.title for s in wizard.steps
                          if self._state_of(runs, wizard, s) not in (StepState.DONE, StepState.SKIPPED)]
            self.notify(f"{wizard.title} is not done yet: " + ", ".join(open_steps), severity="warning", timeout=10)
            first = next(s for s in wizard.steps if s.title in open_steps)
            self._show(wizard, first)
            return
        ids = [w.id for w in available_wizards()]
        if wizard.id in ids and ids.index(wizard.id) + 1 < len(ids):
            nxt_w = available_wizards()[ids.index(wizard.id) + 1]
            self.app.store.update_session(self.lab.name, wizard=nxt_w.id, step=nxt_w.steps[0].id)
            self._show(nxt_w, nxt_w.steps[0])
            self.notify(f"{wizard.title} done: next stage {nxt_w.title}")
        else:
            self.notify(f"{wizard.title} done")

    # ------------------------------------------------------------------ previews (shown by StepPanelMixin.on_preview_ready)
    _keep_status = False

    def _preview(self, wizard: Wizard, step: Step, keep_status: bool = False) -> None:
        self._keep_status = keep_status
        if not keep_status:
            self._set_busy(f"{step.title}: checking")
        self._compute_preview(wizard, step)

    @work(thread=True, exclusive=True, exit_on_error=False, group="preview")
    def _compute_preview(self, wizard: Wizard, step: Step) -> None:
        """What the Runner would do, without doing it: check, then (when not done) the plan. The
        doctor's check is its diagnosis, shown in full before anything is proposed."""
        ctx = self.lab.ctx
        result: CheckResult | None = None
        extra = None
        from textual.worker import get_current_worker

        try:
            with self._engine:
                if get_current_worker().is_cancelled:
                    return  # the user moved on while another check ran: do not read this step for nothing
                ctx.reload()
                try:
                    if step.id == "doctor" and wizard.id == "doctor":
                        # the Doctor step's preview is the diagnosis the learner reads before anything is
                        # proposed: with the live proof (probe pods, the matrix) unless its switch is off
                        result = step.check(ctx, live=bool(ctx.inputs.get("doctor_live", True)))
                    else:
                        result = step.check(ctx)
                except LabError as exc:
                    result = CheckResult(False, exc.render())
                if step.id == "doctor" and ctx.memo.doctor_diag is not None:
                    extra = diagnosis_text(ctx.memo.doctor_diag)
                elif result.data.get("findings"):
                    extra = findings_text(result.data["findings"])
                actions = [] if (result.done or result.skip or result.blocked) else step.plan(ctx)
            self.post_message(PreviewReady(step.id, actions, check=result, extra=extra))
        except LabError as exc:
            self.post_message(PreviewReady(step.id, [], exc.render(), check=result, extra=extra))
        except Exception as exc:
            self.post_message(PreviewReady(step.id, [], "could not plan this step: "
                                           + worker_crash(exc, f"preview {wizard.id}/{step.id}"), check=result, extra=extra))

    # ------------------------------------------------------------------ navigation
    def _move(self, delta: int) -> None:
        lv = self.query_one("#steps", ListView)
        items = [i for i in lv.children if isinstance(i, StepItem) and i.step is not None]
        if not self.current:
            return
        idx = next((i for i, it in enumerate(items) if it.step is self.current[1]), 0)
        idx = max(0, min(len(items) - 1, idx + delta))
        target = items[idx]
        if target.wizard.id != "plan" and (self.lab is None or not self.lab.record.plan) and not self._adopted():
            self.notify("save the plan first", severity="warning")
            return
        self._user_moved = True
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
        extra = ""
        if self.current is not None:
            step = self.current[1]
            extra = glossary_markdown(step_terms(step))
        self.app.push_screen(HelpScreen("Wizard", HELP, self.BINDINGS, extra=extra))

    # ------------------------------------------------------------------ other screens
    def action_open_screen(self, screen_id: str) -> None:
        if self.lab is None:
            self.notify("start the lab first", severity="warning")
            return
        self.app.open_session_screen(screen_id, self.lab.name)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_screen":

            e = entry(str(parameters[0]))
            if not (e and e.available and self.lab is not None):
                return False
            return True
        return True
