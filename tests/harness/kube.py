"""A Kubernetes API server for tests: kmock's KubernetesEmulator on a real HTTP port, in a thread.

The code under test uses the official (synchronous) kubernetes client, so the emulator runs on
127.0.0.1 with its own asyncio loop in a background thread, and tests talk to it over plain HTTP
through kubeconfig files they write. Loaded with the objects a kubeadm + Calico cluster really
has: nodes with Calico's annotations, the calico-node DaemonSet and its pods, IP pools,
calico-config, the tigera-operator deployment and the Installation, discovery for
projectcalico.org/v3 and the v3.projectcalico.org APIService.

What this adds to kmock 0.8 (facts domain.md 7.2), so tests see what a real apiserver does:
- bearer-token authentication and a tiny RBAC: `admin-token` (cluster-admin), `viewer-token`
  (GET only: 403 with the apiserver's exact message on writes), `nobody-token` (403 on
  everything but /version), `expired-token` (401 Unauthorized);
- PATCH content types enforced: a JSON-Patch list must be sent as application/json-patch+json,
  an object as merge-patch (a list sent as merge-patch -> 400, as the apiserver answers);
  strategic-merge on a custom resource -> 415; a failed JSON-Patch `test` op -> 422;
- the IPPool CEL rules of Calico 3.32 (enum values, "ipipMode and vxlanMode cannot both be
  enabled", no IPIP on IPv6) -> 422 without storing the object;
- the tigera-operator's reconcile: after the Installation is patched, the operator's pools take
  the Installation's encapsulation (after `operator_delay` seconds; `operator_running=False`
  simulates a stuck operator);
- the Calico API server's view: in v3 mode a patch of projectcalico.org/v3 ippools lands in
  the crd.projectcalico.org/v1 object too;
- `GET /version/` (the client's trailing slash) and every request recorded as `Recorded`.

Build a cluster (each returns a started-on-enter `FakeCluster`):

    from tests.harness.kube import incident_cluster, operator_cluster, v3_cluster

    with incident_cluster() as cluster:            # the incident: manifest install, IPIP CrossSubnet,
        path = cluster.write_kubeconfig(tmp_path / "kubeconfig")   # 4 nodes on 10.100.200.0/24
        kc = labtui.adapters.kube.KubeClient(path)
        state = labtui.adapters.calico.read_cluster(kc)
        cluster.requests                            # [Recorded(method, path, query, content_type, body, user)]
        cluster.patches()                           # only the PATCH requests
        cluster.pool("default-ipv4-ippool")         # the stored v1 object (a dict)

    operator_cluster(encapsulation="VXLANCrossSubnet")   # operator install, v3 served (APIServer)
    v3_cluster()                                          # manifest install + Calico API server
    incident_cluster(extra_pools=[ippool("ipv6", "fd00:10:244::/48", ...)])
    FakeCluster(); cluster.add(...)                       # anything else, from the builders below

Builders: `k8s_node`, `calico_node_daemonset`, `calico_node_pod`, `ippool`, `installation`,
`installation_pool`, `operator_deployment`, `typha_deployment`, `calico_config`, `apiservice`,
`kubeadm_config`. `incident_cluster(nodes=[(name, ip, is_control_plane), ...])` takes your own
node list (e.g. the SSH lab's addresses); `FakeCluster(host=...)` listens elsewhere than 127.0.0.1
(e.g. an SSH lab's gateway address, so node namespaces reach it).

Tokens (`write_kubeconfig(path, token)`): ADMIN, VIEWER (GET only), NOBODY (403), EXPIRED (401).
Other servers for error paths: `unreachable_server()` (an https URL nothing listens on),
`SilentServer()` (accepts and never answers), `TLSFront(cluster.port, cert, key)` (the API over
TLS, certificates from `make_certs(dir, san_ips=[...], expired_client=...)`): point a kubeconfig
at a private address and give labtui a forwarder `lambda host, port: (front.port, close)`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

ADMIN = "admin-token"
VIEWER = "viewer-token"
NOBODY = "nobody-token"
EXPIRED = "expired-token"

TOKENS: dict[str, tuple[str, str]] = {
    ADMIN: ("kubernetes-admin", "admin"),
    VIEWER: ("viewer", "view"),
    NOBODY: ("nobody", "none"),
}

ENC_MODES = {
    "IPIP": ("Always", "Never"),
    "IPIPCrossSubnet": ("CrossSubnet", "Never"),
    "VXLAN": ("Never", "Always"),
    "VXLANCrossSubnet": ("Never", "CrossSubnet"),
    "None": ("Never", "Never"),
}

V1_POOLS = "crd.projectcalico.org/v1/ippools"
V3_POOLS = "projectcalico.org/v3/ippools"
INSTALLATIONS = "operator.tigera.io/v1/installations"

INCIDENT_NODES = [("cp1", "10.100.200.4", True), ("w1", "10.100.200.21", False),
                  ("w2", "10.100.200.22", False), ("w3", "10.100.200.23", False)]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any
    user: str | None
    status: int | None = None

    def __repr__(self) -> str:
        return f"{self.method} {self.path} {self.content_type or ''} {json.dumps(self.body) if self.body is not None else ''}"


# --------------------------------------------------------------------------- object builders


def k8s_node(name: str, ip: str, *, control_plane: bool = False, prefix: int = 24, pod_cidr: str | None = None,
             ready: bool = True, tunnel: str | None = None, tunnel_kind: str = "ipip", calico: bool = True) -> dict:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
    ann = {"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
           "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    if calico:
        ann["projectcalico.org/IPv4Address"] = f"{ip}/{prefix}"
        if tunnel:
            key = "projectcalico.org/IPv4IPIPTunnelAddr" if tunnel_kind == "ipip" else "projectcalico.org/IPv4VXLANTunnelAddr"
            ann[key] = tunnel
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": ann, "uid": f"uid-node-{name}"},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr] if pod_cidr else None,
                 "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}] if control_plane else []},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
                {"type": "Ready", "status": "True" if ready else "False",
                 "reason": "KubeletReady" if ready else "KubeletNotReady",
                 "message": "kubelet is posting ready status" if ready else
                 "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"},
            ],
            "nodeInfo": {"kubeletVersion": "v1.36.2", "containerRuntimeVersion": "containerd://2.1.4",
                         "osImage": "Ubuntu 24.04.3 LTS", "kernelVersion": "6.8.0-85-generic"},
        },
    }


def calico_node_env(ipip: str = "Always", vxlan: str = "Never", backend_from_config: bool = True) -> list[dict]:
    env = [
        {"name": "DATASTORE_TYPE", "value": "kubernetes"},
        {"name": "WAIT_FOR_DATASTORE", "value": "true"},
        {"name": "NODENAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "CALICO_NETWORKING_BACKEND",
         "valueFrom": {"configMapKeyRef": {"name": "calico-config", "key": "calico_backend"}}},
        {"name": "CLUSTER_TYPE", "value": "k8s,bgp"},
        {"name": "IP", "value": "autodetect"},
        {"name": "CALICO_IPV4POOL_IPIP", "value": ipip},
        {"name": "CALICO_IPV4POOL_VXLAN", "value": vxlan},
        {"name": "CALICO_IPV6POOL_VXLAN", "value": "Never"},
        {"name": "FELIX_IPINIPMTU", "valueFrom": {"configMapKeyRef": {"name": "calico-config", "key": "veth_mtu"}}},
        {"name": "CALICO_IPV4POOL_CIDR", "value": "172.16.0.0/16"},
        {"name": "CALICO_DISABLE_FILE_LOGGING", "value": "true"},
        {"name": "FELIX_DEFAULTENDPOINTTOHOSTACTION", "value": "ACCEPT"},
        {"name": "FELIX_IPV6SUPPORT", "value": "false"},
        {"name": "FELIX_HEALTHENABLED", "value": "true"},
    ]
    return env


def calico_node_daemonset(namespace: str = "kube-system", version: str = "v3.32.2", *, ipip: str = "CrossSubnet",
                          vxlan: str = "Never", registry: str = "docker.io/calico") -> dict:
    image = f"{registry}/node:{version}"
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "calico-node", "namespace": namespace, "labels": {"k8s-app": "calico-node"}},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "calico-node"}},
            "template": {
                "metadata": {"labels": {"k8s-app": "calico-node"}},
                "spec": {
                    "hostNetwork": True, "serviceAccountName": "calico-node", "priorityClassName": "system-node-critical",
                    "initContainers": [{"name": "upgrade-ipam", "image": f"{registry}/cni:{version}"},
                                       {"name": "install-cni", "image": f"{registry}/cni:{version}"}],
                    "containers": [{"name": "calico-node", "image": image,
                                    "env": calico_node_env(ipip, vxlan),
                                    "securityContext": {"privileged": True}}],
                },
            },
        },
        "status": {"desiredNumberScheduled": 4, "numberReady": 4, "numberAvailable": 4},
    }


def calico_node_pod(node: str, namespace: str = "kube-system", *, ready: bool = True, restarts: int = 0,
                    version: str = "v3.32.2", registry: str = "docker.io/calico", suffix: str | None = None) -> dict:
    name = f"calico-node-{suffix or node[-5:].replace('.', '')}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"k8s-app": "calico-node", "controller-revision-hash": "6b8f7d9c5d", "pod-template-generation": "1"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "calico-node", "controller": True}]},
        "spec": {"nodeName": node, "hostNetwork": True,
                 "containers": [{"name": "calico-node", "image": f"{registry}/node:{version}"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"},
                           {"type": "Ready", "status": "True" if ready else "False"},
                           {"type": "ContainersReady", "status": "True" if ready else "False"},
                           {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "calico-node", "ready": ready, "restartCount": restarts,
                                   "image": f"{registry}/node:{version}", "started": True}],
        },
    }


def other_pod(name: str, namespace: str, node: str, app: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"k8s-app": app}},
            "spec": {"nodeName": node, "containers": [{"name": app, "image": f"registry.k8s.io/{app}:v1.12.1"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def ippool(name: str, cidr: str, *, ipip: str = "Never", vxlan: str = "Never", nat: bool = True,
           disabled: bool = False, node_selector: str = "all()", operator: bool = False,
           api_version: str = "crd.projectcalico.org/v1", block_size: int | None = None) -> dict:
    v6 = ":" in cidr
    labels = {"app.kubernetes.io/managed-by": "tigera-operator"} if operator else {}
    spec = {"cidr": cidr, "ipipMode": ipip, "vxlanMode": vxlan, "natOutgoing": nat,
            "nodeSelector": node_selector, "blockSize": block_size or (122 if v6 else 26),
            "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}
    if disabled:
        spec["disabled"] = True
    meta = {"name": name, "annotations": {"projectcalico.org/metadata": json.dumps({"creationTimestamp": "2026-11-20T09:12:03Z"})}}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": api_version, "kind": "IPPool", "metadata": meta, "spec": spec}


def installation(pools: list[dict], *, bgp: str = "Enabled", version: str = "v3.32.2") -> dict:
    return {
        "apiVersion": "operator.tigera.io/v1", "kind": "Installation",
        "metadata": {"name": "default", "finalizers": ["tigera.io/operator-cleanup"]},
        "spec": {"calicoNetwork": {"bgp": bgp, "ipPools": pools, "linuxDataplane": "Iptables",
                                   "nodeAddressAutodetectionV4": {"firstFound": True}},
                 "cni": {"type": "Calico", "ipam": {"type": "Calico"}}, "variant": "Calico",
                 "kubernetesProvider": ""},
        "status": {"calicoVersion": version, "variant": "Calico",
                   "conditions": [{"type": "Ready", "status": "True", "reason": "AllObjectsAvailable"}]},
    }


def installation_pool(name: str, cidr: str, encapsulation: str, *, nat: str = "Enabled") -> dict:
    return {"name": name, "cidr": cidr, "encapsulation": encapsulation, "natOutgoing": nat,
            "nodeSelector": "all()", "blockSize": 26 if ":" not in cidr else 122}


def operator_deployment(version: str = "v1.42.3") -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "tigera-operator", "namespace": "tigera-operator", "labels": {"k8s-app": "tigera-operator"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"name": "tigera-operator"}},
                 "template": {"spec": {"containers": [{"name": "tigera-operator",
                                                        "image": f"quay.io/tigera/operator:{version}"}]}}},
        "status": {"readyReplicas": 1, "availableReplicas": 1},
    }


def typha_deployment(namespace: str = "calico-system", version: str = "v3.32.2", replicas: int = 2) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "calico-typha", "namespace": namespace},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [
            {"name": "calico-typha", "image": f"quay.io/calico/typha:{version}"}]}}},
    }


def calico_config(backend: str = "bird", typha: str = "none") -> dict:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "calico-config", "namespace": "kube-system"},
        "data": {"typha_service_name": typha, "calico_backend": backend, "veth_mtu": "0",
                 "cni_network_config": '{"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": []}'},
    }


def apiservice(available: bool = True) -> dict:
    return {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v3.projectcalico.org"},
        "spec": {"group": "projectcalico.org", "version": "v3", "groupPriorityMinimum": 1500, "versionPriority": 200,
                 "service": {"name": "calico-api", "namespace": "calico-apiserver", "port": 443}},
        "status": {"conditions": [{"type": "Available", "status": "True" if available else "False",
                                   "reason": "Passed" if available else "MissingEndpoints"}]},
    }


def kubeadm_config(pod_subnet: str = "172.16.0.0/16", service_subnet: str = "172.20.0.0/16") -> dict:
    cfg = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "kubernetesVersion": "v1.36.2",
           "networking": {"podSubnet": pod_subnet, "serviceSubnet": service_subnet, "dnsDomain": "cluster.local"}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": yaml.safe_dump(cfg)}}


def kubeconfig_text(server: str, token: str = ADMIN, *, user: str = "kubernetes-admin", cluster: str = "kubernetes",
                    extra_user: dict | None = None, ca_data: str | None = None) -> str:
    cluster_entry: dict[str, Any] = {"server": server}
    if ca_data:
        cluster_entry["certificate-authority-data"] = ca_data
    user_entry: dict[str, Any] = {"token": token} if token else {}
    user_entry.update(extra_user or {})
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": cluster, "cluster": cluster_entry}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "current-context": f"{user}@{cluster}",
        "preferences": {},
    })


def unreachable_server() -> str:
    """An https URL on a 127.0.0.1 port nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"https://127.0.0.1:{port}"


# --------------------------------------------------------------------------- the server


def _status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": details or {}, "code": code}


def _validate_pool(obj: dict) -> str | None:
    spec = obj.get("spec") or {}
    for key in ("ipipMode", "vxlanMode"):
        v = spec.get(key)
        if v is not None and v not in ("Never", "Always", "CrossSubnet"):
            return f'spec.{key}: Unsupported value: "{v}": supported values: "Never", "Always", "CrossSubnet"'
    if spec.get("ipipMode", "Never") != "Never" and spec.get("vxlanMode", "Never") != "Never":
        return "spec: Invalid value: \"object\": ipipMode and vxlanMode cannot both be enabled"
    if ":" in str(spec.get("cidr", "")) and spec.get("ipipMode", "Never") != "Never":
        return "spec: Invalid value: \"object\": IPIP cannot be used with IPv6 CIDRs"
    return None


class FakeCluster:
    """kmock's KubernetesEmulator on 127.0.0.1:<random port>, served from a background thread."""

    def __init__(self, *, v1: bool = True, v3: bool = False, v3_unavailable: bool = False,
                 operator_delay: float = 0.2, operator_running: bool = True, version: str = "v1.36.2",
                 host: str = "127.0.0.1") -> None:
        self.host = host  # e.g. the SSH lab's gateway address, to be reachable from node namespaces
        self.v1 = v1
        self.v3 = v3
        self.v3_unavailable = v3_unavailable
        self.operator_delay = operator_delay
        self.operator_running = operator_running
        self.k8s_version = version
        self._preload: list[tuple[str, str | None, str, dict]] = []
        self.requests: list[Recorded] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.kmock = None
        self.url = ""
        self.port = 0

    # ---------------------------------------------------------------- loading
    def add(self, resource: str, obj: dict) -> "FakeCluster":
        meta = obj.get("metadata") or {}
        item = (resource, meta.get("namespace"), meta["name"], copy.deepcopy(obj))
        if self.kmock is None:
            self._preload.append(item)
        else:
            self.call(lambda: self._store(*item))
        return self

    def add_pool(self, obj: dict) -> "FakeCluster":
        """A pool as both storage (v1 CRD) and, in v3 mode, the Calico API server's view."""
        if self.v1:
            self.add(V1_POOLS, obj)
        if self.v3:
            v3obj = copy.deepcopy(obj)
            v3obj["apiVersion"] = "projectcalico.org/v3"
            self.add(V3_POOLS, v3obj)
        return self

    def _store(self, resource: str, ns: str | None, name: str, obj: dict) -> None:
        self.kmock.objects[resource, ns, name] = obj

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "FakeCluster":
        self._thread = threading.Thread(target=self._run, name="fake-kube-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("the kmock API server did not start within 15 s")
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop serving (idempotent: a test may stop the API on purpose before teardown)."""
        if self._loop and self._stop and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # closed in between
                pass
        if self._thread:
            self._thread.join(10)

    def __enter__(self) -> "FakeCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        import kmock

        harness = self

        class Emulator(kmock.KubernetesEmulator):
            async def _handle(self, request):  # kmock's Request
                return await harness._handle(self, request, super()._handle)

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                async with Emulator() as k, kmock.Server(k, host=self.host) as srv:
                    self.kmock = k
                    self._declare(k)
                    for item in self._preload:
                        self._store(*item)
                    self.url = str(srv.url).rstrip("/")
                    self.port = srv.port
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:
                self._error = exc
                self._ready.set()

        asyncio.run(main())

    def _declare(self, k) -> None:
        import kmock

        info = kmock.ResourceInfo
        k.resources["v1/nodes"] = info(kind="Node", namespaced=False, verbs={"get", "list", "watch", "patch"})
        k.resources["v1/pods"] = info(kind="Pod", namespaced=True, verbs={"get", "list", "watch", "delete"})
        k.resources["v1/configmaps"] = info(kind="ConfigMap", namespaced=True, verbs={"get", "list"})
        k.resources["apps/v1/daemonsets"] = info(kind="DaemonSet", namespaced=True, verbs={"get", "list"})
        k.resources["apps/v1/deployments"] = info(kind="Deployment", namespaced=True, verbs={"get", "list"})
        k.resources["apiregistration.k8s.io/v1/apiservices"] = info(kind="APIService", namespaced=False, verbs={"get", "list"})
        if self.v1:
            for plural, kind in (("ippools", "IPPool"), ("felixconfigurations", "FelixConfiguration"),
                                 ("bgpconfigurations", "BGPConfiguration"), ("ipamblocks", "IPAMBlock")):
                k.resources[f"crd.projectcalico.org/v1/{plural}"] = info(kind=kind, namespaced=False,
                                                                         verbs={"get", "list", "watch", "patch", "create"})
        if self.v3:
            for plural, kind in (("ippools", "IPPool"), ("felixconfigurations", "FelixConfiguration")):
                k.resources[f"projectcalico.org/v3/{plural}"] = info(kind=kind, namespaced=False,
                                                                     verbs={"get", "list", "watch", "patch", "create"})

    def call(self, fn):
        """Run fn() on the server's loop (where kmock's objects live) and return its result."""
        async def wrapper():
            return fn()
        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(10)

    # ---------------------------------------------------------------- inspection
    def object(self, resource: str, namespace: str | None, name: str) -> dict:
        return self.call(lambda: copy.deepcopy(dict(self.kmock.objects[resource, namespace, name].raw)))

    def pool(self, name: str) -> dict:
        return self.object(V1_POOLS if self.v1 else V3_POOLS, None, name)

    def installation(self) -> dict:
        return self.object(INSTALLATIONS, None, "default")

    def patches(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PATCH"]

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("PATCH", "PUT", "POST", "DELETE")]

    def clear_requests(self) -> None:
        self.requests.clear()

    def write_kubeconfig(self, path: str | Path, token: str = ADMIN, *, server: str | None = None, **kw: Any) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(kubeconfig_text(server or self.url, token, **kw))
        return p

    # ---------------------------------------------------------------- behaviour
    async def _handle(self, emu, request, upstream):
        from aiohttp import web

        path = request.url.path
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip() or None
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        user = TOKENS.get(token, (None, None))[0] if token else None
        body = request.data if request.body else None
        rec = Recorded(method, path, dict(request.params), ctype, body, user)
        self.requests.append(rec)

        def reply(code: int, payload: dict) -> web.Response:
            rec.status = code
            return web.json_response(payload, status=code)

        # authentication
        if token == EXPIRED or token is None or token not in TOKENS:
            return reply(401, _status(401, "Unauthorized", "Unauthorized"))
        role = TOKENS[token][1]
        if path in ("/version", "/version/"):
            return reply(200, {"major": "1", "minor": self.k8s_version.split(".")[1], "gitVersion": self.k8s_version,
                               "gitCommit": "4a5a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2", "gitTreeState": "clean",
                               "buildDate": "2026-10-14T09:21:33Z", "goVersion": "go1.25.3", "compiler": "gc",
                               "platform": "linux/amd64"})
        # authorization (a tiny RBAC)
        verb = {"GET": "get", "PATCH": "patch", "PUT": "update", "POST": "create", "DELETE": "delete"}.get(method, method.lower())
        if verb == "get" and request.name is None and request.resource is not None:
            verb = "list"
        if role == "none" or (role == "view" and method != "GET"):
            res = request.resource
            group = res.group if res else ""
            plural = res.plural if res else path
            scope = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
            what = f'{plural}.{group} "{request.name}"' if request.name and group else (
                f'{plural} "{request.name}"' if request.name else f"{plural}.{group}" if group else plural)
            msg = (f'{what} is forbidden: User "{TOKENS[token][0]}" cannot {verb} resource "{plural}" in API group '
                   f'"{group}" {scope}')
            return reply(403, _status(403, "Forbidden", msg, {"name": request.name, "group": group, "kind": plural}))

        # discovery of the Calico API server
        if path.rstrip("/") == "/apis/projectcalico.org/v3" and self.v3 and self.v3_unavailable:
            return reply(503, _status(503, "ServiceUnavailable", "the server is currently unable to handle the request"))

        if method == "PATCH" and request.resource is not None and request.name:
            problem = await self._check_patch(emu, request, ctype, body)
            if problem is not None:
                return reply(*problem)
        response = await upstream(request)
        rec.status = response.status
        if method == "PATCH" and response.status == 200 and request.resource is not None:
            self._after_patch(emu, request)
        return response

    async def _check_patch(self, emu, request, ctype, body):
        from kmock._internal import dicts

        is_list = isinstance(body, list)
        if ctype == "application/json-patch+json" and not is_list:
            return 400, _status(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json") and is_list:
            return 400, _status(400, "BadRequest",
                                "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}")
        res = request.resource
        custom = res.group not in ("", "apps")
        if ctype == "application/strategic-merge-patch+json" and custom:
            return 415, _status(415, "UnsupportedMediaType",
                                "the body of the request was in an unknown format - accepted media types include: "
                                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        key = (f"{res.group}/{res.version}/{res.plural}" if res.group else f"{res.version}/{res.plural}",
               request.namespace, request.name)
        try:
            current = emu.objects[key]
        except KeyError:
            return None
        if current.deleted:
            return None
        try:
            candidate = dicts.patch_dict(copy.deepcopy(dict(current.raw)), body)
        except Exception as exc:  # jsonpatch test failure, bad path
            return 422, _status(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}")
        if res.plural == "ippools":
            problem = _validate_pool(candidate)
            if problem:
                return 422, _status(422, "Invalid", f'IPPool.{res.group} "{request.name}" is invalid: {problem}')
        if res.plural == "installations":
            for i, p in enumerate(((candidate.get("spec") or {}).get("calicoNetwork") or {}).get("ipPools") or []):
                enc = p.get("encapsulation")
                if enc is not None and enc not in ENC_MODES:
                    return 422, _status(422, "Invalid", f'Installation.operator.tigera.io "default" is invalid: '
                                        f'spec.calicoNetwork.ipPools[{i}].encapsulation: Unsupported value: "{enc}"')
        return None

    def _after_patch(self, emu, request) -> None:
        res = request.resource
        if res.group == "projectcalico.org" and res.plural == "ippools" and self.v1:
            # the Calico API server stores v3 pools as v1 CRDs
            v3 = emu.objects[V3_POOLS, None, request.name].raw
            emu.objects[V1_POOLS, None, request.name].patch({"spec": copy.deepcopy(v3["spec"])})
        if res.plural == "installations" and self.operator_running:
            asyncio.get_running_loop().call_later(self.operator_delay, self._operator_reconcile, emu)

    def _operator_reconcile(self, emu) -> None:
        inst = emu.objects[INSTALLATIONS, None, "default"].raw
        for p in ((inst.get("spec") or {}).get("calicoNetwork") or {}).get("ipPools") or []:
            ipip, vxlan = ENC_MODES.get(p.get("encapsulation", "IPIP"), ("Always", "Never"))
            for resource in (V1_POOLS, V3_POOLS):
                for (res, _ns, name), obj in list(emu.objects.items()):
                    if f"{res.group}/{res.version}/{res.plural}" != resource or obj.deleted:
                        continue
                    raw = obj.raw
                    owned = (raw.get("metadata") or {}).get("labels", {}).get("app.kubernetes.io/managed-by") == "tigera-operator"
                    if owned and (name == p.get("name") or raw["spec"].get("cidr") == p.get("cidr")):
                        obj.patch({"spec": {"ipipMode": ipip, "vxlanMode": vxlan}})


# --------------------------------------------------------------------------- ready-made clusters


def _nodes(cluster: FakeCluster, nodes: Iterable[tuple[str, str, bool]], *, ns: str, tunnel_kind: str,
           prefix: int = 24, pod_net: str = "172.16", not_ready: Iterable[str] = (), restarts: dict | None = None,
           version: str = "v3.32.2", registry: str = "docker.io/calico") -> None:
    restarts = restarts or {}
    for i, (name, ip, cp) in enumerate(nodes):
        tunnel = f"{pod_net}.{[200, 110, 45, 7, 90, 130][i % 6]}.{0 if tunnel_kind == 'ipip' else 1}"
        cluster.add("v1/nodes", k8s_node(name, ip, control_plane=cp, prefix=prefix, pod_cidr=f"{pod_net}.{i}.0/24",
                                         tunnel=tunnel, tunnel_kind=tunnel_kind))
        cluster.add("v1/pods", calico_node_pod(name, ns, ready=name not in not_ready, restarts=restarts.get(name, 0),
                                               version=version, registry=registry, suffix=f"{name}x{i}"))


def incident_cluster(*, ipip: str = "CrossSubnet", vxlan: str = "Never", backend: str = "bird",
                     extra_pools: Iterable[dict] = (), nodes: Iterable[tuple[str, str, bool]] = INCIDENT_NODES,
                     prefix: int = 24, **kw: Any) -> FakeCluster:
    """The incident: kubeadm + calico.yaml (manifest), 1 control plane + 3 workers all on
    10.100.200.0/24, pool default-ipv4-ippool 172.16.0.0/16 with ipipMode CrossSubnet, BGP (bird)."""
    c = FakeCluster(**kw)
    nodes = list(nodes)
    c.add("apps/v1/daemonsets", calico_node_daemonset("kube-system", ipip=ipip, vxlan=vxlan))
    c.add("v1/configmaps", calico_config(backend=backend))
    c.add("v1/configmaps", kubeadm_config())
    _nodes(c, nodes, ns="kube-system", tunnel_kind="ipip" if ipip != "Never" else "vxlan", prefix=prefix)
    c.add("v1/pods", other_pod("coredns-7db6d8ff4d-x2x7b", "kube-system", nodes[0][0], "kube-dns"))
    c.add_pool(ippool("default-ipv4-ippool", "172.16.0.0/16", ipip=ipip, vxlan=vxlan))
    for p in extra_pools:
        c.add_pool(p)
    return c


def operator_cluster(*, encapsulation: str = "VXLANCrossSubnet", bgp: str = "Enabled", v3: bool = True,
                     extra_pools: Iterable[dict] = (), nodes: Iterable[tuple[str, str, bool]] = INCIDENT_NODES,
                     **kw: Any) -> FakeCluster:
    """An operator install as the quickstart leaves it: tigera-operator, Installation default with
    one pool (custom-resources.yaml uses VXLANCrossSubnet), calico-node in calico-system, Typha, and
    (by default) the Calico API server serving projectcalico.org/v3."""
    c = FakeCluster(v3=v3, **kw)
    ipip, vxlan = ENC_MODES[encapsulation]
    c.add("operator.tigera.io/v1/installations",
          installation([installation_pool("default-ipv4-ippool", "172.16.0.0/16", encapsulation)], bgp=bgp))
    c.add("apps/v1/deployments", operator_deployment())
    c.add("apps/v1/deployments", typha_deployment())
    c.add("apps/v1/daemonsets", calico_node_daemonset("calico-system", ipip=ipip, vxlan=vxlan, registry="quay.io/calico"))
    if v3:
        c.add("apiregistration.k8s.io/v1/apiservices", apiservice())
    _nodes(c, list(nodes), ns="calico-system", tunnel_kind="vxlan" if vxlan != "Never" else "ipip",
           registry="quay.io/calico")
    c.add_pool(ippool("default-ipv4-ippool", "172.16.0.0/16", ipip=ipip, vxlan=vxlan, operator=True))
    for p in extra_pools:
        c.add_pool(p)
    return c


def v3_cluster(**kw: Any) -> FakeCluster:
    """The incident's manifest install plus the Calico API server (projectcalico.org/v3 served)."""
    c = incident_cluster(v3=True, **kw)
    c.add("apiregistration.k8s.io/v1/apiservices", apiservice())
    return c


# --------------------------------------------------------------------------- TLS in front of the server


def make_certs(dirpath: str | Path, san_ips: Iterable[str] = ("10.100.200.4",), san_dns: Iterable[str] = ("kubernetes",),
               *, expired_client: bool = False) -> dict[str, Path | str]:
    """A CA, an API server certificate for the given SANs (as kubeadm makes: the control-plane IP
    and kubernetes.*), and a client certificate (expired on request). Returns paths and base64 data."""
    import base64
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def pem_key(k) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    srv_key = key()
    sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in san_ips] + [x509.DNSName(n) for n in san_dns]
    srv = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
           .issuer_name(ca_name).public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
           .add_extension(x509.SubjectAlternativeName(sans), critical=False)
           .sign(ca_key, hashes.SHA256()))
    cl_key = key()
    cl = (x509.CertificateBuilder()
          .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kubeadm:cluster-admins"),
                                   x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-admin")]))
          .issuer_name(ca_name).public_key(cl_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=400))
          .not_valid_after(now - dt.timedelta(days=35) if expired_client else now + dt.timedelta(days=365))
          .sign(ca_key, hashes.SHA256()))
    paths = {"ca": d / "ca.crt", "server_cert": d / "apiserver.crt", "server_key": d / "apiserver.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["server_cert"].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    paths["server_key"].write_bytes(pem_key(srv_key))
    os.chmod(paths["server_key"], 0o600)
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return {**paths,
            "ca_data": b64(ca.public_bytes(serialization.Encoding.PEM)),
            "client_cert_data": b64(cl.public_bytes(serialization.Encoding.PEM)),
            "client_key_data": b64(pem_key(cl_key)),
            "client_not_after": cl.not_valid_after_utc.strftime("%Y-%m-%d %H:%M")}


class TLSFront:
    """A TLS-terminating TCP relay on 127.0.0.1:<port> in front of a FakeCluster (the kube-apiserver's
    certificate, served where an SSH local forward would land). `connections` counts accepted clients."""

    def __init__(self, backend_port: int, cert: Path, key: Path, *, host: str = "127.0.0.1",
                 backend_host: str = "127.0.0.1") -> None:
        import ssl

        self.backend_port = backend_port
        self.backend_host = backend_host
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.closed = False
        threading.Thread(target=self._accept, name="tls-front", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()
            return
        try:
            backend = socket.create_connection((self.backend_host, self.backend_port), timeout=10)
        except OSError:
            tls.close()
            return

        def pump(src, dst) -> None:
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(backend, tls), daemon=True).start()
        pump(tls, backend)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class SilentServer:
    """Accepts TCP connections and never answers: an API server that hangs (read timeouts)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.closed = True
        self.sock.close()
        for c in self.held:
            c.close()
