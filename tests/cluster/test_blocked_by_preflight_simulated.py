"""Issue 18, item 1: a step whose precondition failed says it is BLOCKED by that finding and on which
node, offers no change (no "Apply these changes?" with the install script) and says what to do; the
dry run plans no install there either. Real sshd nodes with the SIMULATED cluster tools, one of them
on cgroup v1 (refused by the kubelet of 1.35+)."""

from __future__ import annotations

import json

import pytest

from labtui.cli import main
from labtui.stages import wizard_for
from labtui.steps import StepState
from labtui.store import Store
from tests.cluster.conftest import reset_nodes
from tests.cluster.simulation import tools
from tests.ui.conftest import settle

pytestmark = pytest.mark.root


def test_installs_are_blocked_on_a_node_the_runtime_preflight_rejected(kubelab, open_lab):
    lab = reset_nodes(kubelab, cgroup_v1=("kw1",))
    asked = []
    lab_session, events = open_lab(lab, "blk", confirm=lambda actions: asked.append(actions) or True)
    wizard = wizard_for("kubernetes")
    runner = lab_session.runner(wizard)
    assert runner.run_step(wizard.step("runtime-preflight")).state == StepState.FAILED
    for step_id in ("containerd", "kube-packages"):
        out = runner.run_step(wizard.step(step_id))
        assert out.state == StepState.FAILED and out.phase == "blocked", (step_id, out)
        assert "BLOCKED by Runtime preflight on kw1: kw1: the node runs cgroup v1" in out.detail
        assert "Use an image with cgroup v2" in out.detail  # what to do
        assert "Runtime preflight again" in out.detail
    assert asked == []  # nothing was offered: no confirmation was asked
    assert tools.cluster_state(lab) == {}
    for node in lab.nodes:
        config = lab.node_exec(node, ["cat", "/etc/containerd/config.toml"], check=False).stdout
        assert "SystemdCgroup = true" not in config


def test_the_dry_run_plans_no_install_on_a_blocked_node(kubelab, store, capsys):
    lab = reset_nodes(kubelab, cgroup_v1=("kw1",))
    store.create_session("blkdry", cloud=None, wizard="kubernetes",
                         plan=dict(lab.plan_data("blkdry"), kubernetes="1.36"))
    rc = main(["up", "blkdry", "--from", "kubernetes", "--until", "kubernetes", "--dry-run", "--json",
               "--accept-new-host-keys", "--quiet"])
    report = json.loads(capsys.readouterr().out)
    steps = {s["step"]: s for st in report["stages"] for s in st["steps"]}
    assert rc == 1
    for step_id in ("containerd", "kube-packages"):
        assert steps[step_id]["state"] == "blocked", steps[step_id]
        assert not steps[step_id].get("actions")
        assert "kw1" in steps[step_id]["detail"] and "cgroup v1" in steps[step_id]["detail"]
        assert "cgroup v2" in steps[step_id]["next"]
    rc = main(["up", "blkdry", "--from", "kubernetes", "--until", "kubernetes", "--dry-run",
               "--accept-new-host-keys", "--quiet"])
    out = capsys.readouterr().out
    assert "✗ Container runtime (containerd): BLOCKED by Runtime preflight on kw1" in out
    blocked_part = out.split("Container runtime")[1].split("kubeadm init (control plane)")[0]
    assert "BLOCKED by Runtime preflight on kw1" in blocked_part and "-> Use an image with cgroup v2" in blocked_part
    assert "install -y -q containerd" not in out and "would run" not in blocked_part


async def test_the_wizard_shows_blocked_and_asks_nothing(kubelab, lab_home, monkeypatch):
    from screens.app import LabApp
    from screens.modals import ConfirmModal
    from screens.wizard import WizardScreen

    lab = reset_nodes(kubelab, cgroup_v1=("kw1",))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("LABTUI_SSH_CONFIG", str(lab.ssh_config))
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(lab.known_hosts))
    store = Store()
    store.create_session("blkui", wizard="kubernetes",
                         plan=dict(lab.plan_data("blkui", via_config=True), kubernetes="1.36"))
    store.update_session("blkui", wizard="kubernetes", step="containerd")
    app = LabApp(store=store)
    async with app.run_test(size=(140, 42)) as pilot:
        await settle(app, pilot)
        app.open_wizard("blkui")
        await settle(app, pilot, 10)
        screen = app.screen
        assert isinstance(screen, WizardScreen)
        wizard = screen.current[0]
        screen._show(wizard, wizard.step("containerd"))
        await settle(app, pilot, 10)
        status = str(screen.query_one("#step-status").render())
        actions = str(screen.query_one("#step-actions").render())
        assert "BLOCKED by Runtime preflight on kw1" in status and "cgroup v1" in status
        assert "What to do:" in actions and "cgroup v2" in actions
        assert "install -y -q containerd" not in actions and "Do it for me\" will run" not in actions
        await pilot.press("ctrl+s")
        for _ in range(200):
            await pilot.pause(0.05)
            assert not isinstance(app.screen, ConfirmModal), "an install was offered on a blocked node"
            run = store.step_states(store.get_session("blkui").id, "kubernetes").get("containerd")
            if run and run.state == "failed":
                break
        await settle(app, pilot, 4)
        run = store.step_states(store.get_session("blkui").id, "kubernetes")["containerd"]
        assert run.state == "failed" and "BLOCKED by Runtime preflight on kw1" in run.detail
    for node in lab.nodes:
        config = lab.node_exec(node, ["cat", "/etc/containerd/config.toml"], check=False).stdout
        assert "SystemdCgroup = true" not in config
