"""The cloud stage of the wizard (connect, check, fix) run by the step engine against the real API."""

from __future__ import annotations

import pytest

from labtui.session import LabSession
from labtui.steps import StepState
from labtui.stages import wizard_for

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(300)]


def test_cloud_stage_connects_checks_and_fixes_with_confirmation(incident, make_lab, store):
    name = make_lab(incident, "IPIP", extra_nodes=[{"name": "w9", "address": "10.100.200.99"}])
    asked: list[list] = []
    answer = {"ok": False}

    def confirm(actions):
        asked.append(actions)
        return answer["ok"]

    events = []
    with LabSession(store, name, emit=events.append, confirm=confirm) as lab:
        wizard = wizard_for("cloud")
        assert [s.id for s in wizard.steps] == ["connect", "check", "fix"]
        runner = lab.runner(wizard)
        out = runner.run_step(wizard.step("connect"))
        assert out.state == StepState.DONE
        assert out.detail == ("4 of 5 nodes found in cloud labtui-admin; not servers of this cloud: w9")
        out = runner.run_step(wizard.step("check"))
        # the check did its job: what it found is the next step's work, said in words, not a failure
        assert out.state == StepState.DONE and "1 missing (ipip)" in out.detail
        assert "the next step fixes it with 1 change" in out.detail
        assert not runner.stage_done()  # the fix step is still to do

        # not confirmed: nothing changes, the step waits
        out = runner.run_step(wizard.step("fix"))
        assert out.state == StepState.PENDING
        assert [a.command for a in asked[0]][0].startswith(
            "openstack security group rule create --ingress --ethertype IPv4 --protocol 4 --remote-group k8s")
        assert [r for r in incident.rules() if r.protocol == "4"] == []

        answer["ok"] = True
        out = runner.run_step(wizard.step("fix"))
        assert out.state == StepState.DONE, out.detail
        assert [r.protocol for r in incident.rules() if r.protocol == "4"] == ["4"]
        assert store.changes(lab.record.id)[0].kind == "openstack.sg-rule"

        point = runner.resume()
        assert all(point.states[s] == StepState.DONE for s in ("connect", "fix")) and not point.changed
        assert runner.stage_done()

        # run again: nothing to apply, nothing recorded
        before = len(store.changes(lab.record.id))
        asked.clear()
        out = runner.run_step(wizard.step("fix"))
        assert out.state == StepState.DONE and asked == []
        assert len(store.changes(lab.record.id)) == before
        facts = store.facts(lab.record.id, "cloud")["cloud"]
        assert facts["nodes"]["w1"]["ip"] == "10.100.200.21" and facts["nodes"]["w9"]["found"] is False
        assert facts["requirements"]["ipip"] == "satisfied"
    assert any("not a server of cloud labtui-admin" in e.message for e in events if e.kind == "warn")
