"""The wizard's step form: the inputs of the step shown, as the learner types them.

`StepFormMixin` is mixed into screens.wizard.WizardScreen (it uses the screen's `lab`, `current`,
`session_name`, `_problems` and `_conditional`): the widgets of a step's fields (a node table, the
cloud from clouds.yaml, choices, switches, file paths with a note saying whether the file exists,
the encapsulation with its why and what it needs from the cloud), fields shown only while another
field has a value, the values collected back, the draft saved as typed (the screen's
`_draft_changed` debounces it), and the problems marked under the form with the focus on the first
field in error (`field_widget_id`).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Input, Label, Select, Static, Switch

from labtui.errors import LabError
from labtui.model import encapsulation_choice
from labtui.stages.plan import LabStep
from labtui.steps import InputField, Step

from screens.widgets.nodes_editor import NodesEditor


def field_widget_id(field: str) -> str | None:
    """The widget that holds a validated field (`pod_cidr` -> `f-pod_cidr`; a node -> the editor)."""
    if field.startswith("nodes"):
        return "f-nodes"
    if field == "provision":
        return "f-provision_mode"
    if field.startswith("provision."):  # the plan's provision block <- the Machines step's prov_* inputs
        return f"f-prov_{field.split('.', 1)[1]}"
    if field.startswith("sources."):  # the plan's sources block <- the Sources step's src_* inputs
        return f"f-src_{field.split('.', 1)[1]}"
    return f"f-{field}"


class StepFormMixin:
    """The step form's part of WizardScreen (see the module)."""

    async def _rebuild_form(self, step: Step) -> None:
        form = self.query_one("#step-form", Vertical)
        await form.remove_children()
        if self.current is None or self.current[1] is not step:
            return
        widgets = self._form_widgets(step)
        if widgets:
            await form.mount_all(widgets)
        form.display = bool(widgets)
        self._focus_first()

    def _focus_first(self) -> None:
        for w in self.query_one("#step-form", Vertical).query("Input, Select, Switch"):
            if w.focusable and not w.disabled:
                # the pane opens at the top of the step's "why" (read first); the focused field takes the
                # keys and comes into view with tab or the scroll (at 80x24 it is below the why)
                w.focus(scroll_visible=False)
                self.call_after_refresh(self._pane_home)
                return
        self.call_after_refresh(self._pane_home)

    def _pane_home(self) -> None:
        for pane in self.query("#step-pane"):
            pane.scroll_home(animate=False, immediate=True)

    def _fields(self, step: Step) -> list[InputField]:
        if self._skip_reason(step):
            return []
        return list(step.fields)

    def _skip_reason(self, step: Step) -> str | None:
        """An input step that does not apply to this lab (e.g. Machines without a cloud) says why."""
        skip = getattr(step, "skip_reason", None)
        if skip is None or self.lab is None:
            return None
        return skip(self.lab.ctx)

    def _inputs(self) -> dict[str, Any]:
        return dict(self.lab.record.inputs) if self.lab else {}

    def _form_widgets(self, step: Step) -> list:
        widgets: list = []
        ctx = self.lab.ctx if self.lab else None
        values = step.defaults(ctx) if (ctx is not None and hasattr(step, "defaults")) else {}
        inputs = self._inputs()
        fields = self._fields(step)
        self._conditional = []
        reason = self._skip_reason(step)
        if reason:
            return [Static(Text(f"– does not apply: {reason}. Continue goes on to the next step.", style="dim"),
                           classes="field-note")]
        has_editor = any(f.kind == "nodes" for f in fields)
        for field in fields:
            first = len(widgets)
            if field.kind == "path" and has_editor:
                continue  # the inventory path lives inside the nodes editor
            value = inputs.get(field.name, values.get(field.name, field.default))
            label = Text(field.label)
            if field.help:
                label.append(f"  {field.help}", style="dim")
            widgets.append(Label(label, classes="field-label"))
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
            elif field.kind == "path":
                text = "" if value is None else str(value)
                widgets.append(Input(value=text, placeholder="a file path (~ is your home)", id=wid, classes="path"))
                widgets.append(Static(self._path_note(text), id=f"note-{field.name}", classes="field-note"))
            else:
                widgets.append(Input(value="" if value is None else str(value), id=wid))
            if field.when is not None:
                self._conditional.append((field.when, widgets[first:]))
        current = {f.name: inputs.get(f.name, values.get(f.name, f.default)) for f in fields}
        self._apply_conditions(current)
        return widgets

    def _apply_conditions(self, current: dict[str, Any]) -> None:
        """Fields shown only while another field has a value (the provision fields while 'labtui
        creates them' is chosen)."""
        for (name, wanted), ws in self._conditional:
            if name not in current:
                continue
            for w in ws:
                w.display = current.get(name) == wanted

    @staticmethod
    def _path_note(text: str) -> Text:
        import os

        text = text.strip()
        if not text:
            return Text("")
        path = os.path.expanduser(text)
        if os.path.isfile(path):
            return Text(f"✓ {path} exists", style="green")
        return Text(f"✗ {path} does not exist: check the path", style="bold red")

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
            found = self.query(f"#f-{field.name}")
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

    def _save_draft(self) -> None:
        if self.lab is None or self.current is None:
            return
        step = self.current[1]
        values = {k: v for k, v in self._collect(step).items() if k != "name"}
        if values:
            self.app.store.save_inputs(self.lab.name, values)
            self.lab.ctx.reload()
        # an error the user is correcting: show what is still wrong, not the old text; a step that checks
        # as you type (the Sources step's URLs) shows a new error before the save too
        if self._problems or getattr(step, "validate_as_typed", False):
            try:
                self._show_problems(step.validate(self.lab.ctx, values) if values else [])
            except LabError:
                pass

    def _show_problems(self, problems: list) -> None:
        self._problems = [p for p in problems if p.severity == "error"]
        static = self.query_one("#step-problems", Static)
        if not problems:
            static.update("")
            return
        text = Text()
        for p in problems:
            style = "bold red" if p.severity == "error" else "yellow"
            label = getattr(p, "label", p.field)
            text.append(f"{'✗' if p.severity == 'error' else '!'} {label}: {p.message}\n", style=style)
            if p.hint:
                text.append(f"    -> {p.hint}\n", style="dim")
        static.update(text)
        # the marks are what the user must read: bring them into view (at 80x24 they can be below the fold)
        self.call_after_refresh(static.scroll_visible, animate=False)

    def _focus_problem(self, problems: list) -> None:
        """After a failed save the focus goes to the first field in error, never away from it."""
        for p in problems:
            if p.severity != "error":
                continue
            wid = field_widget_id(p.field)
            found = self.query(f"#{wid}") if wid else None
            if found:
                w = found.first()
                if isinstance(w, NodesEditor):
                    w.focus_problem(p.field)
                elif w.focusable:
                    w.focus()
                return

    def _show_problems_text(self, message: str) -> None:
        static = self.query_one("#step-problems", Static)
        static.update(Text(message, style="bold red"))
        if message:  # as _show_problems: at 80x24 the mark can be below the fold
            self.call_after_refresh(static.scroll_visible, animate=False)
