"""What Calico and kubeadm need from the cloud network, and whether a cloud gives it. Pure: no I/O.

Three parts, each usable alone (the cloud wizard, `labtui cloud check`, the Security screen and
the doctor share them):

1. **Network facts** (`SGRule`, `SecurityGroup`, `NodePort`, `LabNode`, `LabNetwork`): the lab as
   the cloud shows it. `labtui.adapters.openstack.discover()` fills them from Neutron and Nova; tests and the
   doctor may build them by hand.
2. **Requirements** (`CalicoNetworking`, `derive_requirements`): from the encapsulation (IPIP or
   VXLAN, Always or CrossSubnet, or none), BGP on or off, Typha on or off and the node roles,
   every flow the cloud must let through, each with its reason in plain words
   (facts: domain.md sections 0, 2 and 4).
3. **Evaluation** (`evaluate` -> `Report`): each requirement is *satisfied* (and by which rule:
   an exact rule, an any-protocol rule, a prefix covering every node, port security off),
   *missing*, or *suspicious* (a rule with protocol `ipip`, a prefix that misses some nodes,
   egress rules removed), with the fixes (`RuleFix`, `PairsFix`, `PortSecurityFix`) that would
   satisfy it. Fixes carry the exact `openstack ...` command and the API request.

Calico *cluster* reading (pools, Installation, calico-node) lives in labtui.adapters.kube and
labtui.net.calico; this module only needs the encapsulation, BGP and Typha flags from them.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from labtui.model import Encapsulation

SATISFIED = "satisfied"
MISSING = "missing"
SUSPICIOUS = "suspicious"

ANY_IPV4 = "0.0.0.0/0"
AAP_QUOTA = 10  # Neutron's default max_allowed_address_pair

IPIP_NAME_WARNING = (
    "The rule says protocol 'ipip'. Neutron maps that name to IP protocol 4, but older clouds "
    "with the iptables firewall driver render it as `-p ipip`, and in /etc/protocols 'ipip' is "
    "protocol 94 (protocol 4 is 'ipencap'): Calico's IP-in-IP packets (protocol 4) are then "
    "dropped. Use a rule with protocol 4 instead (`--protocol 4`)."
)


UNUSED_CROSS_SUBNET = (
    "not used now: with CrossSubnet Calico never encapsulates between nodes of one subnet. If you "
    "switch to {enc} Always (the usual fix on OpenStack), a rule for {rule} from the nodes is needed."
)


# =========================================================================== 1. network facts


@dataclass(frozen=True)
class SGRule:
    """One Neutron security-group rule (protocol None means any protocol)."""

    id: str
    security_group_id: str
    direction: str = "ingress"
    ether_type: str = "IPv4"
    protocol: str | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_group_id: str | None = None
    remote_ip_prefix: str | None = None
    description: str = ""

    @property
    def ethertype(self) -> str:
        return self.ether_type

    @classmethod
    def from_api(cls, data: dict[str, Any], security_group_id: str | None = None) -> "SGRule":
        """From a Neutron rule body (dict) or an openstacksdk SecurityGroupRule."""
        get = data.get if isinstance(data, dict) else (lambda k, d=None: getattr(data, k, d))
        proto = get("protocol")
        return cls(
            id=str(get("id") or ""),
            security_group_id=str(get("security_group_id") or security_group_id or ""),
            direction=get("direction") or "ingress",
            ether_type=get("ethertype") or get("ether_type") or "IPv4",
            protocol=None if proto in (None, "", "any") else str(proto).lower(),
            port_range_min=get("port_range_min"),
            port_range_max=get("port_range_max"),
            remote_group_id=get("remote_group_id"),
            remote_ip_prefix=get("remote_ip_prefix"),
            description=get("description") or "",
        )

    def describe(self, groups: dict[str, "SecurityGroup"] | None = None) -> str:
        """`ingress 4 from group k8s`, `ingress tcp 6443 from 0.0.0.0/0`."""
        proto = self.protocol or "any protocol"
        ports = ""
        if self.port_range_min is not None:
            hi = self.port_range_max if self.port_range_max is not None else self.port_range_min
            ports = f" {self.port_range_min}" + (f"-{hi}" if hi != self.port_range_min else "")
        if self.remote_group_id:
            g = (groups or {}).get(self.remote_group_id)
            src = f"group {g.name if g and g.name else self.remote_group_id[:8]}"
        else:
            src = self.remote_ip_prefix or "anywhere"
        word = "from" if self.direction == "ingress" else "to"
        return f"{self.direction} {self.ether_type} {proto}{ports} {word} {src}"


@dataclass
class SecurityGroup:
    id: str
    name: str = ""
    rules: list[SGRule] = field(default_factory=list)
    project_id: str | None = None
    stateful: bool | None = None  # False: no connection tracking, replies need rules (None: not read)

    @property
    def label(self) -> str:
        return self.name or self.id[:8]


@dataclass
class NodePort:
    """A node's Neutron port: what anti-spoofing and the security groups act on."""

    id: str
    name: str = ""
    network_id: str | None = None
    network_name: str | None = None
    mac_address: str | None = None
    fixed_ips: list[dict[str, str]] = field(default_factory=list)  # [{"ip_address", "subnet_id"}]
    subnet_id: str | None = None
    subnet_cidr: str | None = None
    subnet_name: str | None = None
    security_group_ids: list[str] = field(default_factory=list)
    port_security_enabled: bool = True
    allowed_address_pairs: list[dict[str, str]] = field(default_factory=list)  # [{"ip_address", "mac_address"?}]
    device_id: str | None = None
    device_owner: str | None = None
    project_id: str | None = None
    network_mtu: int | None = None  # the MTU of the port's network (None: not read)

    @property
    def ips(self) -> list[str]:
        return [f["ip_address"] for f in self.fixed_ips if f.get("ip_address")]

    @property
    def label(self) -> str:
        return self.name or self.id[:8]


@dataclass
class LabNode:
    """A node of the plan as the cloud sees it. `found` False: not a server (or port) of this cloud."""

    name: str
    role: str = "worker"
    address: str | None = None  # the plan's address
    found: bool = False
    server_id: str | None = None
    server_name: str | None = None
    server_status: str | None = None
    matched_by: str | None = None  # "name" | "address" | "port"
    ports: list[NodePort] = field(default_factory=list)
    note: str = ""

    @property
    def port(self) -> NodePort | None:
        """The port that carries the node's address (else its first port)."""
        for p in self.ports:
            if self.address and self.address in p.ips:
                return p
        return self.ports[0] if self.ports else None

    @property
    def ip(self) -> str | None:
        p = self.port
        if p and p.ips:
            return self.address if self.address in p.ips else p.ips[0]
        return self.address

    @property
    def subnet_cidr(self) -> str | None:
        p = self.port
        return p.subnet_cidr if p else None


@dataclass
class LabNetwork:
    """The lab as the cloud shows it: the plan's nodes (found or not) and their groups."""

    cloud: str
    nodes: list[LabNode] = field(default_factory=list)
    groups: list[SecurityGroup] = field(default_factory=list)
    project_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def group(self, group_id: str) -> SecurityGroup | None:
        return next((g for g in self.groups if g.id == group_id), None)

    @property
    def groups_by_id(self) -> dict[str, SecurityGroup]:
        return {g.id: g for g in self.groups}

    def node(self, name: str) -> LabNode:
        return next(n for n in self.nodes if n.name == name)

    @property
    def found_nodes(self) -> list[LabNode]:
        return [n for n in self.nodes if n.found and n.port is not None]

    @property
    def missing_nodes(self) -> list[LabNode]:
        return [n for n in self.nodes if not (n.found and n.port is not None)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# =========================================================================== 2. requirements


@dataclass(frozen=True)
class CalicoNetworking:
    """What decides the network's needs: encapsulation, BGP, Typha, the pod CIDR."""

    encapsulation: Encapsulation = Encapsulation.IPIP
    bgp: bool = True
    typha: bool = False
    pod_cidr: str | None = None

    @classmethod
    def for_encapsulation(cls, encapsulation: Encapsulation | str, *, bgp: bool | None = None,
                          typha: bool | None = None, pod_cidr: str | None = None) -> "CalicoNetworking":
        """Defaults as the stock installs have them: BGP (BIRD) with IPIP or no encapsulation,
        none with VXLAN; Typha off (the manifest install; the operator install always runs Typha)."""
        enc = Encapsulation(encapsulation)
        if bgp is None:
            bgp = enc in (Encapsulation.IPIP, Encapsulation.IPIP_CROSS_SUBNET, Encapsulation.NONE)
        return cls(enc, bool(bgp), bool(typha), pod_cidr)

    @classmethod
    def from_facts(cls, facts: dict[str, Any], default: Encapsulation | str = Encapsulation.IPIP,
                   pod_cidr: str | None = None) -> "CalicoNetworking":
        """From stored cluster facts: `encapsulation` (or `ipipMode`/`vxlanMode`), `bgp`, `typha`,
        `pod_cidr`. Missing keys fall back to the defaults of `for_encapsulation`."""
        enc: Encapsulation | str = default
        if facts.get("encapsulation"):
            enc = facts["encapsulation"]
        elif facts.get("ipipMode") or facts.get("vxlanMode"):
            enc = Encapsulation.from_pool_modes(facts.get("ipipMode"), facts.get("vxlanMode"))
        return cls.for_encapsulation(enc, bgp=facts.get("bgp"), typha=facts.get("typha"),
                                     pod_cidr=facts.get("pod_cidr") or pod_cidr)

    @property
    def ipip_mode(self) -> str:
        return self.encapsulation.pool_modes[0]

    @property
    def vxlan_mode(self) -> str:
        return self.encapsulation.pool_modes[1]

    def describe(self) -> str:
        return (f"{self.encapsulation.value} (ipipMode {self.ipip_mode}, vxlanMode {self.vxlan_mode}), "
                f"BGP {'on' if self.bgp else 'off'}, Typha {'on' if self.typha else 'off'}")


@dataclass(frozen=True)
class NodeRef:
    """A node as the requirements see it."""

    name: str
    role: str = "worker"  # "control-plane" | "worker"
    ip: str | None = None
    subnet: str | None = None  # CIDR of the node's subnet, when known

    @property
    def is_control_plane(self) -> bool:
        return self.role == "control-plane"


@dataclass(frozen=True)
class Requirement:
    """One thing the cloud must allow, with its reason.

    kind "rule": ingress `protocol`/ports into each `dst` from each `src` of `pairs`
    (source "nodes": the other nodes; "pod-cidr": pod addresses; "anywhere": e.g. your machine).
    kind "pairs": the ports of `nodes` must allow `cidr` as a source (allowed-address-pairs).
    kind "egress": the ports of `nodes` must be allowed to send (Neutron's default egress rules).
    """

    id: str
    kind: str
    title: str
    reason: str
    required_by: str
    protocol: str | None = None
    port_min: int | None = None
    port_max: int | None = None
    source: str = "nodes"
    pairs: tuple[tuple[str, str], ...] = ()
    nodes: tuple[str, ...] = ()
    cidr: str | None = None
    unused_note: str = ""  # said instead of "nothing crosses the network" when no pair needs it

    @property
    def ports_text(self) -> str:
        if self.protocol is None:
            return "any"
        if self.port_min is None:
            return {"4": "IP protocol 4"}.get(self.protocol, self.protocol)
        rng = f"{self.port_min}" + (f"-{self.port_max}" if self.port_max not in (None, self.port_min) else "")
        return f"{self.protocol.upper()} {rng}"


def _pairs(srcs: Iterable[NodeRef], dsts: Iterable[NodeRef]) -> tuple[tuple[str, str], ...]:
    dsts = list(dsts)
    return tuple((s.name, d.name) for s in srcs for d in dsts if s.name != d.name)


def _same_subnet(a: NodeRef, b: NodeRef) -> bool:
    if not a.subnet or not b.subnet:
        return True  # unknown: assume the common lab case, one subnet
    return a.subnet == b.subnet


def encapsulated_pairs(net: CalicoNetworking, nodes: list[NodeRef]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(encapsulated, unencapsulated) node pairs for pod traffic under this encapsulation."""
    by = {n.name: n for n in nodes}
    all_pairs = _pairs(nodes, nodes)
    ipip, vxlan = net.ipip_mode, net.vxlan_mode
    if "Always" in (ipip, vxlan):
        return list(all_pairs), []
    if "CrossSubnet" in (ipip, vxlan):
        enc = [p for p in all_pairs if not _same_subnet(by[p[0]], by[p[1]])]
        return enc, [p for p in all_pairs if p not in enc]
    return [], list(all_pairs)


def derive_requirements(net: CalicoNetworking, nodes: list[NodeRef]) -> list[Requirement]:
    """Every flow Calico and kubeadm need between these nodes, each with its reason."""
    cps = [n for n in nodes if n.is_control_plane]
    workers = [n for n in nodes if not n.is_control_plane]
    reqs: list[Requirement] = []
    enc_pairs, plain_pairs = encapsulated_pairs(net, nodes)
    mode = net.ipip_mode if net.ipip_mode != "Never" else net.vxlan_mode
    cross = mode == "CrossSubnet"

    if net.ipip_mode != "Never":
        why = ("Calico wraps pod traffic between nodes in IP-in-IP packets (IP protocol 4) whose "
               "source is the node's own address, so Neutron's anti-spoofing lets them out; the "
               "security group must let protocol 4 in from the other nodes.")
        if cross:
            why += (" With CrossSubnet this only happens towards nodes on another subnet"
                    + ("; all your nodes share one subnet, so no pair needs it." if not enc_pairs else "."))
        reqs.append(Requirement("ipip", "rule", "IP protocol 4 (IPIP) between the nodes", why,
                                f"Calico IPIP ({net.ipip_mode})", "4", pairs=tuple(enc_pairs),
                                unused_note=UNUSED_CROSS_SUBNET.format(enc="IPIP", rule="IP protocol 4")))
    if net.vxlan_mode != "Never":
        why = ("Calico wraps pod traffic between nodes in VXLAN packets (UDP 4789) between the node "
               "addresses; the security group must let UDP 4789 in from the other nodes.")
        if cross:
            why += (" With CrossSubnet this only happens towards nodes on another subnet"
                    + ("; all your nodes share one subnet, so no pair needs it." if not enc_pairs else "."))
        reqs.append(Requirement("vxlan", "rule", "UDP 4789 (VXLAN) between the nodes", why,
                                f"Calico VXLAN ({net.vxlan_mode})", "udp", 4789, 4789, pairs=tuple(enc_pairs),
                                unused_note=UNUSED_CROSS_SUBNET.format(enc="VXLAN", rule="UDP 4789")))
    if plain_pairs:
        senders = tuple(sorted({s for s, _ in plain_pairs}))
        receivers = tuple(sorted({d for _, d in plain_pairs}))
        if net.encapsulation == Encapsulation.NONE:
            lead = "Without encapsulation every pod packet leaves the node with the pod's address as its source."
        else:
            lead = (f"With {mode}, pod packets to a node on the SAME subnet leave unencapsulated, with "
                    "the pod's address as their source.")
        cidr = net.pod_cidr or "the pod CIDR"
        reqs.append(Requirement(
            "pod-cidr-pairs", "pairs", f"Pod CIDR {cidr} as an allowed-address-pair on the node ports",
            lead + " Neutron's anti-spoofing drops any packet whose source is not the port's own "
            "address or one of its allowed-address-pairs, so pods on different nodes cannot talk. "
            "Either each node port allows the pod CIDR, or switch to IPIP/VXLAN Always.",
            f"Calico {net.encapsulation.value} (unencapsulated pod traffic)", source="pod-cidr",
            nodes=senders, cidr=net.pod_cidr))
        reqs.append(Requirement(
            "pod-traffic", "rule", f"Any protocol from the pod CIDR {cidr} into the nodes",
            "Unencapsulated pod packets arrive with a pod address as their source; the receiving "
            "port's security group must accept them (any protocol: pods talk DNS, HTTP, anything).",
            f"Calico {net.encapsulation.value} (unencapsulated pod traffic)", None, source="pod-cidr",
            pairs=tuple(plain_pairs), nodes=receivers, cidr=net.pod_cidr))
    if net.bgp:
        reqs.append(Requirement("bgp", "rule", "TCP 179 (BGP) between the nodes",
                                "Calico's BGP daemon (BIRD) on every node exchanges pod routes with the "
                                "other nodes over TCP 179; without it no node learns where the other "
                                "nodes' pods are, even with IPIP.", "Calico BGP (BIRD)", "tcp", 179, 179,
                                pairs=_pairs(nodes, nodes)))
    if net.typha:
        reqs.append(Requirement("typha", "rule", "TCP 5473 (Typha) from the nodes",
                                "calico-node on every node talks to Typha (which may run on any node) "
                                "on TCP 5473; the operator install always runs Typha.", "Calico Typha",
                                "tcp", 5473, 5473, pairs=_pairs(nodes, nodes)))
    reqs.append(Requirement("apiserver", "rule", "TCP 6443 (Kubernetes API) into the control plane",
                            "kubelet, kube-proxy and calico-node on every node reach the API server on "
                            "TCP 6443 (and so does kubectl from your machine).", "Kubernetes API server",
                            "tcp", 6443, 6443, pairs=_pairs(nodes, cps)))
    reqs.append(Requirement("etcd", "rule", "TCP 2379-2380 (etcd) between control-plane nodes",
                            "The API server talks to etcd on 2379 and etcd members to each other on "
                            "2380." + (" With one control-plane node this stays on that node." if len(cps) < 2 else ""),
                            "etcd", "tcp", 2379, 2380, pairs=_pairs(cps, cps)))
    reqs.append(Requirement("kubelet", "rule", "TCP 10250 (kubelet) from the control plane",
                            "The API server reaches each node's kubelet on TCP 10250 for logs, exec "
                            "and port-forward.", "kubelet API", "tcp", 10250, 10250, pairs=_pairs(cps, nodes)))
    for pid, port, what in (("kube-scheduler", 10259, "kube-scheduler"),
                            ("kube-controller-manager", 10257, "kube-controller-manager")):
        reqs.append(Requirement(pid, "rule", f"TCP {port} ({what}) on the control plane",
                                f"{what} serves its health and metrics on TCP {port}; only the node itself "
                                "uses it, so nothing crosses the cloud network unless you run several "
                                "control-plane nodes.", what, "tcp", port, port, pairs=_pairs(cps, cps)))
    reqs.append(Requirement("nodeport", "rule", "TCP 30000-32767 (NodePort services) into the workers",
                            "NodePort services listen on 30000-32767 on every node; other nodes and "
                            "clients reach pods through them.", "Kubernetes NodePort services",
                            "tcp", 30000, 32767, pairs=_pairs(nodes, workers)))
    reqs.append(Requirement("ssh", "rule", "TCP 22 (SSH) from your machine",
                            "labtui (and you) reach every node over SSH.", "SSH from you",
                            "tcp", 22, 22, source="anywhere", nodes=tuple(n.name for n in nodes)))
    reqs.append(Requirement("egress", "egress", "Egress from the nodes (Neutron's default rules)",
                            "A new security group allows all egress. If those rules were removed, a "
                            "node can only send what the remaining egress rules allow, and Calico's "
                            "traffic (protocol 4, UDP 4789, BGP) may be dropped on the way out.",
                            "every node", nodes=tuple(n.name for n in nodes)))
    return reqs


# =========================================================================== 3. evaluation


@dataclass(frozen=True)
class RuleFix:
    """Create one security-group rule (protocol "4" as a string for IPIP, never "ipip")."""

    security_group_id: str
    security_group_name: str
    protocol: str | None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_group_id: str | None = None
    remote_group_name: str | None = None
    remote_ip_prefix: str | None = None
    direction: str = "ingress"
    ether_type: str = "IPv4"
    description: str = ""
    requirement: str = ""
    kind: str = "sg-rule"
    # rules with protocol "ipip" that Neutron counts as this same rule (HTTP 409): deleted first
    replaces: tuple[SGRule, ...] = ()

    @property
    def key(self) -> tuple:
        return (self.kind, self.security_group_id, self.direction, self.ether_type, self.protocol,
                self.port_range_min, self.port_range_max, self.remote_group_id, self.remote_ip_prefix)

    @property
    def title(self) -> str:
        what = {"4": "IP protocol 4", None: "any protocol"}.get(self.protocol, (self.protocol or "").upper())
        if self.port_range_min is not None:
            hi = self.port_range_max
            what += f" {self.port_range_min}" + (f"-{hi}" if hi not in (None, self.port_range_min) else "")
        src = f"group {self.remote_group_name or self.remote_group_id}" if self.remote_group_id else \
            (self.remote_ip_prefix or "anywhere")
        if self.direction == "egress":
            return f"{self.security_group_name}: allow {what} egress to {src}"
        return f"{self.security_group_name}: allow {what} from {src}"

    def attrs(self) -> dict[str, Any]:
        """openstacksdk `create_security_group_rule(**attrs)`."""
        out: dict[str, Any] = {"security_group_id": self.security_group_id, "direction": self.direction,
                               "ether_type": self.ether_type}
        if self.protocol is not None:
            out["protocol"] = str(self.protocol)
        if self.port_range_min is not None:
            out["port_range_min"] = self.port_range_min
            out["port_range_max"] = self.port_range_max if self.port_range_max is not None else self.port_range_min
        if self.remote_group_id:
            out["remote_group_id"] = self.remote_group_id
        elif self.remote_ip_prefix:
            out["remote_ip_prefix"] = self.remote_ip_prefix
        if self.description:
            out["description"] = self.description
        return out

    def command(self) -> str:
        q = shlex.quote
        parts = ["openstack security group rule create", f"--{self.direction}", f"--ethertype {self.ether_type}"]
        parts.append(f"--protocol {q(self.protocol)}" if self.protocol is not None else "--protocol any")
        if self.port_range_min is not None:
            hi = self.port_range_max if self.port_range_max is not None else self.port_range_min
            parts.append(f"--dst-port {self.port_range_min}" + (f":{hi}" if hi != self.port_range_min else ""))
        if self.remote_group_id:
            parts.append(f"--remote-group {q(self.remote_group_name or self.remote_group_id)}")
        elif self.remote_ip_prefix:
            parts.append(f"--remote-ip {q(self.remote_ip_prefix)}")
        if self.description:
            parts.append(f"--description {q(self.description)}")
        parts.append(q(self.security_group_name or self.security_group_id))
        deletes = [f"openstack security group rule delete {r.id} && " for r in self.replaces]
        return "".join(deletes) + " ".join(parts)

    def api(self) -> str:
        body = {k if k != "ether_type" else "ethertype": v for k, v in self.attrs().items()}
        deletes = "".join(f"DELETE /v2.0/security-group-rules/{r.id}, then " for r in self.replaces)
        return deletes + "POST /v2.0/security-group-rules " + json.dumps({"security_group_rule": body}, sort_keys=True)

    def revert_command(self, rule_id: str | None = None) -> str:
        cmd = f"openstack security group rule delete {rule_id or '<new rule id>'}"
        for r in self.replaces:
            cmd += " && " + rule_create_command(r, self.security_group_name, self.remote_group_name)
        return cmd


def rule_create_command(rule: SGRule, group_name: str, remote_group_name: str | None = None) -> str:
    """The `openstack security group rule create` that makes `rule` again (e.g. to revert)."""
    fix = RuleFix(rule.security_group_id, group_name, rule.protocol, rule.port_range_min, rule.port_range_max,
                  rule.remote_group_id, remote_group_name if rule.remote_group_id else None, rule.remote_ip_prefix,
                  rule.direction, rule.ether_type, rule.description)
    return fix.command()


@dataclass(frozen=True)
class PairsFix:
    """Add one CIDR to a port's allowed-address-pairs, merged with the pairs already there."""

    port_id: str
    port_name: str
    node: str
    cidr: str
    existing: tuple[str, ...] = ()  # ip_address of the pairs already on the port (for the preview)
    requirement: str = "pod-cidr-pairs"
    kind: str = "port-pairs"
    blocked: str | None = None  # why it cannot be applied (quota)

    @property
    def key(self) -> tuple:
        return (self.kind, self.port_id, self.cidr)

    @property
    def title(self) -> str:
        return f"{self.node}: allow {self.cidr} as a source on port {self.port_name or self.port_id[:8]}"

    def command(self) -> str:
        return f"openstack port set --allowed-address ip-address={shlex.quote(self.cidr)} {shlex.quote(self.port_name or self.port_id)}"

    def api(self) -> str:
        pairs = [{"ip_address": ip} for ip in self.existing] + [{"ip_address": self.cidr}]
        return f"PUT /v2.0/ports/{self.port_id} " + json.dumps({"port": {"allowed_address_pairs": pairs}})

    def revert_command(self) -> str:
        return f"openstack port unset --allowed-address ip-address={shlex.quote(self.cidr)} {shlex.quote(self.port_name or self.port_id)}"


@dataclass(frozen=True)
class PortSecurityFix:
    """Turn port security off on one port (removes its groups and pairs). Offered last."""

    port_id: str
    port_name: str
    node: str
    security_group_ids: tuple[str, ...] = ()
    security_group_names: tuple[str, ...] = ()
    allowed_address_pairs: tuple[tuple[str, str | None], ...] = ()  # (ip_address, mac_address)
    kind: str = "port-security-off"
    requirement: str = "port-security"

    COST = ("Port security off removes anti-spoofing AND every security group from the port: the "
            "node accepts any traffic from anywhere its network reaches, and it can send with any "
            "source address. Use it only on an isolated lab network, and prefer IPIP Always with a "
            "protocol-4 rule.")

    @property
    def key(self) -> tuple:
        return (self.kind, self.port_id)

    @property
    def title(self) -> str:
        return f"{self.node}: disable port security on port {self.port_name or self.port_id[:8]}"

    def command(self) -> str:
        return ("openstack port set --no-security-group --no-allowed-address --disable-port-security "
                + shlex.quote(self.port_name or self.port_id))

    def api(self) -> str:
        return f"PUT /v2.0/ports/{self.port_id} " + json.dumps(
            {"port": {"port_security_enabled": False, "security_groups": [], "allowed_address_pairs": []}})

    def revert_command(self) -> str:
        parts = ["openstack port set --enable-port-security"]
        parts += [f"--security-group {shlex.quote(n)}" for n in (self.security_group_names or self.security_group_ids)]
        parts += [f"--allowed-address ip-address={shlex.quote(ip)}" + (f",mac-address={mac}" if mac else "")
                  for ip, mac in self.allowed_address_pairs]
        parts.append(shlex.quote(self.port_name or self.port_id))
        return " ".join(parts)


Fix = RuleFix | PairsFix | PortSecurityFix


@dataclass(frozen=True)
class Match:
    """How a requirement is met: which rule (or port setting), and how."""

    how: str  # "exact" | "any-protocol" | "prefix" | "port-security-off" | "pair" | "local" | "ipip-name"
    text: str
    rule_id: str | None = None
    group: str | None = None


@dataclass
class RequirementStatus:
    requirement: Requirement
    status: str
    detail: str
    via: list[Match] = field(default_factory=list)
    uncovered: list[tuple[str, str]] = field(default_factory=list)  # (src, dst) pairs (or (node, "")) not met
    fixes: list[Fix] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # nodes the cloud did not show

    @property
    def ok(self) -> bool:
        return self.status == SATISFIED

    def to_dict(self) -> dict[str, Any]:
        r = self.requirement
        return {
            "id": r.id, "title": r.title, "kind": r.kind, "required_by": r.required_by, "reason": r.reason,
            "protocol": r.protocol, "ports": r.ports_text, "status": self.status, "detail": self.detail,
            "via": [asdict(m) for m in self.via], "uncovered": [list(p) for p in self.uncovered],
            "fixes": [{"kind": f.kind, "title": f.title, "command": f.command(), "api": f.api()} for f in self.fixes],
            "unknown_nodes": self.unknown,
        }


@dataclass
class Report:
    networking: CalicoNetworking
    statuses: list[RequirementStatus]
    lab: LabNetwork

    @property
    def missing(self) -> list[RequirementStatus]:
        return [s for s in self.statuses if s.status == MISSING]

    @property
    def suspicious(self) -> list[RequirementStatus]:
        return [s for s in self.statuses if s.status == SUSPICIOUS]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.suspicious

    def status(self, requirement_id: str) -> RequirementStatus:
        return next(s for s in self.statuses if s.requirement.id == requirement_id)

    def fixes(self, only: Iterable[str] | None = None) -> list[Fix]:
        """The fixes for every missing or suspicious requirement (or those in `only`), deduplicated."""
        wanted = set(only) if only else None
        out: list[Fix] = []
        seen: set[tuple] = set()
        for s in self.statuses:
            if s.ok or (wanted is not None and s.requirement.id not in wanted):
                continue
            for f in s.fixes:
                if f.key not in seen:
                    seen.add(f.key)
                    out.append(f)
        return out

    def summary(self) -> str:
        if self.ok:
            return f"all {len(self.statuses)} requirements are met"
        bits = []
        if self.missing:
            bits.append(f"{len(self.missing)} missing ({', '.join(s.requirement.id for s in self.missing)})")
        if self.suspicious:
            bits.append(f"{len(self.suspicious)} suspicious ({', '.join(s.requirement.id for s in self.suspicious)})")
        return ", ".join(bits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cloud": self.lab.cloud,
            "networking": {"encapsulation": self.networking.encapsulation.value, "bgp": self.networking.bgp,
                           "typha": self.networking.typha, "pod_cidr": self.networking.pod_cidr},
            "ok": self.ok, "summary": self.summary(),
            "nodes": [{"name": n.name, "role": n.role, "address": n.address, "found": n.found,
                       "server": n.server_name, "server_id": n.server_id, "matched_by": n.matched_by,
                       "note": n.note, "ports": [asdict(p) for p in n.ports]} for n in self.lab.nodes],
            "groups": [{"id": g.id, "name": g.name, "rules": [asdict(r) for r in g.rules]} for g in self.lab.groups],
            "requirements": [s.to_dict() for s in self.statuses],
        }


def node_refs(lab: LabNetwork) -> list[NodeRef]:
    return [NodeRef(n.name, n.role, n.ip, n.subnet_cidr) for n in lab.nodes]


def _net(cidr: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not cidr:
        return None
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def protocol_admits(rule_protocol: str | None, wanted: str | None) -> str | None:
    """The one protocol test, shared by the cloud check and the doctor: does a rule with this protocol
    carry `wanted` ("4", "tcp", "udp", "icmp", a number, or None for every protocol)? None if not, else
    "any" (an any-protocol rule), "exact", or "ipip-name" (the name 'ipip', which Neutron maps to 4 but
    old iptables drivers render as 94)."""
    return _proto_match(rule_protocol, wanted)


def ports_cover(rule_min: int | None, rule_max: int | None, want_min: int | None, want_max: int | None) -> bool:
    """The one port-range test: a rule without ports covers every port; a wanted range without ports
    (protocol 4) is covered by any rule; otherwise the rule's range holds the whole wanted range."""
    if want_min is None or rule_min is None:
        return True
    hi = rule_max if rule_max is not None else rule_min
    return rule_min <= want_min and hi >= (want_max if want_max is not None else want_min)


def _proto_match(rule_proto: str | None, wanted: str | None) -> str | None:
    """None if the rule does not carry the protocol, else "any" / "exact" / "ipip-name"."""
    if rule_proto is None:
        return "any"
    if wanted is None:
        return None
    p = rule_proto.lower()
    if wanted == "4":
        return "exact" if p == "4" else ("ipip-name" if p == "ipip" else None)
    aliases = {"tcp": {"tcp", "6"}, "udp": {"udp", "17"}, "icmp": {"icmp", "1"}}
    return "exact" if p in aliases.get(wanted, {wanted}) else None


class _Eval:
    def __init__(self, lab: LabNetwork, net: CalicoNetworking) -> None:
        self.lab = lab
        self.net = net
        self.nodes = {n.name: n for n in lab.nodes}
        self.groups = lab.groups_by_id

    # -- helpers
    def port(self, name: str) -> NodePort | None:
        n = self.nodes.get(name)
        return n.port if n and n.found else None

    def ingress_rules(self, port: NodePort, ether: str = "IPv4") -> list[tuple[SGRule, SecurityGroup]]:
        out = []
        for gid in port.security_group_ids:
            g = self.groups.get(gid)
            for r in (g.rules if g else []):
                if r.direction == "ingress" and r.ether_type == ether:
                    out.append((r, g))
        return out

    def members(self, group_id: str) -> list[NodePort]:
        return [n.port for n in self.lab.nodes if n.found and n.port and group_id in n.port.security_group_ids]

    def source_match(self, rule: SGRule, src: str) -> str | None:
        """How `rule` admits traffic from source `src` (a node name, or "pod-cidr")."""
        if rule.remote_group_id:
            if src == "pod-cidr":
                pod = _net(self.net.pod_cidr)
                members = self.members(rule.remote_group_id)
                if pod and members and all(_pair_covers(p, pod) for p in members):
                    return "group"
                return None
            sport = self.port(src)
            return "group" if sport and rule.remote_group_id in sport.security_group_ids else None
        prefix = _net(rule.remote_ip_prefix or ANY_IPV4)
        if prefix is None:
            return None
        if src == "pod-cidr":
            pod = _net(self.net.pod_cidr)
            return "prefix" if pod is not None and pod.version == prefix.version and pod.subnet_of(prefix) else None
        node = self.nodes.get(src)
        ip = node.ip if node else None
        try:
            return "prefix" if ip and ipaddress.ip_address(ip) in prefix else None
        except ValueError:
            return None

    # -- requirement kinds
    def rule_req(self, req: Requirement) -> RequirementStatus:
        unknown = sorted({n for p in req.pairs for n in p if self.port(n) is None} |
                         ({n for n in req.nodes if self.port(n) is None} if req.source == "anywhere" else set()))
        if req.source == "anywhere":
            return self._anywhere(req, unknown)
        if not req.pairs:
            # nothing crosses the network now; still name the rules that would carry it ("required by")
            local = [Match("local", f"{g.label}: {r.describe(self.groups)}", r.id, g.label)
                     for g in self.lab.groups for r in g.rules
                     if r.direction == "ingress" and r.ether_type == "IPv4"
                     and _proto_match(r.protocol, req.protocol) in ("exact", "any") and _rule_ports_ok(r, req, "exact")
                     and not (r.protocol is None and req.protocol is not None)]
            return RequirementStatus(req, SATISFIED, req.unused_note or "nothing crosses the cloud network for "
                                     "this (the traffic stays on the node itself)",
                                     _unique(local) or [Match("local", "not needed between nodes")])
        good: dict[tuple[str, str], list[Match]] = {}
        ipip_only: set[tuple[str, str]] = set()
        uncovered: list[tuple[str, str]] = []
        prefix_hits: dict[str, tuple[SGRule, SecurityGroup, set[str], set[str]]] = {}
        ipip_rules: dict[str, SGRule] = {}
        for src, dst in req.pairs:
            dport = self.port(dst)
            if dport is None or (req.source != "pod-cidr" and self.port(src) is None):
                continue
            if not dport.port_security_enabled:
                good[(src, dst)] = [Match("port-security-off", f"port security is off on {dst}'s port")]
                continue
            matches: list[Match] = []
            ipip = False
            for rule, g in self.ingress_rules(dport):
                pm = _proto_match(rule.protocol, req.protocol)
                if pm is None or not _rule_ports_ok(rule, req, pm):
                    continue
                sm = self.source_match(rule, src if req.source != "pod-cidr" else "pod-cidr")
                if rule.remote_ip_prefix and not rule.remote_group_id:
                    hit = prefix_hits.setdefault(rule.id, (rule, g, set(), set()))
                    (hit[2] if sm else hit[3]).add(src)
                if sm is None:
                    continue
                if pm == "ipip-name":
                    ipip = True
                    ipip_rules[rule.id] = rule
                    continue
                how = "any-protocol" if pm == "any" and req.protocol is not None else ("prefix" if sm == "prefix" else "exact")
                matches.append(Match(how, f"{g.label}: {rule.describe(self.groups)}", rule.id, g.label))
            if matches:
                good[(src, dst)] = matches
            elif ipip:
                ipip_only.add((src, dst))
            else:
                uncovered.append((src, dst))
        via = _unique(m for ms in good.values() for m in ms)
        checked = len(good) + len(ipip_only) + len(uncovered)
        fixes = self._rule_fixes(req, uncovered + sorted(ipip_only), list(ipip_rules.values())) \
            if (uncovered or ipip_only) else []
        if checked == 0:
            return RequirementStatus(req, MISSING if unknown else SATISFIED,
                                     "none of these nodes was found in the cloud, so nothing could be checked"
                                     if unknown else "nothing to check", [], [], [], unknown)
        if not uncovered and not ipip_only:
            return RequirementStatus(req, SATISFIED, "allowed by " + "; ".join(m.text for m in via[:3])
                                     + (f" (and {len(via) - 3} more)" if len(via) > 3 else ""), via, [], [], unknown)
        if not uncovered and ipip_only:
            return RequirementStatus(req, SUSPICIOUS, IPIP_NAME_WARNING,
                                     via + [Match("ipip-name", "a rule with protocol 'ipip'")],
                                     sorted(ipip_only), fixes, unknown)
        partial = [(r, g, hit, miss) for r, g, hit, miss in prefix_hits.values() if hit and miss]
        if good and partial:
            r, g, hit, miss = partial[0]
            missed = sorted(miss)
            return RequirementStatus(req, SUSPICIOUS,
                                     f"{g.label}: the rule from {r.remote_ip_prefix} covers only some nodes: it "
                                     f"misses {', '.join(self._addr(n) for n in missed)}", via,
                                     uncovered, fixes, unknown)
        if good:
            return RequirementStatus(req, SUSPICIOUS, "allowed only between some nodes; not for "
                                     + ", ".join(f"{s} -> {d}" for s, d in uncovered[:6])
                                     + (" ..." if len(uncovered) > 6 else ""), via, uncovered, fixes, unknown)
        detail = "no rule allows it. " + req.reason
        if ipip_only:
            detail += " " + IPIP_NAME_WARNING
        return RequirementStatus(req, MISSING, detail, [], uncovered + sorted(ipip_only), fixes, unknown)

    def _addr(self, name: str) -> str:
        n = self.nodes.get(name)
        return f"{name} ({n.ip})" if n and n.ip else name

    def _anywhere(self, req: Requirement, unknown: list[str]) -> RequirementStatus:
        via: list[Match] = []
        missing: list[str] = []
        for name in req.nodes:
            port = self.port(name)
            if port is None:
                continue
            if not port.port_security_enabled:
                via.append(Match("port-security-off", f"port security is off on {name}'s port"))
                continue
            found = False
            for rule, g in self.ingress_rules(port):
                pm = _proto_match(rule.protocol, req.protocol)
                if pm and pm != "ipip-name" and _rule_ports_ok(rule, req, pm):
                    found = True
                    via.append(Match("any-protocol" if pm == "any" else ("prefix" if rule.remote_ip_prefix else "exact"),
                                     f"{g.label}: {rule.describe(self.groups)}", rule.id, g.label))
                    break
            if not found:
                missing.append(name)
        via = _unique(via)
        if not missing:
            return RequirementStatus(req, SATISFIED, "allowed by " + "; ".join(m.text for m in via[:2]), via, [], [], unknown)
        return RequirementStatus(
            req, MISSING, f"no rule lets TCP 22 in on {', '.join(missing)}. labtui does not open SSH to the "
            "world for you: add your own address, e.g. `openstack security group rule create --protocol tcp "
            "--dst-port 22 --remote-ip YOUR.IP/32 GROUP`.", via, [(m, "") for m in missing], [], unknown)

    def _rule_fixes(self, req: Requirement, pairs: list[tuple[str, str]], ipip_rules: list[SGRule] | None = None) -> list[Fix]:
        """Rules that would cover `pairs`: in the group every node shares, from the group itself when
        every source is in it (the incident's `--protocol 4 --remote-group SG SG`), else from the
        sources' subnets (or the pod CIDR)."""
        dsts = sorted({d for _, d in pairs})
        srcs = sorted({s for s, _ in pairs})
        dports = [p for p in (self.port(d) for d in dsts) if p is not None and p.port_security_enabled]
        if not dports:
            return []
        common = set(dports[0].security_group_ids)
        for p in dports[1:]:
            common &= set(p.security_group_ids)
        src_ports = [self.port(s) for s in srcs] if req.source != "pod-cidr" else []
        fixes: list[Fix] = []
        ordered = [g for g in dports[0].security_group_ids if g in common]
        if ordered:
            targets = [ordered[0]]
            # prefer a shared group that also holds every source: then remote group = itself
            for gid in ordered:
                if src_ports and all(sp is not None and gid in sp.security_group_ids for sp in src_ports):
                    targets = [gid]
                    break
        else:
            targets = sorted({p.security_group_ids[0] for p in dports if p.security_group_ids})
        for gid in targets:
            g = self.groups.get(gid)
            name = g.name if g and g.name else gid
            base = dict(security_group_id=gid, security_group_name=name, protocol=req.protocol,
                        port_range_min=req.port_min, port_range_max=req.port_max,
                        description=f"labtui: {req.title}", requirement=req.id)
            if req.source == "pod-cidr":
                if self.net.pod_cidr:
                    fixes.append(RuleFix(remote_ip_prefix=self.net.pod_cidr, **base))
                continue
            if src_ports and all(sp is not None and gid in sp.security_group_ids for sp in src_ports):
                # Neutron counts an 'ipip' rule with the same attributes as this one (HTTP 409): replace it
                same = tuple(r for r in ipip_rules or [] if r.security_group_id == gid and r.remote_group_id == gid
                             and r.direction == "ingress" and r.ether_type == "IPv4" and r.port_range_min is None)
                fixes.append(RuleFix(remote_group_id=gid, remote_group_name=name, replaces=same, **base))
                continue
            subnets = sorted({sp.subnet_cidr for sp in src_ports if sp is not None and sp.subnet_cidr})
            for cidr in subnets or [f"{self.nodes[s].ip}/32" for s in srcs if self.nodes[s].ip]:
                fixes.append(RuleFix(remote_ip_prefix=cidr, **base))
        return fixes

    def pairs_req(self, req: Requirement) -> RequirementStatus:
        pod = _net(req.cidr)
        unknown = [n for n in req.nodes if self.port(n) is None]
        if pod is None:
            return RequirementStatus(req, MISSING, "the pod CIDR is not known: set it in the plan", [], [], [], unknown)
        via: list[Match] = []
        missing: list[str] = []
        partial: list[str] = []
        fixes: list[Fix] = []
        for name in req.nodes:
            port = self.port(name)
            if port is None:
                continue
            if not port.port_security_enabled:
                via.append(Match("port-security-off", f"port security is off on {name}'s port"))
                continue
            nets = [_net(p.get("ip_address")) for p in port.allowed_address_pairs]
            cover = [n for n in nets if n is not None and n.version == pod.version and pod.subnet_of(n)]
            if cover:
                via.append(Match("pair", f"{name}: allowed-address-pair {cover[0]}"))
                continue
            if any(n is not None and n.version == pod.version and n.overlaps(pod) for n in nets):
                partial.append(name)
            else:
                missing.append(name)
            existing = tuple(p.get("ip_address", "") for p in port.allowed_address_pairs)
            blocked = (f"port {port.label} already has {len(existing)} allowed-address-pairs (Neutron's default "
                       f"quota is {AAP_QUOTA})") if len(existing) >= AAP_QUOTA else None
            fixes.append(PairsFix(port.id, port.name, name, str(pod), existing, blocked=blocked))
        if not missing and not partial:
            return RequirementStatus(req, SATISFIED if via else MISSING,
                                     "every node port allows the pod CIDR" if via else "no node found", via, [], [], unknown)
        bad = missing + partial
        if partial and not missing:
            detail = (f"the allowed-address-pairs on {', '.join(partial)} cover only part of {pod}: pods outside "
                      "that part are still dropped by anti-spoofing")
            return RequirementStatus(req, SUSPICIOUS, detail, via, [(n, "") for n in bad], fixes, unknown)
        detail = f"not on {', '.join(bad)}. " + req.reason
        return RequirementStatus(req, MISSING, detail, via, [(n, "") for n in bad], fixes, unknown)

    def egress_req(self, req: Requirement) -> RequirementStatus:
        via: list[Match] = []
        bad: dict[str, str] = {}
        fixes: list[Fix] = []
        unknown = [n for n in req.nodes if self.port(n) is None]
        for name in req.nodes:
            port = self.port(name)
            if port is None:
                continue
            if not port.port_security_enabled:
                via.append(Match("port-security-off", f"port security is off on {name}'s port"))
                continue
            egress = [(r, self.groups.get(gid)) for gid in port.security_group_ids
                      for r in (self.groups[gid].rules if gid in self.groups else [])
                      if r.direction == "egress" and r.ether_type == "IPv4"]
            full = [(r, g) for r, g in egress if r.protocol is None and r.port_range_min is None
                    and not r.remote_group_id and (r.remote_ip_prefix in (None, ANY_IPV4))]
            if full:
                r, g = full[0]
                via.append(Match("exact", f"{g.label if g else '?'}: {r.describe(self.groups)}", r.id, g.label if g else None))
            elif egress:
                bad[name] = "limited to " + "; ".join(r.describe(self.groups) for r, _ in egress[:3])
            else:
                bad[name] = "no egress rule at all (removed)"
            if name in bad and port.security_group_ids:
                gid = port.security_group_ids[0]
                g = self.groups.get(gid)
                fixes.append(RuleFix(gid, g.name if g and g.name else gid, None, direction="egress",
                                     description="labtui: restore default egress", requirement=req.id))
        via = _unique(via)
        if not bad:
            return RequirementStatus(req, SATISFIED, "egress is open (Neutron's default rule)", via, [], [], unknown)
        detail = "egress rules were removed or narrowed: " + "; ".join(f"{n}: {why}" for n, why in bad.items())
        return RequirementStatus(req, SUSPICIOUS, detail, via, [(n, "") for n in bad], _unique_fixes(fixes), unknown)


def _rule_ports_ok(rule: SGRule, req: Requirement, pm: str) -> bool:
    return ports_cover(rule.port_range_min, rule.port_range_max, req.port_min, req.port_max)


def _pair_covers(port: NodePort, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if not port.port_security_enabled:
        return True
    for p in port.allowed_address_pairs:
        n = _net(p.get("ip_address"))
        if n is not None and n.version == net.version and net.subnet_of(n):
            return True
    return False


def _unique(items: Iterable[Match]) -> list[Match]:
    out: list[Match] = []
    seen: set[tuple] = set()
    for m in items:
        key = (m.how, m.text)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def _unique_fixes(items: Iterable[Fix]) -> list[Fix]:
    out: list[Fix] = []
    seen: set[tuple] = set()
    for f in items:
        if f.key not in seen:
            seen.add(f.key)
            out.append(f)
    return out


def evaluate(lab: LabNetwork, net: CalicoNetworking, requirements: list[Requirement] | None = None) -> Report:
    """Compare what the network must allow with the groups and ports the cloud has."""
    reqs = requirements if requirements is not None else derive_requirements(net, node_refs(lab))
    ev = _Eval(lab, net)
    statuses: list[RequirementStatus] = []
    for req in reqs:
        if req.kind == "pairs":
            statuses.append(ev.pairs_req(req))
        elif req.kind == "egress":
            statuses.append(ev.egress_req(req))
        else:
            statuses.append(ev.rule_req(req))
    return Report(net, statuses, lab)


def port_security_fixes(lab: LabNetwork) -> list[PortSecurityFix]:
    """Port security off for every found node port that still has it (the last resort)."""
    groups = lab.groups_by_id
    out = []
    for n in lab.found_nodes:
        p = n.port
        if p is None or not p.port_security_enabled:
            continue
        out.append(PortSecurityFix(
            p.id, p.name, n.name, tuple(p.security_group_ids),
            tuple(groups[g].name or g if g in groups else g for g in p.security_group_ids),
            tuple((a.get("ip_address", ""), a.get("mac_address")) for a in p.allowed_address_pairs)))
    return out
