"""The Security screen driven through Textual's Pilot against the real OpenStack API."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static

from screens.app import LabApp
from screens.modals import ConfirmModal, HelpScreen
from screens.security import SecurityScreen

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(300)]

SIZE = (160, 60)


async def settle(app, pilot, rounds: int = 8) -> None:
    for _ in range(rounds):
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


def cells(table: DataTable, key: str) -> list[str]:
    return [str(c) for c in table.get_row(key)]


async def test_security_screen_shows_the_incident_and_fixes_it_through_the_modal(incident, make_lab, store):
    lab = make_lab(incident, "IPIP", extra_nodes=[{"name": "w9", "address": "10.100.200.99"}])
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        app.open_session_screen("security", lab)
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, SecurityScreen)
        assert "cloud labtui-admin" in text_of(screen, "#sec-summary")
        assert "1 missing (ipip)" in text_of(screen, "#sec-summary")

        nodes = screen.query_one("#sec-nodes", DataTable)
        assert cells(nodes, "w1")[:7] == ["w1", "worker", "w1", "incident-w1", "10.100.200.21", "10.100.200.0/24", "on"]
        assert cells(nodes, "w1")[7] == "k8s"
        assert "not a server of cloud labtui-admin" in cells(nodes, "w9")[2]

        reqs = screen.query_one("#sec-reqs", DataTable)
        row = reqs.get_row("ipip")
        assert str(row[0]) == "✗ missing" and row[0].style == "bold red"  # highlighted
        assert str(row[2]) == "Calico IPIP (Always)"
        assert str(reqs.get_row("bgp")[0]) == "✓ satisfied"
        rules = screen.query_one("#sec-rules", DataTable)
        required = {str(rules.get_row_at(i)[1]): str(rules.get_row_at(i)[2]) for i in range(rules.row_count)}
        assert required["ingress IPv4 tcp 179 from members of group k8s"] == "bgp"
        assert required["ingress IPv4 icmp from 0.0.0.0/0"] == "-"

        await pilot.press("question_mark")
        await settle(app, pilot, 2)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await settle(app, pilot, 2)

        reqs.move_cursor(row=reqs.get_row_index("ipip"))
        await settle(app, pilot, 2)
        assert "IP-in-IP" in text_of(screen, "#sec-detail")
        await pilot.press("f")
        await settle(app, pilot)
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        assert modal.lines[0].startswith("$ openstack security group rule create --ingress --ethertype IPv4 "
                                         "--protocol 4 --remote-group k8s")
        assert "API: POST /v2.0/security-group-rules" in modal.lines[0]
        assert [r for r in incident.rules() if r.protocol == "4"] == []  # nothing before the confirmation
        await pilot.press("y")
        await settle(app, pilot, 12)
        assert app.screen is screen
        [rule] = [r for r in incident.rules() if r.protocol == "4"]
        assert rule.remote_group_id == incident.security_group_id
        assert "all 10 requirements are met" in text_of(screen, "#sec-summary")
        log = "\n".join(screen.query_one("#log").plain)  # the log wraps: its text, line by line
        assert "POST /v2.0/security-group-rules" in log and "GET /v2.0/security-groups?id=" in log

        # u reverts it after a confirmation
        await pilot.press("u")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(app, pilot, 12)
        assert [r for r in incident.rules() if r.protocol == "4"] == []

        # p: port security off on the highlighted node, in a red dialog that says what it costs
        nodes.move_cursor(row=nodes.get_row_index("w2"))
        await pilot.press("p")
        await settle(app, pilot)
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.danger
        assert "--disable-port-security incident-w2" in modal.lines[0]
        await pilot.press("n")
        await settle(app, pilot)
        assert incident.port("w2").is_port_security_enabled is True

        await pilot.press("escape")
        await settle(app, pilot, 2)
        assert not isinstance(app.screen, SecurityScreen)


async def test_security_screen_says_what_went_wrong(lab_home, store, openstack_stack, monkeypatch, incident):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(openstack_stack.clouds_yaml))
    store.create_session("bad", cloud="labtui-badpass", wizard="cloud", plan=incident.plan(lab="bad"))
    store.update_session("bad", cloud="labtui-badpass")
    store.save_inputs("bad", {"cloud": "labtui-badpass"})
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        app.open_session_screen("security", "bad")
        await settle(app, pilot)
        assert "the credentials were refused (HTTP 401)" in text_of(app.screen, "#sec-summary")
