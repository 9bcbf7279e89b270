"""Install the doctor's simulated tools (kubectl, tcpdump) on SSH test nodes and set their scenario."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
RECORDED = HERE / "recorded"
# where the recorded outputs are copied on each node: a node sees its own /usr/local/bin and a
# private /tmp, not the checkout (which may live anywhere, /tmp included)
NODE_RECORDED = "/usr/local/bin"


def scenario(lab, *, reach="all", wire="ipip", not_ready=(), pod_net="172.16") -> dict:
    nodes = {}
    for i, n in enumerate(lab.nodes):
        third = [200, 110, 45, 7, 90, 130][i % 6]
        nodes[n.name] = {"ip": n.address, "mac": n.mac, "pod": f"{pod_net}.{third}.{10 + i}",
                         "peer": f"{pod_net}.{third}.{100 + i}"}
    return {"nodes": nodes, "reach": reach, "wire": wire, "not_ready": list(not_ready),
            "capture_node": lab.nodes[0].name, "recorded": NODE_RECORDED, "fail_delay": 0.2}


def install(lab, sc: dict) -> None:
    """kubectl on the control plane (the first node), tcpdump and the scenario on every node."""
    for node in lab.nodes:
        lab.install_script(node, "labtui-sim.json", json.dumps(sc), mode=0o644)
        lab.install_script(node, "tcpdump", (HERE / "tcpdump_simulated.py").read_text())
        for recorded in sorted(RECORDED.glob("*.txt")):
            lab.install_script(node, recorded.name, recorded.read_text(), mode=0o644)
    lab.install_script(lab.nodes[0], "kubectl", (HERE / "kubectl_simulated.py").read_text())


def set_scenario(lab, sc: dict) -> None:
    for node in lab.nodes:
        lab.install_script(node, "labtui-sim.json", json.dumps(sc), mode=0o644)


def install_dataplane(lab, dp) -> dict:
    """Data-plane mode: the simulated kubectl runs the real busybox ping inside the pods' namespaces;
    tcpdump is the real one (the replaying script is removed)."""
    sc = scenario(lab)
    # host -> pod cells: the hostNetwork probe pod is the node's own namespace (its sshd's pid)
    nodes = {n.name: n for n in lab.nodes}
    sc["dataplane"] = {name: {"ip": p.ip, "pid": p.pid, "host": nodes[name].address, "host_pid": nodes[name].pid}
                       for name, p in dp.pods.items()}
    for node in lab.nodes:
        lab.install_script(node, "labtui-sim.json", json.dumps(sc), mode=0o644)
        lab.remove_script(node, "tcpdump")
    lab.install_script(lab.nodes[0], "kubectl", (HERE / "kubectl_simulated.py").read_text())
    return sc
