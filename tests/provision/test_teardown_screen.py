"""The Teardown action on the lab's screen (issue 10): ctrl+t in the wizard lists everything the lab
created, in delete order, behind one red confirmation; yes deletes exactly that. The real OpenStack
test backend, through Pilot."""

from __future__ import annotations

import pytest

from screens.app import LabApp
from screens.modals import ConfirmModal
from screens.widgets.step_item import StepItem
from textual.widgets import Label
from tests.ui.conftest import settle

pytestmark = [pytest.mark.openstack, pytest.mark.slow]


async def test_teardown_from_the_wizard_lists_then_deletes_what_the_lab_created(make_lab, labtui, store, empty):
    lab = make_lab("tdui")
    code, out, err = labtui("provision", lab, "--yes")
    assert code == 0, err[-3000:]
    conn = empty.conn()
    pid = conn.current_project_id
    assert len([s for s in conn.compute.servers(project_id=pid) if s.name.startswith("labtui-tdui-")]) == 4
    app = LabApp(store=store, resume=lab)
    async with app.run_test(size=(140, 42)) as pilot:
        await settle(app, pilot, 6)
        await pilot.press("ctrl+t")
        await settle(app, pilot, 6)
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.danger
        text = "\n".join(modal.lines)
        assert all(line.startswith("$ openstack ") and "\n  undoes: " in line for line in modal.lines), modal.lines[:2]
        assert text.index("openstack server delete") < text.index("openstack security group delete") \
            < text.index("openstack network delete")
        await pilot.press("n")  # refused: nothing deleted
        await settle(app, pilot, 4)
        assert len([s for s in conn.compute.servers(project_id=pid) if s.name.startswith("labtui-tdui-")]) == 4
        await pilot.press("ctrl+t")
        await settle(app, pilot, 6)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        for _ in range(60):
            await settle(app, pilot, 4)
            if store.get_session(lab).health == "torn down":
                break
        assert store.get_session(lab).health == "torn down"
        # steps never lie: the machines are gone, so the Provision stage is not done any more, on screen too
        record = store.get_session(lab)
        runs = store.step_states(record.id, "provision")
        assert runs["machines"].state == "pending" and "torn down" in runs["machines"].detail
        assert not [r for r in runs.values() if r.state == "done"], {k: r.state for k, r in runs.items()}
        await settle(app, pilot, 4)
        shown = [str(item.query_one(Label).render()) for item in app.screen.query(StepItem)
                 if item.step is not None and item.step.id == "machines"]
        assert shown and not shown[0].startswith("●"), shown
    conn = empty.conn()
    assert not [s for s in conn.compute.servers(project_id=pid) if s.name.startswith("labtui-tdui")]
    assert not [n for n in conn.network.networks(project_id=pid) if n.name.startswith("labtui-tdui")]
    assert conn.network.find_security_group("labtui-tdui", project_id=pid) is None
