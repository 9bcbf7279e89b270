"""The nodes stage: reach every node over SSH, gather its facts, explain what they mean (preflight)
and, with confirmation, fix the kernel prerequisites kubeadm checks."""

from __future__ import annotations

import time
from typing import Any

from labtui import events as ev
from labtui.adapters.ssh import session_ssh
from labtui.changes.node import node_action
from labtui.errors import LabError
from labtui.events import Event
from labtui.model import Plan
from labtui.nodes.facts import gather, load_facts, store_facts
from labtui.nodes.preflight import fix_for, fixes_needed, preflight
from labtui.steps import Action, CheckResult, Step, StepContext, Wizard

FACTS_MEMO = "nodes.facts.memo"


def saved_plan(ctx: StepContext) -> Plan:
    """The lab's saved plan, typed (a clear error when there is none, or when it no longer validates)."""
    if not ctx.session.plan:
        raise LabError("this lab has no saved plan yet", "finish the plan stage first (nodes, networks, versions)", code="no-plan")
    try:
        plan = ctx.plan
    except (ValueError, LabError) as exc:  # a saved plan that no longer validates
        raise LabError(f"this lab's saved plan is not valid: {exc}".splitlines()[0],
                       "open the plan stage and fix it", code="plan") from None
    assert plan is not None
    return plan


def findings_result(ctx: StepContext, step: str, findings: list, ok: str, *, with_why: bool = False,
                    most: int = 4) -> CheckResult:
    """A preflight's findings as a step's check: each error and warning in the command log, done
    when there is no error (the warnings counted), else the errors named."""
    for f in findings:
        if f.severity in ("error", "warning"):
            ctx.emit(Event(ev.WARN, f"{f.severity}: {f.title}. {f.why}".strip(), step=step, node=f.node))
    errors = [f for f in findings if f.severity == "error"]
    data = {"findings": [f.__dict__ for f in findings]}
    if errors:
        shown = errors if with_why else errors[:most]
        return CheckResult(False, f"{len(errors)} problem(s): " + "; ".join(
            (f"{f.node}: " if f.node else "") + f.title + (f" ({f.why})" if with_why else "") for f in shown)
            + (" …" if len(errors) > len(shown) else ""), data)
    warnings = sum(1 for f in findings if f.severity == "warning")
    return CheckResult(True, ok + (f" ({warnings} warning(s))" if warnings else ""), data)


def gather_and_store(ctx: StepContext, names: list[str] | None = None, step: str | None = "facts") -> dict[str, Any]:
    """Gather facts on the plan's nodes (or `names`) in parallel and store the ones that answered.
    Returns {node: NodeResult}."""
    plan = saved_plan(ctx)
    ssh = session_ssh(ctx)
    results = gather(ssh, names or [n.name for n in plan.nodes], step=step)
    for name, res in results.items():
        if res.ok:
            store_facts(ctx.store, ctx.session.id, res.value)
            ctx.emit(Event(ev.INFO, res.value.summary(), step=step, node=name))
        else:
            ctx.emit(Event(ev.WARN, res.error.render() if res.error else "failed", step=step, node=name))
    ctx.memo.node_facts = (time.monotonic(), results)
    return results


def unreachable_hint(ctx: StepContext, failed: list) -> str:
    """What to do about the nodes the facts could not be read from: a host key not accepted (yet) says
    how to be asked again; anything else keeps the connection's own hint (what was found, what to check)."""
    keys = sorted(r.node for r in failed if r.error is not None and r.error.code == "hostkey-unknown")
    hints: list[str] = []
    if keys:
        nodes = ", ".join(keys)
        if ctx.prompts.host_key is None:  # headless
            lab = ctx.session.name
            hints.append(f"the host key of {nodes} is not accepted yet: compare its fingerprint (above) with the VM's "
                         f"console log (cloud-init prints it), then accept it with: labtui nodes trust {lab} "
                         f"{keys[0] if len(keys) == 1 else '--all'} (or run again with --accept-new-host-keys)")
        else:
            hints.append(f"the host key of {nodes} was not accepted: run this step again (ctrl+s) and you are asked "
                         "again; compare the fingerprint with the VM's console log (cloud-init prints it) and press "
                         "y to accept it, or n to refuse (labtui then cannot reach the node). The Nodes screen (t) "
                         "does the same")
    for r in failed:
        if r.error is not None and r.error.code != "hostkey-unknown" and r.error.hint:
            text = f"{r.node}: {r.error.hint}"
            if text not in hints:
                hints.append(text)
    return "; ".join(hints)


class FactsStep(Step):
    id = "facts"
    title = "Node facts"
    expect = "One line per node: OS, kernel, CPUs, memory, swap, runtime and the interface with its subnet."
    by_hand = "ssh NODE 'uname -r; nproc; free -m; swapon --show; lsmod | grep -E \"overlay|br_netfilter|ipip\"; ip -4 -o addr'"
    glossary = ("host key", "node subnet")
    why = (
        "labtui logs in to every node over SSH (your ~/.ssh/config, agent and keys; host keys are\n"
        "checked, never accepted silently) and reads what kubeadm and Calico depend on: OS and kernel,\n"
        "CPUs and memory, swap, the overlay / br_netfilter / ipip modules, ip_forward, the container\n"
        "runtime, kubelet/kubeadm versions and the interface with its subnet. Nothing is changed."
    )

    def check(self, ctx: StepContext) -> CheckResult:
        memo = ctx.memo.node_facts
        if memo and time.monotonic() - memo[0] < 5.0:
            results = memo[1]
        else:
            results = gather_and_store(ctx, step=self.id)
        failed = [r for r in results.values() if not r.ok]
        if failed:
            return CheckResult(False, "; ".join(r.message for r in failed),
                               {"unreachable": [r.node for r in failed]}, hint=unreachable_hint(ctx, failed))
        return CheckResult(True, f"facts of {len(results)} node(s) gathered",
                           {"nodes": {n: r.value.summary() for n, r in results.items()}})

    def verify(self, ctx: StepContext) -> CheckResult:
        return self.check(ctx)


class PreflightStep(Step):
    id = "preflight"
    title = "Preflight checks"
    expect = "ready for kubeadm, or each problem with why it matters and the command that fixes it."
    by_hand = "sudo swapoff -a\nsudo modprobe br_netfilter overlay ipip\nsudo sysctl -w net.ipv4.ip_forward=1"
    glossary = ("preflight",)
    why = (
        "What the facts mean before kubeadm runs: swap must be off, IPv4 forwarding on, the\n"
        "br_netfilter and overlay modules present, ipip for an IPIP pool, 2 CPUs and 1.7 GiB on the\n"
        "control plane, unique host names and machine IDs, and node subnets that do not overlap the\n"
        "pod or service CIDR. Each finding says why; the fixable ones are offered with the exact\n"
        "commands (run with sudo) and their revert, and nothing runs without your confirmation."
    )

    def findings(self, ctx: StepContext) -> list:
        plan = saved_plan(ctx)
        stored = load_facts(ctx.store, ctx.session.id)
        facts = {n.name: stored[n.name] for n in plan.nodes if n.name in stored}
        missing = [n.name for n in plan.nodes if n.name not in stored]
        if missing:
            raise LabError(f"no facts yet for {', '.join(missing)}", "run the step 'Node facts' first", code="no-facts")
        return preflight(plan, facts)

    def check(self, ctx: StepContext) -> CheckResult:
        try:
            findings = self.findings(ctx)
        except LabError as exc:
            return CheckResult(False, exc.message)
        return findings_result(ctx, self.id, findings, "ready for kubeadm")

    def plan(self, ctx: StepContext) -> list[Action]:
        stored = load_facts(ctx.store, ctx.session.id)
        actions: list[Action] = []
        for node, fix_ids in sorted(fixes_needed(self.findings(ctx)).items()):
            for fix_id in fix_ids:
                fix = fix_for(fix_id, stored[node])
                actions.append(node_action(node, f"{fix_id}@{node}", f"{node}: {fix.title}", fix.command,
                                           revert=fix.revert, kind=f"node.{fix.id}", fix=fix_id, step="preflight"))
        return actions

    def after_apply(self, ctx: StepContext, execution: Any) -> None:
        changed = sorted({o.action.target for o in execution.applied if o.action.target})
        if changed:  # reality changed: read the facts again before verifying
            gather_and_store(ctx, changed, step=self.id)


def build() -> Wizard:
    return Wizard("nodes", "Nodes", [FactsStep(), PreflightStep()])
