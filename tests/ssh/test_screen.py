"""The Nodes screen driven through Textual's Pilot against real sshd nodes."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

pytestmark = pytest.mark.root

SIZE = (150, 45)


async def settle(app, pilot, rounds: int = 8) -> None:
    for _ in range(rounds):
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)


def row(screen, key: str) -> list[str]:
    return screen.row_cells(key)


@pytest.fixture
def screen_lab(fresh_lab, ssh_env, store, tmp_path, monkeypatch):
    monkeypatch.setenv("LABTUI_SSH_CONFIG", str(fresh_lab.ssh_config))
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(tmp_path / "none"))
    store.create_session("lab", plan=fresh_lab.plan_data("lab", via_config=True), wizard="nodes")
    return fresh_lab


async def test_nodes_screen_host_keys_table_command_and_shell(screen_lab, store):
    from screens.app import LabApp
    from screens.modals import HelpScreen
    from screens.modals import HostKeyModal
    from screens.nodes import NodesScreen
    from screens.widgets.command_log import CommandLog

    lab = screen_lab
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        app.open_session_screen("nodes", "lab")
        await settle(app, pilot)
        # both keys are new: one modal at a time, with the fingerprint exactly as OpenSSH prints it
        modal = app.screen
        assert isinstance(modal, HostKeyModal) and not modal.changed
        assert modal.info.node == "node1" and modal.info.fingerprint == lab.nodes[0].fingerprint
        assert lab.nodes[0].fingerprint in str(modal.query_one("#hostkey-fp", Static).content)
        await pilot.press("n")  # refuse node1
        await settle(app, pilot)
        modal = app.screen
        assert isinstance(modal, HostKeyModal) and modal.info.node == "node2"
        await pilot.press("y")  # accept node2
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, NodesScreen)
        table = screen.query_one("#nodes-table")
        assert row(screen, "node2")[:3] == ["node2", lab.nodes[1].address, "yes"]
        assert row(screen, "node2")[3] == "Ubuntu 24.04.1 LTS" and row(screen, "node2")[6].endswith(" ms")
        assert row(screen, "node1")[2] == "new host key"

        # t on node1 asks again; accept; the row becomes reachable
        await pilot.press("t")
        await settle(app, pilot)
        assert isinstance(app.screen, HostKeyModal)
        await pilot.press("y")
        await settle(app, pilot)
        assert row(screen, "node1")[2] == "yes"

        # an ad-hoc command on the selected node, output live in the command log
        await pilot.press("c")
        cmd = screen.query_one("#command", Input)
        assert cmd.has_focus
        cmd.value = "echo from-$(hostname); echo warn >&2"
        await pilot.press("enter")
        await settle(app, pilot)
        log_text = "\n".join(str(line.text) for line in screen.query_one(CommandLog).lines)
        assert "[node1] from-node1" in log_text and "[node1] warn" in log_text

        # r: the host key of node2 changed meanwhile -> red row, t explains and replaces
        table.focus()
        lab.rebuild_host_key("node2")
        screen.ssh.drop("node2")
        await pilot.press("r")
        await settle(app, pilot)
        assert row(screen, "node2")[2] == "KEY CHANGED"
        await pilot.press("down")
        await settle(app, pilot, 2)
        assert "has CHANGED" in str(screen.query_one("#node-detail", Static).content)
        await pilot.press("t")
        await settle(app, pilot)
        modal = app.screen
        assert isinstance(modal, HostKeyModal) and modal.changed
        assert modal.info.known_fingerprint and modal.info.fingerprint == lab.nodes[1].fingerprint
        await pilot.press("y")
        await settle(app, pilot)
        assert row(screen, "node2")[2] == "yes"

        # s: no real terminal under the test driver -> the exact ssh command is shown to copy
        await pilot.press("s")
        await settle(app, pilot, 2)
        log_text = "\n".join(str(line.text) for line in screen.query_one(CommandLog).lines)
        assert "$ ssh " in log_text and "StrictHostKeyChecking=yes" in log_text

        await pilot.press("question_mark")
        await settle(app, pilot, 2)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await settle(app, pilot, 2)
        await pilot.press("escape")
        await settle(app, pilot, 2)
        assert not isinstance(app.screen, NodesScreen)
    rec = store.get_session("lab")
    assert sorted(s for s in store.facts(rec.id) if s.startswith("node:")) == ["node:node1", "node:node2"]


async def test_nodes_screen_without_a_plan(lab_home, store):
    from screens.app import LabApp

    store.create_session("empty")
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        app.open_session_screen("nodes", "empty")
        await settle(app, pilot, 3)
        assert "no saved plan" in str(app.screen.query_one("#nodes-summary", Static).content)


async def test_nodes_stage_in_the_wizard(fresh_lab, ssh_env, store, monkeypatch):
    """The wizard runs the nodes stage: facts over SSH, then preflight with its fix confirmed."""
    from labtui.model import Plan
    from screens.app import LabApp
    from screens.modals import ConfirmModal

    monkeypatch.setenv("LABTUI_SSH_CONFIG", str(fresh_lab.ssh_config))
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(fresh_lab.known_hosts))
    data = fresh_lab.plan_data("lab", via_config=True)
    data["encapsulation"] = "VXLAN"
    store.create_session("lab", plan=Plan.parse(data).model_dump(mode="json"))
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        app.open_wizard("lab")
        await settle(app, pilot, 3)
        app.goto_step("nodes", "facts")
        await settle(app, pilot, 3)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        rec = store.get_session("lab")
        assert store.step_states(rec.id, "nodes")["facts"].state == "done"
        assert sorted(s for s in store.facts(rec.id) if s.startswith("node:")) == ["node:node1", "node:node2"]
        app.goto_step("nodes", "preflight")
        await settle(app, pilot, 3)
        await pilot.press("ctrl+s")
        for _ in range(200):  # the step's worker waits for the answer: do not wait for workers here
            if isinstance(app.screen, ConfirmModal):
                break
            await pilot.pause(0.05)
        assert isinstance(app.screen, ConfirmModal)
        assert any("net.ipv4.ip_forward = 1" in line for line in app.screen.lines)
        await pilot.press("y")
        await settle(app, pilot)
        assert store.step_states(rec.id, "nodes")["preflight"].state == "done"
        assert fresh_lab.node_exec("node1", ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "1"
