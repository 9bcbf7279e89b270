"""Preparing nodes for kubeadm in parallel: container runtime + Kubernetes packages on four real
sshd nodes with the SIMULATED tools of tests/cluster/simulation (fixed delays stand for apt's
downloads and service restarts).

Target: wall time of the four nodes together <= 1.2 x the slowest node alone.

For each node alone (a one-node plan, the node as its control plane), then for the four nodes
together: fresh nodes (sshd restarted: new /tmp and /etc overlay, tools reinstalled), then the
Kubernetes stage's 'containerd' and 'kube-packages' steps through the Runner (check, plan, the
executor, verify), timed from the first check to the last verify. Runs alternate; medians compared.

Needs root (network namespaces, sshd):

    .venv/bin/python bench/bench_build.py [--runs 3] [--apt-update 1.5] [--apt-install 3] [--restart 1]
                                          [--node-nice 19]

The four nodes share this machine's CPUs (every simulated tool is a Python process): on a machine
with few cores their own CPU work cannot run in parallel as it would on four VMs, which the
fixed delays (apt's downloads, restarts) do. The machine's core count and load are in the result.
The default delays are below what apt takes on a real VM; with much shorter ones (0.3 / 0.6 / 0.2 s)
the nodes' own Python processes dominate and, on 2 shared cores under load, the ratio measured
1.25-1.41 (the client's fan-out is the same).
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

NAMES = ["bcp", "bw1", "bw2", "bw3"]


def prepare(lab, nodes, store, name: str, delays: dict) -> float:
    """Seconds for containerd + packages on `nodes` (a list of LabNode) from fresh."""
    from labtui.adapters.ssh import configure_session_ssh
    from labtui.session import LabSession
    from labtui.stages import wizard_for
    from labtui.steps import StepState
    from tests.cluster.conftest import ADMIN_CONF
    from tests.cluster.simulation import tools

    for node in lab.nodes:
        lab.restart_node(node)
    tools.install(lab, admin_conf=ADMIN_CONF.format(address=lab.nodes[0].address), delays=delays)
    specs = [s for s in lab.node_specs() if s["name"] in {n.name for n in nodes}]
    for i, s in enumerate(specs):
        s["role"] = "control-plane" if i == 0 else "worker"
    plan = dict(lab.plan_data(name), nodes=specs, kubernetes="1.36")
    store.create_session(name, cloud=None, wizard="kubernetes", plan=plan)
    with LabSession(store, name, confirm=lambda actions: True) as lab_session:
        configure_session_ssh(lab_session.ctx, user_known_hosts=[lab.known_hosts], headless=True, connect_timeout=5.0,
                              look_for_keys=False)
        wizard = wizard_for("kubernetes")
        runner = lab_session.runner(wizard)
        started = time.monotonic()
        for step_id in ("containerd", "kube-packages"):
            out = runner.run_step(wizard.step(step_id))
            if out.state != StepState.DONE:
                raise SystemExit(f"{name}: {step_id} failed: {out.detail}")
        return time.monotonic() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--apt-update", type=float, default=1.5, help="seconds per `apt-get update` (real: 2-10 s)")
    ap.add_argument("--apt-install", type=float, default=3.0, help="seconds per `apt-get install` (real: 5-30 s)")
    ap.add_argument("--restart", type=float, default=1.0, help="seconds per service restart")
    ap.add_argument("--node-nice", type=int, default=19,
                    help="the nodes' nice level: they stand for other machines (as in bench_ssh.py)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, sshd)", file=sys.stderr)
        return 2
    delays = {"apt-update": args.apt_update, "apt-install": args.apt_install, "restart": args.restart,
              "download": 0.05}
    home = tempfile.mkdtemp(prefix="labtui-bench-build-")
    os.environ["LABTUI_HOME"] = home
    from labtui.store import Store
    from tests.harness.sshnodes import SSHNodes

    alone: dict[str, list[float]] = {n: [] for n in NAMES}
    together: list[float] = []
    store = Store()
    with SSHNodes(4, names=NAMES, nice=args.node_nice) as lab:
        for run in range(args.runs):
            for node in lab.nodes:
                alone[node.name].append(prepare(lab, [node], store, f"alone-{node.name}-{run}", delays))
            together.append(prepare(lab, lab.nodes, store, f"together-{run}", delays))
    store.close()
    medians = {n: statistics.median(v) for n, v in alone.items()}
    slowest = max(medians.values())
    wall = statistics.median(together)
    ratio = wall / slowest
    result = {
        "nodes": len(NAMES), "runs": args.runs, "delays_s": delays, "node_nice": args.node_nice,
        "cpus": os.cpu_count(),
        "alone_median_s": {n: round(v, 3) for n, v in medians.items()},
        "slowest_alone_s": round(slowest, 3), "four_together_s": round(wall, 3),
        "four_together_runs_s": [round(x, 3) for x in together],
        "ratio": round(ratio, 3), "target": 1.2, "ok": ratio <= 1.2,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
