"""MTU: Calico's pod MTU plus the tunnel's overhead against the Neutron network's MTU."""

from __future__ import annotations

import json
import shlex

from labtui.doctor.findings import Evidence, Finding, Seen
from labtui.doctor.model import ERROR, DoctorFacts, Unchecked
from labtui.doctor.paths import PathVerdict
from labtui.doctor.words import join_words, pairs_text


OVERHEAD = {"ipip": 20, "vxlan": 50, "direct": 0}


OVERHEAD_NAME = {"ipip": "IP-in-IP", "vxlan": "VXLAN", "direct": "no encapsulation"}


def mtu_findings(facts: DoctorFacts, verdicts: list[PathVerdict]) -> list[Finding]:
    """Calico's pod MTU plus the tunnel's overhead must fit the Neutron network's MTU: if not, small
    packets (ping) pass while large ones (TCP with full segments) are dropped or hang."""
    pod_mtu = facts.calico.mtu
    if not pod_mtu:
        return []
    worst: dict[str, tuple[int, list[str]]] = {}  # path -> (smallest network MTU on it, pairs)
    for v in verdicts:
        if v.path not in OVERHEAD:
            continue
        a, b = facts.node(v.src), facts.node(v.dst)
        mtus = [p.network_mtu for p in (a.port, b.port) if p is not None and p.network_mtu]
        if not mtus:
            continue
        net = min(mtus)
        if pod_mtu + OVERHEAD[v.path] > net:
            cur = worst.get(v.path)
            worst[v.path] = (min(net, cur[0]) if cur else net, (cur[1] if cur else []) + [v.pair])
    if not worst:
        return []
    net = min(m for m, _ in worst.values())
    path = max(worst, key=lambda p: OVERHEAD[p])
    need = net - max(OVERHEAD[p] for p in worst)
    pairs = [p for _, ps in worst.values() for p in ps]
    src = facts.calico.mtu_source or "Calico's configuration"
    if facts.calico.install_mode == "operator" or "Installation" in src:
        body = json.dumps({"spec": {"calicoNetwork": {"mtu": need}}}, separators=(",", ":"))
        cmds = [shlex.join(["kubectl", "patch", "installation", "default", "--type=merge", "-p", body])]
    else:
        body = json.dumps({"data": {"veth_mtu": str(need)}}, separators=(",", ":"))
        cmds = [shlex.join(["kubectl", "patch", "configmap", "calico-config", "-n", "kube-system", "--type=merge", "-p", body]),
                "kubectl rollout restart daemonset calico-node -n kube-system"]
    nets = sorted({n.port.network_name or "the node network" for n in facts.nodes if n.port and n.port.network_mtu == net})
    text = (
        f"Calico gives the pods an MTU of {pod_mtu} ({src}). Pod packets between nodes travel with "
        f"{OVERHEAD_NAME[path]} ({OVERHEAD[path]} bytes of overhead), so a full-size packet is "
        f"{pod_mtu + OVERHEAD[path]} bytes, but the Neutron network {join_words(nets)} has an MTU of {net}"
        + (" (OpenStack VXLAN tenant networks are often 1450, OVN Geneve ones 1442)" if net < 1500 else "")
        + f". Small packets such as ping pass; large ones are dropped or fragmented, so TCP transfers hang "
          f"while ping works ({pairs_text(pairs, len(facts.nodes))}).\n\n"
          f"The fix: a pod MTU of at most {net} - {max(OVERHEAD[p] for p in worst)} = {need}: "
        + " then ".join(f"`{c}`" for c in cmds)
        + ". Pods created before keep their old MTU until they are re-created.")
    ev = [Evidence("kube", f"Calico MTU {pod_mtu} ({src})")]
    ev += [Evidence("neutron", f"{n.name}: port {n.port.label} on network {n.port.network_name or '?'} with MTU {n.port.network_mtu}")
           for n in facts.nodes if n.port and n.port.network_mtu]
    return [Finding("mtu-too-large", ERROR, f"Calico's MTU {pod_mtu} is too large for the network's {net} with "
                    f"{OVERHEAD_NAME[path]}", text, pairs, ev, nodes=sorted({x for p in pairs for x in p.split('->')}))]



def pod_mtu(seen: Seen) -> list[Finding | Unchecked]:
    """The pod MTU against the network's."""
    return list(mtu_findings(seen.facts, seen.verdicts))
