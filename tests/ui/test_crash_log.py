"""Issue 18, item 2: an unexpected error in a UI worker leaves its traceback in crash.log (0600, the
file the CLI's crash handler writes) and the screen names that file; before, the wizard showed
`✗ unexpected error: TypeError(...)` and the traceback was lost."""

from __future__ import annotations

import os
import stat

from labtui.paths import state_home
from labtui.store import Store
from screens.app import LabApp
from screens.wizard import WizardScreen
from tests.ui.conftest import settle

PLAN = {"name": "crash", "cloud": None, "node_subnet": "10.0.0.0/24", "pod_cidr": "172.16.0.0/16",
        "service_cidr": "172.20.0.0/16",
        "nodes": [{"name": "cp1", "address": "10.0.0.11", "role": "control-plane", "ssh_host": "127.0.0.1", "port": 1}]}


def _boom(*args, **kwargs):
    raise TypeError("'NoneType' object does not support item assignment")


def _crash_log() -> str:
    path = state_home() / "crash.log"
    assert path.exists(), "no crash.log"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    return path.read_text()


async def test_a_step_that_breaks_writes_its_traceback_and_names_the_file(lab_home, monkeypatch):
    from labtui.stages.nodes import FactsStep

    store = Store()
    store.create_session("crash", wizard="nodes", plan=PLAN)
    store.update_session("crash", wizard="nodes", step="facts")
    monkeypatch.setattr(FactsStep, "check", _boom)
    app = LabApp(store=store)
    async with app.run_test(size=(140, 42)) as pilot:
        await settle(app, pilot)
        app.open_wizard("crash")
        await settle(app, pilot, 10)
        screen = app.screen
        assert isinstance(screen, WizardScreen)
        wizard = screen.current[0]
        screen._show(wizard, wizard.step("facts"))
        await settle(app, pilot, 6)
        await pilot.press("ctrl+s")
        for _ in range(100):
            await pilot.pause(0.05)
            if not screen._step_busy:
                break
        await settle(app, pilot, 4)
        status = str(screen.query_one("#step-status").render())
        path = str(state_home() / "crash.log")
        assert "TypeError" in status and path in status, status
    text = _crash_log()
    assert "Traceback (most recent call last)" in text and "does not support item assignment" in text
    assert "_boom" in text  # the frame that raised


async def test_any_worker_that_ends_in_an_error_is_reported_with_the_file(lab_home):
    app = LabApp(store=Store())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.screen.run_worker(_boom, thread=True, exit_on_error=False, name="list-labs")
        await settle(app, pilot, 6)
        shown = [n.message for n in app._notifications]
        path = str(state_home() / "crash.log")
        assert any("TypeError" in m and path in m for m in shown), shown
    assert "does not support item assignment" in _crash_log()


async def test_the_confirmation_closing_does_not_clear_the_memo_under_the_running_step(lab_home):
    """The cause of Provision / Security group's TypeError "'NoneType' object does not support item
    assignment": the wizard cleared the run's memo when it came back from the step's own confirmation
    dialog (on_screen_resume), while the step's worker went on applying with it (the group created,
    then `ctx.memo.provision_seen[...] = ...` on a memo set to None)."""
    import threading
    import time

    from labtui.steps import Action, Risk
    from screens.modals import ConfirmModal

    store = Store()
    store.create_session("crash", wizard="nodes", plan=PLAN)
    app = LabApp(store=store)
    async with app.run_test(size=(140, 42)) as pilot:
        await settle(app, pilot)
        app.open_wizard("crash")
        await settle(app, pilot, 10)
        screen = app.screen
        memo = screen.lab.ctx.memo
        seen_after: list = []
        answered = threading.Event()

        def step_worker() -> None:  # what the Runner does in the step's worker
            memo.provision_seen = {}
            ok = screen._confirm_from_thread([Action("sg", "Create the group", "openstack security group create x",
                                                     risk=Risk.CHANGE)])
            answered.set()
            time.sleep(0.5)  # the create's HTTP call
            seen_after.append((ok, memo.provision_seen))

        screen._step_busy = True
        screen.run_worker(step_worker, thread=True, exit_on_error=False, group="step")
        for _ in range(100):
            await pilot.pause(0.05)
            if isinstance(app.screen, ConfirmModal):
                break
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(app, pilot, 6)
        screen._step_busy = False
        assert seen_after and seen_after[0] == (True, {}), seen_after
