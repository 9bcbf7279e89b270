"""Reopening a session that holds 10 000 events (target <= 0.1 s) and its memory.

Measures, in a fresh process each time (with labtui's modules already imported, as they are in the
running app): open the store, load the session, its step states, resume the wizard (re-checking
every done step) and read all 10 000 events of the command log. The import time is printed apart.

    .venv/bin/python bench/bench_reopen.py [--events 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

SETUP = """
import os, time
from labtui.store import Store
from labtui.events import Event
from labtui.session import LabSession
from labtui.stages import wizard_for
s = Store()
s.create_session("big")
s.save_inputs("big", {"cloud": "", "nodes": [{"name": "cp1", "address": "10.100.200.4", "role": "control-plane"},
                                              {"name": "w1", "address": "10.100.200.21"}],
                      "node_subnet": "10.100.200.0/24", "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16",
                      "kubernetes": "1.36", "calico": "3.32.2", "encapsulation": "IPIP"})
w = wizard_for("plan")
with LabSession(s, "big") as lab:
    r = lab.runner(w)
    for step in w.steps:
        r.run_step(step)
rec = s.get_session("big")
batch = [Event("action.output", f"[node{i % 30}] line {i}: some command output of a realistic length here", node=f"node{i % 30}", stream="stdout") for i in range(N)]
s.add_events(rec.id, batch)
print(s.count_events(rec.id))
"""

MEASURE = """
import json, resource, time
t0 = time.perf_counter()
from labtui.store import Store
from labtui.session import LabSession
from labtui.stages import wizard_for
wizard_for("plan")  # the app has the stage modules loaded once its home screen lists a lab
t_import = time.perf_counter()
s = Store()
with LabSession(s, "big") as lab:
    point = lab.runner(wizard_for(lab.record.wizard)).resume()
    events = s.events(lab.record.id)
t1 = time.perf_counter()
print(json.dumps({"reopen_s": t1 - t_import, "import_s": t_import - t0, "events": len(events),
                  "landed": point.step, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="labtui-bench-")
    env = {**os.environ, "LABTUI_HOME": home}
    out = subprocess.run([sys.executable, "-c", f"N = {args.events}\n" + SETUP], env=env, capture_output=True, text=True, check=True)
    total = int(out.stdout.split()[-1])
    results = []
    for _ in range(args.runs):
        res = subprocess.run([sys.executable, "-c", MEASURE], env=env, capture_output=True, text=True, check=True)
        results.append(json.loads(res.stdout))
    reopen = statistics.median(r["reopen_s"] for r in results)
    print(f"session with {total} events")
    print(f"reopen (store + session + resume re-check + all events): median {reopen * 1000:.1f} ms "
          f"(runs: {', '.join('%.1f' % (r['reopen_s'] * 1000) for r in results)})  target <= 100 ms")
    print(f"engine import: {statistics.median(r['import_s'] for r in results) * 1000:.0f} ms; "
          f"max resident memory: {max(r['maxrss_mb'] for r in results):.0f} MB (target <= 150 MB)")


if __name__ == "__main__":
    main()
