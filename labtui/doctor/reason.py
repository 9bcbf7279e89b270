"""The doctor, pure: facts -> per-pair paths -> findings -> ranked fix plans.

No I/O here. `DoctorFacts` is what the gatherers (labtui/doctor_gather.py) collect from the nodes
(SSH), the cloud (Neutron) and the cluster (Kubernetes API); `diagnose(facts)` reasons about every
ordered pair of nodes:

1. which path a pod-to-pod packet takes under the live pool mode: *direct* (unencapsulated, the
   source is the pod's address), *IPIP* (IP protocol 4 between the node addresses) or *VXLAN*
   (UDP 4789 between the node addresses), given whether the two nodes share a subnet
   (Calico's CrossSubnet encapsulates only towards a node on another subnet);
2. whether the cloud lets that packet leave one port and enter the other: Neutron's port
   security drops a packet whose source is not the port's fixed IP or an allowed-address-pair
   (anti-spoofing), and the security groups must let in protocol 4, UDP 4789, or - for direct
   traffic - the pod addresses; BGP (bird) needs TCP 179 between the nodes.

Findings carry a severity, the affected pairs, a plain explanation naming the real pool, rules
and ports, and the evidence. Fix options (1 IPIP Always + protocol 4, 2 VXLAN Always + UDP 4789,
3 the pod CIDR as allowed-address-pairs on every port, 4 port security off) are plans of
`FixAction`s in a safe order (open the network first, then switch the pool), each with its
revert, and each option is checked by simulating it on the facts (`simulate`).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import shlex
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Iterable

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
class Rule:
    """A security-group rule as Neutron returns it (protocol None means any protocol)."""

    id: str = ""
    direction: str = "ingress"
    ethertype: str = "IPv4"
    protocol: str | None = None
    port_min: int | None = None
    port_max: int | None = None
    remote_group_id: str | None = None
    remote_ip_prefix: str | None = None
    description: str = ""

    def proto_number(self) -> int | None:
        return proto_number(self.protocol)

    def describe(self, groups: dict[str, "Group"] | None = None) -> str:
        p = self.protocol
        proto = "any protocol" if p in (None, "", "any") else (f"protocol {p}" if str(p).isdigit() else str(p))
        if self.port_min is not None:
            ports = str(self.port_min) if self.port_max in (None, self.port_min) else f"{self.port_min}-{self.port_max}"
            proto += f" {ports}"
        if self.remote_group_id:
            g = (groups or {}).get(self.remote_group_id)
            src = f"members of group {g.name if g else self.remote_group_id}"
        elif self.remote_ip_prefix:
            src = self.remote_ip_prefix
        else:
            src = "anywhere"
        word = "from" if self.direction == "ingress" else "to"
        return f"{self.direction} {self.ethertype} {proto} {word} {src}"


@dataclass
class Group:
    id: str
    name: str = ""
    rules: list[Rule] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass
class Port:
    """A node's Neutron port: what anti-spoofing and the security groups act on."""

    id: str
    name: str = ""
    fixed_ips: list[str] = field(default_factory=list)
    subnet_cidr: str | None = None
    subnet_name: str | None = None
    network: str | None = None
    mac: str | None = None
    security_groups: list[str] = field(default_factory=list)  # group ids
    port_security: bool = True
    allowed_address_pairs: list[str] = field(default_factory=list)  # ip_address values (IP or CIDR)

    @property
    def label(self) -> str:
        short = self.id[:8] if len(self.id) > 12 else self.id
        return f"{self.name} ({short})" if self.name else short

    @property
    def ref(self) -> str:
        """How an `openstack port ...` command names this port."""
        return self.id or self.name


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
    port: Port | None = None
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
        if self.port and self.port.fixed_ips:
            return self.port.fixed_ips[0]
        return None


@dataclass
class Pool:
    name: str
    cidr: str
    ipip_mode: str = "Never"
    vxlan_mode: str = "Never"
    nat_outgoing: bool = True
    disabled: bool = False
    node_selector: str = "all()"
    managed_by_operator: bool = False
    installation_index: int | None = None  # its index in Installation.spec.calicoNetwork.ipPools

    @property
    def ipv4(self) -> bool:
        try:
            return ipaddress.ip_network(self.cidr, strict=False).version == 4
        except ValueError:
            return False

    @property
    def modes(self) -> str:
        return f"ipipMode {self.ipip_mode}, vxlanMode {self.vxlan_mode}"


@dataclass
class Calico:
    install_mode: str | None = None  # "operator" | "manifest" | "none" | None (unknown)
    backend: str | None = None  # "bird" | "vxlan" | "none"
    bgp: bool | None = None
    typha: bool | None = None
    version: str | None = None
    api: str | None = None  # "v3" | "crd" | "calicoctl"


@dataclass
class Unchecked:
    """Something the doctor could not check, and why ("could not check X")."""

    source: str  # "cloud" | "kube" | "ssh" | "ssh:node2" | "bgp" | "matrix" | "capture"
    what: str
    reason: str
    hint: str = ""

    def line(self) -> str:
        text = f"could not check {self.what}: {self.reason}"
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
    groups: dict[str, Group] = field(default_factory=dict)
    pools: list[Pool] = field(default_factory=list)
    calico: Calico = field(default_factory=Calico)
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
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DoctorFacts":
        return _from_plain(cls, data)

    def copy(self) -> "DoctorFacts":
        return copy.deepcopy(self)


# --------------------------------------------------------------------------- (de)serialisation


def _to_plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


_NESTED: dict[type, dict[str, Any]] = {}


def _from_plain(cls: type, data: Any) -> Any:
    if data is None:
        return None
    spec = {
        DoctorFacts: {"nodes": [Node], "groups": {"": Group}, "pools": [Pool], "calico": Calico,
                      "unchecked": [Unchecked], "matrix": [ProbeResult], "captures": [Capture]},
        Node: {"port": Port, "bgp_peers": [BgpPeer]},
        Group: {"rules": [Rule]},
    }.get(cls, {})
    kwargs = {}
    names = {f.name for f in fields(cls)}
    for key, value in data.items():
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
    return cls(**kwargs)


# --------------------------------------------------------------------------- small helpers


def proto_number(protocol: str | int | None) -> int | None:
    """None for any protocol; a number otherwise ("ipip" counts as 4 at the API level)."""
    if protocol in (None, "", "any", "ANY"):
        return None
    text = str(protocol).strip().lower()
    if text.isdigit():
        return int(text)
    return _PROTO_NAMES.get(text, -1)


def _addr(cidr: str | None) -> str | None:
    if not cidr:
        return None
    try:
        return str(ipaddress.ip_interface(cidr).ip)
    except ValueError:
        return None


def _net(text: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        try:
            return ipaddress.ip_interface(text).network
        except ValueError:
            return None


def _ip(text: str | None):
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _covers(prefix: str | None, target: str | None) -> bool:
    """Does `prefix` (IP or CIDR) cover the whole of `target` (IP or CIDR)?"""
    p, t = _net(prefix), _net(target)
    if p is None or t is None or p.version != t.version:
        return False
    return t.subnet_of(p)  # type: ignore[arg-type]


def node_subnet(node: Node) -> tuple[str | None, str]:
    """The subnet Calico believes the node is on, and where that came from.

    Calico decides CrossSubnet from the node's IPv4Address (address/prefix, auto-detected from the
    interface), so the API annotation wins, then the interface seen over SSH, then Neutron."""
    if node.calico_cidr and "/" in node.calico_cidr:
        return str(_net(node.calico_cidr)), "Calico node address"
    if node.iface_cidr and "/" in node.iface_cidr:
        return str(_net(node.iface_cidr)), f"interface {node.iface or ''}".strip()
    if node.port and node.port.subnet_cidr:
        return str(_net(node.port.subnet_cidr)), "Neutron subnet"
    return None, ""


def same_subnet(a: Node, b: Node) -> bool | None:
    """Is b's address inside a's subnet (the test CrossSubnet makes on a, sending to b)?"""
    sub, _ = node_subnet(a)
    ip = _ip(b.ip)
    net = _net(sub)
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


def pool_path(pool: Pool, a: Node, b: Node) -> str | None:
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


def active_pools(facts: DoctorFacts) -> list[Pool]:
    return [p for p in facts.pools if p.ipv4 and not p.disabled]


def bird_runs(facts: DoctorFacts) -> bool | None:
    c = facts.calico
    if c.backend == "bird" or c.bgp is True:
        return True
    if c.backend in ("vxlan", "none") or c.bgp is False:
        return False
    return None


# --------------------------------------------------------------------------- the cloud's filters


@dataclass
class Block:
    """Why the cloud (or the routing) drops a packet."""

    code: str  # antispoof-src | antispoof-dst | sg-ingress | sg-egress | unroutable
    where: str  # the port or group that drops it
    detail: str


def _groups_of(facts: DoctorFacts, port: Port) -> list[Group]:
    return [facts.groups.get(g) or Group(g, g) for g in port.security_groups]


def _rule_matches(rule: Rule, proto: int | None, dport: int | None, src_port: Port | None,
                  src_addr: str | None, direction: str, remote_port: Port | None = None,
                  remote_addr: str | None = None) -> bool:
    """Does this rule let a packet (proto, dport) from src (ingress) / to dst (egress) through?

    `proto` None means "every protocol" (pod traffic in general): only any-protocol rules match.
    For ingress, src_port/src_addr is the sender; for egress, remote_port/remote_addr the receiver."""
    if rule.direction != direction or (rule.ethertype or "IPv4") != "IPv4":
        return False
    rp = rule.proto_number()
    if rp is not None:
        if proto is None or rp != proto:
            return False
        if proto in (TCP, UDP) and rule.port_min is not None:
            hi = rule.port_max if rule.port_max is not None else rule.port_min
            if dport is None or not (rule.port_min <= dport <= hi):
                return False
    peer_port = src_port if direction == "ingress" else remote_port
    peer_addr = src_addr if direction == "ingress" else remote_addr
    if rule.remote_group_id:
        if peer_port is None or not peer_port.port_security or rule.remote_group_id not in peer_port.security_groups:
            return False
        # a remote group stands for its members' fixed IPs *and* their allowed-address-pairs
        if peer_addr and not any(_covers(ip, peer_addr) for ip in peer_port.fixed_ips):
            return any(_covers(p, peer_addr) for p in peer_port.allowed_address_pairs)
        return True
    if rule.remote_ip_prefix:
        return bool(peer_addr) and _covers(rule.remote_ip_prefix, peer_addr)
    return True


def _allowing_rule(facts: DoctorFacts, port: Port, direction: str, proto: int | None, dport: int | None,
                   peer_port: Port | None, peer_addr: str | None) -> tuple[Group, Rule] | None:
    for g in _groups_of(facts, port):
        for r in g.rules:
            if direction == "ingress":
                ok = _rule_matches(r, proto, dport, peer_port, peer_addr, "ingress")
            else:
                ok = _rule_matches(r, proto, dport, None, None, "egress", peer_port, peer_addr)
            if ok:
                return g, r
    return None


def _antispoof_ok(port: Port, source: str) -> bool:
    if not port.port_security:
        return True
    return any(_covers(ip, source) for ip in port.fixed_ips) or any(
        _covers(p, source) for p in port.allowed_address_pairs)


def _flow(facts: DoctorFacts, a: Node, b: Node, proto: int | None, dport: int | None,
          src_addr: str | None, dst_addr: str | None, direct: bool) -> list[Block]:
    """Every place the cloud drops this packet on its way from a's port into b's port."""
    blocks: list[Block] = []
    pa, pb = a.port, b.port
    if pa is None or pb is None:
        return blocks
    what = _flow_name(proto, dport, direct)
    if src_addr and not _antispoof_ok(pa, src_addr):
        pairs = ", ".join(pa.allowed_address_pairs) or "none"
        blocks.append(Block("antispoof-src", f"port {pa.label}",
                            f"port {pa.label} of {a.name} has port security on; its fixed IP is "
                            f"{', '.join(pa.fixed_ips) or '?'} and its allowed-address-pairs are {pairs}, "
                            f"so a packet with a source in {src_addr} is dropped as spoofed when it leaves {a.name}"))
    if direct and dst_addr and not _antispoof_ok(pb, dst_addr):
        blocks.append(Block("antispoof-dst", f"port {pb.label}",
                            f"port {pb.label} of {b.name} has no allowed-address-pair for {dst_addr}: clouds "
                            "on OVN also drop packets to addresses the port does not own"))
    if pa.port_security and _allowing_rule(facts, pa, "egress", proto, dport, pb, dst_addr) is None:
        names = ", ".join(g.label for g in _groups_of(facts, pa)) or "no group"
        blocks.append(Block("sg-egress", f"group {names}",
                            f"no egress rule in {names} (port {pa.label} of {a.name}) lets {what} out"))
    if pb.port_security and _allowing_rule(facts, pb, "ingress", proto, dport, pa, src_addr) is None:
        names = ", ".join(g.label for g in _groups_of(facts, pb)) or "no group"
        src_desc = f"{src_addr} ({a.name})" if not direct else f"pod addresses {src_addr} on {a.name}"
        blocks.append(Block("sg-ingress", f"group {names}",
                            f"no ingress rule in {names} (port {pb.label} of {b.name}) allows {what} from {src_desc}"))
    return blocks


def _flow_name(proto: int | None, dport: int | None, direct: bool) -> str:
    if proto is None:
        return "pod traffic (any protocol)" if direct else "any protocol"
    if proto == IPIP_PROTO:
        return "IP protocol 4 (IPIP)"
    if proto == UDP and dport == VXLAN_PORT:
        return "UDP 4789 (VXLAN)"
    if proto == TCP and dport == BGP_PORT:
        return "TCP 179 (BGP)"
    name = {TCP: "TCP", UDP: "UDP", ICMP: "ICMP"}.get(proto, f"protocol {proto}")
    return f"{name} {dport}" if dport else name


# --------------------------------------------------------------------------- per-pair reasoning


@dataclass
class PathVerdict:
    src: str
    dst: str
    pool: str
    path: str | None  # direct | ipip | vxlan | None (unknown)
    same_subnet: bool | None
    ok: bool | None  # None: could not tell (the cloud side or the subnet is unknown)
    blocks: list[Block] = field(default_factory=list)
    probe: ProbeResult | None = None

    @property
    def pair(self) -> str:
        return f"{self.src}->{self.dst}"


def pair_verdicts(facts: DoctorFacts) -> list[PathVerdict]:
    out: list[PathVerdict] = []
    probes = {(p.src, p.dst): p for p in (facts.matrix or [])}
    for pool in active_pools(facts):
        pod_src = pool.cidr
        for a in facts.nodes:
            for b in facts.nodes:
                if a is b:
                    continue
                same = same_subnet(a, b)
                path = pool_path(pool, a, b)
                v = PathVerdict(a.name, b.name, pool.name, path, same, None, probe=probes.get((a.name, b.name)))
                if path is None or a.port is None or b.port is None:
                    out.append(v)
                    continue
                if path == "direct":
                    v.blocks = _flow(facts, a, b, None, None, pod_src, pod_src, direct=True)
                    if same is False:
                        v.blocks.append(Block(
                            "unroutable", "the router",
                            f"{a.name} and {b.name} are on different subnets and nothing encapsulates: the "
                            f"packet goes to the subnet's router, which has no route to the pod CIDR {pool.cidr}"))
                elif path == "ipip":
                    v.blocks = _flow(facts, a, b, IPIP_PROTO, None, a.ip, b.ip, direct=False)
                else:
                    v.blocks = _flow(facts, a, b, UDP, VXLAN_PORT, a.ip, b.ip, direct=False)
                v.ok = not v.blocks
                out.append(v)
    return out


def bgp_verdicts(facts: DoctorFacts) -> list[PathVerdict]:
    """TCP 179 between every pair (a BGP session needs one direction to connect)."""
    out: list[PathVerdict] = []
    for i, a in enumerate(facts.nodes):
        for b in facts.nodes[i + 1:]:
            v = PathVerdict(a.name, b.name, "(BGP)", "bgp", same_subnet(a, b), None)
            if a.port and b.port:
                ab = _flow(facts, a, b, TCP, BGP_PORT, a.ip, b.ip, direct=False)
                ba = _flow(facts, b, a, TCP, BGP_PORT, b.ip, a.ip, direct=False)
                v.ok = not ab or not ba
                v.blocks = [] if v.ok else ab
            out.append(v)
    return out


# --------------------------------------------------------------------------- findings


@dataclass
class Evidence:
    source: str  # "kube" | "neutron" | "ssh:node1" | "probe" | "tcpdump" | "bird"
    text: str


@dataclass
class Finding:
    id: str
    severity: str
    title: str
    explanation: str
    pairs: list[str] = field(default_factory=list)  # "node1->node2"
    evidence: list[Evidence] = field(default_factory=list)
    fixes: list[int] = field(default_factory=list)  # numbers of the FixOptions that clear it
    pool: str | None = None
    nodes: list[str] = field(default_factory=list)


@dataclass
class FixAction:
    """One change the doctor would make; `command` is exactly what the user would type."""

    id: str
    kind: str  # sg-rule | port-pairs | port-security-off | pool-mode | installation-encapsulation
    layer: str  # openstack | calico
    target: str
    title: str
    command: str
    revert: str
    params: dict[str, Any] = field(default_factory=dict)
    order: int = 0  # 0 security groups, 1 ports, 2 calico (open the network first, then switch)
    risk: str = "change"  # change | destructive


@dataclass
class FixOption:
    number: int
    key: str
    title: str
    summary: str
    why: str
    tradeoffs: str
    actions: list[FixAction] = field(default_factory=list)
    available: bool = True
    unavailable_reason: str = ""
    recommended: bool = False
    discouraged: bool = False
    rank: int = 0
    expected: str = ""  # what the simulation says after it
    target_modes: dict[str, tuple[str, str]] = field(default_factory=dict)  # pool -> (ipip, vxlan)


@dataclass
class Diagnosis:
    facts: DoctorFacts
    verdicts: list[PathVerdict]
    bgp: list[PathVerdict]
    findings: list[Finding]
    options: list[FixOption]
    unchecked: list[Unchecked]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in (ERROR, WARNING)]

    @property
    def healthy(self) -> bool:
        return self.exit_code == 0

    @property
    def blocked_sources(self) -> list[Unchecked]:
        """The unchecked sources without which no verdict on pod traffic is possible."""
        return [u for u in self.unchecked if u.source in ("cloud", "kube", "nodes")]

    @property
    def exit_code(self) -> int:
        if self.problems:
            return 1
        if self.blocked_sources:
            return 2
        if not self.facts.nodes or not active_pools(self.facts):
            return 2
        if any(v.ok is None for v in self.verdicts):
            return 2
        return 0

    @property
    def status(self) -> str:
        return {0: "healthy", 1: "findings", 2: "could not check"}[self.exit_code]

    def option(self, ref: str | int) -> FixOption:
        ref_s = str(ref).strip().lower()
        for o in self.options:
            if ref_s in (str(o.number), o.key):
                return o
        raise KeyError(ref)

    def finding(self, fid: str) -> Finding:
        for f in self.findings:
            if f.id == fid:
                return f
        raise KeyError(fid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.facts.cluster,
            "status": self.status,
            "exit_code": self.exit_code,
            "findings": [_to_plain(f) for f in self.findings],
            "options": [_to_plain(o) for o in self.options],
            "unchecked": [_to_plain(u) | {"line": u.line()} for u in self.unchecked],
            "paths": [
                {"src": v.src, "dst": v.dst, "pool": v.pool, "path": v.path, "same_subnet": v.same_subnet,
                 "ok": v.ok, "blocks": [_to_plain(b) for b in v.blocks],
                 "probe": _to_plain(v.probe) if v.probe else None}
                for v in self.verdicts
            ],
            "bgp": [{"a": v.src, "b": v.dst, "ok": v.ok} for v in self.bgp],
            "matrix": [_to_plain(p) for p in self.facts.matrix] if self.facts.matrix is not None else None,
            "captures": [_to_plain(c) for c in self.facts.captures],
            "facts": self.facts.to_dict(),
        }


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _pairs_text(pairs: list[str], n_nodes: int) -> str:
    total = n_nodes * (n_nodes - 1)
    if total and len(pairs) == total:
        return f"all {total} node pairs"
    if len(pairs) <= 4:
        return _join(p.replace("->", " → ") for p in pairs)
    return f"{len(pairs)} of {total} node pairs"


def _subnets_summary(facts: DoctorFacts, names: Iterable[str]) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for n in facts.nodes:
        if n.name in names:
            sub, _ = node_subnet(n)
            by.setdefault(sub or "an unknown subnet", []).append(n.name)
    return by


def _node_evidence(facts: DoctorFacts, names: Iterable[str]) -> list[Evidence]:
    ev: list[Evidence] = []
    for n in facts.nodes:
        if n.name not in names:
            continue
        bits = []
        if n.iface_cidr:
            bits.append(f"{n.iface or 'interface'} {n.iface_cidr} (on the node)")
        if n.calico_cidr:
            bits.append(f"Calico IPv4Address {n.calico_cidr}")
        if bits:
            ev.append(Evidence(f"ssh:{n.name}" if n.iface_cidr else "kube", f"{n.name}: " + ", ".join(bits)))
        if n.port:
            p = n.port
            ev.append(Evidence("neutron",
                               f"{n.name}: port {p.label} fixed IP {', '.join(p.fixed_ips) or '?'} on subnet "
                               f"{p.subnet_cidr or '?'}{' (' + p.subnet_name + ')' if p.subnet_name else ''}, "
                               f"port_security_enabled={str(p.port_security).lower()}, allowed_address_pairs="
                               f"{p.allowed_address_pairs or '[]'}, security groups "
                               f"{', '.join(facts.groups[g].label if g in facts.groups else g for g in p.security_groups) or 'none'}"))
    return ev


def _group_evidence(facts: DoctorFacts, group_ids: Iterable[str]) -> list[Evidence]:
    ev = []
    for gid in dict.fromkeys(group_ids):
        g = facts.groups.get(gid)
        if g is None:
            continue
        ingress = [r.describe(facts.groups) for r in g.rules if r.direction == "ingress"]
        ev.append(Evidence("neutron", f"security group {g.label}: "
                           + ("; ".join(ingress) if ingress else "no ingress rules")))
    return ev


def _probe_evidence(verdicts: list[PathVerdict]) -> list[Evidence]:
    probes = [v.probe for v in verdicts if v.probe is not None]
    if not probes:
        return []
    bad = [p for p in probes if not p.ok]
    details = {p.detail for p in bad}
    if len(bad) > 3 and len(details) == 1:
        return [Evidence("probe", f"ping between the probe pods: {len(probes) - len(bad)} of {len(probes)} of these "
                                  f"pairs answer; every other one: {next(iter(details)) or 'no reply'}")]
    ev = []
    for p in probes[:8]:
        ev.append(Evidence("probe", f"ping from the probe pod on {p.src} ({p.src_ip or '?'}) to the one on "
                                    f"{p.dst} ({p.dst_ip or '?'}): {'replies' if p.ok else 'no reply'}"
                                    + (f", {p.detail}" if p.detail else "")))
    if len(probes) > 8:
        ev.append(Evidence("probe", f"... and {len(probes) - 8} more pairs (the matrix shows them all)"))
    return ev


def _capture_evidence(facts: DoctorFacts) -> list[Evidence]:
    ev = []
    for c in facts.captures:
        seen = ", ".join(c.seen) or "nothing"
        head = c.lines[:4]
        text = f"`{c.command}` on {c.node}{' (simulated)' if c.simulated else ''}: saw {seen}"
        if head:
            text += "\n    " + "\n    ".join(head)
        ev.append(Evidence("tcpdump", text))
    return ev


def _pool_evidence(pool: Pool, facts: DoctorFacts) -> Evidence:
    owner = " (owned by the tigera-operator: change it through the Installation)" if pool.managed_by_operator else ""
    backend = f"; calico backend {facts.calico.backend}" if facts.calico.backend else ""
    return Evidence("kube", f"IPPool {pool.name}: cidr {pool.cidr}, {pool.modes}, natOutgoing "
                            f"{str(pool.nat_outgoing).lower()}{owner}{backend}")


def _first_port_block(verdicts: list[PathVerdict], code: str) -> Block | None:
    for v in verdicts:
        for b in v.blocks:
            if b.code == code:
                return b
    return None


def _classify(v: PathVerdict) -> str:
    codes = {b.code for b in v.blocks}
    if v.path == "direct":
        if "unroutable" in codes:
            return "direct-unroutable"
        if codes & {"antispoof-src", "antispoof-dst"}:
            return "direct-antispoofing"
        if "sg-ingress" in codes:
            return "direct-sg"
        return "direct-egress"
    if "sg-egress" in codes and "sg-ingress" not in codes:
        return f"{v.path}-egress"
    return f"{v.path}-sg"


def _explain_direct_antispoof(pool: Pool, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    names = sorted({v.src for v in vs} | {v.dst for v in vs}, key=lambda n: [x.name for x in facts.nodes].index(n))
    subs = _subnets_summary(facts, names)
    sub_text = _join(f"{s} ({_join(ns)})" for s, ns in subs.items())
    one_subnet = len(subs) == 1
    example = vs[0]
    a, b = facts.node(example.src), facts.node(example.dst)
    pa = a.port
    pairs = ", ".join(pa.allowed_address_pairs) if pa and pa.allowed_address_pairs else "none"
    cross = "CrossSubnet" in (pool.ipip_mode, pool.vxlan_mode)
    enc = "IP-in-IP" if pool.ipip_mode == "CrossSubnet" else "VXLAN"
    if cross:
        title = (f"Pod traffic between nodes on one subnet leaves unencapsulated and OpenStack drops it "
                 f"(pool {pool.name} is {enc} CrossSubnet)")
        why_mode = (f"The Calico IP pool {pool.name} ({pool.cidr}) has {pool.modes}. CrossSubnet encapsulates "
                    f"({enc}) only when the destination node is on a different subnet; towards a node on the "
                    f"same subnet Calico routes the packet directly, unencapsulated, with the pod's own address "
                    f"as its source. ")
        if one_subnet:
            why_mode += f"All {_plural(len(names), 'node')} are on {next(iter(subs))}, so every cross-node pod packet leaves the VM that way"
        else:
            why_mode += f"The nodes are on {sub_text}, so the packets between nodes of the same subnet leave that way"
    else:
        title = f"Pod traffic leaves the nodes unencapsulated and OpenStack drops it (pool {pool.name} has no encapsulation)"
        why_mode = (f"The Calico IP pool {pool.name} ({pool.cidr}) has {pool.modes}: no encapsulation, so every "
                    f"cross-node pod packet leaves the VM with the pod's own address as its source")
    src_ip = "a pod address from " + pool.cidr
    text = (
        f"Pods on different nodes cannot reach each other: {_pairs_text([v.pair for v in vs], len(facts.nodes))} are affected.\n\n"
        f"{why_mode} (for example from {a.name} to {b.name}: source {src_ip}, not {a.name}'s address {a.ip}).\n\n"
        f"OpenStack Neutron's port security (anti-spoofing) only lets a packet leave a VM's port when its source "
        f"is the port's own fixed IP or one of its allowed-address-pairs. Port {pa.label if pa else '?'} of {a.name} "
        f"has fixed IP {', '.join(pa.fixed_ips) if pa else '?'} and allowed-address-pairs: {pairs}. So the packet is "
        f"dropped on the hypervisor (iptables: the port's source chain ends in \"Drop traffic without an IP/MAC allow "
        f"rule\"; OVN: ls_in_port_sec_ip) before it ever reaches {b.name}. Pods on the same node still talk, "
        f"because their traffic never crosses a Neutron port.\n\n"
        f"Switching Calico to direct routing (no encapsulation) would fail for the same reason.{_ipip_note(facts)} The fix is either to "
        f"encapsulate every cross-node packet, so the outer source is the node's own address (IPIP Always with IP "
        f"protocol 4 allowed between the nodes, or VXLAN Always with UDP 4789), or to let the ports send pod "
        f"addresses (the pod CIDR as an allowed-address-pair on every node port)."
    )
    return title, text


def _ipip_note(facts: DoctorFacts) -> str:
    """The incident's second part: would IPIP pass the security groups today?"""
    home = _node_group(facts)
    if home is None or len(facts.nodes) < 2:
        return ""
    a, b = facts.nodes[0], facts.nodes[1]
    if a.port is None or b.port is None:
        return ""
    if _allowing_rule(facts, b.port, "ingress", IPIP_PROTO, None, a.port, a.ip) is None:
        g = facts.groups.get(home)
        return (f" And switching to IPIP Always alone is not enough either: security group "
                f"{g.label if g else home} has no rule that lets IP protocol 4 in from the other nodes, so the "
                f"encapsulated packets would be dropped on the way in.")
    return ""


def _explain_sg(kind: str, pool: Pool, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    v = vs[0]
    a, b = facts.node(v.src), facts.node(v.dst)
    block = _first_port_block(vs, "sg-ingress") or _first_port_block(vs, "sg-egress")
    gids = b.port.security_groups if b.port else []
    gnames = _join(facts.groups[g].label if g in facts.groups else g for g in gids) or "(none)"
    if kind == "ipip":
        proto, rule_cmd = "IP protocol 4", "--protocol 4"
        mode = (f"pool {pool.name} ({pool.cidr}) has ipipMode {pool.ipip_mode}, so pod traffic from {a.name} to "
                f"{b.name} is wrapped in IP-in-IP: an outer packet of IP protocol 4 from {a.ip} to {b.ip}")
        title = f"IP-in-IP (protocol 4) between the nodes is not allowed by security group {gnames}"
    else:
        proto, rule_cmd = "UDP 4789", "--protocol udp --dst-port 4789"
        mode = (f"pool {pool.name} ({pool.cidr}) has vxlanMode {pool.vxlan_mode}, so pod traffic from {a.name} to "
                f"{b.name} is wrapped in VXLAN: an outer UDP packet to port 4789 from {a.ip} to {b.ip}")
        title = f"VXLAN (UDP 4789) between the nodes is not allowed by security group {gnames}"
    sg = gids[0] if gids else "SG"
    sgname = facts.groups[sg].label if sg in facts.groups else sg
    egress = block is not None and block.code == "sg-egress"
    text = (
        f"Pods on different nodes cannot reach each other: {_pairs_text([x.pair for x in vs], len(facts.nodes))} are affected.\n\n"
        f"The {mode}. The outer source is {a.name}'s own address, so Neutron's anti-spoofing lets it out, but "
        + (f"the security groups of {a.name}'s port have no egress rule for {proto}: {block.detail if block else ''}.\n\n"
           if egress else
           f"the security groups on {b.name}'s port ({gnames}) have no ingress rule that allows {proto} from the "
           f"other nodes, so Neutron drops it on the way in.\n\n")
        + f"The fix: allow {proto} from the nodes' own group, e.g. "
          f"`openstack security group rule create {rule_cmd} --remote-group {sgname} {sgname}`"
        + (" (use the protocol number 4: some clouds translate the name 'ipip' to protocol 94)." if kind == "ipip" else ".")
    )
    return title, text


def _explain_direct_sg(pool: Pool, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    v = vs[0]
    b = facts.node(v.dst)
    gids = b.port.security_groups if b.port else []
    gnames = _join(facts.groups[g].label if g in facts.groups else g for g in gids) or "(none)"
    title = f"Security group {gnames} does not let pod addresses in (direct pod traffic in pool {pool.name})"
    text = (
        f"Pod traffic in pool {pool.name} ({pool.cidr}, {pool.modes}) travels unencapsulated for "
        f"{_pairs_text([x.pair for x in vs], len(facts.nodes))}. The ports allow the pod addresses (no anti-spoofing "
        f"drop), but the ingress rules of {gnames} do not cover sources in {pool.cidr} for every protocol, so "
        f"Neutron drops the packets on the way into the destination node. Allow the pod CIDR in: "
        f"`openstack security group rule create --remote-ip {pool.cidr} {facts.groups[gids[0]].label if gids and gids[0] in facts.groups else 'SG'}`."
    )
    return title, text


def _explain_unroutable(pool: Pool, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    names = sorted({v.src for v in vs} | {v.dst for v in vs})
    subs = _subnets_summary(facts, names)
    title = f"Pod traffic between subnets is not encapsulated in pool {pool.name}, and the router cannot route it"
    text = (
        f"The nodes are on {_join(f'{s} ({_join(ns)})' for s, ns in subs.items())}. Pool {pool.name} ({pool.cidr}) has "
        f"{pool.modes}, so pod packets to a node on another subnet are sent unencapsulated to the subnet's "
        f"router, which knows nothing of the pod CIDR (and anti-spoofing drops them anyway unless the ports allow "
        f"the pod addresses). Affected: {_pairs_text([v.pair for v in vs], len(facts.nodes))}. Encapsulate at least "
        f"across subnets (ipipMode or vxlanMode CrossSubnet or Always)."
    )
    return title, text


def diagnose(facts: DoctorFacts, with_options: bool = True) -> Diagnosis:
    """Reason over the facts: per-pair verdicts, findings, and (optionally) the ranked fix options."""
    verdicts = pair_verdicts(facts)
    bird = bird_runs(facts)
    bgp = bgp_verdicts(facts) if bird else []
    findings: list[Finding] = []
    unchecked = list(facts.unchecked)
    n_nodes = len(facts.nodes)

    # -- pod traffic, grouped by pool and cause
    groups: dict[tuple[str, str], list[PathVerdict]] = {}
    for v in verdicts:
        if v.ok is False:
            groups.setdefault((v.pool, _classify(v)), []).append(v)
    pools = {p.name: p for p in facts.pools}
    for (pool_name, code), vs in groups.items():
        pool = pools[pool_name]
        if code == "direct-antispoofing":
            cross = "CrossSubnet" in (pool.ipip_mode, pool.vxlan_mode)
            fid = "crosssubnet-antispoofing" if cross else "direct-antispoofing"
            title, text = _explain_direct_antispoof(pool, facts, vs)
        elif code in ("ipip-sg", "ipip-egress"):
            fid, (title, text) = "ipip-blocked", _explain_sg("ipip", pool, facts, vs)
        elif code in ("vxlan-sg", "vxlan-egress"):
            fid, (title, text) = "vxlan-blocked", _explain_sg("vxlan", pool, facts, vs)
        elif code == "direct-unroutable":
            fid, (title, text) = "direct-unroutable", _explain_unroutable(pool, facts, vs)
        else:
            fid, (title, text) = "direct-sg-blocked", _explain_direct_sg(pool, facts, vs)
        if len([p for p in active_pools(facts)]) > 1:
            fid = f"{fid}:{pool.name}"
        names = list(dict.fromkeys([v.src for v in vs] + [v.dst for v in vs]))
        ev = [_pool_evidence(pool, facts)]
        ev += _node_evidence(facts, names)
        ev += _group_evidence(facts, [g for n in names for g in (facts.node(n).port.security_groups if facts.node(n).port else [])])
        for blk in dict.fromkeys(b.detail for v in vs[:2] for b in v.blocks):
            ev.append(Evidence("reasoning", blk))
        ev += _probe_evidence(vs)
        ev += _capture_evidence(facts)
        findings.append(Finding(fid, ERROR, title, text, [v.pair for v in vs], ev, pool=pool.name, nodes=names))

    # -- BGP (bird) between nodes
    if bird:
        bad = [v for v in bgp if v.ok is False]
        depends = any(v.path in ("ipip", "direct") for v in verdicts)
        if bad:
            gids = [g for v in bad for n in (v.src, v.dst) for g in (facts.node(n).port.security_groups if facts.node(n).port else [])]
            gnames = _join(dict.fromkeys(facts.groups[g].label if g in facts.groups else g for g in gids))
            sev = ERROR if depends else WARNING
            text = (
                f"Calico runs BGP (bird) between the nodes to tell each node where the other nodes' pod addresses "
                f"are. BGP is a TCP connection to port 179 between the node addresses, and the security groups "
                f"({gnames}) allow it in neither direction for {_plural(len(bad), 'node pair')}. "
                + ("Without those sessions the nodes learn no routes to each other's pods (IPIP and direct routing "
                   "both depend on them), and calico-node reports itself not ready (bird is not ready). "
                   if depends else
                   "VXLAN does not need BGP routes, but calico-node's readiness check includes bird, so calico-node "
                   "stays not ready. ")
                + "Allow TCP 179 from the nodes' own group.")
            ev = _group_evidence(facts, gids)
            for v in bad:
                for n in (v.src, v.dst):
                    node = facts.node(n)
                    if node.bgp_peers is not None:
                        down = [p for p in node.bgp_peers if not p.up]
                        if down:
                            ev.append(Evidence("bird", f"{n}: BGP peers not established: "
                                                       + ", ".join(f"{p.address} {p.state} {p.info}".strip() for p in down)))
            findings.append(Finding("bgp-blocked", sev, "BGP (TCP 179) between the nodes is not allowed",
                                    text, [f"{v.src}<->{v.dst}" for v in bad], _dedupe(ev),
                                    nodes=list(dict.fromkeys(n for v in bad for n in (v.src, v.dst)))))
        # observed BGP state, when it disagrees with the security groups
        down_nodes = {n.name: [p for p in (n.bgp_peers or []) if not p.up] for n in facts.nodes}
        down_nodes = {k: v for k, v in down_nodes.items() if v}
        if down_nodes and not bad:
            ev = [Evidence("bird", f"{n}: " + ", ".join(f"{p.address} {p.state} {p.info}".strip() for p in ps))
                  for n, ps in down_nodes.items()]
            findings.append(Finding(
                "bgp-down", WARNING, "Some BGP sessions between the nodes are not established",
                "The security groups allow TCP 179 between the nodes, yet bird reports sessions that are not "
                "Established. Look at calico-node's logs on these nodes (`kubectl logs -n <calico ns> <calico-node "
                "pod> -c calico-node`); a wrong node address (IP autodetection picking another interface) is a "
                "common cause.", [], ev, nodes=list(down_nodes)))
    if facts.calico.backend in ("vxlan", "none") or facts.calico.bgp is False:
        ipip_pools = [p for p in active_pools(facts) if p.ipip_mode in ("Always", "CrossSubnet")]
        if ipip_pools:
            findings.append(Finding(
                "ipip-without-bgp", ERROR, "IPIP is on but BGP (bird) is off",
                f"Pool {_join(p.name for p in ipip_pools)} uses IP-in-IP, which relies on BGP to distribute the "
                f"routes, but Calico's backend is {facts.calico.backend or 'without BGP'}. Use VXLAN instead "
                f"(vxlanMode Always), or enable BGP.",
                [], [_pool_evidence(p, facts) for p in ipip_pools]))

    # -- suspicious 'ipip' rules
    named = [(g, r) for g in facts.groups.values() for r in g.rules
             if r.direction == "ingress" and str(r.protocol or "").lower() == "ipip"]
    uses_ipip = any(v.path == "ipip" for v in verdicts)
    if named:
        findings.append(Finding(
            "ipip-rule-by-name", WARNING if uses_ipip else INFO,
            "A security-group rule says protocol 'ipip' instead of 4",
            "Neutron accepts the name 'ipip' and stores it, but older clouds with the iptables firewall driver "
            "render it with the Linux name table, where 'ipip' is protocol 94, not 4 (4 is 'ipencap'). Calico's "
            "IP-in-IP is protocol 4, so those clouds drop it although the rule looks right (CAPO #1489, "
            "magnum-cluster-api #72). Add the same rule with `--protocol 4`.",
            [], [Evidence("neutron", f"security group {g.label}: rule {r.id or '?'}: {r.describe(facts.groups)}") for g, r in named]))

    # -- ipip module
    if uses_ipip:
        missing = [n for n in facts.nodes if n.ipip_module is False]
        if missing:
            # a Ready calico-node in IPIP mode has a working tunl0, whatever /proc/modules says
            # (built-in ipip, or a container view of the modules): then it is only a note
            sev = WARNING if any(n.calico_ready is not True for n in missing) else INFO
            findings.append(Finding(
                "ipip-module", sev, "The ipip kernel module is not loaded on some nodes",
                f"IP-in-IP needs the kernel's ipip module (the tunl0 device). It is not loaded on "
                f"{_join(n.name for n in missing)}. calico-node normally loads it when it starts; if it is still "
                f"missing, run `sudo modprobe ipip` and make it permanent in /etc/modules-load.d/.",
                [], [Evidence(f"ssh:{n.name}", f"{n.name}: ipip not in /proc/modules") for n in missing],
                nodes=[n.name for n in missing]))

    # -- calico-node health
    sick = [n for n in facts.nodes if n.calico_ready is False]
    if sick:
        findings.append(Finding(
            "calico-node-not-ready", ERROR if len(sick) == n_nodes else WARNING,
            f"calico-node is not ready on {_join(n.name for n in sick)}",
            "calico-node programs the routes and tunnels on its node; while it is not ready, pods on that node "
            "may not reach other nodes. Other findings here (BGP blocked, a wrong mode) often explain it; "
            "otherwise read its log.",
            [], [Evidence("kube", f"{n.name}: calico-node pod {n.calico_pod or '?'} not ready"
                                  + (f", {n.calico_restarts} restarts" if n.calico_restarts else "")) for n in sick],
            nodes=[n.name for n in sick]))
    not_ready = [n for n in facts.nodes if n.k8s_ready is False]
    if not_ready:
        findings.append(Finding(
            "node-not-ready", WARNING, f"Kubernetes node {_join(n.name for n in not_ready)} is NotReady",
            "A NotReady node runs no new pods; the doctor's path reasoning still applies to it.",
            [], [Evidence("kube", f"{n.name}: Ready=False") for n in not_ready], nodes=[n.name for n in not_ready]))

    # -- subnet disagreement between the node and Neutron
    for n in facts.nodes:
        sub, where = node_subnet(n)
        if n.port and n.port.subnet_cidr and sub and _net(sub) != _net(n.port.subnet_cidr):
            findings.append(Finding(
                f"subnet-mismatch:{n.name}", INFO, f"{n.name}: the node and Neutron disagree on its subnet",
                f"{where} says {sub}, Neutron says {n.port.subnet_cidr}. Calico decides CrossSubnet from the node's "
                f"own view ({sub}).", [], _node_evidence(facts, [n.name]), nodes=[n.name]))

    # -- nodes that are not servers of this cloud
    portless = [n.name for n in facts.nodes if n.port is None]
    if portless and facts.sources.get("cloud"):
        unchecked.append(Unchecked("cloud:ports", f"the cloud side of {_join(portless)}",
                                   "no Neutron port with that node's address in this cloud",
                                   "if these machines are elsewhere, their network's filtering was not checked"))

    # -- live proof: compare with the reasoning
    if facts.matrix is not None:
        by_pair: dict[str, list[PathVerdict]] = {}
        for v in verdicts:
            by_pair.setdefault(v.pair, []).append(v)
        order = {n.name: i for i, n in enumerate(facts.nodes)}
        matrix = sorted(facts.matrix, key=lambda p: (order.get(p.src, 99), order.get(p.dst, 99)))
        facts.matrix[:] = matrix
        unexplained = [p for p in matrix if not p.ok and all(v.ok is not False for v in by_pair.get(f"{p.src}->{p.dst}", []))]
        contradicted = [p for p in matrix if p.ok and any(v.ok is False for v in by_pair.get(f"{p.src}->{p.dst}", []))]
        if unexplained:
            unknown = [v for p in unexplained for v in by_pair.get(f"{p.src}->{p.dst}", []) if v.ok is None]
            if unknown:
                paths = sorted({v.path or "an unknown path" for v in unknown})
                direct = "direct" in paths
                title = "Pods cannot reach each other across nodes (the cloud side was not checked)"
                text = (f"The probe pods could not ping each other on {_plural(len(unexplained), 'node pair')}. "
                        f"Under the live pool mode these packets take the {_join(paths)} path. "
                        + ("Direct pod traffic carries pod source addresses, which OpenStack's anti-spoofing drops "
                           "unless every node port has the pod CIDR as an allowed-address-pair: the incident's cause. "
                           if direct else
                           "Encapsulated traffic needs the security groups to allow it between the nodes (IP protocol 4 "
                           "for IPIP, UDP 4789 for VXLAN). ")
                        + "The doctor could not read the cloud's ports and security groups to confirm it: run it with "
                          "--cloud NAME (clouds.yaml) for the full diagnosis and the fix.")
            else:
                title = "Pods cannot reach each other on some node pairs, for a reason not found in the configuration"
                text = ("The probe pods could not ping each other, although the pool mode, the ports and the security "
                        "groups should let the packets through. Look at the capture, calico-node's logs, and host "
                        "firewalls on the nodes.")
            findings.append(Finding(
                "probe-failed", ERROR, title, text,
                [f"{p.src}->{p.dst}" for p in unexplained],
                [Evidence("probe", f"{p.src} ({p.src_ip}) -> {p.dst} ({p.dst_ip}): {p.detail or 'no reply'}") for p in unexplained]
                + _capture_evidence(facts)))
        if contradicted:
            findings.append(Finding(
                "probe-contradicts", INFO, "Some pairs answered although the configuration says they should not",
                "The cloud may not enforce port security the way Neutron's API describes (e.g. a driver without "
                "anti-spoofing), or the facts are stale. Re-run the doctor.",
                [f"{p.src}->{p.dst}" for p in contradicted],
                [Evidence("probe", f"{p.src} -> {p.dst}: {p.detail or 'replies'}") for p in contradicted]))

    if not facts.nodes:
        unchecked.append(Unchecked("nodes", "anything", "the lab has no nodes", "add nodes to the plan or pass --nodes / --inventory"))
    elif facts.sources.get("kube") and not active_pools(facts):
        findings.append(Finding("no-pool", ERROR, "No enabled IPv4 Calico IP pool",
                                "The cluster has no enabled IPv4 IPPool, so pods get no addresses from Calico. "
                                "Is Calico installed?", [], [Evidence("kube", f"pools: {[p.name for p in facts.pools] or 'none'}")]))

    findings.sort(key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.id))
    diag = Diagnosis(facts, verdicts, bgp, findings, [], _dedupe_unchecked(unchecked))
    if with_options:
        diag.options = fix_options(diag)
        _link_fixes(diag)
    return diag


def _dedupe(ev: list[Evidence]) -> list[Evidence]:
    seen, out = set(), []
    for e in ev:
        if (e.source, e.text) not in seen:
            seen.add((e.source, e.text))
            out.append(e)
    return out


def _dedupe_unchecked(items: list[Unchecked]) -> list[Unchecked]:
    seen, out = set(), []
    for u in items:
        if (u.source, u.what) not in seen:
            seen.add((u.source, u.what))
            out.append(u)
    return out


# --------------------------------------------------------------------------- fixes

OPTION_TEXT = {
    1: ("ipip", "IPIP Always + IP protocol 4 between the nodes",
        "Switch the pool to ipipMode Always and allow IP protocol 4 from the nodes' own security group.",
        "Every cross-node pod packet is wrapped in an IP-in-IP packet whose source is the node's own address, "
        "which Neutron's anti-spoofing accepts; the only thing the security group must let through is protocol 4 "
        "between the nodes. This is the fix the incident's author applied, and labtui's default on OpenStack.",
        "20 bytes of overhead per packet (MTU 1480 inside). Needs BGP (bird). Switching the mode can reset "
        "connections that are open at that moment."),
    2: ("vxlan", "VXLAN Always + UDP 4789 between the nodes",
        "Switch the pool to vxlanMode Always and allow UDP 4789 from the nodes' own security group.",
        "Every cross-node pod packet is wrapped in a UDP packet between the node addresses, so anti-spoofing only "
        "sees node addresses. Works where IP protocol 4 is blocked or BGP is off.",
        "50 bytes of overhead per packet (MTU 1450 inside). Switching the mode can reset open connections. Some "
        "NICs need checksum offload off for UDP inside VXLAN (Calico #11197)."),
    3: ("pairs", "The pod CIDR as an allowed-address-pair on every node port",
        "Add the pod CIDR to every node port's allowed-address-pairs (merged with the pairs already there) and let "
        "the pod CIDR into the group; no encapsulation between nodes of one subnet.",
        "Neutron then accepts pod source addresses on the node ports, so unencapsulated pod traffic gets through, "
        "with the best throughput and no tunnel overhead. Kubespray and the old Magnum driver do this.",
        "Every node port must be changed (and every new node later); the quota is usually 10 pairs per port. "
        "A wide pair in a shared group can let the port bypass remote-group rules for other ports."),
    4: ("port-security-off", "Port security off on every node port (discouraged)",
        "Disable port security on every node port; this also removes the ports' security groups and pairs.",
        "With port security off Neutron neither checks source addresses nor filters anything on these ports, "
        "so every path works.",
        "The nodes lose all cloud firewalling: SSH, the API server, kubelet and every NodePort are open to "
        "whatever can reach the network. Use only on an isolated lab network."),
}


def _ref_group(facts: DoctorFacts, gid: str) -> str:
    g = facts.groups.get(gid)
    if g is None:
        return gid
    same_name = [x for x in facts.groups.values() if x.name == g.name]
    return g.name if g.name and len(same_name) == 1 else g.id


def _node_group(facts: DoctorFacts) -> str | None:
    """A group every node port is in (the natural home for node-to-node rules)."""
    ports = [n.port for n in facts.nodes if n.port and n.port.port_security]
    if not ports:
        return None
    common = set(ports[0].security_groups)
    for p in ports[1:]:
        common &= set(p.security_groups)
    for gid in ports[0].security_groups:  # keep the port's order
        if gid in common:
            return gid
    return None


def _rule_action(facts: DoctorFacts, gid: str, proto: str | None, port: int | None,
                 remote_group: str | None, remote_ip: str | None, why: str) -> FixAction:
    gref = _ref_group(facts, gid)
    parts = ["openstack", "security", "group", "rule", "create", "--ingress", "--ethertype", "IPv4"]
    label = {None: "any protocol", "4": "IP protocol 4 (IPIP)", "udp": "UDP", "tcp": "TCP"}.get(proto, str(proto))
    if proto is not None:
        parts += ["--protocol", proto]
    else:
        parts += ["--protocol", "any"]
    if port is not None:
        parts += ["--dst-port", str(port)]
        label += f" {port}"
    if remote_group:
        parts += ["--remote-group", _ref_group(facts, remote_group)]
        src = f"members of {_ref_group(facts, remote_group)}"
    else:
        parts += ["--remote-ip", remote_ip or "0.0.0.0/0"]
        src = remote_ip or "anywhere"
    parts += ["--description", why, gref]
    params = {"security_group_id": gid, "group_name": gref, "direction": "ingress", "ethertype": "IPv4", "protocol": proto,
              "port_range_min": port, "port_range_max": port, "remote_group_id": remote_group,
              "remote_ip_prefix": None if remote_group else remote_ip, "description": why}
    key = f"{gid}:{proto}:{port}:{remote_group or remote_ip}"
    return FixAction(
        id=f"sg-rule:{key}", kind="sg-rule", layer="openstack", target=f"security group {gref}",
        title=f"allow {label} from {src} into {gref}", command=shlex.join(parts),
        revert="openstack security group rule delete <id of the new rule>", params=params, order=0)


def _pairs_action(port: Port, node: str, cidr: str) -> FixAction:
    cmd = shlex.join(["openstack", "port", "set", "--allowed-address", f"ip-address={cidr}", port.ref])
    rev = shlex.join(["openstack", "port", "unset", "--allowed-address", f"ip-address={cidr}", port.ref])
    return FixAction(
        id=f"port-pairs:{port.id}:{cidr}", kind="port-pairs", layer="openstack", target=f"port {port.label} ({node})",
        title=f"add {cidr} to the allowed-address-pairs of {node}'s port {port.label} (merged with "
              f"{len(port.allowed_address_pairs)} existing)",
        command=cmd, revert=rev, params={"port_id": port.id, "node": node, "cidr": cidr,
                                         "existing": list(port.allowed_address_pairs)}, order=1)


def _portsec_action(facts: DoctorFacts, port: Port, node: str) -> FixAction:
    cmd = shlex.join(["openstack", "port", "set", "--no-security-group", "--no-allowed-address",
                      "--disable-port-security", port.ref])
    rev = ["openstack", "port", "set", "--enable-port-security"]
    for g in port.security_groups:
        rev += ["--security-group", _ref_group(facts, g)]
    for p in port.allowed_address_pairs:
        rev += ["--allowed-address", f"ip-address={p}"]
    rev.append(port.ref)
    return FixAction(
        id=f"port-security-off:{port.id}", kind="port-security-off", layer="openstack",
        target=f"port {port.label} ({node})",
        title=f"turn port security off on {node}'s port {port.label} (removes its groups "
              f"{', '.join(_ref_group(facts, g) for g in port.security_groups) or 'none'})",
        command=cmd, revert=shlex.join(rev),
        params={"port_id": port.id, "node": node, "security_groups": list(port.security_groups),
                "allowed_address_pairs": list(port.allowed_address_pairs)}, order=1, risk="destructive")


ENCAP_BY_MODES = {("Always", "Never"): "IPIP", ("CrossSubnet", "Never"): "IPIPCrossSubnet",
                  ("Never", "Always"): "VXLAN", ("Never", "CrossSubnet"): "VXLANCrossSubnet",
                  ("Never", "Never"): "None"}


def _pool_action(facts: DoctorFacts, pool: Pool, ipip: str, vxlan: str) -> FixAction:
    enc = ENCAP_BY_MODES[(ipip, vxlan)]
    old_enc = ENCAP_BY_MODES.get((pool.ipip_mode.replace("Off", "Never"), pool.vxlan_mode), "None")
    if pool.managed_by_operator or facts.calico.install_mode == "operator":
        idx = pool.installation_index if pool.installation_index is not None else 0
        path = f"/spec/calicoNetwork/ipPools/{idx}/encapsulation"

        def patch(value: str) -> str:
            body = json.dumps([{"op": "replace", "path": path, "value": value}], separators=(",", ":"))
            return shlex.join(["kubectl", "patch", "installation", "default", "--type=json", "-p", body])

        return FixAction(
            id=f"installation:{pool.name}", kind="installation-encapsulation", layer="calico",
            target=f"Installation default (pool {pool.name})",
            title=f"set encapsulation {enc} for pool {pool.name} in the operator's Installation (the operator then "
                  f"sets {pool.name} to ipipMode {ipip}, vxlanMode {vxlan})",
            command=patch(enc), revert=patch(old_enc),
            params={"pool": pool.name, "index": idx, "encapsulation": enc, "previous": old_enc,
                    "ipipMode": ipip, "vxlanMode": vxlan}, order=2)
    body = json.dumps({"spec": {"ipipMode": ipip, "vxlanMode": vxlan}}, separators=(",", ":"))
    old = json.dumps({"spec": {"ipipMode": pool.ipip_mode, "vxlanMode": pool.vxlan_mode}}, separators=(",", ":"))
    if facts.calico.api == "v3":
        cmd = shlex.join(["kubectl", "patch", "ippools.projectcalico.org", pool.name, "--type=merge", "-p", body])
        rev = shlex.join(["kubectl", "patch", "ippools.projectcalico.org", pool.name, "--type=merge", "-p", old])
    else:
        cmd = shlex.join(["calicoctl", "patch", "ippool", pool.name, "-p", body])
        rev = shlex.join(["calicoctl", "patch", "ippool", pool.name, "-p", old])
    return FixAction(
        id=f"pool-mode:{pool.name}", kind="pool-mode", layer="calico", target=f"IPPool {pool.name}",
        title=f"set pool {pool.name} to ipipMode {ipip}, vxlanMode {vxlan} (one patch; was {pool.modes})",
        command=cmd, revert=rev,
        params={"pool": pool.name, "ipipMode": ipip, "vxlanMode": vxlan,
                "previous": {"ipipMode": pool.ipip_mode, "vxlanMode": pool.vxlan_mode}}, order=2)


def _all_one_subnet(facts: DoctorFacts) -> bool:
    return all(same_subnet(a, b) is not False for a in facts.nodes for b in facts.nodes if a is not b)


def _target_modes(facts: DoctorFacts, number: int) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    one = _all_one_subnet(facts)
    for p in active_pools(facts):
        cur = (p.ipip_mode.replace("Off", "Never"), p.vxlan_mode)
        if number == 1:
            out[p.name] = ("Always", "Never")
        elif number == 2:
            out[p.name] = ("Never", "Always")
        elif number == 3:
            if one:  # one subnet: CrossSubnet already sends everything direct; keep it (no disruption)
                out[p.name] = cur if "CrossSubnet" in cur else ("Never", "Never")
            else:  # several subnets: direct inside a subnet, encapsulated across
                out[p.name] = cur if "CrossSubnet" in cur else (("Never", "CrossSubnet") if cur[1] != "Never" else ("CrossSubnet", "Never"))
        else:
            if not one and cur == ("Never", "Never"):
                out[p.name] = ("CrossSubnet", "Never")
            else:
                out[p.name] = cur
    return out


def _with_modes(facts: DoctorFacts, modes: dict[str, tuple[str, str]]) -> DoctorFacts:
    f = facts.copy()
    for p in f.pools:
        if p.name in modes:
            p.ipip_mode, p.vxlan_mode = modes[p.name]
    return f


def _network_actions(facts: DoctorFacts, number: int) -> list[FixAction]:
    """The OpenStack changes that make every pair's path pass, for facts already in the target mode."""
    actions: dict[str, FixAction] = {}
    home = _node_group(facts)
    bird = bird_runs(facts)

    def add_rule(b: Node, a: Node, proto: str | None, port: int | None, remote_ip: str | None, why: str) -> None:
        pb, pa = b.port, a.port
        if pb is None or not pb.port_security:
            return
        gid = home if home in pb.security_groups else (pb.security_groups[0] if pb.security_groups else None)
        if gid is None:
            return
        if remote_ip is None and pa is not None and pa.port_security and pa.security_groups:
            src_gid = home if home in pa.security_groups else pa.security_groups[0]
            act = _rule_action(facts, gid, proto, port, src_gid, None, why)
        else:
            act = _rule_action(facts, gid, proto, port, None, remote_ip or (f"{a.ip}/32" if a.ip else None), why)
        actions.setdefault(act.id, act)

    if number == 4:
        for n in facts.nodes:
            if n.port and n.port.port_security:
                a = _portsec_action(facts, n.port, n.name)
                actions[a.id] = a
        return sorted(actions.values(), key=lambda x: x.order)

    for v in pair_verdicts(facts):
        if v.ok is not False:
            continue
        a, b = facts.node(v.src), facts.node(v.dst)
        pool = next(p for p in facts.pools if p.name == v.pool)
        codes = {blk.code for blk in v.blocks}
        if v.path == "ipip" and codes & {"sg-ingress"}:
            add_rule(b, a, "4", None, None, "Calico IPIP between the nodes (labtui doctor)")
        elif v.path == "vxlan" and codes & {"sg-ingress"}:
            add_rule(b, a, "udp", VXLAN_PORT, None, "Calico VXLAN between the nodes (labtui doctor)")
        elif v.path == "direct":
            for node, code in ((a, "antispoof-src"), (b, "antispoof-dst")):
                if code in codes and node.port is not None:
                    act = _pairs_action(node.port, node.name, pool.cidr)
                    actions.setdefault(act.id, act)
            if "sg-ingress" in codes:
                add_rule(b, a, None, None, pool.cidr, "Calico pod traffic between the nodes (labtui doctor)")
    if bird:
        for v in bgp_verdicts(facts):
            if v.ok is False:
                add_rule(facts.node(v.dst), facts.node(v.src), "tcp", BGP_PORT, None, "Calico BGP between the nodes (labtui doctor)")
    if number == 3:  # every node port gets the pairs, also the ones that do not need them today
        for n in facts.nodes:
            for pool in active_pools(facts):
                if n.port and n.port.port_security and not _antispoof_ok(n.port, pool.cidr) and any(
                        pool_path(pool, n, o) == "direct" for o in facts.nodes if o is not n):
                    act = _pairs_action(n.port, n.name, pool.cidr)
                    actions.setdefault(act.id, act)
    return sorted(actions.values(), key=lambda x: (x.order, x.id))


def simulate(facts: DoctorFacts, actions: Iterable[FixAction]) -> DoctorFacts:
    """The facts as they would be after the actions (used to check a plan before offering it)."""
    f = facts.copy()
    ports = {n.port.id: n.port for n in f.nodes if n.port}
    for act in actions:
        p = act.params
        if act.kind == "sg-rule":
            g = f.groups.setdefault(p["security_group_id"], Group(p["security_group_id"], p["security_group_id"]))
            g.rules.append(Rule(id="(new)", direction="ingress", ethertype="IPv4", protocol=p["protocol"],
                                port_min=p["port_range_min"], port_max=p["port_range_max"],
                                remote_group_id=p["remote_group_id"], remote_ip_prefix=p["remote_ip_prefix"]))
        elif act.kind == "port-pairs":
            port = ports.get(p["port_id"])
            if port and p["cidr"] not in port.allowed_address_pairs:
                port.allowed_address_pairs.append(p["cidr"])
        elif act.kind == "port-security-off":
            port = ports.get(p["port_id"])
            if port:
                port.port_security, port.security_groups, port.allowed_address_pairs = False, [], []
        elif act.kind in ("pool-mode", "installation-encapsulation"):
            for pool in f.pools:
                if pool.name == p["pool"]:
                    pool.ipip_mode, pool.vxlan_mode = p["ipipMode"], p["vxlanMode"]
    return f


def fix_options(diag: Diagnosis) -> list[FixOption]:
    facts = diag.facts
    traffic = [f for f in diag.findings if f.severity == ERROR and (
        f.id.split(":")[0] in ("crosssubnet-antispoofing", "direct-antispoofing", "ipip-blocked", "vxlan-blocked",
                               "direct-unroutable", "direct-sg-blocked", "bgp-blocked", "ipip-without-bgp"))]
    if not traffic or not active_pools(facts):
        return []
    options: list[FixOption] = []
    bird = bird_runs(facts)
    for number in (1, 2, 3, 4):
        key, title, summary, why, trade = OPTION_TEXT[number]
        modes = _target_modes(facts, number)
        target = _with_modes(facts, modes)
        opt = FixOption(number, key, title, summary, why, trade, target_modes=modes,
                        discouraged=number == 4)
        if number == 1 and bird is False:
            opt.available = False
            opt.unavailable_reason = (f"IPIP needs Calico's BGP (bird) to distribute routes, and this cluster runs "
                                      f"backend {facts.calico.backend or 'without BGP'}")
        if number == 4 and not any(n.port and n.port.port_security for n in facts.nodes):
            opt.available = False
            opt.unavailable_reason = "port security is already off on every node port"
        net = _network_actions(target, number)
        calico = [_pool_action(facts, p, *modes[p.name]) for p in active_pools(facts)
                  if modes[p.name] != (p.ipip_mode.replace("Off", "Never"), p.vxlan_mode)]
        opt.actions = sorted(net + calico, key=lambda a: (a.order, a.id))
        after = diagnose(simulate(facts, opt.actions), with_options=False)
        left = [v for v in after.verdicts if v.ok is False]
        if opt.available:
            if not opt.actions:
                opt.available = False
                opt.unavailable_reason = "nothing to change for this option, yet the problem remains"
            elif left:
                opt.available = False
                opt.unavailable_reason = ("a simulation of this plan still leaves "
                                          f"{_plural(len(left), 'path')} blocked: {left[0].blocks[0].detail if left[0].blocks else left[0].pair}")
        n_paths = len(after.verdicts)
        opt.expected = (f"after this plan the doctor expects {n_paths - len(left)} of {n_paths} pod paths to pass"
                        + ("" if not [f for f in after.findings if f.severity == ERROR] else
                           f"; still open: {_join(f.title for f in after.findings if f.severity == ERROR)}"))
        options.append(opt)

    def score(o: FixOption) -> tuple:
        keeps_mode = all(o.target_modes[p.name] == (p.ipip_mode.replace("Off", "Never"), p.vxlan_mode)
                         for p in active_pools(facts))
        encap = o.number in (1, 2)
        return (not o.available, o.discouraged, not (keeps_mode and encap), o.number)

    for rank, o in enumerate(sorted(options, key=score), 1):
        o.rank = rank
    first = min((o for o in options if o.available and not o.discouraged), key=lambda o: o.rank, default=None)
    if first:
        first.recommended = True
    return sorted(options, key=lambda o: o.rank)


def _link_fixes(diag: Diagnosis) -> None:
    """Which options clear which finding (by simulating each option)."""
    for opt in diag.options:
        if not opt.available:
            continue
        after = diagnose(simulate(diag.facts, opt.actions), with_options=False)
        still = {f.id for f in after.findings}
        for f in diag.findings:
            if f.severity in (ERROR, WARNING) and f.id not in still:
                f.fixes.append(opt.number)
    for f in diag.findings:
        f.fixes.sort(key=lambda n: next(o.rank for o in diag.options if o.number == n))


def ordered_actions(option: FixOption) -> list[FixAction]:
    """The safe order: security groups, then ports, then the Calico switch (the network is open before
    any packet takes the new path)."""
    return sorted(option.actions, key=lambda a: (a.order, a.id))


# --------------------------------------------------------------------------- text rendering


def render_text(diag: Diagnosis, verbose: bool = False) -> str:
    f = diag.facts
    lines = [f"Doctor for {f.cluster or 'the lab'}: {diag.status}"
             + (f" ({_plural(len(diag.problems), 'finding')})" if diag.problems else "")]
    pools = active_pools(f)
    if pools:
        lines.append("  pools: " + "; ".join(f"{p.name} {p.cidr} {p.modes}" for p in pools))
    if f.nodes:
        lines.append("  nodes: " + ", ".join(f"{n.name} {n.ip or '?'} ({node_subnet(n)[0] or '?'})" for n in f.nodes))
    for u in diag.unchecked:
        lines.append(f"  ! {u.line()}")
    if diag.verdicts:
        ok = sum(1 for v in diag.verdicts if v.ok)
        lines.append(f"  pod paths: {ok} of {len(diag.verdicts)} pass")
    if f.matrix is not None:
        lines.append(render_matrix(f))
    for i, fd in enumerate(diag.findings, 1):
        lines.append("")
        lines.append(f"[{fd.severity.upper()}] {i}. {fd.title}")
        if fd.pairs:
            lines.append(f"  pairs: {', '.join(fd.pairs)}")
        lines.append("\n\n".join(_wrap(para, "  ") for para in fd.explanation.split("\n\n")))
        if fd.evidence:
            lines.append("  evidence:")
            for e in fd.evidence if verbose else fd.evidence[:12]:
                lines.append(f"    - [{e.source}] {e.text}")
        if fd.fixes:
            lines.append("  fixed by option " + ", ".join(str(n) for n in fd.fixes))
    if diag.options:
        lines.append("")
        lines.append("Fix options (best first; apply with: labtui doctor NAME --fix N --yes):")
        for o in diag.options:
            tag = " [recommended]" if o.recommended else ""
            lines.append(f"  {o.number}. {o.title}{tag}" + ("" if o.available else f"  (not possible: {o.unavailable_reason})"))
            lines.append(_wrap(o.why, "       "))
            lines.append(_wrap("cost: " + o.tradeoffs, "       "))
            for a in ordered_actions(o):
                lines.append(f"       $ {a.command}")
            if o.expected:
                lines.append(f"       {o.expected}")
    return "\n".join(lines)


def render_matrix(facts: DoctorFacts) -> str:
    names = [n.name for n in facts.nodes]
    res = {(p.src, p.dst): p for p in facts.matrix or []}
    width = max([len(n) for n in names] + [6])
    out = ["  connectivity (ping from the probe pod on ROW to the one on COLUMN):",
           "    " + " " * width + " " + " ".join(n.ljust(width) for n in names)]
    for a in names:
        cells = []
        for b in names:
            if a == b:
                cells.append("-".ljust(width))
            else:
                p = res.get((a, b))
                cells.append(("?" if p is None else ("ok" if p.ok else "FAIL")).ljust(width))
        out.append("    " + a.ljust(width) + " " + " ".join(cells))
    return "\n".join(out)


def _wrap(text: str, indent: str, width: int = 100) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                     for line in text.splitlines() if line.strip())
