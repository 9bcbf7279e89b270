"""Every screen is usable at 80x24 and uses the room at 140x42: no cut footer label, readable step
titles, whole addresses in the node editor, the home screen's Health column on screen."""

from __future__ import annotations

import pytest

from labtui.store import Store
from screens.app import LabApp
from screens.home import HomeScreen
from screens.widgets.nodes_editor import NodesEditor
from screens.widgets.step_item import StepItem
from screens.wizard import WizardScreen
from tests.ui.conftest import SIZES, footer_cut, settle


def _lab(inputs, step="nodes"):
    store = Store()
    store.create_session("incident")
    store.save_inputs("incident", inputs)
    store.update_session("incident", step=step)
    return store


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_wizard_fits(lab_home, incident_inputs, size):
    store = _lab(incident_inputs)
    app = LabApp(store=store, resume="incident")
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot, 6)
        screen = app.screen
        assert isinstance(screen, WizardScreen)
        assert footer_cut(screen) == []
        assert screen.has_class("-narrow" if size[0] < 110 else "-wide")
        # every step title in the left column is readable whole (long ones wrap, none is cut)
        for item in screen.query(StepItem):
            if item.step is None:
                continue
            label = item.query_one("Label")
            shown = " ".join(strip.text.strip() for strip in label.render_lines(label.region.reset_offset))
            assert item.step.title in " ".join(shown.split()[1:]), (item.step.title, shown)
        # the nodes step: every address whole in its input, the role select shows its value
        screen._show(screen.current[0], screen.current[0].step("nodes"))
        await settle(app, pilot)
        editor = screen.query_one(NodesEditor)
        editor.edit_row(1)
        await settle(app, pilot)
        for wid, value in (("#node-address", "10.100.200.21"), ("#node-name", "w1")):
            inp = editor.query_one(wid)
            assert inp.value == value and inp.region.width >= len(value) + 1, (wid, inp.region)
        editor._input("node-key").value = "~/.ssh/id_ed25519_study_lab"
        assert editor.query_one("#node-key").region.width >= len("~/.ssh/id_ed25519_study_lab") + 1
        role = editor.query_one("#node-role")
        assert role.region.width >= len("control-plane") + 3
        # the highlighted row is also shown in full under the table
        assert "10.100.200.21" in str(editor.query_one("#node-full").render())
        # the save button's label is whole
        button = screen.query_one("#step-run")
        assert button.region.width >= len(str(button.label)) + 2


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_home_fits_and_counts_the_whole_lab(lab_home, incident_inputs, size):
    from labtui.stages import available_wizards

    store = _lab(incident_inputs)
    rec = store.get_session("incident")
    for step in ("lab", "nodes", "networks"):
        store.record_step(rec.id, "plan", step, "done", "saved")
    store.record_step(rec.id, "nodes", "facts", "skipped", "no SSH")
    store.update_session("incident", health="doctor: healthy: 12 of 12 pod paths pass")
    app = LabApp(store=store)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, HomeScreen)
        assert footer_cut(screen) == []
        table = screen.query_one("#sessions")
        total = sum(len(w.steps) for w in available_wizards())
        row = [str(c) for c in table.get_row("incident")]
        assert row[1] == f"4/{total} Plan"  # the whole lab's progress, and the stage
        # the Health column is on screen at 80 columns
        health_x = sum(col.get_render_width(table) for col in list(table.columns.values())[:2])
        assert health_x + 8 <= table.region.width
        assert row[2].startswith("healthy")
        detail = str(screen.query_one("#lab-detail").render())
        assert "healthy: 12 of 12 pod paths pass" in detail and f"4 of {total} steps done" in detail


@pytest.mark.parametrize("screen_id", ["nodes", "security", "calico", "doctor"])
async def test_session_screens_footer_fits_at_80x24(lab_home, screen_id):
    """The lab's other screens keep every footer label whole at 80 columns (the keys left out of
    the footer still work; the help and the palette list them)."""
    store = Store()
    store.create_session("adopted")  # no cloud, no cluster: the screens say so, the layout is under test
    app = LabApp(store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.open_session_screen(screen_id, "adopted")
        await settle(app, pilot, 10)
        screen = app.screen
        assert footer_cut(screen) == []
        hidden = getattr(screen, "FOOTER_NARROW_HIDE", ())
        if hidden:
            titles = [c.title for c in app.get_system_commands(screen)]
            for b in screen.BINDINGS:
                if b.id in hidden:
                    assert b.description in titles  # still reachable from the palette
