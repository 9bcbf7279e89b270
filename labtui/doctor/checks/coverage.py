"""What the doctor could not look at: nodes that are not servers of this cloud, a lab without nodes,
a cluster without an enabled IPv4 pool."""

from __future__ import annotations

from labtui.doctor.findings import Evidence, Finding, Seen
from labtui.doctor.model import ERROR, Unchecked, active_pools
from labtui.doctor.words import join_words


def portless_nodes(seen: Seen) -> list[Finding | Unchecked]:
    """Nodes with no Neutron port in this cloud: their filtering was not checked."""
    facts = seen.facts
    findings: list[Finding | Unchecked] = []
    portless = [n.name for n in facts.nodes if n.port is None]
    if portless and facts.sources.get("cloud"):
        findings.append(Unchecked("cloud:ports", f"the cloud side of {join_words(portless)}",
                                   "no Neutron port with that node's address in this cloud",
                                   "if these machines are elsewhere, their network's filtering was not checked"))
    return findings


def nodes_and_pools(seen: Seen) -> list[Finding | Unchecked]:
    """No nodes at all, or no enabled IPv4 pool."""
    facts = seen.facts
    findings: list[Finding | Unchecked] = []
    if not facts.nodes:
        findings.append(Unchecked("nodes", "anything", "the lab has no nodes", "add nodes to the plan or pass --nodes / --inventory"))
    elif facts.sources.get("kube") and not active_pools(facts):
        findings.append(Finding("no-pool", ERROR, "No enabled IPv4 Calico IP pool",
                                "The cluster has no enabled IPv4 IPPool, so pods get no addresses from Calico. "
                                "Is Calico installed?", [], [Evidence("kube", f"pools: {[p.name for p in facts.pools] or 'none'}")]))
    return findings
