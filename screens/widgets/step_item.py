"""One line of the wizard's step list: a stage title (disabled) or a step with its state icon."""

from __future__ import annotations

from textual.widgets import Label, ListItem

from labtui.steps import Step, Wizard


class StepItem(ListItem):
    def __init__(self, wizard: Wizard | None, step: Step | None, label: str) -> None:
        super().__init__(Label(label), disabled=step is None)
        self.wizard = wizard
        self.step = step
