"""Per-pair reasoning: for every ordered pair of nodes, which path a pod packet takes and where the
cloud drops it. Pure: facts in, verdicts out.

1. The path under the live pool mode: *direct* (unencapsulated, the source is the pod's address),
   *IPIP* (IP protocol 4 between the node addresses) or *VXLAN* (UDP to Felix's VXLAN port, 4789 by
   default, between the node addresses), given whether the two nodes share a subnet (Calico's
   CrossSubnet encapsulates only towards a node on another subnet).
2. Whether the cloud lets that packet leave one port and enter the other: Neutron's port security
   drops a packet whose source is not the port's fixed IP or an allowed-address-pair (anti-spoofing;
   ML2/OVS checks it at the sender's port, OVN also checks the destination at the receiver's); the
   security groups must let the packet out (egress) and in (ingress). A *stateless* group
   (`stateful: false`) also needs a rule for every reply: the BGP session's replies come back to an
   ephemeral TCP port.

Every `Block` names the node, the port and the groups that drop the packet, so explanations and
fixes can point at the right one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labtui.doctor.model import (
    BGP_PORT,
    ICMP,
    IPIP_PROTO,
    TCP,
    UDP,
    DoctorFacts,
    Node,
    ProbeResult,
    active_pools,
    pool_path,
    proto_number,
    same_subnet,
)
from labtui.net.check import admitting_rule, antispoof_admits, rule_carries
from labtui.net.model import NodePort, SecurityGroup, SGRule

# Linux's default net.ipv4.ip_local_port_range: where the replies of a TCP connection come back to
EPHEMERAL = (32768, 60999)

PortSpec = int | tuple[int, int] | None


@dataclass
class Block:
    """Why the cloud (or the routing) drops a packet, and who drops it."""

    code: str  # antispoof-src | antispoof-dst | sg-ingress | sg-egress | sg-reply | unroutable
    where: str  # the port or group that drops it
    detail: str
    node: str = ""  # the node whose port drops it ("" for the router)
    port: str = ""  # that port's id
    groups: list[str] = field(default_factory=list)  # the group ids on that port
    near: list[str] = field(default_factory=list)  # rules for this protocol that do not cover this sender


def _groups_of(facts: DoctorFacts, port: NodePort) -> list[SecurityGroup]:
    return [facts.groups.get(g) or SecurityGroup(g, g) for g in port.security_group_ids]


def stateless(facts: DoctorFacts, port: NodePort | None) -> bool:
    """Neutron refuses stateful and stateless groups on one port, so one stateless group decides."""
    if port is None or not port.port_security_enabled:
        return False
    return any(g.stateful is False for g in _groups_of(facts, port))


# The rule tests are the one evaluator's (labtui.net.check: `rule_carries`, `admitting_rule`,
# `antispoof_admits`), the cloud check's; the doctor names protocols by number and ports as a PortSpec.
_WANTED = {IPIP_PROTO: "4", TCP: "tcp", UDP: "udp", ICMP: "icmp"}


def _want(proto: int | None, dport: PortSpec) -> tuple[str | None, tuple[int, int] | None]:
    """(protocol, port range) as labtui.net.check takes them; `dport` None for TCP/UDP means every port."""
    wanted = None if proto is None else _WANTED.get(proto, str(proto))
    ports = dport if isinstance(dport, tuple) else (None if dport is None else (dport, dport))
    return wanted, ports


def allowing_rule(facts: DoctorFacts, port: NodePort, direction: str, proto: int | None, dport: PortSpec,
                   peer_port: NodePort | None, peer_addr: str | None) -> tuple[SecurityGroup, SGRule] | None:
    """The rule of the port's groups that lets (proto, dport) in from / out to the peer (labtui.net.check)."""
    wanted, ports = _want(proto, dport)
    return admitting_rule(facts.groups, port, direction, wanted, ports, peer_port, peer_addr)


def _near_rules(facts: DoctorFacts, port: NodePort, direction: str, proto: int | None, dport: PortSpec) -> list[str]:
    """Rules with the right protocol and ports whose remote side misses this peer (so the explanation
    says why the existing rule does not help, instead of suggesting it again)."""
    wanted, ports = _want(proto, dport)
    out = []
    for g in _groups_of(facts, port):
        for r in g.rules:
            if r.direction == direction and (r.ether_type or "IPv4") == "IPv4" and rule_carries(r, wanted, ports) \
                    and (r.remote_group_id or r.remote_ip_prefix) and proto_number(r.protocol) is not None:
                out.append(f"{g.label}: {r.describe(facts.groups)}")
    return out


def _group_names(facts: DoctorFacts, port: NodePort) -> str:
    return ", ".join(g.label for g in _groups_of(facts, port)) or "no group"


def _flow(facts: DoctorFacts, a: Node, b: Node, proto: int | None, dport: PortSpec,
          src_addr: str | None, dst_addr: str | None, direct: bool) -> list[Block]:
    """Every place the cloud drops this packet on its way from a's port into b's port."""
    blocks: list[Block] = []
    pa, pb = a.port, b.port
    if pa is None or pb is None:
        return blocks
    what = flow_name(facts, proto, dport, direct)
    if src_addr and not antispoof_admits(pa, src_addr):
        pairs = ", ".join(pa.pair_addresses) or "none"
        blocks.append(Block("antispoof-src", f"port {pa.label}",
                            f"port {pa.label} of {a.name} has port security on; its fixed IP is "
                            f"{', '.join(pa.ipv4s) or '?'} and its allowed-address-pairs are {pairs}, "
                            f"so a packet with a source in {src_addr} is dropped as spoofed when it leaves {a.name}",
                            a.name, pa.id, list(pa.security_group_ids)))
    if direct and dst_addr and facts.neutron.checks_destination and not antispoof_admits(pb, dst_addr):
        how = "this cloud runs OVN, which"
        blocks.append(Block("antispoof-dst", f"port {pb.label}",
                            f"port {pb.label} of {b.name} has no allowed-address-pair for {dst_addr}: {how} also "
                            "drops packets to addresses the port does not own",
                            b.name, pb.id, list(pb.security_group_ids)))
    if pa.port_security_enabled and allowing_rule(facts, pa, "egress", proto, dport, pb, dst_addr) is None:
        names = _group_names(facts, pa)
        blocks.append(Block("sg-egress", f"group {names}",
                            f"no egress rule in {names} (port {pa.label} of {a.name}) lets {what} out",
                            a.name, pa.id, list(pa.security_group_ids), _near_rules(facts, pa, "egress", proto, dport)))
    if pb.port_security_enabled and allowing_rule(facts, pb, "ingress", proto, dport, pa, src_addr) is None:
        names = _group_names(facts, pb)
        src_desc = f"{src_addr} ({a.name})" if not direct else f"pod addresses {src_addr} on {a.name}"
        near = _near_rules(facts, pb, "ingress", proto, dport)
        detail = f"no ingress rule in {names} (port {pb.label} of {b.name}) allows {what} from {src_desc}"
        if near:
            detail += f" (there is {join_near(near)}, but it does not cover {a.name}'s port)"
        blocks.append(Block("sg-ingress", f"group {names}", detail, b.name, pb.id, list(pb.security_group_ids), near))
    return blocks


def join_near(near: list[str]) -> str:
    return "; ".join(near[:2]) + (f" and {len(near) - 2} more" if len(near) > 2 else "")


def reply_blocks(facts: DoctorFacts, a: Node, b: Node, proto: int, dport: PortSpec) -> list[Block]:
    """The replies of a connection from a to b, as stateless groups see them: a packet from b back to a's
    ephemeral port, which needs its own egress rule on b and ingress rule on a."""
    if not (stateless(facts, a.port) or stateless(facts, b.port)):
        return []
    out = []
    for blk in _flow(facts, b, a, proto, dport, b.ip, a.ip, direct=False):
        if blk.code == "sg-ingress" and stateless(facts, a.port) or blk.code == "sg-egress" and stateless(facts, b.port):
            blk.code = "sg-reply"
            blk.detail = (f"the replies from {b.name} to {a.name}'s ephemeral TCP ports ({EPHEMERAL[0]}-{EPHEMERAL[1]}) "
                          f"need their own rule because the group is stateless: {blk.detail}")
            out.append(blk)
    return out


def flow_name(facts: DoctorFacts, proto: int | None, dport: PortSpec, direct: bool) -> str:
    if proto is None:
        return "pod traffic (any protocol)" if direct else "any protocol"
    if proto == IPIP_PROTO:
        return "IP protocol 4 (IPIP)"
    if proto == UDP and dport == facts.calico.vxlan_udp_port:
        return f"UDP {dport} (VXLAN)"
    if proto == TCP and dport == BGP_PORT:
        return "TCP 179 (BGP)"
    name = {TCP: "TCP", UDP: "UDP", ICMP: "ICMP"}.get(proto, f"protocol {proto}")
    if isinstance(dport, tuple):
        return f"{name} {dport[0]}-{dport[1]}"
    return f"{name} {dport}" if dport else name


# --------------------------------------------------------------------------- per-pair verdicts


@dataclass
class PathVerdict:
    src: str
    dst: str
    pool: str
    path: str | None  # direct | ipip | vxlan | bgp | None (unknown)
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
    vxlan_port = facts.calico.vxlan_udp_port
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
                    v.blocks = _flow(facts, a, b, UDP, vxlan_port, a.ip, b.ip, direct=False)
                v.ok = not v.blocks
                out.append(v)
    return out


def bgp_verdicts(facts: DoctorFacts) -> list[PathVerdict]:
    """TCP 179 between every pair: a BGP session needs one direction to connect, and with a stateless
    group the replies need their own rules too."""
    out: list[PathVerdict] = []
    for i, a in enumerate(facts.nodes):
        for b in facts.nodes[i + 1:]:
            v = PathVerdict(a.name, b.name, "(BGP)", "bgp", same_subnet(a, b), None)
            if a.port and b.port:
                ab = _flow(facts, a, b, TCP, BGP_PORT, a.ip, b.ip, direct=False) or \
                    reply_blocks(facts, a, b, TCP, EPHEMERAL)
                ba = _flow(facts, b, a, TCP, BGP_PORT, b.ip, a.ip, direct=False) or \
                    reply_blocks(facts, b, a, TCP, EPHEMERAL)
                v.ok = not ab or not ba
                v.blocks = [] if v.ok else ab
            out.append(v)
    return out
