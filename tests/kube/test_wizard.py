"""The calico stage run through the step engine, as the wizard screen runs it."""

from __future__ import annotations

from labtui.steps import StepState
from labtui.stages import wizard_for
from tests.harness.kube import incident_cluster, operator_cluster
from tests.kube.simulated_shell import SimulatedShell, admin_conf_for


def _runner(make_lab, name, confirm_answer=True, **kw):
    asked: list = []

    def confirm(actions):
        asked.append(actions)
        return confirm_answer

    lab, events = make_lab(name, **kw)
    lab.ctx.confirm = confirm
    return lab, lab.runner(wizard_for("calico")), asked, events


def test_stage_on_the_incident_switches_to_ipip_after_confirming_the_crd_warning(incident, make_lab, incident_plan_data):
    shell = SimulatedShell(node="cp1", cluster=incident, admin_conf=admin_conf_for(incident))
    lab, runner, asked, events = _runner(make_lab, "incident", plan=incident_plan_data, shell=shell)
    wizard = runner.wizard
    assert [s.id for s in wizard.steps] == ["calico-install", "kube-access", "calico-read", "encapsulation",
                                            "calico-ready"]

    out = runner.run_step(wizard.step("kube-access"))
    assert out.state == StepState.DONE, out.detail
    out = runner.run_step(wizard.step("calico-install"))  # a cluster labtui did not build: nothing to install
    assert out.state == StepState.SKIPPED and "not built by labtui" in out.detail
    out = runner.run_step(wizard.step("kube-access"))
    assert out.state == StepState.DONE and "Kubernetes v1.36.2 at" in out.detail
    assert (lab.dir / "admin.conf").exists()
    out = runner.run_step(wizard.step("calico-read"))
    assert out.state == StepState.DONE and out.detail.startswith("Calico 3.32.2, manifest install")
    facts = lab.store.facts(lab.record.id, "calico")["calico"]
    assert facts["pools"][0]["meaning"]["summary"].endswith(
        "CrossSubnet, and all 4 nodes are on 10.100.200.0/24: pod traffic leaves the VMs unencapsulated with pod source addresses")

    # the plan says IPIP; the pool is IPIP CrossSubnet -> one action, shown with the CRD warning, confirmed
    out = runner.run_step(wizard.step("encapsulation"))
    assert out.state == StepState.DONE, out.detail
    [[action]] = asked
    text = action.render()
    assert text.startswith("WARNING: Calico's documentation says: never modify resources in the crd.projectcalico.org")
    assert "$ kubectl patch ippools.crd.projectcalico.org default-ipv4-ippool --type=merge" in text
    assert "revert: kubectl patch" in text
    assert action.risk.value == "destructive"
    [patch] = incident.patches()
    assert patch.body == {"spec": {"ipipMode": "Always", "vxlanMode": "Never"}}
    assert [c.kind for c in lab.store.changes(lab.record.id)] == ["calico.pool-mode"]

    out = runner.run_step(wizard.step("calico-ready"))
    assert out.state == StepState.DONE and out.detail == "calico-node Ready on all 4 nodes"

    # resume re-checks: all done, nothing changed
    point = runner.resume()
    assert point.changed == [] and all(s in (StepState.DONE, StepState.SKIPPED) for s in point.states.values())
    assert runner.stage_done()


def test_refusing_the_confirmation_changes_nothing(incident, kubeconfig_for, make_lab):
    lab, runner, asked, _ = _runner(make_lab, "no", confirm_answer=False, kubeconfig=kubeconfig_for(incident))
    out = runner.run_step(runner.wizard.step("encapsulation"))
    assert out.state == StepState.PENDING and "not confirmed" in out.detail
    assert incident.patches() == [] and lab.store.changes(lab.record.id) == []


def test_operator_cluster_with_vxlan_choice(kubeconfig_for, make_lab, store):
    with operator_cluster() as c:
        lab, runner, asked, _ = _runner(make_lab, "op", kubeconfig=kubeconfig_for(c))
        store.save_inputs("op", {"calico_encapsulation": "VXLAN"})
        lab.ctx.reload()
        out = runner.run_step(runner.wizard.step("encapsulation"))
        assert out.state == StepState.DONE, out.detail
        [[action]] = asked
        assert action.risk.value == "change" and "WARNING" not in action.render()
        assert action.command.startswith("kubectl patch installation default --type=json")
        assert c.pool("default-ipv4-ippool")["spec"]["vxlanMode"] == "Always"


def test_steps_explain_what_is_missing(kubeconfig_for, make_lab):
    lab, runner, _, _ = _runner(make_lab, "none")
    out = runner.run_step(runner.wizard.step("kube-access"))
    assert out.state == StepState.FAILED and "no kubeconfig for the lab none" in out.detail
    with incident_cluster() as c:
        from tests.harness.kube import calico_node_pod

        c.add("v1/pods", calico_node_pod("w3", ready=False, restarts=3, suffix="dead1"))
        lab, runner, _, _ = _runner(make_lab, "notready", kubeconfig=kubeconfig_for(c))
        step = runner.wizard.step("calico-ready")
        step.wait_seconds = 0.0
        res = step.check(lab.ctx)
        assert not res.done and res.detail == "calico-node not Ready on w3"
