"""The doctor stage through the step engine (Runner): check -> plan -> confirm -> apply -> verify,
then the report step. Scenario facts stand in for the gatherers; the adapters' calls are recorded."""

from __future__ import annotations

from labtui.doctor.fixes import simulate
from labtui.report import session_report
from labtui.session import LabSession
from labtui.steps import StepState
from labtui.stages import wizard_for
from tests.doctor import stand_ins
from tests.doctor.scenarios import incident


def test_doctor_stage_fixes_with_confirmation_then_writes_the_report(store, monkeypatch):
    import labtui.doctor.run as dr

    state = {"facts": incident()}
    ran: list[str] = []
    monkeypatch.setattr(dr, "gather_session", lambda ctx, **kw: state["facts"].copy())

    def after_calico(ctx, action):  # the cluster and the cloud now look like the fix says
        state["facts"] = simulate(state["facts"], [a for a in ctx.memo.doctor_option.actions])

    stand_ins.install(monkeypatch, ran, after_calico)

    wizard = wizard_for("doctor")
    assert [s.id for s in wizard.steps] == ["doctor", "report"]
    store.create_session("w", wizard="doctor")
    asked: list[list[str]] = []

    def refuse(actions):
        asked.append([a.command for a in actions])
        return False

    with LabSession(store, "w", confirm=refuse) as lab:
        out = lab.runner(wizard).run_step(wizard.step("doctor"))
        assert out.state == StepState.PENDING and "not confirmed" in out.detail
        assert not ran and "--protocol 4" in asked[0][0]

    with LabSession(store, "w", confirm=lambda actions: True) as lab:
        runner = lab.runner(wizard)
        out = runner.run_step(wizard.step("doctor"))
        assert out.state == StepState.DONE, out.detail
        assert ran == ["sg-rule", "pool-mode"] and "healthy" in out.detail
        out = runner.run_step(wizard.step("report"))
        assert out.state == StepState.DONE
    rec = store.get_session("w")
    assert rec.health.startswith("doctor: healthy")
    text = session_report(store, "w")
    assert "### Before (" in text and ", findings)" in text and "### After (" in text and ", healthy)" in text
    assert "Pod traffic between nodes on one subnet leaves unencapsulated" in text
    assert "| doctor | doctor | done |" in text


def test_report_of_an_empty_lab(store):
    store.create_session("empty")
    text = session_report(store, "empty")
    assert text.startswith("# Lab report: empty") and "None: labtui changed nothing in this lab." in text
