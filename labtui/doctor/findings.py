"""What the doctor says: findings with their evidence, fix options with their actions, the diagnosis.

Data only (the checks that raise findings are in labtui.doctor.checks, the options are built in
labtui.doctor.fixes, the diagnosis is put together by labtui.doctor.reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from labtui.doctor.model import ERROR, WARNING, DoctorFacts, Unchecked, active_pools, to_plain
from labtui.doctor.paths import PathVerdict
from labtui.net.fixes import Fix


@dataclass
class Evidence:
    source: str  # "kube" | "neutron" | "ssh:node1" | "probe" | "tcpdump" | "bird"
    text: str


@dataclass
class Finding:
    id: str
    severity: str
    title: str
    explanation: str
    pairs: list[str] = field(default_factory=list)  # "node1->node2"
    evidence: list[Evidence] = field(default_factory=list)
    fixes: list[int] = field(default_factory=list)  # numbers of the FixOptions that clear it
    pool: str | None = None
    nodes: list[str] = field(default_factory=list)



@dataclass
class FixAction:
    """One change the doctor would make; `command` is exactly what the user would type."""

    id: str
    kind: str  # sg-rule | port-pairs | port-security-off | pool-mode | installation-encapsulation
    layer: str  # openstack | calico
    target: str
    title: str
    command: str
    revert: str
    params: dict[str, Any] = field(default_factory=dict)  # what the session records (labtui.doctor.run.remember)
    order: int = 0  # 0 security groups, 1 ports, 2 calico (open the network first, then switch)
    risk: str = "change"  # change | destructive
    # the OpenStack change itself, in the network model's shape (labtui.net.fixes): the catalogue's
    # Action is built from it, so the option shows the command the confirmation shows and the executor
    # runs. None for the Calico switch (planned against the live cluster). Not recorded.
    fix: Fix | None = field(default=None, compare=False, metadata={"plain": False})


@dataclass
class FixOption:
    number: int
    key: str
    title: str
    summary: str
    why: str
    tradeoffs: str
    actions: list[FixAction] = field(default_factory=list)
    available: bool = True
    unavailable_reason: str = ""
    recommended: bool = False
    discouraged: bool = False
    rank: int = 0
    expected: str = ""  # what the simulation says after it
    target_modes: dict[str, tuple[str, str]] = field(default_factory=dict)  # pool -> (ipip, vxlan)



@dataclass
class Diagnosis:
    facts: DoctorFacts
    verdicts: list[PathVerdict]
    bgp: list[PathVerdict]
    findings: list[Finding]
    options: list[FixOption]
    unchecked: list[Unchecked]
    # what each simulated option leaves (option number -> finding ids), for linking the fixes; not serialised
    after_ids: dict[int, set[str]] = field(default_factory=dict)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in (ERROR, WARNING)]

    @property
    def healthy(self) -> bool:
        return self.exit_code == 0

    @property
    def blocked_sources(self) -> list[Unchecked]:
        """The unchecked sources without which no verdict on pod traffic is possible."""
        return [u for u in self.unchecked if u.source in ("cloud", "kube", "nodes") and not u.skipped]

    @property
    def exit_code(self) -> int:
        if self.problems:
            return 1
        if self.blocked_sources:
            return 2
        if not self.facts.nodes or not active_pools(self.facts):
            return 2
        if any(v.ok is None for v in self.verdicts):
            return 2
        return 0

    @property
    def status(self) -> str:
        return {0: "healthy", 1: "findings", 2: "could not check"}[self.exit_code]

    def option(self, ref: str | int) -> FixOption:
        ref_s = str(ref).strip().lower()
        for o in self.options:
            if ref_s in (str(o.number), o.key):
                return o
        raise KeyError(ref)

    def finding(self, fid: str) -> Finding:
        for f in self.findings:
            if f.id == fid:
                return f
        raise KeyError(fid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.facts.cluster,
            "status": self.status,
            "exit_code": self.exit_code,
            "findings": [to_plain(f) for f in self.findings],
            "options": [to_plain(o) for o in self.options],
            "unchecked": [to_plain(u) | {"line": u.line()} for u in self.unchecked],
            "paths": [
                {"src": v.src, "dst": v.dst, "pool": v.pool, "path": v.path, "same_subnet": v.same_subnet,
                 "ok": v.ok, "blocks": [to_plain(b) for b in v.blocks],
                 "probe": to_plain(v.probe) if v.probe else None}
                for v in self.verdicts
            ],
            "bgp": [{"a": v.src, "b": v.dst, "ok": v.ok} for v in self.bgp],
            "matrix": [to_plain(p) for p in self.facts.matrix] if self.facts.matrix is not None else None,
            "captures": [to_plain(c) for c in self.facts.captures],
            "facts": self.facts.to_dict(),
        }


@dataclass
class Seen:
    """What every check (labtui.doctor.checks) reads: the facts and the per-pair verdicts (pod paths,
    and the BGP sessions when bird runs)."""

    facts: DoctorFacts
    verdicts: list[PathVerdict]
    bgp: list[PathVerdict]
    bird: bool | None


# A check: the facts and verdicts in, its findings (and what it could not check) out.
Check = Callable[[Seen], "list[Finding | Unchecked]"]
