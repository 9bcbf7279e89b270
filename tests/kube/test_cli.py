"""`labtui calico show / set-mode / revert` headless, as a user runs them."""

from __future__ import annotations

import json
import os
import stat

from labtui.cli import main
from labtui.store import Store
from tests.harness.kube import EXPIRED

POOL = "default-ipv4-ippool"


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_show_for_a_cluster_labtui_did_not_build(incident, kubeconfig_for, lab_home, capsys):
    kc = kubeconfig_for(incident)
    rc, out, err = run(capsys, "calico", "show", "study", "--kubeconfig", str(kc))
    assert rc == 0, err
    assert "created the lab study" in err
    assert "Calico 3.32.2, manifest install (calico.yaml, calico-node in kube-system), API crd.projectcalico.org/v1 only" in out
    assert ("✗ default-ipv4-ippool: IPIP CrossSubnet, and all 4 nodes are on 10.100.200.0/24: pod traffic leaves "
            "the VMs unencapsulated with pod source addresses") in out
    assert "default-ipv4-ippool      172.16.0.0/16          CrossSubnet  Never" in out
    assert "cp1            yes    10.100.200.4     10.100.200.0/24" in out
    store = Store()
    rec = store.get_session("study")
    assert rec.inputs["kubeconfig"] == str(kc.resolve())  # the path, never the content
    facts = store.facts(rec.id, "calico")["calico"]
    assert facts["install"]["mode"] == "manifest" and facts["pools"][0]["ipip_mode"] == "CrossSubnet"

    # second time: the lab remembers its kubeconfig
    rc, out, _ = run(capsys, "calico", "show", "study", "--json")
    data = json.loads(out)
    assert rc == 0 and data["install"]["mode"] == "manifest" and data["via"] == "direct"
    assert data["pools"][0]["meaning"]["severity"] == "bad"
    assert data["node_subnets"] == {"10.100.200.0/24": ["cp1", "w1", "w2", "w3"]}


def test_set_mode_asks_first_then_applies_and_reverts(incident, kubeconfig_for, lab_home, capsys, monkeypatch):
    kc = str(kubeconfig_for(incident))
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    rc, out, _ = run(capsys, "calico", "set-mode", "study", POOL, "IPIP", "--kubeconfig", kc)
    assert rc == 1 and "Re-run with --yes to apply it (and --accept-crd-warning)." in out
    assert "WARNING: Calico's documentation says: never modify resources in the crd.projectcalico.org API group" in out
    assert "$ kubectl patch ippools.crd.projectcalico.org default-ipv4-ippool --type=merge" in out
    assert incident.patches() == []

    rc, out, err = run(capsys, "calico", "set-mode", "study", POOL, "IPIP", "--yes")
    assert rc == 2 and "labtui: not applied: only the raw crd.projectcalico.org/v1 CRD is left" in err
    assert "--accept-crd-warning" in err and "Traceback" not in err
    assert incident.patches() == []

    rc, out, err = run(capsys, "calico", "set-mode", "study", POOL, "ipip", "--yes", "--accept-crd-warning")
    assert rc == 0, err
    assert "IP pool default-ipv4-ippool now: ipipMode Always, vxlanMode Never  (change #1 recorded; revert: labtui calico revert study 1)" in out
    [patch] = incident.patches()
    assert patch.body == {"spec": {"ipipMode": "Always", "vxlanMode": "Never"}}

    rc, out, _ = run(capsys, "calico", "set-mode", "study", POOL, "IPIP", "--yes")
    assert rc == 0 and "already has IPIP" in out and len(incident.patches()) == 1

    rc, out, _ = run(capsys, "show", "study")
    assert "change #1: IP pool default-ipv4-ippool (172.16.0.0/16): IPIPCrossSubnet -> IPIP" in out

    rc, out, err = run(capsys, "calico", "revert", "study", "--yes")
    assert rc == 0, err
    assert "IP pool default-ipv4-ippool back to ipipMode CrossSubnet, vxlanMode Never (change #1 reverted)" in out
    assert incident.pool(POOL)["spec"]["ipipMode"] == "CrossSubnet"
    rc, _, err = run(capsys, "calico", "revert", "study", "--yes")
    assert rc == 2 and "no Calico pool change left to revert" in err


def test_set_mode_on_an_operator_cluster(operator, kubeconfig_for, lab_home, capsys):
    kc = str(kubeconfig_for(operator))
    rc, out, err = run(capsys, "calico", "set-mode", "op", POOL, "IPIP", "--yes", "--kubeconfig", kc, "--poll", "0.05")
    assert rc == 0, err
    assert "via the operator's Installation" in out and "WARNING" not in out
    [patch] = operator.patches()
    assert patch.path == "/apis/operator.tigera.io/v1/installations/default"
    assert patch.content_type == "application/json-patch+json"


def test_refusals_and_errors_are_messages_not_tracebacks(incident, kubeconfig_for, lab_home, capsys):
    rc, _, err = run(capsys, "calico", "show", "ghost")
    assert rc == 2 and "there is no lab named 'ghost'" in err and "--kubeconfig" in err
    rc, _, err = run(capsys, "calico", "set-mode", "x", POOL, "Sometimes", "--yes", "--kubeconfig", str(kubeconfig_for(incident)))
    assert rc == 2 and "'Sometimes' is not a Calico encapsulation" in err
    rc, _, err = run(capsys, "calico", "show", "y", "--kubeconfig", str(kubeconfig_for(incident, EXPIRED)))
    assert rc == 2 and "(401 Unauthorized)" in err and "-> fetch a fresh admin.conf" in err
    assert "Traceback" not in err and EXPIRED not in err


def test_admin_conf_fetched_over_ssh_stays_out_of_the_database_and_log(incident, lab_home, make_lab, incident_plan_data):
    """A lab with a plan and no kubeconfig: admin.conf comes over SSH (simulated control plane) into
    a 0600 file in the session directory; its token never reaches the database or the events."""
    from labtui.adapters.calico import read_cluster
    from labtui.adapters.kube import kube_for
    from tests.kube.simulated_shell import SimulatedShell, admin_conf_for

    shell = SimulatedShell(node="cp1", cluster=incident, admin_conf=admin_conf_for(incident))
    lab, events = make_lab("incident", plan=incident_plan_data, shell=shell)
    kc = kube_for(lab.ctx)
    assert read_cluster(kc).install.mode == "manifest"
    path = lab.dir / "admin.conf"
    assert kc.kubeconfig == path and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert shell.commands == [("sudo -n cat /etc/kubernetes/admin.conf", True)]  # quiet: not streamed
    lab.recorder.flush()
    db = (lab_home / "labtui.db").read_bytes() + b"".join(
        p.read_bytes() for p in lab_home.glob("labtui.db-*"))
    assert b"admin-token" not in db
    assert not any("admin-token" in e.message or "admin-token" in json.dumps(e.data) for e in events)
    assert any("saved the cluster's admin kubeconfig" in e.message for e in events)


def test_admin_conf_fetch_failures_are_clear(incident, lab_home, make_lab, incident_plan_data):
    import pytest

    from labtui.errors import LabError
    from labtui.adapters.kube import kube_for
    from tests.kube.simulated_shell import SimulatedShell

    lab, _ = make_lab("a", plan=incident_plan_data, shell=SimulatedShell(admin_conf=None))
    with pytest.raises(LabError) as err:
        kube_for(lab.ctx)
    assert "cp1: cannot read /etc/kubernetes/admin.conf: cat: /etc/kubernetes/admin.conf: No such file" in err.value.message
    assert "kubeadm init has not run" in err.value.hint
    lab, _ = make_lab("b", plan=incident_plan_data, shell=SimulatedShell(sudo_password=True, admin_conf="x"))
    with pytest.raises(LabError) as err:
        kube_for(lab.ctx)
    assert "passwordless sudo" in err.value.hint
    lab, _ = make_lab("c")
    with pytest.raises(LabError) as err:
        kube_for(lab.ctx)
    assert "no kubeconfig for the lab c" in err.value.message and "--kubeconfig FILE" in err.value.hint


def test_the_adapter_reads_a_named_kubeconfig_and_the_caller_remembers_it(incident, kubeconfig_for, lab_home, make_lab):
    """Adapters return data: kube_for with a named kubeconfig connects and writes nothing to the store;
    the command or step that was given the file remembers it (labtui.steps.StepContext.remember_kubeconfig)."""
    from labtui.adapters.calico import read_cluster
    from labtui.adapters.kube import kube_for

    kc_file = kubeconfig_for(incident)
    lab, _ = make_lab("named")
    kc = kube_for(lab.ctx, kc_file)
    assert read_cluster(kc).install.mode == "manifest"
    assert "kubeconfig" not in Store().get_session("named").inputs
    lab.ctx.remember_kubeconfig(kc_file)
    assert Store().get_session("named").inputs["kubeconfig"] == str(kc_file.resolve())
    assert lab.ctx.inputs["kubeconfig"] == str(kc_file.resolve())
