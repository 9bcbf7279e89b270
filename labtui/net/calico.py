"""What the cluster says about Calico, as plain dataclasses, and what each pool mode means here.

Pure functions over the JSON the Kubernetes API returns (no kubernetes import): `labtui.adapters.calico`
fetches, this module interprets, so the doctor, the CLI and the screen share one reading.

- `parse_node` / `parse_pool` / `parse_pod` turn API objects into `NodeInfo`, `IPPoolInfo`,
  `CalicoPod`;
- `detect_install` decides operator / manifest / none / another CNI from what was read;
- `explain_pool` says what a pool's ipipMode / vxlanMode do for THIS cluster's node subnets;
- `find_installation_pool` finds a pool's entry in the operator's Installation.

Planning a change of a pool's encapsulation is labtui.net.modechange's.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable

from labtui.errors import LabError
from labtui.model import Encapsulation

# Annotations calico-node writes on each Kubernetes node.
ANN_IPV4 = "projectcalico.org/IPv4Address"
ANN_IPIP = "projectcalico.org/IPv4IPIPTunnelAddr"
ANN_VXLAN = "projectcalico.org/IPv4VXLANTunnelAddr"
MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR = "tigera-operator"

# API groups.
V3 = ("projectcalico.org", "v3")
V1 = ("crd.projectcalico.org", "v1")
OPERATOR_API = ("operator.tigera.io", "v1")

MODES = ("Always", "CrossSubnet", "Never")

# DaemonSets that identify another CNI (name -> CNI).
OTHER_CNIS = {
    "cilium": "Cilium",
    "kube-flannel-ds": "flannel",
    "kube-flannel": "flannel",
    "weave-net": "Weave Net",
    "kube-router": "kube-router",
    "canal": "Canal (Calico policy + flannel networking)",
    "antrea-agent": "Antrea",
    "kube-ovn-cni": "Kube-OVN",
}


# --------------------------------------------------------------------------- dataclasses


@dataclass
class CalicoPod:
    name: str
    namespace: str
    node: str | None
    ready: bool
    restarts: int
    phase: str
    image: str | None = None


@dataclass
class NodeInfo:
    name: str
    ready: bool
    internal_ip: str | None
    pod_cidr: str | None
    roles: list[str] = field(default_factory=list)
    calico_ipv4: str | None = None  # annotation projectcalico.org/IPv4Address, e.g. "10.100.200.4/24"
    ipip_tunnel: str | None = None
    vxlan_tunnel: str | None = None
    calico_pod: CalicoPod | None = None

    @property
    def subnet(self) -> str | None:
        """The node's subnet as Calico sees it (the IPv4Address annotation carries the prefix)."""
        if not self.calico_ipv4 or "/" not in self.calico_ipv4:
            return None
        try:
            return str(ipaddress.ip_interface(self.calico_ipv4).network)
        except ValueError:
            return None

    @property
    def address(self) -> str | None:
        if self.calico_ipv4:
            return self.calico_ipv4.split("/")[0]
        return self.internal_ip

    @property
    def tunnel(self) -> str | None:
        return self.ipip_tunnel or self.vxlan_tunnel


@dataclass
class IPPoolInfo:
    name: str
    cidr: str
    ipip_mode: str = "Never"
    vxlan_mode: str = "Never"
    nat_outgoing: bool = False
    disabled: bool = False
    node_selector: str = "all()"
    block_size: int | None = None
    allowed_uses: list[str] = field(default_factory=list)
    owner: str | None = None  # "tigera-operator" when the operator manages it
    api: str = "crd.projectcalico.org/v1"  # where it was read
    installation_index: int | None = None  # its index in Installation.spec.calicoNetwork.ipPools (operator)

    @property
    def version(self) -> int:
        try:
            return ipaddress.ip_network(self.cidr, strict=False).version
        except ValueError:
            return 4

    @property
    def ipv4(self) -> bool:
        try:
            return ipaddress.ip_network(self.cidr, strict=False).version == 4
        except ValueError:
            return False

    @property
    def modes(self) -> str:
        return f"ipipMode {self.ipip_mode}, vxlanMode {self.vxlan_mode}"

    @property
    def operator_managed(self) -> bool:
        return self.owner == OPERATOR

    @property
    def encapsulation(self) -> Encapsulation:
        return Encapsulation.from_pool_modes(self.ipip_mode, self.vxlan_mode)

    @property
    def mode_label(self) -> str:
        return mode_label(self.ipip_mode, self.vxlan_mode)

    @property
    def load_balancer(self) -> bool:
        return "LoadBalancer" in self.allowed_uses


@dataclass
class InstallInfo:
    mode: str = "none"  # operator | manifest | none | other
    cni: str | None = None  # "Calico" or the other CNI's name
    namespace: str | None = None  # where calico-node runs
    v3_served: bool = False
    v3_error: str | None = None  # e.g. "503 Service Unavailable" when the APIService is down
    v1_crds: bool = False
    backend: str | None = None  # bird | vxlan | none
    bgp: bool | None = None
    typha: bool = False
    version: str | None = None  # Calico version, e.g. "3.32.2"
    operator_version: str | None = None
    installation_pools: list[dict[str, Any]] = field(default_factory=list)
    installation_bgp: str | None = None  # Installation spec.calicoNetwork.bgp as written

    @property
    def api_flavour(self) -> str:
        if self.v3_served:
            return "projectcalico.org/v3"
        if self.v1_crds:
            return "crd.projectcalico.org/v1 only"
        return "none"

    def describe(self) -> str:
        if self.mode == "operator":
            how = "operator-managed (tigera-operator, Installation 'default')"
        elif self.mode == "manifest":
            how = "manifest install (calico.yaml, calico-node in kube-system)"
        elif self.mode == "other":
            return f"no Calico: the cluster runs {self.cni}"
        else:
            return "Calico is not installed (no calico-node DaemonSet, no Installation)"
        parts = [f"Calico {self.version or '(version unknown)'}", how, f"API {self.api_flavour}"]
        parts.append(f"backend {self.backend or 'unknown'}")
        parts.append("BGP on" if self.bgp else "BGP off" if self.bgp is False else "BGP unknown")
        parts.append("Typha on" if self.typha else "Typha off")
        return ", ".join(parts)


@dataclass
class PoolMeaning:
    pool: str
    summary: str  # one line, e.g. the incident sentence
    details: list[str] = field(default_factory=list)
    severity: str = "info"  # ok | info | warn | bad
    needs: list[str] = field(default_factory=list)  # what the cloud must allow between nodes


@dataclass
class ClusterState:
    server: str
    kubernetes_version: str | None
    install: InstallInfo
    pools: list[IPPoolInfo]
    nodes: list[NodeInfo]
    warnings: list[str] = field(default_factory=list)
    read_seconds: float = 0.0
    # the raw objects the read fetched ("daemonsets", "calico_config", "installation"), so a reader that
    # needs more of them (the doctor's MTU and VXLAN port) does not ask the API again; not stored
    objects: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def pool(self, name: str) -> IPPoolInfo:
        for p in self.pools:
            if p.name == name:
                return p
        names = ", ".join(p.name for p in self.pools) or "none"
        raise LabError(f"the cluster has no IP pool named {name!r} (pools: {names})",
                       "pick one of the pools listed by `labtui calico show NAME`", code="calico")

    @property
    def node_subnets(self) -> dict[str, list[str]]:
        return node_subnets(self.nodes)

    def meanings(self) -> list[PoolMeaning]:
        return [explain_pool(p, self) for p in self.pools]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, objects={}))
        del data["objects"]
        data["install"]["api_flavour"] = self.install.api_flavour
        data["install"]["summary"] = self.install.describe()
        for p, raw in zip(self.pools, data["pools"]):
            raw["encapsulation"] = p.encapsulation.value if p.mode_label != "invalid" else None
            raw["meaning"] = asdict(explain_pool(p, self))
        for n, raw in zip(self.nodes, data["nodes"]):
            raw["subnet"] = n.subnet
        data["node_subnets"] = self.node_subnets
        return data


# --------------------------------------------------------------------------- parsing


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "enabled", "yes", "1")
    return bool(value)


def normalise_mode(value: Any) -> str:
    """Calico's own spelling: Always / CrossSubnet / Never ("Off", empty and missing mean Never)."""
    if value in (None, "", "Off", "off", "never", "NEVER"):
        return "Never"
    text = str(value)
    for m in MODES:
        if text.lower() == m.lower():
            return m
    return text  # unknown value: keep it visible (v1 CRDs before 3.32 do not validate)


def mode_label(ipip: str, vxlan: str) -> str:
    ipip, vxlan = normalise_mode(ipip), normalise_mode(vxlan)
    if ipip not in MODES or vxlan not in MODES:
        return "invalid"
    if ipip != "Never" and vxlan != "Never":
        return "invalid"
    if ipip != "Never":
        return "IPIP Always" if ipip == "Always" else "IPIP CrossSubnet"
    if vxlan != "Never":
        return "VXLAN Always" if vxlan == "Always" else "VXLAN CrossSubnet"
    return "no encapsulation"


def parse_pool(obj: dict[str, Any], api: str = "crd.projectcalico.org/v1") -> IPPoolInfo:
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    ipip = spec.get("ipipMode")
    if ipip is None and isinstance(spec.get("ipip"), dict):  # pre-3.0 field still in old v1 objects
        legacy = spec["ipip"]
        ipip = legacy.get("mode", "Always") if legacy.get("enabled") else "Never"
    nat = spec.get("natOutgoing", spec.get("nat-outgoing", False))
    labels = meta.get("labels") or {}
    return IPPoolInfo(
        name=meta.get("name", "?"),
        cidr=spec.get("cidr", "?"),
        ipip_mode=normalise_mode(ipip),
        vxlan_mode=normalise_mode(spec.get("vxlanMode")),
        nat_outgoing=_truthy(nat),
        disabled=_truthy(spec.get("disabled", False)),
        node_selector=spec.get("nodeSelector") or "all()",
        block_size=spec.get("blockSize"),
        allowed_uses=list(spec.get("allowedUses") or []),
        owner=labels.get(MANAGED_BY),
        api=api,
    )


def parse_pod(obj: dict[str, Any]) -> CalicoPod:
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    restarts = sum(int(cs.get("restartCount") or 0) for cs in status.get("containerStatuses") or [])
    image = next((c.get("image") for c in spec.get("containers") or [] if c.get("name") == "calico-node"), None)
    return CalicoPod(
        name=meta.get("name", "?"),
        namespace=meta.get("namespace", "?"),
        node=spec.get("nodeName"),
        ready=ready,
        restarts=restarts,
        phase=status.get("phase", "Unknown"),
        image=image,
    )


def parse_node(obj: dict[str, Any]) -> NodeInfo:
    meta = _meta(obj)
    status = obj.get("status") or {}
    ann = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    internal = next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    spec = obj.get("spec") or {}
    return NodeInfo(
        name=meta.get("name", "?"),
        ready=ready,
        internal_ip=internal,
        pod_cidr=spec.get("podCIDR"),
        roles=roles,
        calico_ipv4=ann.get(ANN_IPV4),
        ipip_tunnel=ann.get(ANN_IPIP),
        vxlan_tunnel=ann.get(ANN_VXLAN),
    )


_VERSION_TAG = re.compile(r":v?(\d+\.\d+(?:\.\d+)?(?:[-+][\w.]+)?)(?:@sha256:[0-9a-f]+)?$")


def image_version(image: str | None) -> str | None:
    """`docker.io/calico/node:v3.32.2` -> "3.32.2"; digests and registries with ports handled."""
    if not image:
        return None
    m = _VERSION_TAG.search(image)
    return m.group(1) if m else None


def container_env(workload: dict[str, Any], container: str) -> dict[str, str]:
    tmpl = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in tmpl.get("containers") or []:
        if c.get("name") == container:
            return {e.get("name"): str(e.get("value")) for e in c.get("env") or [] if "value" in e}
    return {}


def container_image(workload: dict[str, Any], container: str) -> str | None:
    tmpl = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in tmpl.get("containers") or []:
        if c.get("name") == container:
            image = c.get("image")
            return str(image) if image is not None else None
    return None


def detect_install(
    *,
    daemonsets: list[dict[str, Any]],
    installation: dict[str, Any] | None,
    operator_deployment: dict[str, Any] | None,
    typha_deployment: dict[str, Any] | None,
    calico_config: dict[str, Any] | None,
    v3_served: bool,
    v3_error: str | None,
    v1_crds: bool,
) -> InstallInfo:
    """Operator if the Installation `default` exists (or the operator runs with calico-node in
    calico-system); manifest if calico-node runs in kube-system; else another CNI or none."""
    info = InstallInfo(v3_served=v3_served, v3_error=v3_error, v1_crds=v1_crds)
    calico_ds = None
    for ds in daemonsets:
        meta = _meta(ds)
        if meta.get("name") == "calico-node":
            if calico_ds is None or meta.get("namespace") == "calico-system":
                calico_ds = ds
    others = [OTHER_CNIS[str(_meta(ds).get("name"))] for ds in daemonsets if _meta(ds).get("name") in OTHER_CNIS]
    ds_ns = _meta(calico_ds).get("namespace") if calico_ds else None
    if installation is not None or (operator_deployment is not None and ds_ns == "calico-system"):
        info.mode = "operator"
    elif calico_ds is not None:
        info.mode = "manifest"
    elif others:
        info.mode = "other"
        info.cni = others[0]
        return info
    else:
        return info
    info.cni = "Calico"
    info.namespace = ds_ns or ("calico-system" if info.mode == "operator" else "kube-system")
    image = container_image(calico_ds, "calico-node") if calico_ds else None
    info.version = image_version(image)
    if operator_deployment is not None:
        info.operator_version = image_version(container_image(operator_deployment, "tigera-operator"))
    if info.mode == "operator":
        inst = installation or {}
        net = ((inst.get("spec") or {}).get("calicoNetwork")) or {}
        info.installation_pools = [dict(p) for p in net.get("ipPools") or []]
        info.installation_bgp = net.get("bgp")
        status = inst.get("status") or {}
        info.version = status.get("calicoVersion", "").lstrip("v") or info.version
        info.bgp = (net.get("bgp") or "Enabled") == "Enabled"
        encs = {p.get("encapsulation", "IPIP") for p in info.installation_pools}
        if info.bgp:
            info.backend = "bird"
        elif any(e and e.startswith("VXLAN") for e in encs):
            info.backend = "vxlan"
        else:
            info.backend = "none"
        info.typha = True  # the operator always deploys Typha (facts 2)
    else:
        data = (calico_config or {}).get("data") or {}
        env = container_env(calico_ds, "calico-node") if calico_ds else {}
        backend = data.get("calico_backend") or env.get("CALICO_NETWORKING_BACKEND") or "bird"
        if backend.startswith("$"):  # an unresolved reference: the env comes from the ConfigMap
            backend = data.get("calico_backend", "bird")
        info.backend = backend
        info.bgp = backend == "bird"
        typha_name = data.get("typha_service_name", "none")
        replicas = ((typha_deployment or {}).get("spec") or {}).get("replicas", 1)
        info.typha = (typha_deployment is not None and replicas != 0) or typha_name not in ("none", "")
    return info


def attach_pods(nodes: list[NodeInfo], pods: Iterable[CalicoPod]) -> None:
    by_node = {}
    for pod in pods:
        if pod.node:
            by_node[pod.node] = pod
    for n in nodes:
        n.calico_pod = by_node.get(n.name)


def find_installation_pool(install: InstallInfo, pool: IPPoolInfo) -> int | None:
    for i, p in enumerate(install.installation_pools):
        if p.get("name") == pool.name:
            return i
    for i, p in enumerate(install.installation_pools):
        if p.get("cidr") == pool.cidr:
            return i
    return None


# --------------------------------------------------------------------------- meaning


def node_subnets(nodes: Iterable[NodeInfo]) -> dict[str, list[str]]:
    """{subnet: [node names]} from Calico's IPv4Address annotation ("unknown" when missing)."""
    out: dict[str, list[str]] = {}
    for n in nodes:
        out.setdefault(n.subnet or "unknown", []).append(n.name)
    return out


def _selector_applies(selector: str) -> bool:
    return selector.strip() in ("", "all()")


def explain_pool(pool: IPPoolInfo, state: "ClusterState | None" = None, nodes: list[NodeInfo] | None = None) -> PoolMeaning:
    """What this pool's modes do on this cluster's actual node subnets (facts 0, 1.1, 2)."""
    nodes = nodes if nodes is not None else (state.nodes if state else [])
    backend = state.install.backend if state else None
    subnets = node_subnets(nodes)
    known = {s: ns for s, ns in subnets.items() if s != "unknown"}
    unknown = subnets.get("unknown", [])
    label = pool.mode_label
    m = PoolMeaning(pool=pool.name, summary="")
    if pool.version == 6:
        m.details.append("IPv6 pool: IPIP cannot carry IPv6 (Calico refuses ipipMode on an IPv6 CIDR); "
                         "only VXLAN or no encapsulation apply.")
    if pool.disabled:
        m.details.append("Disabled: Calico hands out no new pod addresses from it; pods that already "
                         "have one keep it.")
    if not _selector_applies(pool.node_selector):
        m.details.append(f"Only nodes matching the selector {pool.node_selector} take addresses from it.")
    if pool.operator_managed:
        m.details.append("Owned by the tigera-operator: change it through the Installation 'default', "
                         "a direct edit of the pool is reverted by the operator.")
    where = ""
    if len(known) == 1 and not unknown:
        (subnet, members), = known.items()
        where = f"all {len(members)} nodes are on {subnet}" if len(members) != 1 else f"the only node is on {subnet}"
    elif known:
        where = "the nodes are on " + "; ".join(f"{s} ({', '.join(ns)})" for s, ns in sorted(known.items()))
    if unknown:
        m.details.append(f"No Calico address annotation yet on {', '.join(unknown)} (calico-node not running "
                         "there?): their subnet is unknown.")

    if label == "invalid":
        m.severity = "bad"
        m.summary = (f"ipipMode {pool.ipip_mode} with vxlanMode {pool.vxlan_mode} is not a valid combination: "
                     "Calico accepts at most one encapsulation per pool, with Always, CrossSubnet or Never.")
        return m
    if label == "IPIP Always":
        m.severity = "ok" if backend in (None, "bird") else "bad"
        m.summary = ("IPIP Always: every packet between pods on different nodes is wrapped in IP-in-IP from "
                     "node address to node address, so the cloud only sees node addresses.")
        m.needs = ["IP protocol 4 between the nodes (security group rule --protocol 4, not 'ipip')",
                   "TCP 179 between the nodes for BGP (bird)"]
        if backend not in (None, "bird"):
            m.details.append(f"But BGP is off (backend {backend}): IPIP routes are spread by BGP, so IPIP cannot work here.")
    elif label == "VXLAN Always":
        m.severity = "ok"
        m.summary = ("VXLAN Always: every packet between pods on different nodes is wrapped in UDP (port 4789) "
                     "from node address to node address, so the cloud only sees node addresses.")
        m.needs = ["UDP 4789 between the nodes"]
    elif label in ("IPIP CrossSubnet", "VXLAN CrossSubnet"):
        proto = "IPIP" if label.startswith("IPIP") else "VXLAN"
        m.needs = ["IP protocol 4 between the nodes" if proto == "IPIP" else "UDP 4789 between the nodes"]
        if len(known) == 1 and not unknown and len(next(iter(known.values()))) > 1:
            m.severity = "bad"
            m.summary = (f"{proto} CrossSubnet, and {where}: pod traffic leaves the VMs unencapsulated with pod "
                         "source addresses")
            m.details.insert(0, (
                f"CrossSubnet encapsulates only towards nodes on ANOTHER subnet. Here no node pair crosses a "
                f"subnet, so nothing is ever encapsulated. On OpenStack, Neutron port security (anti-spoofing) "
                f"drops a packet whose source is not the port's own address: pods on different nodes cannot "
                f"talk unless every node port allows {pool.cidr} as an allowed-address-pair."))
            m.needs.append(f"{pool.cidr} as an allowed-address-pair on every node port (or port security off)")
        elif any(len(ns) > 1 for ns in known.values()):
            m.severity = "bad"
            m.summary = (f"{proto} CrossSubnet, and {where}: traffic between nodes of the same subnet leaves the "
                         "VMs unencapsulated with pod source addresses" + (
                             "; traffic between subnets is encapsulated" if len(known) > 1 else ""))
            m.needs.append(f"{pool.cidr} as an allowed-address-pair on every node port that shares a subnet")
        elif len(known) > 1:
            m.severity = "warn" if unknown else "info"
            m.summary = (f"{proto} CrossSubnet, and {where}: every node pair crosses a subnet, so cross-node pod "
                         "traffic is encapsulated; a node added to an existing subnet would send unencapsulated")
        else:
            m.severity = "warn"
            m.summary = (f"{proto} CrossSubnet: encapsulated only between nodes on different subnets; same-subnet "
                         "pod traffic leaves unencapsulated with pod source addresses")
    else:  # no encapsulation
        m.severity = "bad" if len(nodes) > 1 else "warn"
        m.summary = ("No encapsulation" + (f", and {where}" if where else "") + ": every packet between pods on "
                     "different nodes leaves the VMs with pod source addresses")
        m.needs = [f"{pool.cidr} as an allowed-address-pair on every node port (or port security off)"]
        if backend == "bird":
            m.needs.append("TCP 179 between the nodes for BGP (bird)")
        m.details.insert(0, "Neutron's anti-spoofing drops it unless each port allows the pod CIDR.")
    if label != "no encapsulation" and not pool.nat_outgoing and pool.version == 4:
        m.details.append("natOutgoing is off: Calico recommends it on a pool with IPIP or VXLAN (asymmetric "
                         "routing between pods and hosts otherwise).")
    return m
