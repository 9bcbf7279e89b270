"""Plan and inventory models with validation that names the field and says what to do."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labtui.errors import ValidationFailed

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

KUBERNETES_MINORS = ["1.35", "1.36", "1.37"]
DEFAULT_KUBERNETES = "1.36"
CALICO_VERSIONS = ["3.32.1", "3.32.2", "3.31.7"]
DEFAULT_CALICO = "3.32.2"

POD_CIDR_CANDIDATES = ["172.16.0.0/16", "10.244.0.0/16", "192.168.0.0/16", "172.30.0.0/16"]
SERVICE_CIDR_CANDIDATES = ["10.96.0.0/12", "172.20.0.0/16", "10.112.0.0/12"]
CALICO_DEFAULT_POOL = "192.168.0.0/16"


class Role(str, Enum):
    CONTROL_PLANE = "control-plane"
    WORKER = "worker"


class Encapsulation(str, Enum):
    """The encapsulation of the Calico IPv4 pool, spelled as in the operator's Installation."""

    IPIP = "IPIP"
    IPIP_CROSS_SUBNET = "IPIPCrossSubnet"
    VXLAN = "VXLAN"
    VXLAN_CROSS_SUBNET = "VXLANCrossSubnet"
    NONE = "None"

    @property
    def pool_modes(self) -> tuple[str, str]:
        """(ipipMode, vxlanMode) of the IPPool for this encapsulation (POOL_MODES)."""
        return POOL_MODES[self]

    @property
    def backend(self) -> str:
        """calico.yaml's calico_backend: VXLAN needs no BGP daemon (BIRD), the others route with it."""
        return "vxlan" if self.pool_modes[1] != "Never" else "bird"

    @classmethod
    def from_pool_modes(cls, ipip: str | None, vxlan: str | None) -> Encapsulation:
        modes = ((ipip or "Never").replace("Off", "Never"), vxlan or "Never")
        return next((enc for enc, pair in POOL_MODES.items() if pair == modes), cls.NONE)


# The one table: encapsulation -> (ipipMode, vxlanMode) of the IPPool; the manifest's
# CALICO_IPV4POOL_IPIP / CALICO_IPV4POOL_VXLAN take the same values.
POOL_MODES: dict[Encapsulation, tuple[str, str]] = {
    Encapsulation.IPIP: ("Always", "Never"),
    Encapsulation.IPIP_CROSS_SUBNET: ("CrossSubnet", "Never"),
    Encapsulation.VXLAN: ("Never", "Always"),
    Encapsulation.VXLAN_CROSS_SUBNET: ("Never", "CrossSubnet"),
    Encapsulation.NONE: ("Never", "Never"),
}


def target_encapsulation(*, override: str | None = None, stage_choice: str | None = None,
                         live: str | None = None, planned: str | None = None,
                         wizard: str | None = None) -> Encapsulation:
    """The encapsulation a lab targets, the first one given in this order: an explicit override (a
    command's --encapsulation), the Calico stage's own choice (its input: changing it there does not
    reopen the plan wizard's review), what the doctor read from the live cluster of an adopted lab
    (its plan started from defaults), the saved plan's, the plan wizard's input before the plan is
    saved, else IPIP."""
    value = override or stage_choice or live or planned or wizard or Encapsulation.IPIP.value
    return Encapsulation(value)


@dataclass(frozen=True)
class EncapsulationChoice:
    value: Encapsulation
    label: str
    why: str
    needs: str
    recommended: bool = False


ENCAPSULATION_CHOICES: list[EncapsulationChoice] = [
    EncapsulationChoice(
        Encapsulation.IPIP,
        "IPIP Always (recommended on OpenStack)",
        "Every packet between pods on different nodes is wrapped in an IP-in-IP packet whose "
        "source is the node's own address. Neutron's anti-spoofing only ever sees node "
        "addresses, so nothing is dropped.",
        "The security group must allow IP protocol 4 between the nodes "
        "(openstack security group rule create --protocol 4 --remote-group SG SG). "
        "Calico's BGP (bird) also needs TCP 179 between the nodes.",
        recommended=True,
    ),
    EncapsulationChoice(
        Encapsulation.VXLAN,
        "VXLAN Always",
        "Every cross-node pod packet is wrapped in a UDP packet between the node addresses. "
        "Works where IP protocol 4 is blocked; no BGP needed.",
        "The security group must allow UDP 4789 between the nodes.",
    ),
    EncapsulationChoice(
        Encapsulation.IPIP_CROSS_SUBNET,
        "IPIP CrossSubnet (the incident)",
        "Encapsulates only towards nodes on another subnet. Nodes on ONE subnet send pod "
        "traffic unencapsulated, with the pod's address as source: Neutron's anti-spoofing "
        "drops it, and pods on different nodes cannot talk. This is exactly the incident.",
        "Protocol 4 between the nodes AND the pod CIDR as an allowed-address-pair on every "
        "node port (or port security off).",
    ),
    EncapsulationChoice(
        Encapsulation.VXLAN_CROSS_SUBNET,
        "VXLAN CrossSubnet",
        "Like IPIP CrossSubnet but with VXLAN: same-subnet pod traffic leaves unencapsulated "
        "and is dropped by anti-spoofing unless the ports allow the pod CIDR. Calico's "
        "operator sample uses this mode.",
        "UDP 4789 between the nodes AND the pod CIDR as an allowed-address-pair on every port.",
    ),
    EncapsulationChoice(
        Encapsulation.NONE,
        "None (direct routing)",
        "No encapsulation: best throughput, but every packet carries a pod source address. "
        "It only works when every node port allows the pod CIDR.",
        "The pod CIDR as an allowed-address-pair on every node port (the API replaces the "
        "whole list, labtui merges), and TCP 179 for BGP between the nodes.",
    ),
]


@dataclass
class Problem:
    field: str
    message: str
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"

    @property
    def label(self) -> str:
        """The field as the user sees it on screen ("Pod CIDR", "node w1: address"), never the internal name."""
        return field_label(self.field)

    def render(self) -> str:
        text = f"{self.severity}: {self.label}: {self.message}"
        return f"{text} -> {self.hint}" if self.hint else text


FIELD_LABELS = {
    "name": "Lab name", "cloud": "Cloud", "nodes": "Nodes", "node_subnet": "Node subnet", "pod_cidr": "Pod CIDR",
    "service_cidr": "Service CIDR", "kubernetes": "Kubernetes minor", "calico": "Calico version",
    "encapsulation": "Encapsulation", "kubeconfig": "Kubeconfig file", "address": "address", "user": "SSH user",
    "port": "SSH port", "key_file": "key file", "proxy_jump": "ProxyJump", "role": "role", "ssh_host": "SSH host",
    "provision": "Machines",
}

# the plan's provision block, labelled as in the plan wizard's Machines step (and the Provision stage's messages)
PROVISION_LABELS = {
    "image": "Image", "login_user": "Login user", "flavor_control_plane": "Flavor (control plane)",
    "flavor_worker": "Flavor (workers)", "network": "Network", "external_network": "External network",
    "floating_ip": "Floating IP", "ssh_cidr": "SSH source", "keypair": "Keypair", "public_key_file": "Public key file",
    "availability_zone": "Availability zone", "dns_nameservers": "DNS servers",
}
FIELD_LABELS.update({f"provision.{k}": v for k, v in PROVISION_LABELS.items()})
SOURCES_LABELS = {
    "http_proxy": "HTTP proxy", "no_proxy": "No proxy for", "kubernetes_repo": "Kubernetes packages",
    "docker_repo": "Docker packages", "calico_manifests": "Calico manifests", "registry_mirror": "Registry mirror",
}
FIELD_LABELS.update({f"sources.{k}": v for k, v in SOURCES_LABELS.items()})

# Where the nodes get their software. The defaults are the upstream locations the install pages name:
# pkgs.k8s.io (https://kubernetes.io/blog/2023/08/15/pkgs-k8s-io-introduction/: .../core:/stable:/v1.36/deb/),
# Docker's apt repository (https://docs.docker.com/engine/install/debian/: https://download.docker.com/linux/debian)
# and Calico's release manifests (https://raw.githubusercontent.com/projectcalico/calico/v3.32.2/manifests/...).
# Behind a proxy or without internet (kubespray's *_repo / registry_host settings, k0sctl's airgap) a lab
# points them at a mirror.
DEFAULT_KUBERNETES_REPO = "https://pkgs.k8s.io/core:/stable:"
DEFAULT_DOCKER_REPO = "https://download.docker.com/linux"
DEFAULT_CALICO_MANIFESTS = "https://raw.githubusercontent.com/projectcalico/calico"


def field_label(field: str) -> str:
    """`pod_cidr` -> "Pod CIDR"; `nodes[w1].address` -> "Node w1: address"."""
    m = re.match(r"^nodes\[([^\]]*)\]\.?(.*)$", field)
    if m:
        return f"Node {m.group(1)}: {FIELD_LABELS.get(m.group(2), m.group(2) or 'entry')}"
    return FIELD_LABELS.get(field, field)


def host_or_ip(v: str) -> str:
    """An IP address (normalised), or a DNS name / ~/.ssh/config alias."""
    v = v.strip()
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        if re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$", v) and not re.match(r"^[\d.]+$", v):
            return v  # a DNS name or an ~/.ssh/config alias
        raise ValueError(f"{v!r} is neither an IP address nor a host name") from None


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    address: str
    role: Role = Role.WORKER
    user: str = "ubuntu"
    port: int = Field(default=22, ge=1, le=65535)
    key_file: str | None = None
    proxy_jump: str | None = None
    # where SSH connects when it is not `address` (e.g. the control plane's floating IP); `address`
    # stays the node's own address on the node subnet, the one Kubernetes and Calico use
    ssh_host: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not NAME_RE.match(v):
            raise ValueError(
                f"{v!r} is not a valid node name: use lower-case letters, digits and '-', "
                "starting and ending with a letter or digit (it becomes the Kubernetes node name)"
            )
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return host_or_ip(v)

    @field_validator("ssh_host")
    @classmethod
    def _ssh_host(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        return host_or_ip(v)

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        v = v.strip()
        if not re.match(r"^[a-z_][a-z0-9_.-]{0,31}$", v):
            raise ValueError(f"{v!r} is not a valid SSH user name")
        return v


class ProvisionSpec(BaseModel):
    """How labtui provisions the lab's machines on the plan's cloud (the Provision stage).

    A plan with a `provision` block gets its servers from labtui; without one the lab adopts
    machines that exist already (the stage is skipped with that reason). The plan's node
    addresses are the fixed IPs the servers' ports get on the node subnet."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = None  # name or id; None: the best Ubuntu 24.04 / 22.04 / Debian 12 image
    login_user: str | None = None  # None: guessed from the image's metadata or name
    flavor_control_plane: str | None = None  # None: the smallest flavor kubeadm accepts
    flavor_worker: str | None = None
    network: str | None = None  # an existing tenant network (name or id); None: labtui creates one
    external_network: str | None = None  # router gateway + floating IP on the control plane
    floating_ip: bool = True  # only with an external network
    ssh_cidr: str | None = None  # SSH 22 from here; None: your own address as the cloud sees it
    keypair: str | None = None  # an existing keypair; None: import public_key_file
    public_key_file: str = "~/.ssh/id_ed25519.pub"
    availability_zone: str | None = None
    # the lab subnet's DNS servers (Neutron's `dns_nameservers`, `openstack subnet create --dns-nameserver`);
    # None: the cloud's DHCP default, which on ML2/OVS dnsmasq without `dnsmasq_dns_servers` resolves no
    # external names (audit F10). Only used when labtui creates the subnet.
    dns_nameservers: list[str] | None = None

    @field_validator("dns_nameservers", mode="before")
    @classmethod
    def _dns(cls, v: Any) -> Any:
        if v is None or isinstance(v, (str, list, tuple)):
            return dns_list(v) or None  # "9.9.9.9, 1.1.1.1" as typed in the wizard, or a YAML list
        return v


class SourcesSpec(BaseModel):
    """Where the nodes get their packages, manifests and images (the plan's `sources` block).

    http_proxy: apt and containerd on the nodes go through it (e.g. http://10.0.0.1:3142, an
    apt-cacher-ng or squid); no_proxy: extra hosts/CIDRs reached directly (the node subnet, pod and
    service CIDRs are always added); kubernetes_repo: the base before `/v1.36/deb/`; docker_repo: the
    base before `/debian` or `/ubuntu`; calico_manifests: the base before `/v3.32.2/manifests/`;
    registry_mirror: a registry host[:port] containerd pulls docker.io, registry.k8s.io and quay.io
    images through (its hosts.toml)."""

    model_config = ConfigDict(extra="forbid")

    http_proxy: str | None = None
    no_proxy: str | None = None
    kubernetes_repo: str = DEFAULT_KUBERNETES_REPO
    docker_repo: str = DEFAULT_DOCKER_REPO
    calico_manifests: str = DEFAULT_CALICO_MANIFESTS
    registry_mirror: str | None = None

    @property
    def customised(self) -> dict[str, str]:
        """The settings that differ from the upstream defaults (what a dry run names)."""
        default = SourcesSpec()
        return {k: str(v) for k, v in self.model_dump().items() if v != getattr(default, k)}


class Plan(BaseModel):
    """A lab plan. Construct through `Plan.parse(...)` to get field-named, actionable errors."""

    model_config = ConfigDict(extra="forbid")

    name: str
    cloud: str | None = None  # None: adopt machines the user already has
    nodes: list[NodeSpec] = Field(default_factory=list)
    node_subnet: str
    pod_cidr: str = POD_CIDR_CANDIDATES[0]
    service_cidr: str = SERVICE_CIDR_CANDIDATES[0]
    kubernetes: str = DEFAULT_KUBERNETES
    calico: str = DEFAULT_CALICO
    encapsulation: Encapsulation = Encapsulation.IPIP
    provision: ProvisionSpec | None = None  # None: adopt existing machines
    sources: SourcesSpec = Field(default_factory=SourcesSpec)  # packages, manifests, images: upstream or a mirror

    @model_validator(mode="after")
    def _cross_checks(self) -> Plan:
        errors = [p for p in plan_problems(self) if p.severity == "error"]
        if errors:
            raise ValueError("; ".join(f"{p.label}: {p.message}" for p in errors))
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Plan:
        """THE way a plan's data becomes a Plan (a plan file, `up --plan`, the wizard's save, the saved
        plan read back): every problem named by field, as a ValidationFailed (a LabError)."""
        data = with_network_defaults(data)
        problems = collect_problems(data)
        if any(p.severity == "error" for p in problems):
            raise ValidationFailed(problems)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:  # what the field checks above do not cover (an unknown field...)
            raise ValidationFailed([Problem(".".join(str(x) for x in err.get("loc", ())) or "plan",
                                            str(err.get("msg", "")).removeprefix("Value error, "),
                                            "correct the plan") for err in exc.errors()]) from None

    @classmethod
    def saved(cls, data: Mapping[str, Any] | None) -> Plan | None:
        """A lab's saved plan (SessionRecord.plan) as a Plan, None before the plan wizard saved one."""
        return cls.parse(data) if data else None

    @property
    def control_plane(self) -> NodeSpec:
        return next(n for n in self.nodes if n.role == Role.CONTROL_PLANE)

    @property
    def workers(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == Role.WORKER]

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


# --------------------------------------------------------------------------- validation


def parse_network(value: str | None, field: str, problems: list[Problem]) -> ipaddress.IPv4Network | None:
    if value is None or str(value).strip() == "":
        problems.append(Problem(field, "is empty", "enter a network in CIDR form, e.g. 10.100.200.0/24"))
        return None
    text = str(value).strip()
    if "/" not in text:
        try:  # a whole address: suggest it with a prefix; a short one ("10.100.200") would stay invalid
            hint = f"write it as CIDR, e.g. {ipaddress.IPv4Address(text)}/24"
        except ValueError:
            hint = "use the form a.b.c.d/len, e.g. 10.100.200.0/24 (all four numbers and the prefix length)"
        problems.append(Problem(field, f"{text!r} has no prefix length", hint))
        return None
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        problems.append(
            Problem(field, f"{text!r} is not a valid CIDR", "use the form a.b.c.d/len, e.g. 172.16.0.0/16")
        )
        return None
    if net.version != 4:
        problems.append(Problem(field, f"{text} is IPv6; labtui plans IPv4 clusters", "use an IPv4 CIDR"))
        return None
    if str(net) != text:
        problems.append(
            Problem(field, f"{text} has host bits set; the network is {net}", f"use {net}", "warning")
        )
    return net


def network_problems(node_subnet: str | None, pod_cidr: str | None, service_cidr: str | None) -> list[Problem]:
    problems: list[Problem] = []
    nets = {
        "node_subnet": parse_network(node_subnet, "node_subnet", problems),
        "pod_cidr": parse_network(pod_cidr, "pod_cidr", problems),
        "service_cidr": parse_network(service_cidr, "service_cidr", problems),
    }
    labels = {"node_subnet": "node subnet", "pod_cidr": "pod CIDR", "service_cidr": "service CIDR"}
    keys = list(nets)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            na, nb = nets[a], nets[b]
            if na and nb and na.overlaps(nb):
                hint = f"pick a {labels[b]} that does not overlap {na}, e.g. {suggest_free(b, [n for n in nets.values() if n and n != nb])}"
                if b == "pod_cidr" and str(nb) == CALICO_DEFAULT_POOL:
                    hint = (
                        "192.168.0.0/16 is Calico's default pod pool and OpenStack tenant subnets are "
                        f"often 192.168.x.0/24: {hint}"
                    )
                problems.append(Problem(b, f"{nb} overlaps the {labels[a]} {na}", hint))
    pod = nets["pod_cidr"]
    if pod and str(pod) == CALICO_DEFAULT_POOL and not any(p.field == "pod_cidr" for p in problems):
        problems.append(
            Problem(
                "pod_cidr",
                "192.168.0.0/16 is Calico's default, and many OpenStack tenant subnets are 192.168.x.0/24",
                "if any network your nodes reach is in 192.168.0.0/16, use 172.16.0.0/16 instead",
                "warning",
            )
        )
    for key in ("pod_cidr", "service_cidr"):
        net = nets[key]
        if net and net.prefixlen > 24 and key == "pod_cidr":
            problems.append(
                Problem(key, f"{net} is too small for Calico's /26 blocks on several nodes", "use a /16 to /20", "error")
            )
    return problems


def node_problems(nodes: Iterable[dict[str, Any] | NodeSpec], node_subnet: str | None) -> list[Problem]:
    problems: list[Problem] = []
    scratch: list[Problem] = []
    subnet = parse_network(node_subnet, "node_subnet", scratch) if node_subnet else None
    parsed: list[NodeSpec] = []
    for i, raw in enumerate(nodes):
        try:
            node = raw if isinstance(raw, NodeSpec) else NodeSpec.model_validate(raw)
        except Exception as exc:  # pydantic ValidationError
            label = raw.get("name") if isinstance(raw, dict) else None
            for err in getattr(exc, "errors", lambda: [])():
                loc = ".".join(str(x) for x in err.get("loc", ()))
                msg = str(err.get("msg", "")).removeprefix("Value error, ")
                problems.append(Problem(f"nodes[{label or i}].{loc}", msg, "correct the node entry"))
            continue
        parsed.append(node)
    if not parsed and not problems:
        problems.append(Problem("nodes", "no nodes", "add one control-plane node and at least one worker"))
        return problems
    seen_names: dict[str, int] = {}
    seen_addr: dict[str, str] = {}
    for node in parsed:
        if node.name in seen_names:
            problems.append(Problem(f"nodes[{node.name}].name", f"the name {node.name} is used twice", "give each node its own name"))
        seen_names[node.name] = 1
        key = f"{node.address}:{node.port}"
        if key in seen_addr:
            problems.append(
                Problem(
                    f"nodes[{node.name}].address",
                    f"{node.address} is also the address of {seen_addr[key]}",
                    "each node needs its own address",
                )
            )
        seen_addr[key] = node.name
        if subnet is not None:
            try:
                ip = ipaddress.ip_address(node.address)
            except ValueError:
                ip = None
            if ip is not None and ip not in subnet:
                problems.append(
                    Problem(
                        f"nodes[{node.name}].address",
                        f"{node.address} is outside the node subnet {subnet}",
                        "fix the address or the node subnet (all nodes share one subnet in this plan)",
                    )
                )
            elif ip is not None and (ip == subnet.network_address or ip == subnet.broadcast_address):
                problems.append(
                    Problem(f"nodes[{node.name}].address", f"{ip} is the network or broadcast address of {subnet}", "use a host address")
                )
    cps = [n for n in parsed if n.role == Role.CONTROL_PLANE]
    if parsed and not cps:
        problems.append(Problem("nodes", "no control-plane node", "mark exactly one node with the role control-plane"))
    elif len(cps) > 1:
        problems.append(
            Problem(
                "nodes",
                f"{len(cps)} control-plane nodes ({', '.join(n.name for n in cps)})",
                "labtui builds one control plane for now: mark the others as workers",
            )
        )
    if parsed and not any(n.role == Role.WORKER for n in parsed):
        problems.append(
            Problem("nodes", "no worker node", "add a worker: cross-node pod traffic needs at least two nodes", "warning")
        )
    return problems


def with_network_defaults(data: Mapping[str, Any]) -> dict[str, Any]:
    """Fill missing pod/service CIDRs with ranges that avoid the node subnet."""
    data = dict(data)
    defaults = default_networks(data.get("node_subnet"))
    for key, value in defaults.items():
        if not data.get(key):
            data[key] = value
    return data


def collect_problems(data: Mapping[str, Any]) -> list[Problem]:
    data = with_network_defaults(data)
    problems: list[Problem] = []
    name = str(data.get("name") or "")
    if not NAME_RE.match(name):
        problems.append(
            Problem("name", f"{name!r} is not a valid lab name", "use lower-case letters, digits and '-', up to 63 characters")
        )
    problems += network_problems(data.get("node_subnet"), data["pod_cidr"], data["service_cidr"])
    problems += node_problems(data.get("nodes") or [], data.get("node_subnet"))
    if isinstance(data.get("provision"), dict):
        problems += provision_problems(data["provision"])
    if data.get("sources") is not None:
        if isinstance(data["sources"], dict):
            problems += sources_problems(data["sources"])
        else:
            problems.append(Problem("sources", "is not a block of settings",
                                    "write it as a mapping: " + ", ".join(SOURCES_LABELS)))
    k8s = data.get("kubernetes", DEFAULT_KUBERNETES)
    if k8s not in KUBERNETES_MINORS:
        problems.append(Problem("kubernetes", f"{k8s!r} is not offered", f"choose one of {', '.join(KUBERNETES_MINORS)}"))
    enc = data.get("encapsulation", Encapsulation.IPIP)
    try:
        Encapsulation(enc)
    except ValueError:
        problems.append(
            Problem("encapsulation", f"{enc!r} is not a Calico encapsulation", f"choose one of {', '.join(e.value for e in Encapsulation)}")
        )
    calico = str(data.get("calico", DEFAULT_CALICO))
    if not re.match(r"^3\.\d+\.\d+$", calico):
        problems.append(Problem("calico", f"{calico!r} is not a Calico version", "use a version like 3.32.2"))
    return problems


def provision_problems(block: dict[str, Any]) -> list[Problem]:
    """The provision block's own checks (what the cloud offers is checked by the Provision stage)."""
    problems: list[Problem] = []
    unknown = sorted(set(block) - set(PROVISION_LABELS))
    for key in unknown:
        problems.append(Problem(f"provision.{key}", "is not a field of the provision block",
                                "the fields are " + ", ".join(PROVISION_LABELS)))
    user = str(block.get("login_user") or "").strip()
    if user and not re.match(r"^[a-z_][a-z0-9_.-]{0,31}$", user):
        problems.append(Problem("provision.login_user", f"{user!r} is not a valid user name",
                                "leave it empty to take the image's own login user (ubuntu, debian...)"))
    cidr = str(block.get("ssh_cidr") or "").strip()
    if cidr:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            net = None
            problems.append(Problem("provision.ssh_cidr", f"{cidr!r} is not a CIDR",
                                    "write your address as CIDR, e.g. 203.0.113.7/32, or leave it empty: labtui uses "
                                    "your own address"))
        if net is not None and net.version != 4:
            problems.append(Problem("provision.ssh_cidr", f"{cidr} is IPv6; the lab's rules are IPv4",
                                    "give an IPv4 CIDR"))
        elif net is not None and net.prefixlen == 0:
            problems.append(Problem("provision.ssh_cidr", "0.0.0.0/0 opens port 22 of every node to the whole internet",
                                    "give your own address (e.g. 203.0.113.7/32) unless the cloud is private",
                                    "warning"))
    problems += dns_problems(block.get("dns_nameservers"))
    if block.get("floating_ip", True) not in (True, False):
        problems.append(Problem("provision.floating_ip", f"{block.get('floating_ip')!r} is not true or false",
                                "write true or false"))
    if block.get("floating_ip", True) is True and not str(block.get("external_network") or "").strip():
        problems.append(Problem("provision.external_network",
                                "no external network: no router and no floating IP, so the nodes are reached only "
                                "if the node subnet is routed to you",
                                "name the cloud's external network (e.g. public) to reach the control plane at a "
                                "floating IP and the other nodes through it", "warning"))
    return problems


def dns_list(value: Any) -> list[str]:
    """The DNS servers as a list: a list stays one, a string is split at commas and blanks."""
    if value is None:
        return []
    if isinstance(value, str):
        return [x for x in re.split(r"[,\s]+", value.strip()) if x]
    if isinstance(value, (list, tuple)):
        return [str(x).strip() for x in value if str(x).strip()]
    return [str(value)]


def dns_problems(value: Any) -> list[Problem]:
    """provision.dns_nameservers: IPv4 addresses (Neutron takes at most 5 by default: max_dns_nameservers)."""
    field = "provision.dns_nameservers"
    if value is None or value == [] or value == "":
        return []
    if not isinstance(value, (list, str)):
        return [Problem(field, f"{value!r} is not a list of addresses", "write a list, e.g. [9.9.9.9, 1.1.1.1]")]
    problems: list[Problem] = []
    servers = dns_list(value)
    for server in servers:
        try:
            ip = ipaddress.ip_address(server)
        except ValueError:
            problems.append(Problem(field, f"{server!r} is not an IP address",
                                    "give the DNS servers' IPv4 addresses, e.g. 9.9.9.9, 1.1.1.1 (or leave it empty "
                                    "for the cloud's default)"))
            continue
        if ip.version != 4:
            problems.append(Problem(field, f"{server} is IPv6; the lab's subnet is IPv4", "give IPv4 addresses"))
    if len(set(servers)) != len(servers):
        problems.append(Problem(field, "names a server twice", "give each DNS server once"))
    if len(servers) > 5:
        problems.append(Problem(field, f"{len(servers)} servers: Neutron allows 5 per subnet by default",
                                "give at most 5 (max_dns_nameservers)"))
    return problems


def _url_problem(field: str, value: str, example: str) -> Problem | None:
    try:
        url = urlsplit(value)
        _ = url.port  # raises ValueError on a bad port
    except ValueError as exc:
        return Problem(field, f"{value!r} is not a URL ({exc})", f"write it like {example}")
    if url.scheme not in ("http", "https") or not url.hostname:
        return Problem(field, f"{value!r} is not an http:// or https:// URL", f"write it like {example}")
    if any(c.isspace() or c in "'\"`$;&|<>\\" for c in value):
        return Problem(field, f"{value!r} holds characters a URL does not", f"write it like {example}")
    return None


def sources_problems(block: dict[str, Any]) -> list[Problem]:
    """The sources block: each URL an http(s) URL, the mirror a host[:port], no_proxy a plain list."""
    problems: list[Problem] = []
    for key in sorted(set(block) - set(SOURCES_LABELS)):
        problems.append(Problem(f"sources.{key}", "is not a field of the sources block",
                                "the fields are " + ", ".join(SOURCES_LABELS)))
    examples = {"http_proxy": "http://10.0.0.1:3142", "kubernetes_repo": DEFAULT_KUBERNETES_REPO,
                "docker_repo": DEFAULT_DOCKER_REPO, "calico_manifests": DEFAULT_CALICO_MANIFESTS}
    for key, example in examples.items():
        value = block.get(key)
        if value is None or (key == "http_proxy" and str(value).strip() == ""):
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(f"sources.{key}", f"{value!r} is not a URL", f"write it like {example}"))
            continue
        bad = _url_problem(f"sources.{key}", value.strip(), example)
        if bad:
            problems.append(bad)
    mirror = block.get("registry_mirror")
    if mirror not in (None, "") and not (isinstance(mirror, str) and re.match(
            r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$", mirror.strip())):
        problems.append(Problem("sources.registry_mirror", f"{mirror!r} is not a registry host",
                                "write host or host:port, e.g. registry.example.org:5000"))
    no_proxy = block.get("no_proxy")
    if no_proxy not in (None, "") and not (isinstance(no_proxy, str) and re.match(r"^[A-Za-z0-9.,:/*_-]+$",
                                                                                  no_proxy.replace(" ", ""))):
        problems.append(Problem("sources.no_proxy", f"{no_proxy!r} is not a list of hosts",
                                "write hosts, domains or CIDRs separated by commas, e.g. .corp.example,10.0.0.0/8"))
    return problems


def plan_problems(plan: Plan) -> list[Problem]:
    return collect_problems(plan.model_dump(mode="json"))


def suggest_free(kind: str, taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    candidates = POD_CIDR_CANDIDATES if kind != "service_cidr" else SERVICE_CIDR_CANDIDATES
    for cand in candidates:
        net = ipaddress.ip_network(cand)
        if not any(net.overlaps(t) for t in taken):
            return cand
    return "another private range"


def default_networks(node_subnet: str | None) -> dict[str, str]:
    """Pod and service CIDRs that do not collide with the node subnet (or each other)."""
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    if node_subnet:
        try:
            taken.append(ipaddress.ip_network(node_subnet, strict=False))
        except ValueError:
            pass
    pod = suggest_free("pod_cidr", taken)
    taken.append(ipaddress.ip_network(pod))
    svc = suggest_free("service_cidr", taken)
    return {"pod_cidr": pod, "service_cidr": svc}


def guess_subnet(addresses: Iterable[str]) -> str | None:
    """The /24 holding the first node address: a starting point the user can correct."""
    for addr in addresses:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            continue
        if ip.version == 4:
            return str(ipaddress.ip_network(f"{ip}/24", strict=False))
    return None


def covering_subnet(addresses: Iterable[str]) -> str | None:
    """The smallest /24-or-wider network holding every IPv4 address (a starting value for a cluster
    labtui did not build; the doctor reads the real subnets)."""
    ips = []
    for a in addresses:
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            continue
        if ip.version == 4:
            ips.append(ip)
    if not ips:
        return None
    net = ipaddress.ip_network(f"{ips[0]}/24", strict=False)
    while not all(ip in net for ip in ips) and net.prefixlen > 8:
        net = net.supernet()
    return str(net)


def encapsulation_choice(value: Encapsulation | str) -> EncapsulationChoice:
    value = Encapsulation(value)
    return next(c for c in ENCAPSULATION_CHOICES if c.value == value)
