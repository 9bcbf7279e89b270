"""The wizard's Cloud and Doctor stages on the real test backends: the OpenStack API (Neutron, Nova),
sshd nodes and the test Kubernetes API with the incident's CrossSubnet pool.

- the cloud check that finds the missing protocol-4 rule says the next step fixes it (not ✗);
- the Doctor step shows the diagnosis (finding, explanation, fix options) before any confirmation,
  re-diagnoses before it proposes the fix, and after the fix re-running proposes nothing and records
  nothing.

The probe pods' kubectl and the nodes' tcpdump are SIMULATED at the process boundary (they replay
output recorded from the real tools; tests/doctor/simulation), told what the network does after the
fix (the test cloud stores security groups, it does not enforce them)."""

from __future__ import annotations

import pytest

from labtui.store import Store
from screens.app import LabApp
from screens.modals import ConfirmModal
from screens.widgets.step_item import StepItem
from tests.doctor.conftest import doctor_layout, kube_nodes, layout, sshlab  # noqa: F401
from tests.harness.openstack.fixtures import incident, incident_layout, openstack_stack  # noqa: F401
from tests.ui.conftest import settle

pytestmark = [pytest.mark.root, pytest.mark.openstack, pytest.mark.slow, pytest.mark.timeout(600)]

SIZE = (140, 42)


def _item_text(screen, step_id: str) -> str:
    for item in screen.query(StepItem):
        if item.step is not None and item.step.id == step_id and item.wizard.id == screen.current[0].id:
            return str(item.query_one("Label").render())
    raise AssertionError(step_id)


async def _wait_for(app, pilot, cond, rounds: int = 600):
    for _ in range(rounds):
        await pilot.pause(0.05)
        if cond():
            return True
    return False


async def test_cloud_check_says_the_next_step_fixes_the_missing_rule(incident, lab_home, monkeypatch, openstack_stack):  # noqa: F811
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(openstack_stack.clouds_yaml))
    store = Store()
    store.create_session("incident", cloud=incident.cloud, wizard="cloud", plan=incident.plan(encapsulation="IPIP"))
    store.update_session("incident", wizard="cloud", step="check")
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.open_wizard("incident")
        await settle(app, pilot, 10)
        screen = app.screen
        screen._show(screen.current[0], screen.current[0].step("check"))
        await settle(app, pilot, 10)
        status = str(screen.query_one("#step-status").render())
        assert "1 missing (ipip)" in status and "the next step fixes" in status
        assert status.startswith("●")
        await pilot.press("ctrl+s")
        await settle(app, pilot, 10)
        assert "✗" not in _item_text(screen, "check") and "●" in _item_text(screen, "check")
        assert screen.current[1].id == "fix"
        # the fix step shows the exact command before anything runs; it asks before it changes the cloud
        await settle(app, pilot, 10)
        actions = str(screen.query_one("#step-actions").render())
        assert "openstack security group rule create --ingress --ethertype IPv4 --protocol 4 --remote-group" in actions
        await pilot.press("ctrl+s")
        assert await _wait_for(app, pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert not [r for r in incident.rules() if r.protocol == "4"]
        await pilot.press("y")
        await settle(app, pilot, 10)
        assert [r.protocol for r in incident.rules() if r.protocol == "4"] == ["4"]
        # the stage is not announced done: its first step never ran; the wizard goes back to it
        assert not screen.stage_done(screen.current[0])
        assert screen.current[0].id == "cloud" and screen.current[1].id == "connect"
        await settle(app, pilot, 10)
        await pilot.press("ctrl+s")
        await settle(app, pilot, 10)
        assert screen.stage_done(screen.current[0]) or screen.current[0].id != "cloud"
        # the Security screen at 80 columns: the highlighted node's row in full under the tables
        from screens.security import SecurityScreen

        await pilot.resize_terminal(80, 24)
        app.open_session_screen("security", "incident")
        await settle(app, pilot, 12)
        security = app.screen
        assert isinstance(security, SecurityScreen)
        nodes = security.query_one("#sec-nodes")
        nodes.focus()
        await pilot.press("down")
        await settle(app, pilot)
        detail = str(security.query_one("#sec-detail").render())
        row = [str(c) for c in nodes.get_row_at(nodes.cursor_row)]
        assert f"Fixed IP: {row[4]}" in detail and f"Groups: {row[7]}" in detail


async def test_doctor_step_explains_before_it_asks_and_proposes_nothing_once_healthy(
        sshlab, kube_nodes, layout, lab_home, tmp_path, monkeypatch):  # noqa: F811
    from tests.doctor.simulation import tools
    from tests.harness.kube import v3_cluster

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(sshlab.write_known_hosts()))
    tools.install(sshlab, tools.scenario(sshlab, reach="none", wire="direct-noreply"))
    with v3_cluster(nodes=kube_nodes) as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf")
        store = Store()
        nodes = [{"name": n.name, "address": n.address, "role": "control-plane" if i == 0 else "worker",
                  "user": "root", "key_file": str(sshlab.client_key)} for i, n in enumerate(sshlab.nodes)]
        plan = {"name": "incident", "cloud": layout.cloud, "nodes": nodes, "node_subnet": str(sshlab.subnet),
                "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16", "encapsulation": "IPIP"}
        store.create_session("incident", cloud=layout.cloud, wizard="doctor", plan=plan,
                             inputs={"adopted": True, "cloud": layout.cloud, "kubeconfig": str(kc)})
        app = LabApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            app.open_wizard("incident")
            screen = None
            # the lab shows at once; the re-check and the diagnosis run in the background
            assert await _wait_for(app, pilot, lambda: "Diagnosis: findings" in str(
                app.screen.query_one("#step-actions").render()) if app.screen.query("#step-actions") else False, 1200)
            screen = app.screen
            assert screen.current[1].id == "doctor"
            shown = str(screen.query_one("#step-actions").render())
            # the finding, its explanation and the options, before any confirmation
            assert "Pod traffic between nodes on one subnet leaves unencapsulated and OpenStack drops it" in shown
            assert "anti-spoofing" in shown
            assert "1. IPIP Always + IP protocol 4 between the nodes  [recommended]" in shown
            assert "--protocol 4" in shown
            assert "Pod to pod, live" in shown and "FAIL" in shown  # the live proof's matrix
            assert "not done yet" in str(screen.query_one("#step-status").render())
            assert store.changes(store.get_session("incident").id) == []

            # run: the step diagnoses again, then asks with the exact changes and the doctor's words
            await pilot.press("ctrl+s")
            assert await _wait_for(app, pilot, lambda: isinstance(app.screen, ConfirmModal), 1200)
            modal = app.screen
            lines = "\n".join(modal.lines)
            assert "--protocol 4 --remote-group" in lines and "ipipMode" in lines
            assert modal.note and "The doctor, just now: 1 finding(s)" in modal.note and "Fix chosen: 1." in modal.note
            assert not [r for r in layout.rules() if r.protocol == "4"]
            # the network now carries IPIP (what the simulation is told): confirm
            tools.set_scenario(sshlab, tools.scenario(sshlab, reach="all", wire="ipip"))
            await pilot.press("y")
            assert await _wait_for(app, pilot, lambda: screen.current[1].id == "report", 2400)
            rec = store.get_session("incident")
            kinds = [c.kind for c in store.changes(rec.id)]
            assert kinds == ["openstack.sg-rule", "calico.pool-mode"]
            assert rec.health.startswith("doctor: healthy")
            assert (cluster.pool("default-ipv4-ippool")["spec"]["ipipMode"]) == "Always"

            # re-run the Doctor step: it reads everything again, proposes nothing, records nothing
            screen._show(screen.current[0], screen.current[0].step("doctor"))
            await settle(app, pilot, 10)
            assert "● healthy" in str(screen.query_one("#step-status").render())
            await pilot.press("ctrl+s")
            await settle(app, pilot, 10)
            assert not isinstance(app.screen, ConfirmModal)
            assert [c.kind for c in store.changes(rec.id)] == kinds
            assert store.step_states(rec.id, "doctor")["doctor"].state == "done"
