"""Quotas (and name clashes) first: what the plan still needs against what is left of the project's."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from labtui.adapters import provision as p
from labtui.changes.cloud import clash, ours
from labtui.errors import LabError
from labtui.model import Role
from labtui.provision_plan import quota_shortfalls, shortfall_hint
from labtui.stages.cloud import service
from labtui.stages.provision.common import ProvisionStep, lab_names, lab_tag_of, plan_nodes
from labtui.stages.provision.offer import choices
from labtui.stages.provision.resources import rule_specs
from labtui.steps import CheckResult, StepContext


def quota_needs(ctx: StepContext) -> dict[str, int]:
    """What the plan still needs (resources of this lab that exist already need nothing)."""
    ch = choices(ctx)
    c = service(ctx)
    lab, tag, n = ctx.session.name, lab_tag_of(ctx), lab_names(ctx)
    nodes = plan_nodes(ctx)

    lookups = [("security-group", n.group)]
    if not ch["network"]["existing"]:
        lookups += [("network", n.network), ("subnet", n.subnet)] + ([("router", n.router)] if ch["external"] else [])
    for node in nodes:
        lookups += [("port", n.port(node.name)), ("server", n.server(node.name))]

    with ThreadPoolExecutor(8) as pool:  # reads only, made together
        found_all = dict(zip(lookups, pool.map(lambda kn: p.find(c, kn[0], name=kn[1]), lookups)))
    seen = getattr(ctx.memo, "provision_seen", None)
    if seen is None:
        seen = ctx.memo.provision_seen = {}

    def missing(kind: str, name: str) -> bool:
        found = found_all[(kind, name)]
        for o in found:
            if not ours(o, tag, lab):
                raise clash(kind, name, o["id"], c.name, lab)
        seen[f"{kind}:{name}"] = (time.monotonic(), found[0] if found else None)  # the actions' own lookup
        return not found

    needs = {k: 0 for k in ("instances", "cores", "ram", "ports", "networks", "subnets", "routers",
                            "floating_ips", "security_groups", "security_group_rules")}
    if not ch["network"]["existing"]:
        needs["networks"] += missing("network", n.network)
        needs["subnets"] += missing("subnet", n.subnet)
        if ch["external"]:
            r = missing("router", n.router)
            needs["routers"] += r
            needs["ports"] += r  # the router's interface on the subnet
    if missing("security-group", n.group):
        needs["security_groups"] += 1
        needs["security_group_rules"] += len(rule_specs(ctx)) + 2  # + Neutron's two default egress rules
    fips = p.find(c, "floating-ip", tag=tag) if ch["floating_ip"] else []
    for node in nodes:
        control_plane = node.role == Role.CONTROL_PLANE
        flavor = ch["control-plane" if control_plane else "worker"]
        needs["ports"] += missing("port", n.port(node.name))
        if missing("server", n.server(node.name)):
            needs["instances"] += 1
            needs["cores"] += flavor["vcpus"]
            needs["ram"] += flavor["ram"]
        if control_plane and ch["floating_ip"] and not fips:
            needs["floating_ips"] += 1
    if ch["keypair"]["existing"] is False:
        missing_kp = not p.find(c, "keypair", name=ch["keypair"]["name"])
        needs["key_pairs"] = int(missing_kp)
    return needs


class QuotaStep(ProvisionStep):
    id = "quotas"
    title = "Quotas first"
    why = (
        "Before anything is created, labtui compares what the plan still needs (servers, vCPUs, RAM,\n"
        "ports, networks, routers, floating IPs, security groups and rules) with what is left of the\n"
        "project's quotas, and checks that no resource with the lab's names exists that this lab did\n"
        "not create. A shortfall stops here, with nothing half-built."
    )

    def check(self, ctx: StepContext) -> CheckResult:
        skip = self.skip(ctx)
        if skip:
            return skip
        needs = quota_needs(ctx)
        left = p.quota_left(service(ctx))
        short = quota_shortfalls(needs, left)
        if short:
            raise LabError(f"cloud {service(ctx).name}: not enough quota for lab {ctx.session.name}: "
                           + "; ".join(s.message() for s in short) + ". Nothing was created",
                           shortfall_hint(short), code="quota")
        wanted = {k: v for k, v in needs.items() if v}
        detail = ("needs " + ", ".join(f"{v} {k}" for k, v in wanted.items()) + ": within the quotas") if wanted \
            else "everything exists already"
        return CheckResult(True, detail, {"needs": needs, "left": left})
