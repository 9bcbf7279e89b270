"""The doctor's facts: what the gatherers (labtui/doctor/gather.py) collect from the nodes (SSH), the
cloud (Neutron) and the cluster (Kubernetes API), as plain dataclasses that round-trip through JSON,
and the small pure helpers every other doctor module uses (subnets, which path a pool takes).

The ports, groups, rules and pools are the one network model's (labtui.net.model `NodePort`,
`SecurityGroup`, `SGRule`; labtui.net.calico `IPPoolInfo`), the types the cloud check and the screens
use; the doctor adds what only it knows about a node (SSH and Kubernetes facts), Calico and Neutron.
Besides those, the facts hold what decides the finer points of a diagnosis:
- the network's MTU on each port (`NodePort.network_mtu`) and Calico's configured MTU (`Calico.mtu`):
  the tunnel overhead (IPIP 20, VXLAN 50) must fit;
- whether a group is stateful (`SecurityGroup.stateful`): a stateless group lets no reply in by itself;
- Felix's VXLAN port (`Calico.vxlan_port`, default 4789);
- what the cloud supports (`Neutron.extensions`) and which ML2 backend it runs (`Neutron.backend`):
  ML2/OVS drops a spoofed packet at the sender's port, OVN also at the receiver's.
"""

from __future__ import annotations

import copy
import ipaddress
from functools import lru_cache
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from labtui.net.calico import OPERATOR, IPPoolInfo
from labtui.net.model import NodePort, SecurityGroup, SGRule

# --------------------------------------------------------------------------- facts

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}

IPIP_PROTO = 4
TCP = 6
UDP = 17
ICMP = 1
VXLAN_PORT = 4789
BGP_PORT = 179

_PROTO_NAMES = {"icmp": ICMP, "tcp": TCP, "udp": UDP, "ipip": IPIP_PROTO, "ipencap": IPIP_PROTO,
                "gre": 47, "esp": 50, "ah": 51, "sctp": 132, "icmpv6": 58, "ipv6-icmp": 58}


@dataclass
class BgpPeer:
    address: str
    state: str  # "Established" / "Active" / "Connect" / ...
    info: str = ""

    @property
    def up(self) -> bool:
        return self.state.lower() == "established" or self.info.lower() == "established"


@dataclass
class Node:
    name: str
    role: str = "worker"
    address: str | None = None  # the node IP Calico uses (InternalIP / IPv4Address)
    iface: str | None = None  # primary interface on the node (e.g. ens3)
    iface_cidr: str | None = None  # address/prefix on that interface ("10.100.200.4/24"), from SSH
    calico_cidr: str | None = None  # projectcalico.org/IPv4Address annotation, from the API
    port: NodePort | None = None  # the node's Neutron port: what anti-spoofing and the security groups act on
    ipip_module: bool | None = None
    k8s_ready: bool | None = None
    calico_ready: bool | None = None
    calico_restarts: int | None = None
    calico_pod: str | None = None
    bgp_peers: list[BgpPeer] | None = None
    bgp_source: str | None = None  # "birdcl" / "calicoctl node status"

    @property
    def ip(self) -> str | None:
        for cand in (self.address, _addr(self.calico_cidr), _addr(self.iface_cidr)):
            if cand:
                return cand
        if self.port and self.port.ipv4s:
            return self.port.ipv4s[0]
        return None


@dataclass
class Calico:
    install_mode: str | None = None  # "operator" | "manifest" | "none" | None (unknown)
    backend: str | None = None  # "bird" | "vxlan" | "none"
    bgp: bool | None = None
    typha: bool | None = None
    version: str | None = None
    api: str | None = None  # "v3" | "crd" | "calicoctl"
    mtu: int | None = None  # configured pod (veth) MTU; None or 0: Calico detects it from the host interface
    mtu_source: str = ""  # "Installation calicoNetwork.mtu" | "calico-config veth_mtu"
    vxlan_port: int | None = None  # Felix's VXLAN port (FelixConfiguration vxlanPort / FELIX_VXLANPORT); None: 4789
    vxlan_port_source: str = ""

    @property
    def vxlan_udp_port(self) -> int:
        return self.vxlan_port or VXLAN_PORT


@dataclass
class Neutron:
    """What the cloud supports, as far as it shows it."""

    extensions: list[str] | None = None  # extension aliases (GET /v2.0/extensions); None: not read
    backend: str | None = None  # "ovs" | "ovn" | "linuxbridge" | None (the cloud does not show it)
    backend_source: str = ""  # how the backend was seen, e.g. "network agents"

    def supports(self, alias: str) -> bool | None:
        """None when the extensions are unknown."""
        if self.extensions is None:
            return None
        return alias in self.extensions

    @property
    def checks_destination(self) -> bool:
        """Does the receiving port also drop packets to an address it does not own? OVN does; ML2/OVS
        and linuxbridge check only the sender. Unknown: assume ML2/OVS (the incident's cloud: its drops
        were in the `neutron-openvswi-...` chains), and say so."""
        return self.backend == "ovn"


@dataclass
class Unchecked:
    """Something the doctor could not check, and why ("could not check X"); `skipped`: a check that
    does not apply to this lab (no cloud in the plan: no security groups or ports to read), said as
    such and never counted as a failure to check."""

    source: str  # "cloud" | "kube" | "ssh" | "ssh:node2" | "bgp" | "matrix" | "capture"
    what: str
    reason: str
    hint: str = ""
    skipped: bool = False

    @property
    def verb(self) -> str:
        return "skipped" if self.skipped else "could not check"

    def line(self) -> str:
        text = f"{self.verb} {self.what}: {self.reason}"
        return f"{text} -> {self.hint}" if self.hint else text


@dataclass
class ProbeResult:
    src: str
    dst: str
    ok: bool
    src_ip: str | None = None
    dst_ip: str | None = None
    detail: str = ""  # "3/3 replies, rtt 0.41 ms" / "100% packet loss"


@dataclass
class Capture:
    node: str
    iface: str
    filter: str
    command: str
    lines: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # "ipip", "vxlan", "direct"
    simulated: bool = False


@dataclass
class DoctorFacts:
    cluster: str = ""
    cloud: str | None = None
    nodes: list[Node] = field(default_factory=list)
    groups: dict[str, SecurityGroup] = field(default_factory=dict)
    pools: list[IPPoolInfo] = field(default_factory=list)
    calico: Calico = field(default_factory=Calico)
    neutron: Neutron = field(default_factory=Neutron)
    unchecked: list[Unchecked] = field(default_factory=list)
    matrix: list[ProbeResult] | None = None
    captures: list[Capture] = field(default_factory=list)
    sources: dict[str, bool] = field(default_factory=dict)  # "cloud"/"kube"/"ssh" -> reached
    timings: dict[str, float] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DoctorFacts":
        return _from_plain(cls, data)

    def copy(self) -> "DoctorFacts":
        return copy.deepcopy(self)


# --------------------------------------------------------------------------- (de)serialisation


def to_plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj) if f.metadata.get("plain", True)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


# Facts stored before the doctor used the one network model (labtui.net) named some fields otherwise;
# a session saved then still opens: old field -> new field, per type.
_OLD_NAMES: dict[type, dict[str, str]] = {
    NodePort: {"security_groups": "security_group_ids", "port_security": "port_security_enabled",
               "mtu": "network_mtu", "mac": "mac_address", "network": "network_name"},
    SGRule: {"ethertype": "ether_type", "port_min": "port_range_min", "port_max": "port_range_max"},
}


def _upgrade(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    data = {_OLD_NAMES.get(cls, {}).get(k, k): v for k, v in data.items()}
    if cls is NodePort:  # addresses were plain strings
        for key in ("fixed_ips", "allowed_address_pairs"):
            data[key] = [{"ip_address": a} if isinstance(a, str) else a for a in data.get(key) or []]
    elif cls is IPPoolInfo and data.pop("managed_by_operator", False) and not data.get("owner"):
        data["owner"] = OPERATOR
    return data


def _from_plain(cls: type, data: Any) -> Any:
    if data is None:
        return None
    spec = {
        DoctorFacts: {"nodes": [Node], "groups": {"": SecurityGroup}, "pools": [IPPoolInfo], "calico": Calico,
                      "neutron": Neutron, "unchecked": [Unchecked], "matrix": [ProbeResult], "captures": [Capture]},
        Node: {"port": NodePort, "bgp_peers": [BgpPeer]},
        SecurityGroup: {"rules": [SGRule]},
    }.get(cls, {})
    kwargs = {}
    names = {f.name for f in fields(cls)}
    for key, value in _upgrade(cls, data).items():
        if key not in names:
            continue
        sub = spec.get(key)
        if sub is None or value is None:
            kwargs[key] = value
        elif isinstance(sub, list):
            kwargs[key] = [_from_plain(sub[0], v) for v in value]
        elif isinstance(sub, dict):
            kwargs[key] = {k: _from_plain(sub[""], v) for k, v in value.items()}
        else:
            kwargs[key] = _from_plain(sub, value)
    obj = cls(**kwargs)
    if cls is SecurityGroup:  # a rule knows its group (old facts and hand-written cases leave it out)
        obj.rules = [r if r.security_group_id else replace(r, security_group_id=obj.id) for r in obj.rules]
    return obj


def port_from_stored(data: dict[str, Any] | None) -> NodePort | None:
    """A node's port as a stored diagnosis holds it (`facts.nodes[].port`, old field names too)."""
    return _from_plain(NodePort, data) if data else None


# --------------------------------------------------------------------------- small helpers


def proto_number(protocol: str | int | None) -> int | None:
    """None for any protocol; a number otherwise ("ipip" counts as 4 at the API level)."""
    if protocol in (None, "", "any", "ANY"):
        return None
    text = str(protocol).strip().lower()
    if text.isdigit():
        return int(text)
    return _PROTO_NAMES.get(text, -1)


@lru_cache(maxsize=4096)
def _addr(cidr: str | None) -> str | None:
    if not cidr:
        return None
    try:
        return str(ipaddress.ip_interface(cidr).ip)
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def network_of(text: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        try:
            return ipaddress.ip_interface(text).network
        except ValueError:
            return None


@lru_cache(maxsize=4096)
def _ip(text: str | None):
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def node_subnet(node: Node) -> tuple[str | None, str]:
    """The subnet Calico believes the node is on, and where that came from.

    Calico decides CrossSubnet from the node's IPv4Address (address/prefix, auto-detected from the
    interface), so the API annotation wins, then the interface seen over SSH, then Neutron."""
    if node.calico_cidr and "/" in node.calico_cidr:
        return str(network_of(node.calico_cidr)), "Calico node address"
    if node.iface_cidr and "/" in node.iface_cidr:
        return str(network_of(node.iface_cidr)), f"interface {node.iface or ''}".strip()
    if node.port and node.port.subnet_cidr:
        return str(network_of(node.port.subnet_cidr)), "Neutron subnet"
    return None, ""


def same_subnet(a: Node, b: Node) -> bool | None:
    """Is b's address inside a's subnet (the test CrossSubnet makes on a, sending to b)?"""
    sub, _ = node_subnet(a)
    ip = _ip(b.ip)
    net = network_of(sub)
    if net is None or ip is None:
        return None
    return ip in net


def _mode_path(mode: str, same: bool | None) -> str | None:
    mode = (mode or "Never").replace("Off", "Never")
    if mode == "Always":
        return "encap"
    if mode == "CrossSubnet":
        if same is None:
            return None
        return "direct" if same else "encap"
    return "direct"


def pool_path(pool: IPPoolInfo, a: Node, b: Node) -> str | None:
    """"direct", "ipip" or "vxlan" for a packet from a pod on a to a pod on b in this pool."""
    same = same_subnet(a, b)
    ip = _mode_path(pool.ipip_mode, same)
    vx = _mode_path(pool.vxlan_mode, same)
    if ip is None or vx is None:
        return None
    if ip == "encap":
        return "ipip"
    if vx == "encap":
        return "vxlan"
    return "direct"


def active_pools(facts: DoctorFacts) -> list[IPPoolInfo]:
    return [p for p in facts.pools if p.ipv4 and not p.disabled]


def bird_runs(facts: DoctorFacts) -> bool | None:
    c = facts.calico
    if c.backend == "bird" or c.bgp is True:
        return True
    if c.backend in ("vxlan", "none") or c.bgp is False:
        return False
    return None

