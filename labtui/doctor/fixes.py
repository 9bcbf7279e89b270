"""Fix options: plans of `FixAction`s, each checked by simulating it on the facts, then ranked.

The options: 1 IPIP Always + IP protocol 4, 2 VXLAN Always + UDP (Felix's VXLAN port), 3 the pod CIDR
as allowed-address-pairs on the node ports that lack it, 4 port security off. Each plan holds only
what is missing (a rule the group already has is never added again) in a safe order (open the
network first, then switch the pool), each action with its revert. The ranking is what the
simulation knows: every path passing first, then the fewest changes, then the least disruptive
(no tunnel-type switch, no port security off; port security off always last). An option the cloud
cannot do (no allowed-address-pairs or port-security extension) is offered as not possible, with why.
"""

from __future__ import annotations

import json
import shlex
from typing import Callable, Iterable

from labtui.doctor.findings import Diagnosis, Finding, FixAction, FixOption
from labtui.doctor.model import (
    BGP_PORT,
    ERROR,
    TCP,
    WARNING,
    DoctorFacts,
    Node,
    active_pools,
    bird_runs,
    pool_path,
    same_subnet,
)
from labtui.doctor.paths import EPHEMERAL, PathVerdict, reply_blocks, bgp_verdicts, pair_verdicts
from labtui.doctor.words import join_words, plural
from labtui.model import Encapsulation
from labtui.net.calico import IPPoolInfo
from labtui.net.check import antispoof_admits
from labtui.net.fixes import PairsFix, PortSecurityFix, RuleFix, in_effect, same_rule
from labtui.net.model import NodePort, SecurityGroup, SGRule

# Diagnose facts again without options (the simulation of a plan): labtui.doctor.reason.diagnose
Rediagnose = Callable[[DoctorFacts], Diagnosis]

# the findings about pod paths that a fix option addresses
TRAFFIC_FINDINGS = ("crosssubnet-antispoofing", "direct-antispoofing", "ipip-blocked", "vxlan-blocked",
                    "direct-unroutable", "direct-sg-blocked", "bgp-blocked", "ipip-without-bgp")


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


def node_group(facts: DoctorFacts) -> str | None:
    """A group every node port is in (the natural home for node-to-node rules)."""
    ports = [n.port for n in facts.nodes if n.port and n.port.port_security_enabled]
    if not ports:
        return None
    common = set(ports[0].security_group_ids)
    for p in ports[1:]:
        common &= set(p.security_group_ids)
    for gid in ports[0].security_group_ids:  # keep the port's order
        if gid in common:
            return gid
    return None


def _pairs_action(port: NodePort, node: str, cidr: str) -> FixAction:
    target = f"port {port.label} ({node})"
    fix = PairsFix(port_id=port.id, port_name=target, node=node, cidr=cidr, existing=tuple(port.pair_addresses),
                   port_ref=port.ref)
    return FixAction(
        id=f"port-pairs:{port.id}:{cidr}", kind="port-pairs", layer="openstack", target=target,
        title=f"add {cidr} to the allowed-address-pairs of {node}'s port {port.label} (merged with "
              f"{len(port.allowed_address_pairs)} existing)",
        command=fix.command(), revert=fix.revert_command(), params={"port_id": port.id, "node": node, "cidr": cidr,
                                                                    "existing": port.pair_addresses}, order=1,
        fix=fix)


def _portsec_action(facts: DoctorFacts, port: NodePort, node: str) -> FixAction:
    fix = PortSecurityFix(port_id=port.id, port_name=f"port {port.label} ({node})", node=node, port_ref=port.ref,
                          security_group_ids=tuple(port.security_group_ids),
                          security_group_names=tuple(_ref_group(facts, g) for g in port.security_group_ids),
                          allowed_address_pairs=tuple((p, None) for p in port.pair_addresses))
    return FixAction(
        id=f"port-security-off:{port.id}", kind="port-security-off", layer="openstack",
        target=f"port {port.label} ({node})",
        title=f"turn port security off on {node}'s port {port.label} (removes its groups "
              f"{', '.join(_ref_group(facts, g) for g in port.security_group_ids) or 'none'})",
        command=fix.command(), revert=fix.revert_command(),
        params={"port_id": port.id, "node": node, "security_groups": list(port.security_group_ids),
                "allowed_address_pairs": port.pair_addresses}, order=1, risk="destructive", fix=fix)


def _pool_action(facts: DoctorFacts, pool: IPPoolInfo, ipip: str, vxlan: str) -> FixAction:
    enc = Encapsulation.from_pool_modes(ipip, vxlan).value
    old_enc = Encapsulation.from_pool_modes(pool.ipip_mode, pool.vxlan_mode).value
    if pool.operator_managed or facts.calico.install_mode == "operator":
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


def _rule_action(facts: DoctorFacts, gid: str, proto: str | None, port: int | None,
                 remote_group: str | None, remote_ip: str | None, why: str, *,
                 port_max: int | None = None, direction: str = "ingress") -> FixAction:
    gref = _ref_group(facts, gid)
    hi = port_max if port_max is not None else port
    rule = RuleFix(security_group_id=gid, security_group_name=gref, protocol=proto, port_range_min=port,
                   port_range_max=hi, remote_group_id=remote_group,
                   remote_group_name=_ref_group(facts, remote_group) if remote_group else None,
                   remote_ip_prefix=None if remote_group else remote_ip, direction=direction, description=why,
                   requirement="doctor")
    label = {None: "any protocol", "4": "IP protocol 4 (IPIP)", "udp": "UDP", "tcp": "TCP"}.get(proto, str(proto))
    if port is not None:
        label += " " + (str(port) if hi == port else f"{port}-{hi}")
    src = f"members of {_ref_group(facts, remote_group)}" if remote_group else (remote_ip or "anywhere")
    params = {"security_group_id": gid, "group_name": gref, "direction": direction, "ethertype": "IPv4",
              "protocol": proto, "port_range_min": port, "port_range_max": hi, "remote_group_id": remote_group,
              "remote_ip_prefix": None if remote_group else remote_ip, "description": why}
    key = f"{gid}:{proto}:{port}:{remote_group or remote_ip}" + (f":{hi}" if hi != port else "") \
        + (f":{direction}" if direction != "ingress" else "")
    verb = "allow" if direction == "ingress" else "allow out"
    word = "from" if direction == "ingress" else "to"
    return FixAction(
        id=f"sg-rule:{key}", kind="sg-rule", layer="openstack", target=f"security group {gref}",
        title=f"{verb} {label} {word} {src} {'into' if direction == 'ingress' else 'in'} {gref}",
        command=rule.command(), revert=rule.revert_command(), params=params, order=0, fix=rule)


def _rule_exists(facts: DoctorFacts, act: FixAction) -> bool:
    """Does the group already hold exactly this rule, in effect? (Then it is never suggested again.)"""
    want = act.fix
    assert isinstance(want, RuleFix)
    g = facts.groups.get(want.security_group_id)
    return any(same_rule(r, want) and in_effect(r) for r in (g.rules if g else []))


def network_actions(facts: DoctorFacts, number: int) -> list[FixAction]:
    """The OpenStack changes that make every pair's path pass, for facts already in the target mode."""
    actions: dict[str, FixAction] = {}
    home = node_group(facts)
    bird = bird_runs(facts)

    def group_of(port: NodePort) -> str | None:
        ids = port.security_group_ids
        return home if home in ids else (ids[0] if ids else None)

    def add(act: FixAction) -> None:
        if not _rule_exists(facts, act):
            actions.setdefault(act.id, act)

    def add_rule(b: Node, a: Node, proto: str | None, port: int | None, remote_ip: str | None, why: str,
                 port_max: int | None = None, direction: str = "ingress") -> None:
        """A rule on `b`'s port for traffic from `a` (ingress), or on `a`'s port towards `b` (egress)."""
        own, peer = (b, a) if direction == "ingress" else (a, b)
        po, pp = own.port, peer.port
        if po is None or not po.port_security_enabled:
            return
        gid = group_of(po)
        if gid is None:
            return
        if remote_ip is None and pp is not None and pp.port_security_enabled and pp.security_group_ids:
            act = _rule_action(facts, gid, proto, port, group_of(pp), None, why, port_max=port_max, direction=direction)
            if _rule_exists(facts, act):  # the group rule is there, but the peer is not covered by it
                act = _rule_action(facts, gid, proto, port, None, f"{peer.ip}/32" if peer.ip else None, why,
                                   port_max=port_max, direction=direction)
        else:
            act = _rule_action(facts, gid, proto, port, None, remote_ip or (f"{peer.ip}/32" if peer.ip else None), why,
                               port_max=port_max, direction=direction)
        add(act)

    if number == 4:
        for n in facts.nodes:
            if n.port and n.port.port_security_enabled:
                a = _portsec_action(facts, n.port, n.name)
                actions[a.id] = a
        return sorted(actions.values(), key=lambda x: x.order)

    vport = facts.calico.vxlan_udp_port
    for v in pair_verdicts(facts):
        if v.ok is not False:
            continue
        a, b = facts.node(v.src), facts.node(v.dst)
        pool = next(p for p in facts.pools if p.name == v.pool)
        codes = {blk.code for blk in v.blocks}
        spec = {"ipip": ("4", None, "Calico IPIP between the nodes (labtui doctor)"),
                "vxlan": ("udp", vport, "Calico VXLAN between the nodes (labtui doctor)")}.get(v.path or "")
        if spec:
            for direction in ("ingress", "egress"):
                if f"sg-{direction}" in codes:
                    add_rule(b, a, spec[0], spec[1], None, spec[2], direction=direction)
        elif v.path == "direct":
            for node, code in ((a, "antispoof-src"), (b, "antispoof-dst")):
                if code in codes and node.port is not None:
                    act = _pairs_action(node.port, node.name, pool.cidr)
                    actions.setdefault(act.id, act)
            if "sg-ingress" in codes:
                add_rule(b, a, None, None, pool.cidr, "Calico pod traffic between the nodes (labtui doctor)")
            if "sg-egress" in codes:
                add_rule(b, a, None, None, pool.cidr, "Calico pod traffic between the nodes (labtui doctor)",
                         direction="egress")
    if bird:
        for v in bgp_verdicts(facts):
            if v.ok is not False:
                continue
            a, b = facts.node(v.src), facts.node(v.dst)
            codes = {blk.code for blk in v.blocks}
            for direction in ("ingress", "egress"):
                if f"sg-{direction}" in codes:
                    add_rule(b, a, "tcp", BGP_PORT, None, "Calico BGP between the nodes (labtui doctor)",
                             direction=direction)
            if any(blk.node == a.name for blk in reply_blocks(facts, a, b, TCP, EPHEMERAL)):
                # a stateless group: the replies come back to an ephemeral port and need their own rule
                add_rule(a, b, "tcp", EPHEMERAL[0], None, "replies to Calico BGP, stateless group (labtui doctor)",
                         port_max=EPHEMERAL[1])
    if number == 3:  # every node port that sends pod traffic directly gets the pairs, also the ones fine today
        for n in facts.nodes:
            for pool in active_pools(facts):
                if n.port and n.port.port_security_enabled and not antispoof_admits(n.port, pool.cidr) and any(
                        pool_path(pool, n, o) == "direct" for o in facts.nodes if o is not n):
                    act = _pairs_action(n.port, n.name, pool.cidr)
                    actions.setdefault(act.id, act)
    return sorted(actions.values(), key=lambda x: (x.order, x.id))


def simulate(facts: DoctorFacts, actions: Iterable[FixAction]) -> DoctorFacts:
    """The facts as they would be after the actions (used to check a plan before offering it). The live
    proof (matrix, capture) is of the facts before: it is left out, not carried into the simulation."""
    f = facts.copy()
    f.matrix, f.captures = None, []
    ports = {n.port.id: n.port for n in f.nodes if n.port}
    for act in actions:
        p = act.params
        if act.kind == "sg-rule":
            gid = p["security_group_id"]
            g = f.groups.setdefault(gid, SecurityGroup(gid, gid))
            g.rules.append(SGRule(id="(new)", security_group_id=gid, direction=p.get("direction") or "ingress",
                                  ether_type="IPv4", protocol=p["protocol"], port_range_min=p["port_range_min"],
                                  port_range_max=p["port_range_max"], remote_group_id=p["remote_group_id"],
                                  remote_ip_prefix=p["remote_ip_prefix"]))
        elif act.kind == "port-pairs":
            port = ports.get(p["port_id"])
            if port and p["cidr"] not in port.pair_addresses:
                port.allowed_address_pairs.append({"ip_address": p["cidr"]})
        elif act.kind == "port-security-off":
            port = ports.get(p["port_id"])
            if port:
                port.port_security_enabled, port.security_group_ids, port.allowed_address_pairs = False, [], []
        elif act.kind in ("pool-mode", "installation-encapsulation"):
            for pool in f.pools:
                if pool.name == p["pool"]:
                    pool.ipip_mode, pool.vxlan_mode = p["ipipMode"], p["vxlanMode"]
    return f


def _family(modes: tuple[str, str]) -> str:
    ipip, vxlan = modes
    return "ipip" if ipip != "Never" else ("vxlan" if vxlan != "Never" else "none")


def disruption(facts: DoctorFacts, opt: FixOption) -> int:
    """0 cloud changes only; 1 a mode change within one tunnel type (CrossSubnet -> Always) or turning
    encapsulation on; 2 a switch of tunnel type (IPIP <-> VXLAN) or turning it off; 3 port security off."""
    if any(a.kind == "port-security-off" for a in opt.actions):
        return 3
    worst = 0
    for p in active_pools(facts):
        cur = (p.ipip_mode.replace("Off", "Never"), p.vxlan_mode)
        tgt = opt.target_modes.get(p.name, cur)
        if tgt == cur:
            continue
        a, b = _family(cur), _family(tgt)
        worst = max(worst, 1 if a == b or a == "none" else 2)
    return worst


def _support_reason(facts: DoctorFacts, number: int) -> str | None:
    """Why the cloud cannot do this option at all (its extensions), or None."""
    nb = facts.neutron
    if number == 3 and nb.supports("allowed-address-pairs") is False:
        return ("this cloud has no allowed-address-pairs extension (GET /v2.0/extensions does not list it), so "
                "Neutron refuses allowed-address-pairs on ports")
    if number == 4 and nb.supports("port-security") is False:
        return ("this cloud has no port-security extension (GET /v2.0/extensions does not list it): port security "
                "cannot be turned off on a port")
    return None


def _path_failures(diag: Diagnosis) -> list[PathVerdict]:
    return [v for v in diag.verdicts + diag.bgp if v.ok is False]


def fix_options(diag: Diagnosis, rediagnose: Rediagnose) -> list[FixOption]:
    """Every option, simulated on the facts (`rediagnose`), ranked: every path passing first, then the
    fewest changes, then the least disruptive (no tunnel-type switch, no port security off)."""
    facts = diag.facts
    traffic = [f for f in diag.findings if f.severity == ERROR and (
        f.id.split(":")[0] in TRAFFIC_FINDINGS)]
    if not traffic or not active_pools(facts):
        return []
    before = {f.id for f in diag.findings if f.severity == ERROR}
    options: list[FixOption] = []
    bird = bird_runs(facts)
    no_sec = [n.name for n in facts.nodes if n.port and not n.port.port_security_enabled]
    keys: dict[int, tuple] = {}
    after_ids: dict[int, set[str]] = {}
    for number in (1, 2, 3, 4):
        key, title, summary, why, trade = OPTION_TEXT[number]
        modes = _target_modes(facts, number)
        target = _with_modes(facts, modes)
        opt = FixOption(number, key, title, summary, why, trade, target_modes=modes,
                        discouraged=number == 4)
        if number == 2 and facts.calico.vxlan_udp_port != 4789:
            opt.title = opt.title.replace("UDP 4789", f"UDP {facts.calico.vxlan_udp_port}")
            opt.summary = opt.summary.replace("UDP 4789", f"UDP {facts.calico.vxlan_udp_port} (Felix's VXLAN port)")
        if number == 1 and bird is False:
            opt.available = False
            opt.unavailable_reason = (f"IPIP needs Calico's BGP (bird) to distribute routes, and this cluster runs "
                                      f"backend {facts.calico.backend or 'without BGP'}")
        if number == 4 and not any(n.port and n.port.port_security_enabled for n in facts.nodes):
            opt.available = False
            opt.unavailable_reason = "port security is already off on every node port"
        reason = _support_reason(facts, number)
        if reason:
            opt.available = False
            opt.unavailable_reason = reason
        if number == 3 and no_sec:
            opt.why += (f" Port security is off on the port of {join_words(no_sec)}: anti-spoofing does not act there, "
                        f"and Neutron refuses allowed-address-pairs on such a port, so it gets none.")
        net = network_actions(target, number)
        calico = [_pool_action(facts, p, *modes[p.name]) for p in active_pools(facts)
                  if modes[p.name] != (p.ipip_mode.replace("Off", "Never"), p.vxlan_mode)]
        opt.actions = sorted(net + calico, key=lambda a: (a.order, a.id))
        pairs = [a for a in opt.actions if a.kind == "port-pairs"]
        sending = [n for n in facts.nodes if n.port and n.port.port_security_enabled]
        if number == 3 and pairs and len({a.params["port_id"] for a in pairs}) < len(sending):
            ports = list(dict.fromkeys(a.params["node"] for a in pairs))
            opt.title = (f"The pod CIDR as an allowed-address-pair on the port of {join_words(ports)} "
                         f"(the other node ports have it)")
        after = rediagnose(simulate(facts, opt.actions))
        left = _path_failures(after)
        new_errors = [f for f in after.findings if f.severity == ERROR and f.id not in before
                      and f.id.split(":")[0] not in TRAFFIC_FINDINGS]
        if opt.available:
            if not opt.actions:
                opt.available = False
                opt.unavailable_reason = "nothing to change for this option, yet the problem remains"
            elif left:
                first = left[0]
                opt.available = False
                opt.unavailable_reason = ("a simulation of this plan still leaves "
                                          f"{plural(len(left), 'path')} blocked: "
                                          f"{first.blocks[0].detail if first.blocks else first.pair}")
        opt.expected = _expected(after, left, new_errors)
        after_ids[number] = {f.id for f in after.findings if f.severity in (ERROR, WARNING)}
        keys[number] = (not opt.available, len(left), opt.discouraged, bool(new_errors), len(opt.actions),
                        disruption(facts, opt), number)
        options.append(opt)
    for rank, o in enumerate(sorted(options, key=lambda o: keys[o.number]), 1):
        o.rank = rank
    diag.after_ids = after_ids  # what each simulated plan leaves, for link_fixes
    first_ok = min((o for o in options if o.available and not o.discouraged), key=lambda o: o.rank, default=None)
    if first_ok:
        first_ok.recommended = True
    return sorted(options, key=lambda o: o.rank)


def _expected(after: Diagnosis, left: list[PathVerdict], new_errors: list[Finding]) -> str:
    """What the simulation says: never "every path passes" and "still blocked" at once."""
    pods = after.verdicts
    n_ok = sum(1 for v in pods if v.ok)
    bgp_left = [v for v in left if v.path == "bgp"]
    if not left:
        text = f"after this plan the doctor expects every pod path to pass ({n_ok} of {len(pods)})"
    else:
        text = (f"after this plan the doctor expects {n_ok} of {len(pods)} pod paths to pass"
                + (f" and {plural(len(bgp_left), 'BGP session')} to stay blocked" if bgp_left else "")
                + f"; still blocked: {left[0].blocks[0].detail if left[0].blocks else left[0].pair}")
    if new_errors:
        text += "; but it brings a new problem: " + join_words(f.title for f in new_errors)
    return text


def link_fixes(diag: Diagnosis, rediagnose: Rediagnose) -> None:
    """Which options clear which finding (by simulating each option)."""
    known = diag.after_ids
    for opt in diag.options:
        if not opt.available:
            continue
        still = known.get(opt.number)
        if still is None:
            still = {f.id for f in rediagnose(simulate(diag.facts, opt.actions)).findings
                     if f.severity in (ERROR, WARNING)}
        for f in diag.findings:
            if f.severity in (ERROR, WARNING) and f.id not in still:
                f.fixes.append(opt.number)
    for f in diag.findings:
        f.fixes.sort(key=lambda n: next(o.rank for o in diag.options if o.number == n))


def ordered_actions(option: FixOption) -> list[FixAction]:
    """The safe order: security groups, then ports, then the Calico switch (the network is open before
    any packet takes the new path)."""
    return sorted(option.actions, key=lambda a: (a.order, a.id))
