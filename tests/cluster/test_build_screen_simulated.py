"""The Kubernetes stage in the wizard screen (Pilot), on real sshd nodes with the SIMULATED cluster
tools: the containerd step asks once with the exact commands, applies on "y", and is done."""

from __future__ import annotations

import pytest

from labtui.store import Store
from tests.cluster.conftest import reset_nodes
from tests.ui.conftest import settle

pytestmark = pytest.mark.root


async def test_containerd_step_through_the_wizard_screen(kubelab, lab_home, monkeypatch):
    from screens.app import LabApp
    from screens.modals import ConfirmModal
    from screens.wizard import WizardScreen

    lab = reset_nodes(kubelab)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("LABTUI_SSH_CONFIG", str(lab.ssh_config))
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(lab.known_hosts))
    store = Store()
    store.create_session("ui", wizard="kubernetes", plan=dict(lab.plan_data("ui", via_config=True), kubernetes="1.36"))
    store.update_session("ui", wizard="kubernetes", step="containerd")
    app = LabApp(store=store)
    async with app.run_test(size=(140, 42)) as pilot:
        await settle(app, pilot)
        app.open_wizard("ui")
        await settle(app, pilot, 10)
        screen = app.screen
        assert isinstance(screen, WizardScreen)
        wizard = screen.current[0]
        assert wizard.id == "kubernetes"
        screen._show(wizard, wizard.step("containerd"))
        await settle(app, pilot, 10)
        await pilot.press("ctrl+s")
        modal = None
        for _ in range(400):
            await pilot.pause(0.05)
            if isinstance(app.screen, ConfirmModal):
                modal = app.screen
                break
        assert modal is not None, "no confirmation was asked"
        shown = "\n".join(str(s.render()) for s in modal.query("Static"))
        assert "install -y -q containerd" in shown and "SystemdCgroup = true" in shown
        await pilot.press("y")
        for _ in range(600):
            await pilot.pause(0.05)
            run = store.step_states(store.get_session("ui").id, "kubernetes").get("containerd")
            if run and run.state in ("done", "failed"):
                break
        await settle(app, pilot, 4)
        run = store.step_states(store.get_session("ui").id, "kubernetes")["containerd"]
        assert run.state == "done", run.detail
    for node in lab.nodes:
        assert "SystemdCgroup = true" in lab.node_exec(node, ["cat", "/etc/containerd/config.toml"]).stdout
