"""The live proof against the reasoning: pairs that fail for no reason found in the configuration,
and pairs that answer although the configuration says they should not."""

from __future__ import annotations

from labtui.doctor.findings import Evidence, Finding, Seen
from labtui.doctor.model import ERROR, INFO, Unchecked
from labtui.doctor.paths import PathVerdict
from labtui.doctor.words import capture_evidence, join_words, plural


def probe_matrix(seen: Seen) -> list[Finding | Unchecked]:
    """Compare the probe pods' matrix with the per-pair verdicts."""
    facts, verdicts = seen.facts, seen.verdicts
    findings: list[Finding | Unchecked] = []
    if facts.matrix is not None:
        by_pair: dict[str, list[PathVerdict]] = {}
        for v in verdicts:
            by_pair.setdefault(v.pair, []).append(v)
        order = {n.name: i for i, n in enumerate(facts.nodes)}
        matrix = sorted(facts.matrix, key=lambda p: (order.get(p.src, 99), order.get(p.dst, 99)))
        facts.matrix[:] = matrix
        # a ping (or a TCP connect) needs its answer too: a failure is explained by either direction
        unexplained = [p for p in matrix if not p.ok and all(
            v.ok is not False for v in by_pair.get(f"{p.src}->{p.dst}", []) + by_pair.get(f"{p.dst}->{p.src}", []))]
        contradicted = [p for p in matrix if p.ok and any(v.ok is False for v in by_pair.get(f"{p.src}->{p.dst}", []))]
        if unexplained:
            unknown = [v for p in unexplained for v in by_pair.get(f"{p.src}->{p.dst}", []) if v.ok is None]
            if unknown:
                paths = sorted({v.path or "an unknown path" for v in unknown})
                direct = "direct" in paths
                title = "Pods cannot reach each other across nodes (the cloud side was not checked)"
                text = (f"The probe pods could not ping each other on {plural(len(unexplained), 'node pair')}. "
                        f"Under the live pool mode these packets take the {join_words(paths)} path. "
                        + ("Direct pod traffic carries pod source addresses, which OpenStack's anti-spoofing drops "
                           "unless every node port has the pod CIDR as an allowed-address-pair: the incident's cause. "
                           if direct else
                           "Encapsulated traffic needs the security groups to allow it between the nodes (IP protocol 4 "
                           "for IPIP, UDP 4789 for VXLAN). ")
                        + "The doctor could not read the cloud's ports and security groups to confirm it: run it with "
                          "--cloud NAME (clouds.yaml) for the full diagnosis and the fix.")
            else:
                title = "Pods cannot reach each other on some node pairs, for a reason not found in the configuration"
                text = ("The probe pods could not ping each other, although the pool mode, the ports and the security "
                        "groups should let the packets through. Look at the capture, calico-node's logs, and host "
                        "firewalls on the nodes.")
            findings.append(Finding(
                "probe-failed", ERROR, title, text,
                [f"{p.src}->{p.dst}" for p in unexplained],
                [Evidence("probe", f"{p.src} ({p.src_ip}) -> {p.dst} ({p.dst_ip}): {p.detail or 'no reply'}") for p in unexplained]
                + capture_evidence(facts)))
        if contradicted:
            findings.append(Finding(
                "probe-contradicts", INFO, "Some pairs answered although the configuration says they should not",
                "The cloud may not enforce port security the way Neutron's API describes (e.g. a driver without "
                "anti-spoofing), or the facts are stale. Re-run the doctor.",
                [f"{p.src}->{p.dst}" for p in contradicted],
                [Evidence("probe", f"{p.src} -> {p.dst}: {p.detail or 'replies'}") for p in contradicted]))
    return findings
