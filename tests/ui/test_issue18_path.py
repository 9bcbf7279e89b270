"""Issue 18: the learner's path tells the truth at every step and never leaves them stuck (a refused
host key is asked again, torn-down labs say so, no-cloud steps show as skipped from the start, the
plan's Nodes form keeps a filled row)."""

from __future__ import annotations

import os

import pytest

from labtui.store import Store
from screens.app import LabApp
from screens.wizard import WizardScreen
from tests.ui.conftest import settle

SIZE = (140, 42)


def _state(store: Store, lab: str, wizard: str, step: str) -> str:
    rec = store.get_session(lab)
    run = store.step_states(rec.id, wizard).get(step)
    return run.state if run else "pending"


@pytest.mark.root
async def test_a_refused_host_key_is_asked_again_on_the_next_run_with_the_choice_explained(lab_home, tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, sshd)")
    from screens.modals import HostKeyModal
    from tests.harness.sshnodes import SSHNodes

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(tmp_path / "none"))
    with SSHNodes(1) as nodes:
        monkeypatch.setenv("LABTUI_SSH_CONFIG", str(nodes.ssh_config))
        store = Store()
        store.create_session("incident", wizard="nodes", plan=nodes.plan_data("incident", via_config=True))
        store.update_session("incident", wizard="nodes", step="facts")
        app = LabApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            app.open_wizard("incident")

            async def answer(key: str) -> list[str]:
                asked = []
                for _ in range(300):
                    await pilot.pause(0.05)
                    if isinstance(app.screen, HostKeyModal):
                        asked.append(app.screen.info.node)
                        await pilot.press(key)
                    elif asked and not any(w.is_running for w in app.workers):
                        break
                await settle(app, pilot, 6)
                return asked

            assert await answer("n") == ["node1"]  # refused while the lab opened
            screen = app.screen
            assert isinstance(screen, WizardScreen)
            screen._show(screen.current[0], screen.current[0].step("facts"))
            await settle(app, pilot, 6)
            assert not isinstance(app.screen, HostKeyModal)  # the background reads do not ask twice
            await pilot.press("ctrl+s")
            assert await answer("n") == ["node1"]  # the explicit run asks again
            assert _state(store, "incident", "nodes", "facts") == "failed"
            status = str(screen.query_one("#step-status").render())
            assert "no automatic way" not in status
            assert "run this step again (ctrl+s)" in status and "press y" in status
            await pilot.press("ctrl+s")
            assert await answer("y") == ["node1"]
            assert _state(store, "incident", "nodes", "facts") == "done"


def _icon(screen: WizardScreen, wizard_id: str, step_id: str) -> str:
    from screens.widgets.step_item import StepItem

    for item in screen.query(StepItem):
        if item.step is not None and item.wizard.id == wizard_id and item.step.id == step_id:
            return str(item.query_one("Label").render())[0]
    raise AssertionError(f"{wizard_id}/{step_id}")


async def test_no_cloud_lab_shows_provision_and_cloud_steps_skipped_as_soon_as_it_opens(lab_home, incident_plan_data):
    from labtui.stages import wizard_for

    store = Store()
    store.create_session("incident", wizard="nodes", plan=incident_plan_data)
    app = LabApp(store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.open_wizard("incident")
        await settle(app, pilot, 8)
        screen = app.screen
        assert isinstance(screen, WizardScreen)
        for wizard_id in ("provision", "cloud"):
            for step in wizard_for(wizard_id).steps:  # no ctrl+s on any of them
                assert _icon(screen, wizard_id, step.id) == "–", f"{wizard_id}/{step.id}"
                assert _state(store, "incident", wizard_id, step.id) == "skipped"
        rec = store.get_session("incident")
        runs = store.step_states(rec.id, "cloud")
        assert "no cloud" in runs["check"].detail
        assert "no cloud in the plan" in store.step_states(rec.id, "provision")["network"].detail
        # the Nodes stage's steps are not touched: they do apply
        assert _icon(screen, "nodes", "preflight") != "–"


def test_a_plan_that_gains_a_cloud_makes_its_provision_steps_pending_again(store, incident_plan_data):
    from labtui.session import LabSession
    from labtui.stages import mark_not_applicable

    store.create_session("incident", wizard="nodes", plan=incident_plan_data)
    with LabSession(store, "incident") as lab:
        assert "cloud/check" in mark_not_applicable(lab.ctx)
        assert mark_not_applicable(lab.ctx) == []  # once
        store.update_session("incident", cloud="test", plan=dict(incident_plan_data, cloud="test"))
        lab.ctx.reload()
        assert "cloud/check" in mark_not_applicable(lab.ctx)
    assert _state(store, "incident", "cloud", "check") == "pending"


async def test_plan_nodes_form_adds_a_filled_row_on_save_and_names_a_wrong_pasted_field(lab_home, incident_inputs):
    from screens.widgets.nodes_editor import NodesEditor
    from tests.ui.test_plan import _lab, _open

    store = _lab(dict(incident_inputs, nodes=[{"name": "cp1", "address": "10.100.200.4", "role": "control-plane"}]),
                 "nodes")
    app = LabApp(store=store, resume="incident")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, "nodes")
        editor = screen.query_one(NodesEditor)
        # a line pasted in the table's column order (name, address, role, user, port): the port is
        # its own field, and a value in the wrong place is named
        editor.query_one("#node-name").focus()
        editor.query_one("#node-name").insert_text_at_cursor("w1\t10.100.200.21\tworker\troot\t2222")
        await pilot.pause()
        assert [editor.query_one(f"#{w}").value for w in ("node-name", "node-address", "node-user", "node-port")] == \
            ["w1", "10.100.200.21", "root", "2222"]
        assert str(editor.query_one("#node-problem").render()).strip() == ""
        editor.clear_form()
        editor.query_one("#node-name").focus()
        editor.query_one("#node-name").insert_text_at_cursor("w1\t10.100.200.21\t2222\tubuntu")
        await pilot.pause()
        problem = str(editor.query_one("#node-problem").render())
        assert "SSH port: 'ubuntu' is not a port number" in problem and "SSH user: '2222'" in problem
        assert app.focused is editor.query_one("#node-user")
        # Save & continue with the wrong row in the form: not dropped, not added, the field named
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert screen.current[1].id == "nodes" and [n["name"] for n in editor.nodes] == ["cp1"]
        assert "SSH port: 'ubuntu'" in str(editor.query_one("#node-problem").render())
        # corrected as typed: the error goes; Save & continue adds the row, then goes on
        editor.query_one("#node-user").value = "ubuntu"
        editor.query_one("#node-port").value = "2222"
        await pilot.pause()
        assert str(editor.query_one("#node-problem").render()).strip() == ""
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert screen.current[1].id == "networks"
    nodes = store.get_session("incident").inputs["nodes"]
    assert [(n["name"], n.get("user"), n.get("port")) for n in nodes] == [("cp1", None, None), ("w1", "ubuntu", 2222)]


def _torn_down_lab(store: Store, incident_plan_data) -> None:
    """A lab whose machines were provisioned and which stood at Nodes / Node facts with an SSH error."""
    from labtui.stages import wizard_for
    from labtui.store import Change

    plan = dict(incident_plan_data, cloud="nowhere", provision={"image": "debian-12", "flavor_control_plane": "m1",
                                                                 "flavor_worker": "m1", "network": "labnet"})
    store.create_session("incident", cloud="nowhere", wizard="nodes", plan=plan)
    rec = store.get_session("incident")
    for step in wizard_for("provision").steps:
        store.record_step(rec.id, "provision", step.id, "done", "")
    store.record_step(rec.id, "nodes", "facts", "failed", "cp1: 10.100.200.4:22 refused the connection",
                      session_step="facts")
    store.record_change(rec.id, Change(kind="cloud.server", target="labtui-incident-cp1",
                                       description="server labtui-incident-cp1",
                                       command="openstack server create labtui-incident-cp1",
                                       revert_command="openstack server delete 1234", revert_data={"id": "1234"}))


def test_after_a_teardown_sessions_and_show_say_what_is_true(store, incident_plan_data, capsys):
    from labtui.cli import main
    from labtui.session import LabSession
    from labtui.stages.teardown import forget_the_machines

    _torn_down_lab(store, incident_plan_data)
    rec = store.get_session("incident")
    change = store.changes(rec.id)[0]
    with LabSession(store, "incident") as lab:  # what the teardown does once every delete succeeded
        store.mark_reverted(change.id)
        store.update_session("incident", health="torn down")
        forget_the_machines(lab.ctx)
    assert main(["sessions"]) == 0
    out = capsys.readouterr().out
    assert "Node facts" not in out and "Provision / What the cloud offers" in out
    assert main(["sessions", "--json"]) == 0
    import json

    row = json.loads(capsys.readouterr().out)[0]
    assert row["stage"] == "Provision" and row["done_steps"] == 0 and row["health"] == "torn down"
    assert main(["show", "incident"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if f"change #{change.id}:" in x)
    assert "[reverted]" in line and "revert: openstack server delete" not in line


async def test_after_a_teardown_from_the_wizard_it_lands_on_provision_not_on_a_stale_ssh_error(
        lab_home, incident_plan_data, monkeypatch):
    import labtui.stages.teardown as td
    from screens.modals import ConfirmModal

    store = Store()
    _torn_down_lab(store, incident_plan_data)
    monkeypatch.setattr(td, "teardown_plan", lambda ctx: list(ctx.store.changes(ctx.session.id)))

    def deleted(ctx, items, *, confirmed):  # the cloud's deletes are tests/provision's; the record's part is real
        for c in items:
            ctx.store.mark_reverted(c.id)
        ctx.store.update_session(ctx.session.name, health="torn down")
        td.forget_the_machines(ctx)
        ctx.reload()
        return items, []
    monkeypatch.setattr(td, "teardown", deleted)
    app = LabApp(store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.open_wizard("incident")
        await settle(app, pilot, 8)
        screen = app.screen
        assert isinstance(screen, WizardScreen) and screen.current[1].id == "facts"
        await pilot.press("ctrl+t")
        await settle(app, pilot, 6)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(app, pilot, 8)
        assert screen.current[0].id == "provision" and screen.current[1].id == "offer"
        assert "refused the connection" not in str(screen.query_one("#step-status").render())
        assert _icon(screen, "nodes", "facts") == "○"
    rec = store.get_session("incident")
    assert (rec.wizard, rec.step) == ("provision", "offer")
