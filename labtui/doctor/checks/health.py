"""The nodes' health as Kubernetes and the node see it: calico-node ready, the node Ready, and the
node's own subnet against Neutron's."""

from __future__ import annotations

from labtui.doctor.findings import Evidence, Finding, Seen
from labtui.doctor.model import ERROR, INFO, WARNING, Unchecked, network_of, node_subnet
from labtui.doctor.words import join_words, node_evidence


def calico_node(seen: Seen) -> list[Finding | Unchecked]:
    """calico-node not ready on some nodes."""
    facts = seen.facts
    n_nodes = len(facts.nodes)
    findings: list[Finding | Unchecked] = []
    sick = [n for n in facts.nodes if n.calico_ready is False]
    if sick:
        findings.append(Finding(
            "calico-node-not-ready", ERROR if len(sick) == n_nodes else WARNING,
            f"calico-node is not ready on {join_words(n.name for n in sick)}",
            "calico-node programs the routes and tunnels on its node; while it is not ready, pods on that node "
            "may not reach other nodes. Other findings here (BGP blocked, a wrong mode) often explain it; "
            "otherwise read its log.",
            [], [Evidence("kube", f"{n.name}: calico-node pod {n.calico_pod or '?'} not ready"
                                  + (f", {n.calico_restarts} restarts" if n.calico_restarts else "")) for n in sick],
            nodes=[n.name for n in sick]))
    return findings


def node_ready(seen: Seen) -> list[Finding | Unchecked]:
    """Kubernetes nodes that are NotReady."""
    facts = seen.facts
    findings: list[Finding | Unchecked] = []
    not_ready = [n for n in facts.nodes if n.k8s_ready is False]
    if not_ready:
        findings.append(Finding(
            "node-not-ready", WARNING, f"Kubernetes node {join_words(n.name for n in not_ready)} is NotReady",
            "A NotReady node runs no new pods; the doctor's path reasoning still applies to it.",
            [], [Evidence("kube", f"{n.name}: Ready=False") for n in not_ready], nodes=[n.name for n in not_ready]))
    return findings


def subnet_mismatch(seen: Seen) -> list[Finding | Unchecked]:
    """The node and Neutron disagree on a node's subnet."""
    facts = seen.facts
    findings: list[Finding | Unchecked] = []
    for n in facts.nodes:
        sub, where = node_subnet(n)
        if n.port and n.port.subnet_cidr and sub and network_of(sub) != network_of(n.port.subnet_cidr):
            findings.append(Finding(
                f"subnet-mismatch:{n.name}", INFO, f"{n.name}: the node and Neutron disagree on its subnet",
                f"{where} says {sub}, Neutron says {n.port.subnet_cidr}. Calico decides CrossSubnet from the node's "
                f"own view ({sub}).", [], node_evidence(facts, [n.name]), nodes=[n.name]))
    return findings
