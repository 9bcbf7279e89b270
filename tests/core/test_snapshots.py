"""A few snapshots of the UI (cursor blink off). Update with: pytest --snapshot-update."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from labtui.store import Store
from screens.app import LabApp


async def no_blink(pilot) -> None:
    from tests.ui.conftest import _wait_workers

    await _wait_workers(pilot.app)
    for _ in range(4):
        await pilot.pause(0.05)
    for inp in pilot.app.screen.query(Input):
        inp.cursor_blink = False
    await pilot.pause()


SIZES = pytest.mark.parametrize("size", [(80, 24), (140, 42)], ids=lambda s: f"{s[0]}x{s[1]}")


@SIZES
def test_home_snapshot(lab_home, snap_compare, size):
    store = Store()
    store.create_session("incident", cloud="study")
    store.create_session("study-lab")
    store.update_session("incident", health="doctor: 1 finding(s): Pod traffic between nodes on one subnet leaves")
    assert snap_compare(LabApp(store=store), terminal_size=size, run_before=no_blink)


@SIZES
def test_wizard_versions_step_snapshot(lab_home, snap_compare, monkeypatch, size):
    # the footer lists the session screens that exist; keep the picture independent of them
    from screens.registry import ScreenEntry

    monkeypatch.setattr(ScreenEntry, "available", property(lambda self: False))
    # and the step list shows the stages that exist: keep it to the plan stage
    import screens.wizard
    from labtui.stages import wizard_for

    monkeypatch.setattr(screens.wizard, "available_wizards", lambda: [wizard_for("plan")])
    store = Store()
    store.create_session("incident")
    store.save_inputs("incident", {
        "cloud": "",
        "nodes": [{"name": "cp1", "address": "10.100.200.4", "role": "control-plane"},
                  {"name": "w1", "address": "10.100.200.21"}],
        "node_subnet": "10.100.200.0/24", "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16",
        "encapsulation": "IPIPCrossSubnet",
    })
    store.update_session("incident", step="versions")
    rec = store.get_session("incident")
    for step in ("lab", "nodes", "networks"):
        store.record_step(rec.id, "plan", step, "done", "saved")
    store.record_step(rec.id, "plan", "machines", "skipped", "no cloud: the lab adopts machines you already have")

    async def open_versions(pilot) -> None:
        await no_blink(pilot)
        screen = pilot.app.screen
        screen._show(screen.current[0], screen.current[0].step("versions"))
        await no_blink(pilot)

    app = LabApp(store=store, resume="incident")
    # the command log shows wall-clock times: hide it for a stable picture
    async def run_before(pilot) -> None:
        await open_versions(pilot)
        pilot.app.screen.query_one("#log").display = False
        # the form's first field is scrolled into view after a refresh (call_after_refresh): let every
        # scheduled refresh run, so the picture never depends on whether that scroll happened yet
        for _ in range(3):
            await pilot.pause(0.1)
            await pilot.wait_for_scheduled_animations()
        # where the step pane is scrolled depends on when the focus scroll ran (timing): picture it from the top
        pilot.app.screen.query_one("#step-pane").scroll_home(animate=False)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
