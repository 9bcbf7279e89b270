"""What Calico and kubeadm need from the cloud network, and whether a cloud gives it. Pure: no I/O.

Three parts, each usable alone and in its own module (the cloud wizard, `labtui cloud check`,
the Security screen, the provision stage and the doctor share them; every name is importable
from here too):

1. **Network facts** (labtui.net.model: `SGRule`, `SecurityGroup`, `NodePort`, `LabNode`, `LabNetwork`): the lab as
   the cloud shows it. `labtui.adapters.openstack.discover()` fills them from Neutron and Nova; tests and the
   doctor may build them by hand.
2. **Requirements** (labtui.net.requirements: `CalicoNetworking`, `derive_requirements`): from the encapsulation (IPIP or
   VXLAN, Always or CrossSubnet, or none), BGP on or off, Typha on or off and the node roles,
   every flow the cloud must let through, each with its reason in plain words
   (facts: domain.md sections 0, 2 and 4).
3. **Evaluation** (this module: `evaluate` -> `Report`): each requirement is *satisfied* (and by which rule:
   an exact rule, an any-protocol rule, a prefix covering every node, port security off),
   *missing*, or *suspicious* (a rule with protocol `ipip`, a prefix that misses some nodes,
   egress rules removed), with the fixes (`RuleFix`, `PairsFix`, `PortSecurityFix`) that would
   satisfy it (labtui.net.fixes). Fixes carry the exact `openstack ...` command and the API request.
   The per-packet tests under it are the one rule evaluator the doctor reasons with too:
   `antispoof_admits` (may this source leave this port?), `remote_admits`, `rule_carries`,
   `rule_admits` and `admitting_rule` (does this port's group set let protocol P to these ports in
   from, or out to, this peer's port and address?).

Calico *cluster* reading (pools, Installation, calico-node) lives in labtui.adapters.calico and
labtui.net.calico; this module only needs the encapsulation, BGP and Typha flags from them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Iterable

from labtui.net.fixes import Fix, PairsFix, PortSecurityFix, RuleFix
from labtui.net.model import LabNetwork, NodePort, SecurityGroup, SGRule
from labtui.net.requirements import (
    CalicoNetworking,
    NodeRef,
    Requirement,
    derive_requirements,
)

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
        seen: set[tuple[Any, ...]] = set()
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


@lru_cache(maxsize=4096)
def address_covers(prefix: str | None, target: str | None) -> bool:
    """Does `prefix` (an IP or a CIDR) hold the whole of `target` (an IP or a CIDR)?"""
    p, t = _net(prefix), _net(target)
    if p is None or t is None or p.version != t.version:
        return False
    return t.subnet_of(p)  # type: ignore[arg-type]


def owns_address(port: NodePort, address: str) -> bool:
    """Is `address` (IP or CIDR) one of the port's fixed IPs or inside one of its allowed-address-pairs?"""
    return any(address_covers(ip, address) for ip in port.ips) or any(
        address_covers(a, address) for a in port.pair_addresses)


def antispoof_admits(port: NodePort, address: str) -> bool:
    """The one anti-spoofing test: does Neutron let a packet with this source (IP or CIDR) leave the
    port (OVN: also one to this destination enter it)? Always, with port security off."""
    return not port.port_security_enabled or owns_address(port, address)


def remote_admits(rule: SGRule, peer_port: NodePort | None, peer_addr: str | None) -> str | None:
    """Does the rule's remote side cover the peer (the sender for ingress, the receiver for egress)?
    "group", "prefix", "any" (no remote side) or None. A remote group stands for its members' fixed IPs
    and allowed-address-pairs; a port with port security off is in no group."""
    if rule.remote_group_id:
        if peer_port is None or not peer_port.port_security_enabled \
                or rule.remote_group_id not in peer_port.security_group_ids:
            return None
        return "group" if not peer_addr or owns_address(peer_port, peer_addr) else None
    if rule.remote_ip_prefix:
        return "prefix" if peer_addr and address_covers(rule.remote_ip_prefix, peer_addr) else None
    return "any"


def rule_carries(rule: SGRule, protocol: str | None, ports: tuple[int, int] | None = None) -> bool:
    """Does the rule carry this protocol ("4", "tcp", "udp", "icmp", a number; None: every protocol,
    which only an any-protocol rule carries) to these destination ports (None: every port)? A rule
    named 'ipip' carries protocol 4 here (callers flag it apart)."""
    how = protocol_admits(rule.protocol, protocol)
    if how is None:
        return False
    if how == "any" or protocol not in ("tcp", "udp"):
        return True
    lo, hi = ports or (1, 65535)
    return ports_cover(rule.port_range_min, rule.port_range_max, lo, hi)


def rule_admits(rule: SGRule, direction: str, protocol: str | None, ports: tuple[int, int] | None,
                peer_port: NodePort | None, peer_addr: str | None) -> bool:
    """The one rule test: does this IPv4 rule let the packet through in `direction`, from (ingress) or
    to (egress) the peer's port and address?"""
    if rule.direction != direction or (rule.ether_type or "IPv4") != "IPv4":
        return False
    return rule_carries(rule, protocol, ports) and remote_admits(rule, peer_port, peer_addr) is not None


def admitting_rule(groups: dict[str, SecurityGroup], port: NodePort, direction: str, protocol: str | None,
                   ports: tuple[int, int] | None, peer_port: NodePort | None,
                   peer_addr: str | None) -> tuple[SecurityGroup, SGRule] | None:
    """Does the group set on `port` admit protocol P to ports from (ingress) / to (egress) the peer at
    `peer_addr`, given the peer's port (its groups, fixed IPs and pairs)? The first (group, rule) that
    does, else None. (Port security off filters nothing: callers check that first.)"""
    for gid in port.security_group_ids:
        g = groups.get(gid)
        for r in (g.rules if g else []):
            if g is not None and rule_admits(r, direction, protocol, ports, peer_port, peer_addr):
                return g, r
    return None


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
        out: list[tuple[SGRule, SecurityGroup]] = []
        for gid in port.security_group_ids:
            g = self.groups.get(gid)
            for r in (g.rules if g else []):
                if g is not None and r.direction == "ingress" and r.ether_type == ether:
                    out.append((r, g))
        return out

    def members(self, group_id: str) -> list[NodePort]:
        return [n.port for n in self.lab.nodes if n.found and n.port and group_id in n.port.security_group_ids]

    def source_match(self, rule: SGRule, src: str) -> str | None:
        """How `rule` admits traffic from source `src` (a node name, or "pod-cidr")."""
        pod = self.net.pod_cidr
        if src == "pod-cidr":
            if rule.remote_group_id:
                members = self.members(rule.remote_group_id)
                ok = pod is not None and _net(pod) is not None and members and all(antispoof_admits(p, pod) for p in members)
                return "group" if ok else None
            return "prefix" if address_covers(rule.remote_ip_prefix or ANY_IPV4, pod) else None
        node = self.nodes.get(src)
        ip = node.ip if node else None
        if not rule.remote_group_id and not ip:
            return None
        how = remote_admits(rule, self.port(src), ip)
        return "prefix" if how == "any" else how

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
            r, g, _, miss = partial[0]
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
            base: dict[str, Any] = dict(security_group_id=gid, security_group_name=name, protocol=req.protocol,
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
            cover = [n for n in nets if n is not None and n.version == pod.version and pod.subnet_of(n)]  # type: ignore[arg-type]  # same version, checked just before
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


def _unique(items: Iterable[Match]) -> list[Match]:
    out: list[Match] = []
    seen: set[tuple[Any, ...]] = set()
    for m in items:
        key = (m.how, m.text)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def _unique_fixes(items: Iterable[Fix]) -> list[Fix]:
    out: list[Fix] = []
    seen: set[tuple[Any, ...]] = set()
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
