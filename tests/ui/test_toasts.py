"""At 80x24 the wizard's good news does not pile up over the next step's fields: one toast at a time
(the step list and the command log keep every line), gone sooner on a small terminal (issue 18)."""

from __future__ import annotations

from labtui.store import Store
from screens.app import LabApp
from screens.wizard import WizardScreen
from tests.ui.conftest import settle


async def test_plan_steps_done_one_after_another_leave_one_toast(lab_home, incident_inputs):
    store = Store()
    store.create_session("incident")
    store.save_inputs("incident", incident_inputs)
    store.update_session("incident", step="nodes")
    app = LabApp(store=store, resume="incident")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot, 6)
        assert isinstance(app.screen, WizardScreen)
        app.clear_notifications()
        for _ in range(3):  # Nodes, Networks, Versions: each saved with ctrl+s
            await pilot.press("ctrl+s")
            await settle(app, pilot, 4)
        shown = list(app._notifications)
        assert len(shown) == 1, [n.message for n in shown]
        assert shown[0].timeout <= 3
