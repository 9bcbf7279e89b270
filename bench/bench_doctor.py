"""The doctor on a 4-node lab: SSH + OpenStack + Kubernetes API (targets: cold <= 1.0 s, CLI <= 1.5 s).

Starts 4 real sshd nodes (network namespaces), builds the incident's layout for them on the real
OpenStack test backend (Neutron ports with the nodes' addresses, group without protocol 4) and a
test Kubernetes API (kmock) with a CrossSubnet pool, then times `run_doctor` on a lab session:

- cold: a new session (SSH handshakes to 4 nodes, Keystone log-in, first API requests);
- cli: `labtui doctor NAME --no-live` as a fresh process (Python start-up and imports included),
  what a user typing the command waits;
- warm: the same session again (connections reused), what the Doctor screen's `r` pays;
- with the live proof (probe pods, pairwise ping, capture) through the SIMULATED kubectl/tcpdump of
  the tests (the pings' timeouts dominate it; reported apart, it is not part of the target).

Needs root and the OpenStack test backend (it starts it if needed):

    .venv/bin/python bench/bench_doctor.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_doctor needs root (network namespaces, sshd)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="labtui-bench-doctor-"))
    os.environ["LABTUI_HOME"] = str(tmp / "state")
    os.environ["HOME"] = str(tmp / "home")
    (tmp / "home").mkdir()

    from tests.harness import openstack as osh
    from tests.harness.kube import incident_cluster
    from tests.harness.sshnodes import SSHNodes

    t0 = time.perf_counter()
    stack = osh.start()
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(stack.clouds_yaml)
    from labtui.doctor.run import run_doctor
    from labtui.session import LabSession
    from labtui.adapters.ssh import configure_session_ssh
    from labtui.store import Store
    from tests.doctor.simulation import tools

    results: dict[str, list[float]] = {"cold": [], "warm": [], "cold_sources": [], "live": []}
    with SSHNodes(4, names=["dcp", "dw1", "dw2", "dw3"]) as lab:
        nodes = tuple((n.name, n.address, "control-plane" if i == 0 else "worker") for i, n in enumerate(lab.nodes))
        layout = osh.build_incident_layout(osh.connect(osh.CLOUD_ADMIN), cloud=osh.CLOUD_ADMIN, name="doctor",
                                           sg_name="doctor-k8s", subnet_cidr=str(lab.subnet), nodes=nodes)
        tools.install(lab, tools.scenario(lab, reach="none", wire="direct-noreply"))
        print(f"setup: {time.perf_counter() - t0:.1f} s (OpenStack up, 4 sshd nodes, layout)", file=sys.stderr)
        with incident_cluster(nodes=[(n.name, n.address, i == 0) for i, n in enumerate(lab.nodes)]) as cluster:
            kc = cluster.write_kubeconfig(tmp / "kubeconfig")
            store = Store()
            plan = lab.plan_data("bench") | {"cloud": layout.cloud}

            def open_lab(name: str) -> LabSession:
                if not store.has_session(name):
                    store.create_session(name, cloud=layout.cloud, wizard="doctor", plan=plan | {"name": name})
                    store.save_inputs(name, {"kubeconfig": str(kc), "cloud": layout.cloud})
                s = LabSession(store, name)
                configure_session_ssh(s.ctx, user_known_hosts=[lab.known_hosts], headless=True)
                s.ctx.tuning.simulated = True
                return s

            for i in range(args.runs):
                s = open_lab(f"bench{i}")
                t = time.perf_counter()
                diag = run_doctor(s.ctx, live=False)
                results["cold"].append(time.perf_counter() - t)
                results["cold_sources"].append(diag.facts.timings)
                assert diag.findings[0].id == "crosssubnet-antispoofing", diag.findings
                t = time.perf_counter()
                run_doctor(s.ctx, live=False)
                results["warm"].append(time.perf_counter() - t)
                if i == 0:
                    t = time.perf_counter()
                    d = run_doctor(s.ctx, live=True)
                    results["live"].append(time.perf_counter() - t)
                    assert d.facts.matrix is not None and len(d.facts.matrix) == 12
                s.close()
            # the command a user types, in a fresh process (Python start-up and imports included)
            import subprocess

            env = dict(os.environ)
            for i in range(args.runs):
                t = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "labtui", "doctor", f"bench{i}", "--no-live",
                                       "--accept-new-host-keys"], capture_output=True, text=True, env=env, timeout=120)
                results.setdefault("cli", []).append(time.perf_counter() - t)
                assert proc.returncode == 1, proc.stdout + proc.stderr
    med = {k: statistics.median(v) for k, v in results.items() if v and isinstance(v[0], float)}
    report = {
        "nodes": 4,
        "runs": args.runs,
        "cold_median_s": round(med["cold"], 3),
        "cold_max_s": round(max(results["cold"]), 3),
        "warm_median_s": round(med["warm"], 3),
        "live_proof_run_s": round(results["live"][0], 3),
        "cli_process_median_s": round(med["cli"], 3),
        "cold_sources_first": results["cold_sources"][0],
        "targets_s": {"cold": 1.0, "cli": 1.5},
        "within_targets": {"cold": med["cold"] <= 1.0, "cli": med["cli"] <= 1.5},
    }
    print(json.dumps(report, indent=2, default=str))
    return 0 if all(report["within_targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
