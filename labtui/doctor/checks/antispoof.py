"""Anti-spoofing: unencapsulated pod traffic whose pod source (or destination, on OVN) a port does
not admit. Names the port that drops it and what it lacks, or the mode that sends it that way."""

from __future__ import annotations

from labtui.doctor.checks.sg_paths import ipip_note, vxlan_note
from labtui.doctor.model import DoctorFacts, pool_path
from labtui.doctor.paths import PathVerdict
from labtui.doctor.words import causes_text, join_words, one_end, pairs_text, plural, subnets_summary
from labtui.net.calico import IPPoolInfo
from labtui.net.check import antispoof_admits


def _backend_sentence(facts: DoctorFacts) -> str:
    nb = facts.neutron
    if nb.backend == "ovn":
        return ("This cloud runs OVN" + (f" (seen in its {nb.backend_source})" if nb.backend_source else "")
                + ": it checks the source at the sending port and the destination at the receiving port.")
    if nb.backend in ("ovs", "linuxbridge"):
        name = "ML2/OVS" if nb.backend == "ovs" else "ML2/linuxbridge"
        return (f"This cloud runs {name}" + (f" (seen in its {nb.backend_source})" if nb.backend_source else "")
                + ": only the sending port checks the source address.")
    return ("The cloud does not show its Neutron backend; the doctor assumes ML2/OVS, where only the sending "
            "port checks the source address (a ping towards these nodes still fails: its answers are dropped). On "
            "OVN the receiving port also drops packets to pod addresses it does not own; the fix is the same.")


def explain_direct_antispoof(pool: IPPoolInfo, facts: DoctorFacts, vs: list[PathVerdict]) -> tuple[str, str]:
    names = sorted({v.src for v in vs} | {v.dst for v in vs}, key=lambda n: [x.name for x in facts.nodes].index(n))
    subs = subnets_summary(facts, names)
    sub_text = join_words(f"{s} ({join_words(ns)})" for s, ns in subs.items())
    one_subnet = len(subs) == 1
    blamed = list(dict.fromkeys(b.node for v in vs for b in v.blocks if b.code in ("antispoof-src", "antispoof-dst")))
    needing = [n.name for n in facts.nodes if n.port and n.port.port_security_enabled
               and any(pool_path(pool, n, o) == "direct" for o in facts.nodes if o is not n)]
    every_port = set(blamed) >= set(needing)
    # the example: a failing pair whose sender's port is one that drops it
    example = next((v for v in vs if any(b.code == "antispoof-src" and b.node == v.src for b in v.blocks)), vs[0])
    a, b = facts.node(example.src), facts.node(example.dst)
    pa = a.port
    pairs = ", ".join(pa.pair_addresses) if pa and pa.pair_addresses else "none"
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
            why_mode += f"All {plural(len(names), 'node')} are on {next(iter(subs))}, so every cross-node pod packet leaves the VM that way"
        else:
            why_mode += f"The nodes are on {sub_text}, so the packets between nodes of the same subnet leave that way"
    else:
        title = f"Pod traffic leaves the nodes unencapsulated and OpenStack drops it (pool {pool.name} has no encapsulation)"
        why_mode = (f"The Calico IP pool {pool.name} ({pool.cidr}) has {pool.modes}: no encapsulation, so every "
                    f"cross-node pod packet leaves the VM with the pod's own address as its source")
    src_ip = "a pod address from " + pool.cidr
    head = (f"Pods on different nodes cannot reach each other: {pairs_text([v.pair for v in vs], len(facts.nodes))} "
            f"are affected.\n\n{why_mode} (for example from {a.name} to {b.name}: source {src_ip}, not {a.name}'s "
            f"address {a.ip}).\n\n")
    mechanism = ("OpenStack Neutron's port security (anti-spoofing) only lets a packet leave a VM's port when its "
                 "source is the port's own fixed IP or one of its allowed-address-pairs. ")
    if every_port or len(blamed) > 1:
        text = head + mechanism + (
            f"Port {pa.label if pa else '?'} of {a.name} has fixed IP {', '.join(pa.ipv4s) if pa else '?'} and "
            f"allowed-address-pairs: {pairs}. So the packet is dropped on the hypervisor (iptables: the port's source "
            f"chain ends in \"Drop traffic without an IP/MAC allow rule\"; OVN: ls_in_port_sec_ip) before it ever "
            f"reaches {b.name}. Pods on the same node still talk, because their traffic never crosses a Neutron port. "
            f"{_backend_sentence(facts)}")
        if not every_port:
            text += "\n\n" + causes_text(facts, vs, pool)
        text += (
            f"\n\nSwitching Calico to direct routing (no encapsulation) would fail for the same reason."
            f"{vxlan_note(facts, pool) or ipip_note(facts, pool)} "
            f"The fix is either to encapsulate every cross-node packet, so the outer source is the node's own address "
            f"(IPIP Always with IP protocol 4 allowed between the nodes, or VXLAN Always with UDP "
            f"{facts.calico.vxlan_udp_port}), or to let the ports send pod addresses (the pod CIDR as an "
            f"allowed-address-pair on every node port that lacks it).")
        return title, text
    # one port is the culprit: name it, and what it lacks
    culprit = facts.node(blamed[0])
    port = culprit.port
    end = one_end(vs)
    where = (f"Every failing pair {'starts' if end[0] == 'start' else 'ends'} at {culprit.name}" if end
             else f"Every failing pair starts or ends at {culprit.name}")
    others = [n for n in facts.nodes if n is not culprit and n.port and n.port.port_security_enabled]
    have = [n.name for n in others if antispoof_admits(n.port, pool.cidr)]
    title = (f"Port {port.label} of {culprit.name} lacks the pod CIDR {pool.cidr} in its allowed-address-pairs: "
             f"OpenStack drops its pods' traffic")
    text = head + mechanism + (
        f"{where}. Its port {port.label} has fixed IP {', '.join(port.ipv4s) or '?'} and allowed-address-pairs: "
        f"{', '.join(port.pair_addresses) or 'none'}: it lacks {pool.cidr}"
        + (f", which the ports of {join_words(have)} have" if have else "")
        + f". {_backend_sentence(facts)}\n\n" + causes_text(facts, vs, pool)
        + f"\n\nThe smallest fix: add the pod CIDR to that one port, "
          f"`openstack port set --allowed-address ip-address={pool.cidr} {port.ref}` (Neutron merges it with the "
          f"pairs already there).")
    return title, text
