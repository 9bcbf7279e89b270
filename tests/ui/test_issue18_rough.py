"""Issue 18, the rough edges: "Show me how" prints the lab's own values, the palette lists the lab's
steps and actions before Textual's own commands, the step pane opens at the top of its "why"."""

from __future__ import annotations

import pytest

from labtui.model import Plan
from labtui.stages import wizard_for
from labtui.store import Store
from labtui.teaching import LabValues, fill, unknown_placeholders
from screens.app import LabApp
from screens.wizard import WizardScreen
from tests.ui.conftest import settle


def test_show_me_how_puts_in_the_adopted_labs_nodes_and_keys(incident_plan_data):
    data = dict(incident_plan_data, nodes=[dict(n) for n in incident_plan_data["nodes"]])
    data["nodes"][0].update(user="debian", port=2222, key_file="~/.ssh/lab key", proxy_jump="jump@bastion")
    plan = Plan.model_validate(data)
    by_hand = wizard_for("nodes").step("facts").by_hand + "\n" + wizard_for("plan").step("nodes").by_hand
    text = fill(by_hand, LabValues("incident", None, plan))
    assert "ssh -i ~/'.ssh/lab key' -p 2222 -J jump@bastion debian@10.100.200.4 'uname -r" in text
    assert "ssh -i ~/'.ssh/lab key' debian@10.100.200.4 hostname" in text
    assert unknown_placeholders(text) == []
    # the Cloud step of a no-cloud lab: the cloud is not known, the placeholder stays and is named
    cloud = fill(wizard_for("plan").step("lab").by_hand, LabValues("incident", None, plan))
    assert unknown_placeholders(cloud) == ["CLOUD"]


def test_show_me_how_puts_in_the_provisioned_labs_names(incident_plan_data):
    data = dict(incident_plan_data, cloud="lab cloud", provision={"public_key_file": "~/.ssh/id_rsa.pub"},
                sources={"http_proxy": "http://10.0.0.1:3142"})
    plan = Plan.model_validate(data)
    text = fill("openstack --os-cloud CLOUD token issue\nopenstack port list --server SERVER --long\n"
                "openstack port show PORT -c allowed_address_pairs\nopenstack security group rule list GROUP\n"
                "ssh -i KEY_FILE USER@ADDRESS hostname\ncurl -sI --proxy http://PROXY:PORT https://pkgs.k8s.io/",
                LabValues("incident", None, plan))
    assert "--os-cloud 'lab cloud' token" in text
    assert "--server labtui-incident-cp1 --long" in text
    assert "port show labtui-incident-cp1 -c" in text
    assert "rule list labtui-incident\n" in text
    assert "ssh -i ~/.ssh/id_rsa ubuntu@10.100.200.4 hostname" in text
    assert "--proxy http://10.0.0.1:3142 https" in text
    assert unknown_placeholders(text) == []


async def test_f2_in_the_wizard_shows_the_lab_values_not_placeholders(lab_home, incident_plan_data):
    store = Store()
    store.create_session("incident", wizard="nodes", plan=incident_plan_data)
    app = LabApp(store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.open_wizard("incident")
        await settle(app, pilot, 8)
        screen = app.screen
        assert isinstance(screen, WizardScreen)
        screen._show(screen.current[0], screen.current[0].step("facts"))
        await settle(app, pilot, 4)
        await pilot.press("f2")
        await settle(app, pilot, 4)
        how = str(screen.query_one("#step-how").render())
        assert "ssh ubuntu@10.100.200.4 'uname -r" in how
        assert "NODE" not in how


async def test_the_palette_lists_the_labs_screens_steps_and_actions_before_textuals_own(lab_home, incident_plan_data):
    from textual.command import CommandPalette

    store = Store()
    store.create_session("incident", wizard="nodes", plan=incident_plan_data)
    app = LabApp(store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.open_wizard("incident")
        await settle(app, pilot, 8)
        await pilot.press("ctrl+p")
        await settle(app, pilot, 10)
        assert isinstance(app.screen, CommandPalette)
        options = app.screen.query_one("CommandList")
        prompts = [str(options.get_option_at_index(i).prompt).split("\n")[0] for i in range(options.option_count)]
        assert prompts[0] == "New lab"
        assert not [p for p in prompts if p.startswith("Cursor")]  # a focused widget's keys are not the lab's
        first_textual = min(prompts.index(p) for p in ("Keys", "Quit", "Theme", "Screenshot") if p in prompts)
        last_step = max(i for i, p in enumerate(prompts) if p.startswith("Step: "))
        show_how = prompts.index("Show me how")  # the screen's own action, with its key
        assert last_step < show_how < first_textual


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_the_step_pane_opens_at_the_top_of_the_why_with_the_first_field_focused(lab_home, incident_inputs, size):
    store = Store()
    store.create_session("fresh", wizard="plan", inputs=incident_inputs)
    app = LabApp(store=store)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        app.open_wizard("fresh")
        await settle(app, pilot, 8)
        screen = app.screen
        assert isinstance(screen, WizardScreen)
        for step_id in ("lab", "nodes", "networks", "sources"):
            screen._show(screen.current[0], screen.current[0].step(step_id))
            await settle(app, pilot, 6)
            pane = screen.query_one("#step-pane")
            assert pane.scroll_y == 0, step_id
            form = screen.query_one("#step-form")
            assert app.focused is not None and form in app.focused.ancestors, step_id  # keys go to the first field


HEALTH = ("2 problems: IP protocol 4 (IPIP) is dropped between the nodes by security group k8s (no rule allows it); "
          "w3 has no calico-node Ready")


async def test_at_160x48_the_home_table_shows_the_whole_health_and_the_nodes_screen_fills_the_height(
        lab_home, incident_plan_data):
    from textual.widgets import DataTable, Footer

    store = Store()
    store.create_session("incident", wizard="nodes", plan=incident_plan_data)
    store.update_session("incident", health=HEALTH)
    app = LabApp(store=store)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot, 6)
        table = app.screen.query_one("#sessions", DataTable)
        health = str(table.get_cell_at((0, 2)))
        assert health.startswith("2 problems: IP protocol 4 (IPIP) is dropped between the nodes by security group")
        assert len(health) > 60  # not cut at 22 characters with 60 columns left empty
        await pilot.resize_terminal(80, 24)
        await settle(app, pilot, 4)
        assert len(str(table.get_cell_at((0, 2)))) == 22  # at 80 columns it is cut, the detail line has it whole
        await pilot.resize_terminal(160, 48)
        await settle(app, pilot, 4)
        app.open_wizard("incident")  # the wizard's CSS is loaded first: it must not shrink other screens' logs
        await settle(app, pilot, 8)
        await app.screen.run_action("open_screen('nodes')")
        await settle(app, pilot, 6)
        log = app.screen.query_one("#log")
        footer = app.screen.query_one(Footer)
        assert log.region.bottom == footer.region.y  # the command log takes the rest of the screen


async def test_the_ui_teardown_shows_which_delete_runs_and_how_long_it_has_taken(lab_home, incident_plan_data,
                                                                               monkeypatch):
    import threading

    import labtui.stages.teardown as td
    from labtui import events as ev
    from labtui.events import Event
    from screens.modals import ConfirmModal
    from tests.ui.test_issue18_path import _torn_down_lab

    store = Store()
    _torn_down_lab(store, incident_plan_data)
    monkeypatch.setattr(td, "teardown_plan", lambda ctx: list(ctx.store.changes(ctx.session.id)))
    halfway, go_on = threading.Event(), threading.Event()

    def deleting(ctx, items, *, confirmed):  # the cloud's deletes are tests/provision's: here, the events they emit
        for c in items:
            ctx.emit(Event(ev.ACTION_START, f"$ {c.revert_command}", step="teardown"))
            halfway.set()
            assert go_on.wait(10)
            ctx.store.mark_reverted(c.id)
        return items, []
    monkeypatch.setattr(td, "teardown", deleting)
    app = LabApp(store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.open_wizard("incident")
        await settle(app, pilot, 8)
        screen = app.screen
        await pilot.press("ctrl+t")
        await settle(app, pilot, 6)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        for _ in range(100):
            await pilot.pause(0.05)
            if halfway.is_set() and "tearing down 1/" in str(screen.query_one("#step-status").render()):
                break
        status = str(screen.query_one("#step-status").render())
        total = len(store.changes(store.get_session("incident").id))
        assert f"tearing down 1/{total}: openstack server delete" in status, status
        assert f"tearing down 1/{total}" in screen.sub_title  # the header is on screen at 80x24, the status may not be
        go_on.set()
        await settle(app, pilot, 8)
        assert "tearing down" not in str(screen.query_one("#step-status").render())
        assert screen.sub_title == "incident"


def test_show_me_how_in_the_plan_wizard_uses_what_was_typed_before_the_plan_is_saved():
    drafts = {"nodes": [{"name": "cp", "address": "10.123.0.10", "role": "control-plane", "user": "debian"},
                        {"name": "w1", "address": "", "role": "worker"}],  # a row still being typed
              "provision_mode": "create", "prov_public_key_file": "~/.ssh/lab.pub"}
    text = fill(wizard_for("plan").step("nodes").by_hand, LabValues("walk", "walk", None, drafts))
    assert text.startswith("ssh -i ~/.ssh/lab debian@10.123.0.10 hostname")
    assert unknown_placeholders("ssh -i KEY_FILE USER@ADDRESS") == ["KEY_FILE", "USER@ADDRESS"]
