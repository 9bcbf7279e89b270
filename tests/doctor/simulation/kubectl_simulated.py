#!/usr/bin/python3
"""kubectl, SIMULATED for the doctor's live proof on the test nodes (no kubelet can run here).

Handles only what labtui.doctor.probe sends: `apply -f -` (probe pods), `wait`, `get pods -o json`,
`exec POD -- sh -c SCRIPT` and `delete pod -l`. Pods live in the node's private /tmp. `exec`
runs the script for real with a `ping` first on PATH:
- replay mode: a simulated ping replays the output recorded from the real busybox ping
  (recorded/ping-ok.txt, ping-fail.txt) according to the scenario file
  /usr/local/bin/labtui-sim.json ("reach": "all" | "none" | [[src, dst], ...]);
- data-plane mode (the scenario has "dataplane"): the REAL busybox ping, run inside the source
  pod's network namespace (tests/doctor/dataplane.py), over the real packet path.
Output lines of apply/wait/delete are kubectl's own wording.
"""
import json
import os
import sys

SCENARIO = "/usr/local/bin/labtui-sim.json"
STATE = "/tmp/labtui-sim-pods.json"
BIN = "/tmp/labtui-sim-bin"


def scenario():
    with open(SCENARIO) as fh:
        return json.load(fh)


def pods():
    try:
        with open(STATE) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}


def save(data):
    with open(STATE, "w") as fh:
        json.dump(data, fh)


def opt(args, name, default=None):
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def main(argv):
    args = list(argv)
    if "--kubeconfig" in args:
        i = args.index("--kubeconfig")
        del args[i:i + 2]
    args = [a for a in args if not a.startswith("--kubeconfig=")]
    sc = scenario()
    verb = args[0] if args else ""
    ns = opt(args, "-n", "default")
    if verb == "apply":
        data = json.load(sys.stdin)
        state = pods()
        for item in data.get("items", [data]):
            name = item["metadata"]["name"]
            node = item["spec"]["nodeName"]
            ready = node not in sc.get("not_ready", [])
            ip = sc["dataplane"][node]["ip"] if sc.get("dataplane") else sc["nodes"][node]["pod"]
            state[name] = {"node": node, "ip": ip, "ready": ready, "ns": ns}
            print(f"pod/{name} created")
        save(state)
        return 0
    if verb == "wait":
        bad = [n for n, p in pods().items() if not p["ready"]]
        for n, p in pods().items():
            if p["ready"]:
                print(f"pod/{n} condition met")
        if bad:
            print(f"error: timed out waiting for the condition on pods/{bad[0]}", file=sys.stderr)
            return 1
        return 0
    if verb == "get":
        items = []
        for n, p in pods().items():
            items.append({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": n, "namespace": p["ns"], "labels": {"labtui.io/probe": "doctor"}},
                          "spec": {"nodeName": p["node"]},
                          "status": {"phase": "Running" if p["ready"] else "Pending",
                                     "podIP": p["ip"] if p["ready"] else None,
                                     "conditions": [{"type": "Ready", "status": "True" if p["ready"] else "False"}]}})
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}, indent=4))
        return 0
    if verb == "exec":
        name = [a for a in args[1:args.index("--")] if not a.startswith("-") and a != ns][0]
        pod = pods().get(name)
        if pod is None:
            print(f'Error from server (NotFound): pods "{name}" not found', file=sys.stderr)
            return 1
        cmd = args[args.index("--") + 1:]
        if sc.get("dataplane"):
            real = "/tmp/labtui-dp-bin"
            os.makedirs(real, exist_ok=True)
            if not os.path.exists(os.path.join(real, "ping")):
                os.symlink("/usr/bin/busybox", os.path.join(real, "ping"))
            env = dict(os.environ, PATH=real + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
            pid = str(sc["dataplane"][pod["node"]]["pid"])
            os.execvpe("nsenter", ["nsenter", "-t", pid, "-n", "--"] + cmd, env)
        os.makedirs(BIN, exist_ok=True)
        ping = os.path.join(BIN, "ping")
        # probes run in parallel: never rewrite a ping another probe is executing (ETXTBSY);
        # write a private copy and rename it into place
        tmp = f"{ping}.{os.getpid()}"
        with open(tmp, "w") as fh:
            fh.write(PING)
        os.chmod(tmp, 0o755)
        os.replace(tmp, ping)
        env = dict(os.environ, PATH=BIN + ":" + os.environ.get("PATH", "/usr/bin:/bin"), LABTUI_SIM_SRC=pod["node"])
        os.execvpe(cmd[0], cmd, env)
    if verb == "delete":
        state = pods()
        for n in list(state):
            print(f'pod "{n}" deleted')
        save({})
        return 0
    print(f"kubectl (simulated): unsupported {' '.join(argv)}", file=sys.stderr)
    return 1


PING = r'''#!/usr/bin/python3
# ping, SIMULATED: replays output recorded from the real busybox ping (see kubectl_simulated.py)
import json, os, sys, time
sc = json.load(open("/usr/local/bin/labtui-sim.json"))
dst_ip = sys.argv[-1]
src = os.environ["LABTUI_SIM_SRC"]
dst = next((n for n, v in sc["nodes"].items() if v["pod"] == dst_ip), None)
reach = sc.get("reach", "all")
ok = dst is not None and (reach == "all" or (reach != "none" and [src, dst] in reach))
name = "ping-ok.txt" if ok else "ping-fail.txt"
text = open(os.path.join(sc["recorded"], name)).read()
text = text.replace("{SRC_POD}", sc["nodes"][src]["pod"]).replace("{DST_POD}", dst_ip)
if not ok:
    time.sleep(sc.get("fail_delay", 0.3))
sys.stdout.write(text)
sys.exit(0 if ok else 1)
'''

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
