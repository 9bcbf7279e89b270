"""The wizard's teaching panel: what the step's check found, what it will run, and how to do it by hand.

`StepPanelMixin` is mixed into screens.wizard.WizardScreen (it uses the screen's `lab`, `current`,
`_step_busy`, `_rechecking`, `_keep_status`, `_show_how` and `_preview_actions`): the last run of a
step and a step's outcome as a line, the plan's review (with the way out of the CrossSubnet trap:
"Use IPIP Always"), the preview the screen's worker computed (`on_preview_ready`: the check's
verdict, the doctor's diagnosis or the check's findings, the exact actions "Do it for me" will
run), and "Show me how" (the commands to type by hand).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Button, Static

from labtui.model import DEFAULT_CALICO, DEFAULT_KUBERNETES, encapsulation_choice
from labtui.stages import wizard_for
from labtui.stages.plan import ReviewStep, sources_summary
from labtui.steps import STATE_ICONS, Step, StepState, Wizard
from labtui.teaching import LabValues, fill, unknown_placeholders

from screens.messages import PreviewReady


class StepPanelMixin:
    """The teaching panel's part of WizardScreen (see the module)."""

    def _last_run_text(self, wizard: Wizard, step: Step) -> Text:
        if self.lab is None:
            return Text("")
        run = self.app.store.step_states(self.lab.record.id, wizard.id).get(step.id)
        if run is None:
            return Text("")
        state = StepState(run.state)
        if state == StepState.RUNNING and not self._step_busy:
            state = StepState.FAILED
        style = {StepState.DONE: "green", StepState.FAILED: "bold red", StepState.SKIPPED: "dim"}.get(state, "")
        word = {StepState.DONE: "done", StepState.FAILED: "not done", StepState.SKIPPED: "skipped",
                StepState.PENDING: "pending", StepState.RUNNING: "running"}[state]
        return Text(f"Last run: {STATE_ICONS[state]} {word}" + (f": {run.detail}" if run.detail else ""), style=style)

    @staticmethod
    def _outcome_text(outcome) -> Text:
        icon = STATE_ICONS[outcome.state]
        style = "bold red" if outcome.state == StepState.FAILED else "yellow"
        return Text(f"{icon} {outcome.detail or 'not done'}", style=style)

    def _show_review(self) -> None:
        review: ReviewStep = self.current[1]
        if self.lab is None:
            return
        ctx = self.lab.ctx
        data = review._data(ctx)
        text = Text()
        text.append(f"Lab {data.get('name')}   cloud: {data.get('cloud') or 'none (adopt machines)'}\n", style="bold")
        if data.get("cloud"):
            prov = data.get("provision")
            if isinstance(prov, dict):
                picked = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in prov.items()
                                   if k not in ("floating_ip", "public_key_file") and v)
                way_in = ("floating IP on the control plane, the others through it" if prov.get("floating_ip", True)
                          and prov.get("external_network") else "no floating IP")
                text.append(f"Machines: labtui creates them ({picked or 'everything chosen from the cloud'}; "
                            f"{way_in})\n")
            else:
                text.append("Machines: adopted (they exist already)\n")
        for n in data.get("nodes") or []:
            text.append(f"  {n.get('name', '')} {n.get('address', '')} ({n.get('role', 'worker')}, "
                        f"{n.get('user', 'ubuntu')})\n")
        text.append(f"Nodes {data.get('node_subnet')}\nPods {data.get('pod_cidr')}\nServices {data.get('service_cidr')}\n")
        enc = data.get("encapsulation")

        enc = enc or "IPIP"
        text.append(f"Kubernetes {data.get('kubernetes') or DEFAULT_KUBERNETES}, Calico {data.get('calico') or DEFAULT_CALICO}, "
                    f"encapsulation {enc}\n")
        if enc:
            try:
                text.append("Needs from the cloud: " + encapsulation_choice(enc).needs + "\n", style="cyan")
            except ValueError:
                pass
        text.append("Sources: " + sources_summary(data.get("sources")) + "\n")
        self.query_one("#step-actions", Static).update(text)
        problems = review.problems(ctx)
        self._show_problems(problems)
        trap = next((p for p in problems if p.field == "encapsulation" and p.severity == "warning"), None)
        button = self.query_one("#use-always", Button)
        button.display = trap is not None
        if trap is not None:
            button.label = "Use VXLAN Always" if "VXLAN" in str(enc) else "Use IPIP Always"
            self.call_after_refresh(button.scroll_visible, animate=False)  # the way out is on screen, even at 80x24

    def _use_always(self) -> None:
        if self.lab is None or self.current is None:
            return
        review = wizard_for("plan").step("review")
        chosen = review.use_always(self.lab.ctx)
        self.notify(f"encapsulation set to {chosen}: pod traffic is wrapped between the nodes")
        self._fill_step_list()
        self._show(*self.current)

    def on_preview_ready(self, message: PreviewReady) -> None:
        if not self.current or self.current[1].id != message.step_id:
            return
        if not self._rechecking and not self._step_busy:
            self._set_busy(None)
        step = self.current[1]
        status = Text()
        check = message.check
        if check is not None and not self._step_busy and not self._keep_status:
            if check.skip:
                status.append(f"– does not apply: {check.detail}\n", style="dim")
            elif check.done:
                status.append(f"● {check.detail or 'already done'}\n", style="green")
            elif check.blocked:
                status.append(f"✗ {check.detail}\n", style="bold red")
            else:
                status.append(f"○ not done yet: {check.detail or 'the step has work to do'}\n", style="yellow")
            self.query_one("#step-status", Static).update(status)
        text = Text()
        if message.extra is not None and message.extra.plain:
            text.append_text(message.extra)
            text.append("\n")
        if check is not None and check.blocked:
            text.append("What to do: ", style="bold")
            text.append((check.hint or step.hint or "fix what the finding says, then run the step again") + "\n")
            text.append("No change is offered while the step is blocked.", style="dim")
        elif message.error:
            text.append(message.error + "\n", style="yellow")
        elif message.actions:
            text.append("What \"Do it for me\" will run (each change asks first):\n", style="bold")
            for a in message.actions:
                text.append(f"{a.title}\n", style="bold")
                text.append(a.render() + "\n")
        elif check is not None and (check.done or check.skip):
            text.append("Nothing to do: running the step only checks again and records it.", style="dim")
        self._preview_actions = list(message.actions)
        self.query_one("#step-actions", Static).update(text)
        if self._show_how:
            self._render_how(step)

    def action_show_how(self) -> None:
        if self.current is None:
            return
        self._show_how = not self._show_how
        how = self.query_one("#step-how", Static)
        how.display = self._show_how
        if self._show_how:
            self._render_how(self.current[1])
            self.call_after_refresh(how.scroll_visible, animate=False)

    def _render_how(self, step: Step) -> None:
        text = Text()
        text.append("Show me how: the same by hand\n", style="bold")
        by_hand = getattr(step, "by_hand", "")
        commands = [a.command for a in self._preview_actions if getattr(a, "command", "")]
        if by_hand and self.lab is not None:
            # the lab's own values in place of CLOUD, NODE, KEY_FILE...: a line the learner can run as it is
            ctx = self.lab.ctx
            try:
                plan = ctx.plan
            except ValueError:  # a plan the wizard has not finished: its values are not known yet
                plan = None
            drafts = {**ctx.inputs, **self._collect(step)}  # what the form holds now counts first
            by_hand = fill(by_hand, LabValues(drafts.get("name") or self.lab.name,
                                              drafts.get("cloud") or ctx.session.cloud_name, plan, drafts))
        if by_hand:
            text.append(by_hand.rstrip() + "\n")
            missing = unknown_placeholders(by_hand)
            if missing:
                text.append(f"({', '.join(missing)}: values this lab does not know yet; put in your own)\n",
                            style="dim")
        for c in commands:
            text.append(f"{c}\n")
        if not by_hand and not commands:
            if self._fields(step):
                text.append("Nothing to type here by hand: this step records your choices; the stages after the "
                            "plan turn them into commands, shown there.\n", style="dim")
            else:
                text.append("This step only reads: its explanation above says what; the command log shows each "
                            "command it ran.\n", style="dim")
        if step.hint:
            text.append(f"Hint: {step.hint}\n", style="italic")
        text.append("Select the text with the mouse to copy it, or press c in the command log for the last command.",
                    style="dim")
        self.query_one("#step-how", Static).update(text)
        if commands:
            self._how_commands = "\n".join(commands)
