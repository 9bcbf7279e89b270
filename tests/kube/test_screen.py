"""The Calico screen driven through Textual's Pilot against the test API server."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from labtui.store import Store
from screens.app import LabApp
from screens.calico import CalicoScreen
from screens.modals import ModeSelect
from screens.modals import ConfirmModal, HelpScreen
from tests.harness.kube import EXPIRED

SIZE = (150, 50)
INCIDENT = ("CrossSubnet, and all 4 nodes are on 10.100.200.0/24: pod traffic leaves the VMs unencapsulated "
            "with pod source addresses")


async def settle(app, pilot, rounds: int = 6) -> None:
    for _ in range(rounds):
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


async def test_screen_shows_the_incident_and_changes_the_mode_through_the_modal(lab_home, incident, kubeconfig_for):
    store = Store()
    store.create_session("lab", wizard="calico")
    store.save_inputs("lab", {"kubeconfig": str(kubeconfig_for(incident))})
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        app.open_session_screen("calico", "lab")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, CalicoScreen)
        assert "manifest install" in text_of(screen, "#calico-summary")
        pools = screen.query_one("#pools", DataTable)
        assert pools.row_count == 1
        assert [str(c) for c in pools.get_row_at(0)[:4]] == ["default-ipv4-ippool", "172.16.0.0/16", "CrossSubnet", "Never"]
        assert INCIDENT in text_of(screen, "#pool-meaning")
        assert screen.query_one("#nodes", DataTable).row_count == 4

        await pilot.press("question_mark")
        await settle(app, pilot, 2)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await settle(app, pilot, 2)

        await pilot.press("m")
        await settle(app, pilot)
        assert isinstance(app.screen, ModeSelect)
        await pilot.press("enter")  # the first choice: IPIP Always (recommended on OpenStack)
        await settle(app, pilot)
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.danger  # the raw CRD: a red dialog with the warning
        assert modal.lines[0].startswith("WARNING: Calico's documentation says")
        assert incident.patches() == []  # nothing sent before the confirmation
        await pilot.press("y")
        await settle(app, pilot, 10)
        assert app.screen is screen
        [patch] = incident.patches()
        assert patch.body == {"spec": {"ipipMode": "Always", "vxlanMode": "Never"}}
        assert [str(c) for c in pools.get_row_at(0)[2:4]] == ["Always", "Never"]
        assert "IPIP Always" in text_of(screen, "#pool-meaning")
        [change] = store.changes(store.get_session("lab").id)
        assert change.kind == "calico.pool-mode"

        # u reverts the last change after a confirmation
        await pilot.press("u")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(app, pilot, 10)
        assert incident.pool("default-ipv4-ippool")["spec"]["ipipMode"] == "CrossSubnet"
        assert store.changes(store.get_session("lab").id)[0].reverted is not None

        await pilot.press("escape")
        await settle(app, pilot, 2)
        assert not isinstance(app.screen, CalicoScreen)


async def test_screen_shows_a_clear_error_and_cancelling_changes_nothing(lab_home, incident, kubeconfig_for):
    store = Store()
    store.create_session("bad", wizard="calico")
    store.save_inputs("bad", {"kubeconfig": str(kubeconfig_for(incident, EXPIRED))})
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        app.open_session_screen("calico", "bad")
        await settle(app, pilot)
        summary = text_of(app.screen, "#calico-summary")
        assert "(401 Unauthorized)" in summary and "fetch a fresh admin.conf" in summary
        await pilot.press("m")
        await settle(app, pilot)
        assert isinstance(app.screen, CalicoScreen)  # nothing to change yet: a notification, no modal

        # point it at a good kubeconfig with k
        await pilot.press("k")
        await settle(app, pilot)
        inp = app.screen.query_one("#prompt-input")
        inp.value = str(kubeconfig_for(incident))
        await pilot.press("enter")
        await settle(app, pilot)
        assert "manifest install" in text_of(app.screen, "#calico-summary")

        await pilot.press("m")
        await settle(app, pilot)
        await pilot.press("escape")  # cancel the mode choice
        await settle(app, pilot)
        await pilot.press("m")
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        await pilot.press("n")  # refuse the confirmation
        await settle(app, pilot)
        assert incident.patches() == []
        assert store.changes(store.get_session("bad").id) == []
