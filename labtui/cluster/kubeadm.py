"""kubeadm: the config file labtui writes, and what labtui reads from kubeadm's output.

The config is kubeadm.k8s.io/v1beta4 (InitConfiguration + ClusterConfiguration) plus a
KubeletConfiguration with cgroupDriver systemd, written to CONFIG_PATH on the control plane and
shown in full before `kubeadm init --config` runs. No bootstrap token is written into it: kubeadm
makes one, and labtui never stores it (labtui/redact.py masks `[a-z0-9]{6}.[a-z0-9]{16}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from labtui.cluster.containerd import CRI_SOCKET

CONFIG_PATH = "/etc/kubernetes/labtui-kubeadm.yaml"
API_PORT = 6443
JOIN_CONFIG_PATH = "/etc/kubernetes/labtui-join.yaml"  # holds the bootstrap token: 0600, removed after the join
# the pause image kubeadm expects (`kubeadm config images list`), by Kubernetes minor: kubespray
# pins 3.10.1 for 1.34/1.35 and 3.10.2 for 1.36 (kubespray@46dbdd3
# roles/kubespray_defaults/vars/main/main.yml `pod_infra_supported_versions`), containerd v2.3.4's
# default sandbox is pause:3.10.2 (docs/cri/config.md). 1.37: not confirmed, the newest tag is used
# (a different tag only makes kubeadm print a WARNING).
PAUSE_IMAGES = {"1.34": "registry.k8s.io/pause:3.10.1", "1.35": "registry.k8s.io/pause:3.10.1",
                "1.36": "registry.k8s.io/pause:3.10.2", "1.37": "registry.k8s.io/pause:3.10.2"}
DEFAULT_PAUSE = "registry.k8s.io/pause:3.10.2"


def pause_image(minor: str) -> str:
    return PAUSE_IMAGES.get(minor, DEFAULT_PAUSE)


def kubeadm_config(*, node_name: str, advertise_address: str, kubernetes_version: str, pod_subnet: str,
                   service_subnet: str, endpoint: str | None = None, cert_sans: list[str] | None = None,
                   cri_socket: str = CRI_SOCKET) -> str:
    """The three documents of the config file, as YAML."""
    version = kubernetes_version if kubernetes_version.startswith(("v", "stable")) else "v" + kubernetes_version
    sans: list[str] = []
    for s in [advertise_address, node_name] + list(cert_sans or []):
        if s and s not in sans:
            sans.append(s)
    init = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": advertise_address, "bindPort": API_PORT},
        "nodeRegistration": {"name": node_name, "criSocket": cri_socket},
    }
    cluster = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        "kubernetesVersion": version,
        "controlPlaneEndpoint": endpoint or f"{advertise_address}:{API_PORT}",
        "networking": {"podSubnet": pod_subnet, "serviceSubnet": service_subnet},
        "apiServer": {"certSANs": sans},
    }
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
    }
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in (init, cluster, kubelet))


def join_config(join: "JoinCommand", node_name: str, cri_socket: str = CRI_SOCKET) -> str:
    """The worker's JoinConfiguration (kubeadm.k8s.io/v1beta4; kubeadm config API reference,
    kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4/: `discovery.bootstrapToken`
    {token, apiServerEndpoint, caCertHashes}, `discovery.tlsBootstrapToken`,
    `nodeRegistration.name`/`criSocket`). It holds the token: write it 0600, remove it after."""
    cfg = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {"apiServerEndpoint": join.endpoint, "token": join.token,
                               "caCertHashes": [join.ca_hash]},
            "tlsBootstrapToken": join.token,
        },
        "nodeRegistration": {"name": node_name, "criSocket": cri_socket},
    }
    return yaml.safe_dump(cfg, sort_keys=False)


# --------------------------------------------------------------------------- output parsing

_JOIN = re.compile(
    r"kubeadm join\s+(\S+)\s+--token\s+([a-z0-9]{6}\.[a-z0-9]{16})\s*(?:\\\s*)?"
    r"--discovery-token-ca-cert-hash\s+(sha256:[0-9a-f]{64})"
    r"(?:\s*(?:\\\s*)?--control-plane(?:\s*(?:\\\s*)?--certificate-key\s+([0-9a-f]{64}))?)?"
)


@dataclass(frozen=True)
class JoinCommand:
    endpoint: str
    token: str
    ca_hash: str
    control_plane: bool = False
    certificate_key: str | None = None

    def command(self) -> str:
        """The real command (holds the token: never show, log or store it)."""
        out = f"kubeadm join {self.endpoint} --token {self.token} --discovery-token-ca-cert-hash {self.ca_hash}"
        if self.control_plane:
            out += " --control-plane"
            if self.certificate_key:
                out += f" --certificate-key {self.certificate_key}"
        return out

    def shown(self) -> str:
        """The command as shown: the token masked, the (public) discovery hash kept."""
        out = f"kubeadm join {self.endpoint} --token <token> --discovery-token-ca-cert-hash {self.ca_hash}"
        if self.control_plane:
            out += " --control-plane --certificate-key <key>"
        return out


def parse_join(text: str) -> list[JoinCommand]:
    """Every join command in kubeadm's output (init's text, or `token create --print-join-command`),
    whatever the line continuations and indentation."""
    out = []
    for m in _JOIN.finditer(text):
        out.append(JoinCommand(m.group(1), m.group(2), m.group(3), "--control-plane" in m.group(0), m.group(4)))
    return out


def worker_join(text: str) -> JoinCommand | None:
    return next((j for j in parse_join(text) if not j.control_plane), None)


@dataclass(frozen=True)
class PreflightError:
    check: str  # kubeadm's check name, e.g. "Port-6443"
    message: str  # kubeadm's text after the name
    why: str  # what it means, in plain words
    fix: str  # what to do
    severity: str = "error"  # error | warning

    def render(self) -> str:
        return f"[{self.severity.upper()} {self.check}] {self.message}\n    why: {self.why}\n    fix: {self.fix}"


_PREFLIGHT = re.compile(r"\[(ERROR|WARNING) ([^\]]+)\]:?\s*(.*)")

_PORT_USE = {
    "6443": "the Kubernetes API server",
    "10250": "the kubelet",
    "10257": "kube-controller-manager",
    "10259": "kube-scheduler",
    "2379": "etcd (client)",
    "2380": "etcd (peers)",
}


def explain(check: str, message: str) -> tuple[str, str]:
    """(why, fix) for one kubeadm preflight check."""
    if check.startswith("Port-"):
        port = check.split("-", 1)[1]
        who = _PORT_USE.get(port, "a Kubernetes component")
        return (f"port {port} is needed by {who} and something on the node already listens on it "
                "(often a previous cluster or another service)",
                f"find the listener with `sudo ss -ltnp 'sport = :{port}'` and stop it; if it is a previous "
                "kubeadm cluster, `sudo kubeadm reset -f` removes it")
    if check == "Swap":
        return ("swap is on: the kubelet refuses to start with swap unless it is configured for it",
                "turn swap off now and at boot: `sudo swapoff -a` and comment the swap line in /etc/fstab "
                "(the Nodes stage's preflight fix does both)")
    if check == "SystemVerification" and "cgroup" in message.lower():
        return ("the node runs cgroup v1; Kubernetes 1.35 and later refuse cgroup v1 by default",
                "use an image with cgroup v2 (Ubuntu 22.04+, Debian 12+), or boot with "
                "systemd.unified_cgroup_hierarchy=1")
    if check == "SystemVerification":
        return ("the kernel or system does not meet kubeadm's requirements", "read kubeadm's message above and fix the node")
    if check == "NumCPU":
        return ("the control plane needs at least 2 CPUs", "pick a flavor with 2 or more vCPUs")
    if check == "Mem":
        return ("the control plane needs at least 1700 MiB of memory", "pick a flavor with 2 GiB or more")
    if check.startswith("FileContent--proc-sys-net-ipv4-ip_forward"):
        return ("IPv4 forwarding is off: the node would not forward pod traffic",
                "`sudo sysctl -w net.ipv4.ip_forward=1` and persist it in /etc/sysctl.d (the Nodes stage's fix)")
    if check.startswith("FileContent--proc-sys-net-bridge"):
        return ("bridged traffic does not pass iptables (br_netfilter not loaded)",
                "`sudo modprobe br_netfilter` and persist it in /etc/modules-load.d (the Nodes stage's fix)")
    if check.startswith("FileAvailable--etc-kubernetes") or check.startswith("DirAvailable--var-lib-etcd"):
        return ("a previous kubeadm run left files behind (a half-done or old cluster)",
                "labtui offers `sudo kubeadm reset -f` (it wipes this node's cluster state) before a retry")
    if check == "CRI":
        return ("the container runtime does not answer on its CRI socket",
                "check containerd: `sudo systemctl status containerd`; the Kubernetes stage's 'Container runtime' "
                "step writes its config and restarts it")
    if check.startswith("FileExisting-"):
        tool = check.split("-", 1)[1]
        return (f"{tool} is not installed on the node", f"install {tool} (the 'kubeadm, kubelet, kubectl' step)")
    if check == "KubeletVersion" or check == "KubernetesVersion":
        return ("the kubelet and kubeadm versions do not match the requested Kubernetes version",
                "install the same minor of kubeadm, kubelet and kubectl (pinned by the packages step)")
    return ("kubeadm's preflight check failed", "read kubeadm's message, fix it on the node, then run the step again")


def preflight_errors(text: str, *, warnings: bool = False) -> list[PreflightError]:
    """kubeadm's `[ERROR Name]: text` preflight lines (and `[WARNING ...]` ones when asked), explained."""
    out: list[PreflightError] = []
    seen = set()
    for line in text.splitlines():
        m = _PREFLIGHT.search(line)
        if not m:
            continue
        severity = m.group(1).lower()
        if severity == "warning" and not warnings:
            continue
        check, message = m.group(2).strip(), m.group(3).strip()
        if (severity, check) in seen:
            continue
        seen.add((severity, check))
        why, fix = explain(check, message)
        out.append(PreflightError(check, message, why, fix, severity))
    return out


def parse_yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]
