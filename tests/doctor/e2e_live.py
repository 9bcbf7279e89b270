"""The doctor end to end on real sshd nodes and a test Kubernetes API server (kmock), without the
cloud: facts over SSH and the API, the live proof through kubectl on the control plane over SSH.

kubectl and tcpdump on the nodes are SIMULATED at the process boundary (tests/doctor/simulation):
they replay output recorded from the real busybox ping and the real tcpdump."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

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


# --------------------------------------------------------------------------- the whole matrix (issue 12)


def _cells(diag):
    return {c.id: c for c in diag.cells}


def test_matrix_tcp_df_same_node_and_host_cells(sshlab, kube_nodes, open_lab, tmp_path):
    """The incident's shape: pod -> pod across nodes fails (ICMP, TCP and DF alike), pods on one node
    and a node's host -> pod still work. Every failing cell carries its cause."""
    sc = tools.scenario(sshlab, reach="none", wire="direct-noreply")
    tools.install(sshlab, sc)
    with incident_cluster(nodes=kube_nodes) as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        lab, events = open_lab("e2e-matrix", plan=sshlab.plan_data("e2e-matrix"), kubeconfig=kc,
                               known_hosts=sshlab.known_hosts)
        diag = run_doctor(lab.ctx)
    cells = _cells(diag)
    # 4 nodes: 12 cross-node pairs, 4 same-node, 16 host -> pod; three checks each
    assert len(cells) == (12 + 4 + 16) * 3
    for check in ("icmp", "tcp", "mtu"):
        assert not cells[f"{check}:cross:dcp->dw1"].ok
        assert cells[f"{check}:same:dw2->dw2"].ok and cells[f"{check}:host:dw3->dcp"].ok
    tcp = cells["tcp:cross:dw1->dw2"]
    assert "no answer to the TCP connect" in tcp.detail and tcp.dst_ip == sc["nodes"]["dw2"]["pod"]
    same = cells["icmp:same:dcp->dcp"]
    assert same.dst_ip == sc["nodes"]["dcp"]["peer"]  # the second probe pod on the node
    host = cells["icmp:host:dw1->dw2"]
    assert host.src_ip == sc["nodes"]["dw1"]["ip"]  # from the node's own address (hostNetwork pod)
    df = cells["mtu:cross:dcp->dw1"]
    assert df.detail.endswith("0/2 replies, 100% packet loss") and "-byte packets" in df.detail
    # each failing cell: the cause from the reasoning (no cloud here: the probe finding says why)
    top = diag.finding("probe-failed")
    for c in diag.cells:
        assert c.ok or c.cause.startswith(top.title), (c.id, c.cause)
    # the reasoning still sees the cross-node ICMP cells as its matrix
    assert len(diag.facts.matrix) == 12 and not any(r.ok for r in diag.facts.matrix)
    # stored with the diagnosis; the probe pods are gone
    stored = lab.store.facts(lab.ctx.session.id, "doctor")["doctor"]["last"]["cells"]
    assert len(stored) == 96 and all(c["cause"] for c in stored if not c["ok"])
    assert not any(c["cause"] for c in stored if c["ok"])
    assert sshlab.node_exec(sshlab.nodes[0], ["cat", "/tmp/labtui-sim-pods.json"]).stdout.strip() == "{}"


def test_df_ping_fails_where_small_pings_pass(sshlab, kube_nodes, open_lab, tmp_path):
    """A path that carries small packets but drops full-size ones with DF: the MTU cause."""
    pairs = [[a.name, b.name] for a in sshlab.nodes for b in sshlab.nodes if a is not b]
    sc = tools.scenario(sshlab, reach="all", wire="ipip")
    sc["df"] = [p for p in pairs if "dw3" not in p]  # every path through dw3 drops big packets
    tools.install(sshlab, sc)
    with incident_cluster(nodes=kube_nodes, ipip="Always") as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        lab, _ = open_lab("e2e-mtu", plan=sshlab.plan_data("e2e-mtu"), kubeconfig=kc, known_hosts=sshlab.known_hosts)
        diag = run_doctor(lab.ctx, only_cells={f"{k}:cross:{a}->{b}" for k in ("icmp", "mtu") for a, b in pairs})
    cells = _cells(diag)
    assert len(cells) == 24  # only the cells asked for
    bad = sorted(c.id for c in diag.cells if not c.ok)
    assert bad == sorted(f"mtu:cross:{a}->{b}" for a, b in pairs if "dw3" in (a, b))
    for cid in bad:
        assert "MTU" in cells[cid].cause, cells[cid].cause


def test_cli_junit_json_and_failed(sshlab, kube_nodes, store, tmp_path, capsys):
    """Through the command line: --junit (read back with a real XML parser), --json carries every
    cell, and --failed re-runs exactly the cells that failed, after the network was repaired."""
    from xml.etree import ElementTree as ET

    from labtui.cli import main

    tools.install(sshlab, tools.scenario(sshlab, reach="none", wire="direct-noreply"))
    nodes = ",".join(f"{n.name}={n.address}" for n in sshlab.nodes)
    junit = tmp_path / "matrix.xml"
    with incident_cluster(nodes=kube_nodes) as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf")
        code = main(["doctor", "cli-matrix", "--adopt", "--nodes", nodes, "--user", "root", "--key",
                     str(sshlab.client_key), "--kubeconfig", str(kc), "--accept-new-host-keys", "--junit", str(junit),
                     "--json"])
        out = capsys.readouterr()
        assert code == 1, out.err
        data = json.loads(out.out)
        assert len(data["cells"]) == 96 and sum(1 for c in data["cells"] if not c["ok"]) == 36
        root = ET.parse(junit).getroot()
        assert root.tag == "testsuites" and root.get("tests") == "96" and root.get("failures") == "36"
        cases = root.findall("testsuite/testcase")
        assert len(cases) == 96
        failures = [c for c in cases if c.find("failure") is not None]
        assert len(failures) == 36 and all(f.find("failure").get("message") for f in failures)
        assert {c.get("classname") for c in failures} == {"matrix.cross.icmp", "matrix.cross.tcp", "matrix.cross.mtu"}

        tools.set_scenario(sshlab, tools.scenario(sshlab, reach="all", wire="ipip"))
        code = main(["doctor", "cli-matrix", "--failed", "--json"])
        out = capsys.readouterr()
        again = json.loads(out.out)
        assert "re-running the 36 cell(s) that failed last time" in out.err
        assert len(again["cells"]) == 36 and all(c["ok"] for c in again["cells"])
        assert {c["id"] for c in again["cells"]} == {c["id"] for c in data["cells"] if not c["ok"]}
        # nothing failed now: --failed says so instead of running nothing
        code = main(["doctor", "cli-matrix", "--failed"])
        out = capsys.readouterr()
        assert code == 2 and "every cell of the last matrix passed (36 cells)" in out.err


def _pods_on_cp(sshlab) -> dict:
    return json.loads(sshlab.node_exec(sshlab.nodes[0], ["cat", "/tmp/labtui-sim-pods.json"], check=False).stdout or "{}")


def _wait(pred, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("how", ["SIGINT", "SIGHUP", "SIGKILL"])
def test_probe_pods_removed_after_an_interrupted_run(how, sshlab, kube_nodes, store, tmp_path):
    """ctrl+c (SIGINT) and a closed terminal (SIGHUP) unwind and delete the probe pods at once; a
    killed process (SIGKILL) leaves them, and the next run finds and removes them."""
    sc = tools.scenario(sshlab, reach="none", wire="direct-noreply")
    sc["fail_delay"] = 30  # the pings hang: the run is interrupted while they do
    tools.install(sshlab, sc)
    nodes = ",".join(f"{n.name}={n.address}" for n in sshlab.nodes)
    name = f"intr-{how.lower()}"
    with incident_cluster(nodes=kube_nodes) as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf")
        env = dict(os.environ)
        proc = subprocess.Popen([sys.executable, "-m", "labtui.cli", "doctor", name, "--adopt", "--nodes", nodes,
                                 "--user", "root", "--key", str(sshlab.client_key), "--kubeconfig", str(kc),
                                 "--accept-new-host-keys"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            assert _wait(lambda: len(_pods_on_cp(sshlab)) >= 12, 60), "the probe pods never appeared"
            time.sleep(1.0)  # inside the matrix script now
            os.kill(proc.pid, getattr(signal, how))
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        if how == "SIGKILL":
            left = _pods_on_cp(sshlab)
            assert len(left) >= 12  # nothing could run: the pods are still there
            sc["fail_delay"] = 0.05
            tools.set_scenario(sshlab, sc)
            from labtui.session import LabSession
            from labtui.adapters.ssh import configure_session_ssh

            lab = LabSession(store, name, emit=(events := []).append)
            try:
                lab.ctx.tuning.simulated = True
                configure_session_ssh(lab.ctx, user_known_hosts=[sshlab.known_hosts], headless=True, connect_timeout=5.0)
                run_doctor(lab.ctx)
            finally:
                lab.close()
            removed = [e.message for e in events if "left by an earlier run" in e.message]
            assert removed and f"removed {len(left)} probe pod(s)" in removed[0]
        else:
            assert proc.returncode != 0, (out, err)
            assert "Traceback" not in err
        assert _wait(lambda: _pods_on_cp(sshlab) == {}, 20), _pods_on_cp(sshlab)


def test_lost_ssh_connection_watchdog_deletes_the_pods(sshlab, kube_nodes, open_lab, tmp_path):
    """The SSH connection breaks after the pods were created: labtui cannot delete them, the
    watchdog it left on the control plane does (after the run's ttl)."""
    from labtui.doctor.probe import run_live_proof
    from labtui.doctor.run import NodeShell

    tools.install(sshlab, tools.scenario(sshlab, reach="all", wire="ipip"))
    lab, _ = open_lab("lost", plan=sshlab.plan_data("lost"), known_hosts=sshlab.known_hosts)
    from labtui.adapters.ssh import session_ssh

    real = NodeShell(session_ssh(lab.ctx), sshlab.nodes[0].name)

    class Breaks:
        node = real.node
        calls = 0

        def run(self, command, *, timeout=30.0, quiet=False):
            self.calls += 1
            if self.calls == 1:
                return real.run(command, timeout=timeout)
            raise ConnectionResetError("the SSH connection was lost")

    events = []
    proof = run_live_proof(Breaks(), [n.name for n in sshlab.nodes], ttl=3, emit=events.append)
    assert proof.cells == [] and any("watchdog" in e.message for e in events)
    assert len(_pods_on_cp(sshlab)) == 4 * 3  # main, peer and host pod on each node, still there
    assert _wait(lambda: _pods_on_cp(sshlab) == {}, 20), "the watchdog did not delete the probe pods"


def test_host_pods_refused_by_pod_security_the_rest_of_the_matrix_runs(sshlab, kube_nodes, open_lab, tmp_path):
    """A namespace whose Pod Security admission forbids hostNetwork: `kubectl apply` refuses the host
    probe pods (and exits 1); the other cells still run, the host -> pod cells say why they are missing."""
    sc = tools.scenario(sshlab, reach="all", wire="ipip")
    sc["pod_security"] = "baseline"
    tools.install(sshlab, sc)
    with incident_cluster(nodes=kube_nodes, ipip="Always") as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        lab, _ = open_lab("e2e-psa", plan=sshlab.plan_data("e2e-psa"), kubeconfig=kc, known_hosts=sshlab.known_hosts)
        diag = run_doctor(lab.ctx)
    scopes = {c.scope for c in diag.cells}
    assert scopes == {"cross", "same"} and len(diag.cells) == (12 + 4) * 3 and all(c.ok for c in diag.cells)
    u = next(u for u in diag.unchecked if "host -> pod" in u.what)
    assert 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)' in u.reason
    assert _pods_on_cp(sshlab) == {}
