"""The cloud stage: connect and discover the lab's servers and ports, check the security groups
and ports against what Calico and kubeadm need, and fix what is missing.

Also the session-level helpers the CLI (`labtui cloud ...`) and the Security screen share:
`networking(ctx)`, `check(ctx)`, `plan_fixes(ctx, report)`. Cheap to import: openstacksdk is
only imported by labtui.adapters.openstack when a step runs.
"""

from __future__ import annotations

import time
from typing import Any

from labtui import events as ev
from labtui.adapters import openstack as cloudmod
from labtui.adapters.openstack import session_cloud
from labtui.changes.openstack import fix_actions, port_security_actions
from labtui.errors import LabError
from labtui.events import Event
from labtui.model import target_encapsulation
from labtui.net.check import Report, evaluate
from labtui.net.requirements import CalicoNetworking
from labtui.steps import Action, CheckResult, Step, StepContext, Wizard

SCOPE = "cloud"


def cloud_name(ctx: StepContext) -> str | None:
    return ctx.session.cloud_name


NO_CLOUD = ("the lab has no cloud (machines of your own): there are no security groups or ports to check; "
            "your network must let the encapsulation through between the nodes (IP protocol 4 for IPIP, "
            "UDP 4789 for VXLAN)")


class CloudStep(Step):
    """A step of this stage: skipped, with the reason, for a lab without a cloud."""

    def not_applicable(self, ctx: StepContext) -> str | None:
        """Why the step does not apply, from the saved plan alone: shown as soon as the lab opens."""
        return NO_CLOUD if ctx.session.plan and not cloud_name(ctx) else None

    def check(self, ctx: StepContext) -> CheckResult:
        if not cloud_name(ctx):
            return CheckResult(False, NO_CLOUD, skip=True)
        return self.check_cloud(ctx)

    def check_cloud(self, ctx: StepContext) -> CheckResult:
        raise NotImplementedError


def service(ctx: StepContext, cloud: str | None = None, timeout: float | None = None):
    """The session's one cloud connection (labtui.adapters.openstack.session_cloud)."""
    return session_cloud(ctx, cloud, timeout)


def networking(ctx: StepContext, encapsulation: str | None = None, bgp: bool | None = None,
               typha: bool | None = None) -> CalicoNetworking:
    """What the network must carry: the encapsulation this lab targets (override > the Calico stage's
    choice > the plan), BGP and Typha as read from the cluster when the Calico stage ran, else the
    defaults of the stock installs."""
    try:
        plan = ctx.plan
        planned = {"encapsulation": plan.encapsulation, "pod_cidr": plan.pod_cidr,
                   "provision": plan.provision} if plan else {}
    except (ValueError, LabError):  # a saved plan that does not validate: the values it holds still say what was planned
        planned = ctx.session.plan or {}
    # an adopted lab's plan started from defaults: what the doctor read from the live cluster wins
    live = (ctx.store.facts(ctx.session.id, "live").get("live", {}).get("live", {}).get("values") or {}) \
        if ctx.inputs.get("adopted") else {}
    enc = target_encapsulation(override=encapsulation, stage_choice=ctx.inputs.get("calico_encapsulation"),
                               live=live.get("encapsulation"), planned=planned.get("encapsulation"),
                               wizard=ctx.inputs.get("encapsulation"))
    calico = ctx.store.facts(ctx.session.id, "calico").get("calico", {})
    install = calico.get("install") or {}
    pod = live.get("pod_cidr") or planned.get("pod_cidr") or ctx.inputs.get("pod_cidr")
    if not pod:
        pools = [p for p in calico.get("pools") or [] if not p.get("disabled") and ":" not in str(p.get("cidr", ""))]
        pod = pools[0]["cidr"] if pools else None
    if bgp is None and install.get("bgp") is not None:
        bgp = bool(install["bgp"])
    if typha is None and install.get("mode") in ("operator", "manifest"):
        typha = bool(install.get("typha"))
    if typha is None and planned.get("provision") is not None and not ctx.inputs.get("adopted"):
        # a lab labtui provisions and installs Calico on, before that install: the plan's install decides.
        # The operator (labtui's default) always deploys Typha, host-networked on TCP 5473
        # (tigera/operator pkg/render/typha.go: `TyphaPort int32 = 5473`, `HostNetwork: true`), and
        # calico-node on a node without a local Typha connects to one on another node (audit F1): the
        # group must carry 5473 before the first install. (A lab whose cluster exists already is read
        # from the cluster: the Calico stage's facts above.)
        typha = typha_planned(ctx)
    return CalicoNetworking.for_encapsulation(enc, bgp=bgp, typha=typha, pod_cidr=pod)


def typha_planned(ctx: StepContext) -> bool:
    """Whether the lab's Calico install will run Typha: the operator install (the default) always does."""
    return (ctx.inputs.get("calico_install") or "operator") == "operator"


def plan_nodes(ctx: StepContext) -> list[dict[str, Any]]:
    nodes = (ctx.session.plan or {}).get("nodes") or ctx.inputs.get("nodes") or []  # as the adapter takes them
    if not nodes:
        raise LabError(f"lab {ctx.session.name} has no nodes yet", "finish the plan (its Nodes step) first",
                       code="no-nodes")
    return nodes


def check(ctx: StepContext, *, cloud: str | None = None, encapsulation: str | None = None,
          bgp: bool | None = None, typha: bool | None = None, timeout: float | None = None) -> Report:
    """Connect, discover the plan's nodes, compare with what the network must allow; remember the result."""
    conn = service(ctx, cloud, timeout)
    net = networking(ctx, encapsulation, bgp, typha)
    ctx.emit(Event(ev.INFO, f"checking cloud {conn.name} for {net.describe()}"))
    lab = cloudmod.discover(conn, plan_nodes(ctx))
    for n in lab.nodes:
        if not n.found:
            ctx.emit(Event(ev.WARN, n.note, node=n.name))
    report = evaluate(lab, net)
    for s in report.statuses:
        if not s.ok:
            ctx.emit(Event(ev.WARN, f"{s.requirement.title}: {s.status}: {s.detail}"))
    ctx.store.put_facts(ctx.session.id, SCOPE, {
        "cloud": conn.name, "summary": report.summary(), "ok": report.ok,
        "nodes": {n.name: {"found": n.found, "server_id": n.server_id, "port_id": n.port.id if n.port else None,
                           "ip": n.ip, "subnet": n.subnet_cidr, "note": n.note} for n in lab.nodes},
        "requirements": {s.requirement.id: s.status for s in report.statuses},
    })
    ctx.memo.cloud_report = (time.monotonic(), report)
    ctx.emit(Event(ev.INFO, f"cloud {conn.name}: {report.summary()}"))
    return report


def recent_report(ctx: StepContext, max_age: float = 5.0) -> Report:
    """The report of a check made in the last `max_age` seconds, else a new check (the steps of one
    run and a resume re-check share one discovery)."""
    cached = ctx.memo.cloud_report
    if cached and time.monotonic() - cached[0] <= max_age:
        return cached[1]
    return check(ctx)


def plan_fixes(report: Report, only: list[str] | None = None, port_security: list[str] | None = None) -> list[Action]:
    """The fix actions (rules, then allowed-address-pairs; port security off only for the nodes named)."""
    actions = fix_actions(report, only)
    if port_security:
        actions += port_security_actions(report, port_security)
    return actions


class ConnectStep(CloudStep):
    id = "connect"
    title = "Connect and find the nodes"
    expect = "Every node found among the cloud's servers, with its port, fixed IP and security groups."
    by_hand = "openstack server list\nopenstack port list --server SERVER --long"
    glossary = ("security group", "anti-spoofing")
    why = (
        "labtui logs in to your cloud with the clouds.yaml entry you chose (it never stores the password),\n"
        "then finds each node of the plan among the cloud's servers (by name, else by address) and reads\n"
        "its Neutron port: fixed IP, subnet, security groups, port security and allowed-address-pairs.\n"
        "Nodes that are not servers of this cloud are listed as such; they are not an error."
    )

    def check_cloud(self, ctx: StepContext) -> CheckResult:
        report = check(ctx)
        found = [n for n in report.lab.nodes if n.found]
        missing = [n.name for n in report.lab.nodes if not n.found]
        detail = f"{len(found)} of {len(report.lab.nodes)} nodes found in cloud {report.lab.cloud}"
        if missing:
            detail += f"; not servers of this cloud: {', '.join(missing)}"
        return CheckResult(bool(found), detail, {"found": [n.name for n in found], "missing": missing})


class CheckStep(CloudStep):
    id = "check"
    title = "Check groups and ports"
    expect = "Every flow allowed, or what is missing (e.g. IP protocol 4 between the nodes): the next step fixes it."
    by_hand = "openstack security group rule list GROUP --long\nopenstack port show PORT -c allowed_address_pairs -c port_security_enabled"
    glossary = ("security group", "IPIP", "VXLAN", "BGP", "allowed-address-pairs")
    why = (
        "From the encapsulation, BGP, Typha and the node roles labtui derives every flow the cloud must\n"
        "let through (IP protocol 4 for IPIP, UDP 4789 for VXLAN, TCP 179 for BGP, the Kubernetes ports,\n"
        "the pod CIDR on the ports when pod traffic leaves a node unencapsulated) and compares it with\n"
        "the security-group rules and ports. Missing and suspicious ones are fixed in the next step."
    )
    hint = ("read the details in the Security screen (`labtui cloud check NAME`); SSH rules are yours to add "
            "with your own address")

    def check_cloud(self, ctx: StepContext) -> CheckResult:
        report = recent_report(ctx)
        if report.ok:
            return CheckResult(True, report.summary(), {"summary": report.summary()})
        fixable = plan_fixes(report)
        if fixable:  # the check did its work: what it found is the next step's
            n = len(fixable)
            return CheckResult(True, f"{report.summary()}: the next step fixes it with {n} change{'s' if n != 1 else ''}",
                               {"summary": report.summary(), "to_fix": [a.title for a in fixable]})
        return CheckResult(False, f"{report.summary()}, and labtui has no automatic fix for it",
                           {"summary": report.summary()})


class FixStep(CloudStep):
    id = "fix"
    title = "Fix rules and ports"
    expect = "The missing rules created (protocol 4 from the group itself), and the check passing."
    by_hand = "openstack security group rule create --ingress --ethertype IPv4 --protocol 4 --remote-group GROUP GROUP"
    glossary = ("security group", "IPIP", "allowed-address-pairs", "anti-spoofing")
    why = (
        "Each fix is shown as the exact `openstack ...` command and the API call before it runs, and is\n"
        "recorded with its revert: missing rules are created in the nodes' group from the group itself\n"
        "(protocol 4 as the number, never 'ipip'); the pod CIDR is merged into each port's allowed-\n"
        "address-pairs. Disabling port security is never automatic: the Security screen offers it last."
    )

    hint = CheckStep.hint

    def check_cloud(self, ctx: StepContext) -> CheckResult:
        report = recent_report(ctx)
        return CheckResult(report.ok, report.summary())

    def plan(self, ctx: StepContext) -> list[Action]:
        return plan_fixes(recent_report(ctx))

    def verify(self, ctx: StepContext) -> CheckResult:
        ctx.memo.cloud_report = None  # read the cloud again after the changes
        report = check(ctx)
        return CheckResult(report.ok, report.summary())


def build() -> Wizard:
    return Wizard("cloud", "Cloud", [ConnectStep(), CheckStep(), FixStep()])
