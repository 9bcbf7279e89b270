"""Install the cluster build's SIMULATED tools (kube_tools_simulated.py) on SSH test nodes.

Each node gets, inside its own mount namespace (nothing on the test machine changes):
- a private overlay over /etc (so /etc/containerd, /etc/kubernetes and /etc/apt written by labtui
  are the node's own), with the harness's per-node files bound again on top;
- cgroup v2 mounted on /sys/fs/cgroup (a current cloud image), or a cgroup v1 layout for `cgroup_v1`;
- the simulated tools in its /usr/local/bin, before /usr/bin on PATH, with the scenario in
  labtui-build-sim.json and the recorded outputs they replay.
The cluster's shared state (what the API server would hold) is `lab.dir / "sim-cluster"`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HERE = Path(__file__).parent
RECORDED = HERE / "recorded"
DATA = HERE.parent / "data"
TOOLS = ("apt-get", "apt-cache", "apt-mark", "systemctl", "containerd", "ctr", "crictl", "curl", "gpg", "kubeadm", "kubelet", "kubectl")
REBIND = ("hosts", "hostname", "machine-id", "sysctl.d", "modules-load.d", "os-release")


def cluster_dir(lab) -> Path:
    return lab.dir / "sim-cluster"


def prepare_node(lab, node, *, cgroup_v1: bool = False) -> None:
    """The node's private /etc overlay and its cgroup mount (idempotent per node start)."""
    lines = ["set -e",
             "if ! grep -q ' /etc overlay ' /proc/self/mounts; then",
             "  mkdir -p /tmp/.labtui-etc/upper /tmp/.labtui-etc/work",
             "  mount -t overlay labtui-etc -o lowerdir=/etc,upperdir=/tmp/.labtui-etc/upper,workdir=/tmp/.labtui-etc/work /etc"]
    for name in REBIND:
        src = node.dir / name
        if src.exists():
            lines.append(f"  mount --bind {src} /etc/{name}")
    lines.append("fi")
    # `ip netns exec` gave the node a fresh /sys without cgroup mounts: mount the hierarchy a node has
    if not cgroup_v1:
        lines.append("grep -q ' /sys/fs/cgroup cgroup2 ' /proc/self/mounts || mount -t cgroup2 labtui-cgroup2 /sys/fs/cgroup")
    else:  # a cgroup v1 host: a tmpfs with one v1 controller hierarchy under it (as on older images)
        lines.append("grep -q ' /sys/fs/cgroup tmpfs ' /proc/self/mounts || { mount -t tmpfs labtui-cgroup /sys/fs/cgroup && "
                     "mkdir -p /sys/fs/cgroup/pids && { mount -t cgroup -o pids labtui-pids /sys/fs/cgroup/pids || true; }; }")
    lab.node_exec(node, ["sh", "-c", "\n".join(lines)])


def scenario(lab, node, **extra) -> dict:
    sc = {"node": node.name, "address": node.address, "cluster_dir": str(cluster_dir(lab)),
          "kubernetes_version": "1.36.2", "containerd_version": "2.2.1", "delays": {}, "calico_waiting": {}}
    sc.update(extra)
    return sc


def install(lab, *, admin_conf: str = "", cgroup_v1: tuple[str, ...] = (), **extra) -> None:
    """Every node: the overlay, cgroup v2 (except the nodes named in cgroup_v1), the tools, the scenario."""
    shared = cluster_dir(lab)
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(parents=True, mode=0o700)
    script = (HERE / "kube_tools_simulated.py").read_text()
    for node in lab.nodes:
        prepare_node(lab, node, cgroup_v1=node.name in cgroup_v1)
        lab.install_script(node, "kube_tools_simulated.py", script)
        for tool in TOOLS:
            lab.install_script(node, tool, script)
        for f in list(RECORDED.iterdir()) + [DATA / "containerd1.6-debian12-config-default.toml",
                                             DATA / "containerd2-config-default.toml",
                                             DATA / "containerd2.3-config-version4.toml"]:
            lab.install_script(node, f.name, f.read_text(), mode=0o644)
        set_scenario(lab, node, admin_conf=admin_conf, **extra)


def set_scenario(lab, node, **extra) -> None:
    lab.install_script(node, "labtui-build-sim.json", json.dumps(scenario(lab, node, **extra)), mode=0o644)


def update_scenario(lab, node, **changes) -> None:
    path = node.bin_dir / "labtui-build-sim.json"
    sc = json.loads(path.read_text())
    sc.update(changes)
    lab.install_script(node, "labtui-build-sim.json", json.dumps(sc), mode=0o644)


def cluster_state(lab) -> dict:
    try:
        return json.loads((cluster_dir(lab) / "cluster.json").read_text())
    except (OSError, ValueError):
        return {}


def expire_tokens(lab) -> None:
    """As if a day went by: every bootstrap token on the control plane has expired (and was removed)."""
    path = cluster_dir(lab) / "cluster.json"
    data = json.loads(path.read_text())
    data["tokens"] = {}
    path.write_text(json.dumps(data))


def mirror_to_api(lab, cluster) -> None:
    """SIMULATION of the API server's view: load `cluster` (a tests.harness.kube.FakeCluster, kmock)
    with what the simulated kubeadm and kubectl left in the shared cluster state: the registered
    nodes, and for an operator install the Installation, its operator-owned pool, tigera-operator
    and calico-node Ready on every node (the pods the simulated kubectl reports)."""
    from tests.harness import kube as k

    state = cluster_state(lab)
    nodes = state.get("nodes", {})
    inst = state.get("objects", {}).get("Installation/default")
    for i, (name, n) in enumerate(sorted(nodes.items(), key=lambda kv: kv[1]["role"] != "control-plane")):
        cluster.add("v1/nodes", k.k8s_node(name, n["address"], control_plane=n["role"] == "control-plane",
                                           pod_cidr=f"172.16.{i}.0/24", ready=inst is not None,
                                           tunnel=f"172.16.{[200, 110, 45, 7][i % 4]}.0" if inst else None))
    cluster.add("v1/configmaps", k.kubeadm_config())
    if inst:
        ipip, vxlan = k.ENC_MODES[inst["encapsulation"]]
        cluster.add("operator.tigera.io/v1/installations",
                    k.installation([k.installation_pool("default-ipv4-ippool", inst["cidr"], inst["encapsulation"])],
                                   bgp="Disabled" if inst["encapsulation"].startswith("VXLAN") else "Enabled"))
        cluster.add("apps/v1/deployments", k.operator_deployment())
        cluster.add("apps/v1/daemonsets", k.calico_node_daemonset("calico-system", ipip=ipip, vxlan=vxlan,
                                                                 registry="quay.io/calico"))
        for name in nodes:
            cluster.add("v1/pods", k.calico_node_pod(name, "calico-system", registry="quay.io/calico", suffix=name))
        cluster.add_pool(k.ippool("default-ipv4-ippool", inst["cidr"], ipip=ipip, vxlan=vxlan, operator=True))
