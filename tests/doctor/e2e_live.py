"""The doctor end to end on real sshd nodes and a test Kubernetes API server (kmock), without the
cloud: facts over SSH and the API, the live proof through kubectl on the control plane over SSH.

kubectl and tcpdump on the nodes are SIMULATED at the process boundary (tests/doctor/simulation):
they replay output recorded from the real busybox ping and the real tcpdump."""

from __future__ import annotations

import pytest

from labtui.doctor.run import run_doctor
from tests.doctor.simulation import tools
from tests.harness.kube import incident_cluster

pytestmark = [pytest.mark.root]


def test_incident_without_cloud_live_proof_shows_the_drop(sshlab, kube_nodes, open_lab, tmp_path):
    sc = tools.scenario(sshlab, reach="none", wire="direct-noreply")
    tools.install(sshlab, sc)
    with incident_cluster(nodes=kube_nodes) as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        lab, events = open_lab("e2e-live", plan=sshlab.plan_data("e2e-live"), kubeconfig=kc,
                               known_hosts=sshlab.known_hosts)
        diag = run_doctor(lab.ctx)
    f = diag.facts
    assert [n.name for n in f.nodes] == ["dcp", "dw1", "dw2", "dw3"]
    cp = f.nodes[0]
    assert cp.iface == "eth0" and cp.iface_cidr == f"{sshlab.nodes[0].address}/24"
    assert cp.calico_cidr and f.pools[0].ipip_mode == "CrossSubnet"
    # the live proof: 12 pairs pinged, all failed; the capture shows unanswered direct pod packets
    assert f.matrix is not None and len(f.matrix) == 12 and not any(r.ok for r in f.matrix)
    assert f.captures and f.captures[0].seen == ["direct"] and f.captures[0].simulated
    assert f.captures[0].command.startswith("timeout 6 tcpdump -i eth0 ")
    # no cloud given: the cloud is "could not check", the failed pings are a finding that says why
    assert any(u.source == "cloud" for u in diag.unchecked)
    top = diag.findings[0]
    assert top.id == "probe-failed" and "anti-spoofing" in top.explanation and "--cloud" in top.explanation
    assert diag.exit_code == 1
    # the probe pods were cleaned up
    out = sshlab.node_exec(sshlab.nodes[0], ["cat", "/tmp/labtui-sim-pods.json"]).stdout
    assert out.strip() == "{}"


def test_healthy_matrix_and_ipip_on_the_wire(sshlab, kube_nodes, open_lab, tmp_path):
    sc = tools.scenario(sshlab, reach="all", wire="ipip")
    tools.install(sshlab, sc)
    with incident_cluster(nodes=kube_nodes, ipip="Always") as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        lab, _ = open_lab("e2e-live-ok", plan=sshlab.plan_data("e2e-live-ok"), kubeconfig=kc,
                               known_hosts=sshlab.known_hosts)
        diag = run_doctor(lab.ctx)
    assert all(r.ok for r in diag.facts.matrix), [(r.src, r.dst, r.detail) for r in diag.facts.matrix if not r.ok]
    cap = diag.facts.captures[0]
    assert cap.seen == ["ipip"]
    a, b = sshlab.nodes[0].address, sshlab.nodes[1].address
    assert cap.lines[0].startswith(f"IPIP {a} > {b} carrying 172.16.200.10 > 172.16.110.11")
    # the cloud is still unknown: the doctor does not claim "healthy"
    assert diag.exit_code == 2 and diag.status == "could not check"


def test_probe_pod_not_ready_is_reported(sshlab, kube_nodes, open_lab, tmp_path):
    sc = tools.scenario(sshlab, reach="all", wire="ipip", not_ready=["dw3"])
    tools.install(sshlab, sc)
    with incident_cluster(nodes=kube_nodes, ipip="Always") as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        lab, _ = open_lab("e2e-live-nr", plan=sshlab.plan_data("e2e-live-nr"), kubeconfig=kc,
                               known_hosts=sshlab.known_hosts)
        diag = run_doctor(lab.ctx)
    assert len(diag.facts.matrix) == 6  # 3 pods answer each other
    u = next(u for u in diag.unchecked if u.source == "matrix")
    assert "dw3" in u.what and "timed out" in u.reason
