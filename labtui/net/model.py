"""The one network model: the lab as the cloud shows it (security-group rules, groups, node ports,
nodes, the whole lab network). Filled by labtui.adapters.openstack.discover(); the cloud check,
the provision stage and the doctor read it. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any



# =========================================================================== 1. network facts


@dataclass(frozen=True)
class SGRule:
    """One Neutron security-group rule (protocol None means any protocol)."""

    id: str = ""
    security_group_id: str = ""
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
        """`ingress IPv4 protocol 4 from members of group k8s`, `ingress IPv4 tcp 6443 from 0.0.0.0/0`."""
        p = self.protocol
        proto = "any protocol" if p in (None, "", "any") else (f"protocol {p}" if str(p).isdigit() else str(p))
        if self.port_range_min is not None:
            hi = self.port_range_max if self.port_range_max is not None else self.port_range_min
            proto += f" {self.port_range_min}" + (f"-{hi}" if hi != self.port_range_min else "")
        if self.remote_group_id:
            g = (groups or {}).get(self.remote_group_id)
            src = f"members of group {g.label if g else self.remote_group_id[:8]}"
        else:
            src = self.remote_ip_prefix or "anywhere"
        word = "from" if self.direction == "ingress" else "to"
        return f"{self.direction} {self.ether_type} {proto} {word} {src}"


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
    def ipv4s(self) -> list[str]:
        return [ip for ip in self.ips if ":" not in ip]

    @property
    def pair_addresses(self) -> list[str]:
        """The allowed-address-pairs' addresses (IP or CIDR), without their MACs."""
        return [a["ip_address"] for a in self.allowed_address_pairs if a.get("ip_address")]

    @property
    def label(self) -> str:
        return self.name or self.id[:8]

    @property
    def ref(self) -> str:
        """How an `openstack port ...` command names this port."""
        return self.id or self.name


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


