"""What Calico and kubeadm need from the cloud network: from the encapsulation, BGP, Typha and the
node roles, every flow the cloud must let through, each with its reason in plain words. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from labtui.model import Encapsulation

UNUSED_CROSS_SUBNET = (
    "not used now: with CrossSubnet Calico never encapsulates between nodes of one subnet. If you "
    "switch to {enc} Always (the usual fix on OpenStack), a rule for {rule} from the nodes is needed."
)


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
                                "on TCP 5473; the operator install always runs Typha, on the host network "
                                "(tigera/operator pkg/render/typha.go: TyphaPort 5473, HostNetwork true), "
                                "so a node without a local Typha reaches one on another node.", "Calico Typha",
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


