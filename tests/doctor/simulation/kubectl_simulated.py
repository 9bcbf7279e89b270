#!/usr/bin/python3
"""kubectl, SIMULATED for the doctor's live proof on the test nodes (no kubelet can run here).

Handles only what labtui.doctor.probe sends: `apply -f -` (probe pods: main, `-peer`, hostNetwork
`-host`), `wait -l`, `get pods -l -o json|name`, `exec POD -- sh -c SCRIPT` and `delete pod -l`
(by the run's label or all probe pods). Pods live in the node's private /tmp. `exec` runs the
script for real (the shell, `ip route get`, /sys/class/net) with `ping` and `nc` first on PATH:
- replay mode: a simulated ping and nc replay the output recorded from the real busybox ping and nc
  (recorded/ping-ok.txt, ping-fail.txt, ping-df-ok.txt, ping-df-fail.txt, tcp-ok.txt,
  tcp-timeout.txt) according to the scenario file /usr/local/bin/labtui-sim.json: "reach" (pod ->
  pod across nodes: "all" | "none" | [[src, dst], ...]), "tcp" and "df" (the same, for TCP and the
  don't-fragment ping; default: as "reach"), "same" (same-node pods, default "all"), "host"
  (host -> pod, [["host:SRC", dst], ...] or "all" | "none", default "all");
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


def selector(args):
    sel = opt(args, "-l", "")
    key, _, value = sel.partition("=")
    return (lambda p: True) if key != "labtui.io/probe-run" else (lambda p: p.get("run") == value)


def role_of(name, node):
    for role in ("peer", "host"):
        if name.endswith("-" + role) and name[:-len(role) - 1].endswith(node[:20]):
            return role
    return ""


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
        refused = 0
        for item in data.get("items", [data]):
            name = item["metadata"]["name"]
            node = item["spec"]["nodeName"]
            role = "host" if item["spec"].get("hostNetwork") else role_of(name, node)
            if role == "host" and sc.get("pod_security") == "baseline":
                # kubectl's wording when Pod Security admission enforces "baseline" on the namespace
                print(f'Error from server (Forbidden): error when creating "STDIN": pods "{name}" is forbidden: '
                      f'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)', file=sys.stderr)
                refused += 1
                continue
            ready = node not in sc.get("not_ready", [])
            if sc.get("dataplane"):
                dp = sc["dataplane"][node]
                ip = dp.get(role or "ip") if role else dp["ip"]
                ready = ready and ip is not None
            else:
                ip = {"": sc["nodes"][node]["pod"], "peer": sc["nodes"][node].get("peer"),
                      "host": sc["nodes"][node]["ip"]}[role]
            state[name] = {"node": node, "ip": ip, "ready": ready, "ns": ns, "role": role,
                           "run": item["metadata"]["labels"].get("labtui.io/probe-run", "")}
            print(f"pod/{name} created")
        save(state)
        return 1 if refused else 0
    if verb == "wait":
        match = selector(args)
        mine = {n: p for n, p in pods().items() if match(p)}
        bad = [n for n, p in mine.items() if not p["ready"]]
        for n, p in mine.items():
            if p["ready"]:
                print(f"pod/{n} condition met")
        if bad:
            print(f"error: timed out waiting for the condition on pods/{bad[0]}", file=sys.stderr)
            return 1
        return 0
    if verb == "get":
        match = selector(args)
        if opt(args, "-o") == "name":
            for n, p in pods().items():
                if match(p):
                    print(f"pod/{n}")
            return 0
        items = []
        for n, p in pods().items():
            if not match(p):
                continue
            items.append({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": n, "namespace": p["ns"], "labels": {"labtui.io/probe": "doctor"}},
                          "spec": {"nodeName": p["node"], "hostNetwork": p.get("role") == "host"},
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
            dp = sc["dataplane"][pod["node"]]
            pid = str(dp["host_pid"] if pod.get("role") == "host" else dp["peer_pid"] if pod.get("role") == "peer"
                      else dp["pid"])
            for tool in ("nc",):
                if not os.path.exists(os.path.join(real, tool)):
                    os.symlink("/usr/bin/busybox", os.path.join(real, tool))
            os.execvpe("nsenter", ["nsenter", "-t", pid, "-n", "--"] + cmd, env)
        os.makedirs(BIN, exist_ok=True)
        for tool in ("ping", "nc"):
            path = os.path.join(BIN, tool)
            # probes run in parallel: never rewrite a tool another probe is executing (ETXTBSY);
            # write a private copy and rename it into place
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w") as fh:
                fh.write(TOOL.replace("@TOOL@", tool))
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)
        env = dict(os.environ, PATH=BIN + ":" + os.environ.get("PATH", "/usr/bin:/bin"), LABTUI_SIM_SRC=pod["node"],
                   LABTUI_SIM_ROLE=pod.get("role", ""))
        os.execvpe(cmd[0], cmd, env)
    if verb == "delete":
        state = pods()
        match = selector(args)
        for n in [n for n, p in state.items() if match(p)]:
            print(f'pod "{n}" deleted')
            del state[n]
        save(state)
        return 0
    print(f"kubectl (simulated): unsupported {' '.join(argv)}", file=sys.stderr)
    return 1


TOOL = r'''#!/usr/bin/python3
# @TOOL@, SIMULATED: replays output recorded from the real busybox ping / nc (see kubectl_simulated.py)
import json, os, sys, time
tool = "@TOOL@"
sc = json.load(open("/usr/local/bin/labtui-sim.json"))
args = sys.argv[1:]
dst_ip = args[-1] if tool == "ping" else args[-2]
src = os.environ["LABTUI_SIM_SRC"]
host = os.environ.get("LABTUI_SIM_ROLE") == "host"
size = int(args[args.index("-s") + 1]) if "-s" in args else None
dst = next((n for n, v in sc["nodes"].items() if dst_ip in (v["pod"], v.get("peer"))), None)


def allowed(rule, a, b):
    return rule == "all" or (rule != "none" and [a, b] in rule)


if dst is None:
    ok = False
elif host:
    ok = allowed(sc.get("host", "all"), "host:" + src, dst)
elif dst == src:
    ok = allowed(sc.get("same", "all"), src, dst)
else:
    key = "tcp" if tool == "nc" else "df" if size is not None else "reach"
    ok = allowed(sc.get(key, sc.get("reach", "all")), src, dst)
if tool == "nc":
    name = "tcp-ok.txt" if ok else "tcp-timeout.txt"
elif size is not None:
    name = "ping-df-ok.txt" if ok else "ping-df-fail.txt"
else:
    name = "ping-ok.txt" if ok else "ping-fail.txt"
text = open(os.path.join(sc["recorded"], name)).read()
src_ip = sc["nodes"][src]["ip" if host else "pod"]
text = text.replace("{SRC_POD}", src_ip).replace("{DST_POD}", dst_ip)
if size is not None:  # recorded at -s 1452
    text = text.replace("1452 data bytes", f"{size} data bytes").replace("1460 bytes from", f"{size + 8} bytes from")
if not ok:
    time.sleep(sc.get("fail_delay", 0.3))
sys.stdout.write(text)
sys.exit(0 if ok else 1)
'''

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
