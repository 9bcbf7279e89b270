"""The wizard's dialogs: confirming an engine's changes from a worker, and tearing the lab's cloud down.

`WizardDialogsMixin` is mixed into screens.wizard.WizardScreen (it uses the screen's `lab` and
`current`): `_confirm_from_thread` is the confirmation the engine's Runner calls from a step's
worker (with the doctor's last word when the step is the Doctor's); `action_teardown` lists what
this lab created on the cloud (in a worker), asks once in a red dialog, and deletes it (in a worker).
"""

from __future__ import annotations

from typing import Any

from textual import work

from labtui import events as ev
from labtui.doctor.run import summary_line
from labtui.errors import LabError
from labtui.stages import teardown as td  # td.teardown(...): tests replace the cloud's deletes there

from screens.modals import ConfirmModal


class WizardDialogsMixin:
    """The dialogs' part of WizardScreen (see the module)."""

    def _confirm_from_thread(self, actions) -> bool:
        note = None
        if self.lab is not None and self.current is not None and self.current[1].id == "doctor":
            diag = self.lab.ctx.memo.doctor_diag
            opt = self.lab.ctx.memo.doctor_option
            if diag is not None:

                note = f"The doctor, just now: {summary_line(diag)}." + (
                    f" Fix chosen: {opt.number}. {opt.title}." if opt is not None else "")
        return self.app.ask_from_thread(ConfirmModal("Apply these changes?", actions, note=note))

    def action_teardown(self) -> None:
        """Delete everything this lab created on the cloud, behind one confirmation listing it."""
        if self.lab is None:
            self.notify("start the lab first", severity="warning")
            return
        self._teardown_plan()

    @work(thread=True, exclusive=True, exit_on_error=False, group="teardown")
    def _teardown_plan(self) -> None:
        ctx = self.lab.ctx
        try:
            if not ((ctx.session.plan or {}).get("cloud") or ctx.session.cloud):
                self.app.call_from_thread(self.notify, "nothing to tear down: this lab adopted its machines; labtui "
                                                       "created none")
                return
            items = td.teardown_plan(ctx)
        except LabError as exc:
            self.app.call_from_thread(self.notify, exc.render(), severity="error", timeout=10)
            return
        self.app.call_from_thread(self._confirm_teardown, items)

    def _confirm_teardown(self, items: list) -> None:
        if not items:
            self.notify("nothing to tear down: this lab has no cloud resource left")
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._teardown_run(items)
            else:
                self.notify("nothing deleted")

        # the exact delete first; what it undoes below (a description reads "create server ...")
        lines = [f"$ {x.revert_command}\n  undoes: {x.description}" for x in items]
        self.app.push_screen(ConfirmModal(f"Delete the {len(items)} cloud resource(s) this lab created, in this "
                                          "order?", lines, confirm_label="Delete", danger=True,
                                          note="Servers go first; the group and the network once they are gone. "
                                               "Nothing the lab did not create is touched."), confirmed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="teardown")
    def _teardown_run(self, items: list) -> None:
        total = len(items)
        started = [0]

        def progress(event: Any) -> None:  # on the worker thread: the status line says which delete runs
            if event.kind == ev.ACTION_START and event.step == "teardown":
                started[0] += 1
                what = event.message.removeprefix("$ ")
                self.app.call_from_thread(self._set_teardown,
                                          f"tearing down {min(started[0], total)}/{total}: {what}")

        self.app.call_from_thread(self._set_teardown, f"tearing down 0/{total}: servers first")
        unsubscribe = self.lab.bus.subscribe(progress)
        try:
            done, failed = td.teardown(self.lab.ctx, items, confirmed=True)
        except LabError as exc:
            self.app.call_from_thread(self.notify, exc.render(), severity="error", timeout=10)
            return
        finally:
            unsubscribe()
            self.app.call_from_thread(self._set_teardown, None)
        if failed:
            msg = f"deleted {len(done)}; not deleted: " + "; ".join(f"{c.description} ({why})" for c, why in failed)
            self.app.call_from_thread(self.notify, msg, severity="error", timeout=12)
        else:
            self.app.call_from_thread(self.notify, f"torn down: {len(done)} resource(s) deleted")
        self.app.call_from_thread(self._after_teardown)

    def _after_teardown(self) -> None:
        """The machines are gone: the step list shows what is true now (the engine marked the stages that
        depended on them pending)."""
        self.lab.ctx.reload()
        self.lab.ctx.memo.clear()  # what was read of the machines (facts, SSH errors) is stale now
        ssh = self.lab.ctx.adapters.pop("ssh")
        if ssh is not None:
            try:
                ssh.close()
            except Exception:  # closing a connection to a deleted machine must not matter
                pass
        self._fill_step_list()
        rec = self.lab.record
        try:  # the engine moved the lab back to the Provision stage: land there, not on a stale error
            wizard = self._wizard_of(rec.wizard)
            step = wizard.step(rec.step) if rec.step else wizard.steps[0]
        except (KeyError, AttributeError):
            if self.current:
                self._show(*self.current)
            return
        self._user_moved = False
        self._show(wizard, step)
