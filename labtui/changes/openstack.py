"""Changes to a cloud's network security: security-group rules, allowed-address-pairs, port security.

The fix descriptions (RuleFix, PairsFix, PortSecurityFix) come from the one rule evaluator
(labtui.net.check); this module turns them into Actions and knows, for each kind, whether it is
already in effect, how it runs (through labtui.adapters.openstack) and how it is undone.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterable

from labtui.changes import Applied, ChangeKind, register
from labtui.errors import LabError
from labtui.net.check import PairsFix, PortSecurityFix, Report, RuleFix, SGRule, port_security_fixes
from labtui.steps import Action, Risk


def _conn(ctx: Any):
    from labtui.adapters.openstack import session_cloud

    return session_cloud(ctx)


# --------------------------------------------------------------------------- building actions


def rule_fix(params: dict[str, Any]) -> RuleFix:
    """A RuleFix from plain parameters (security_group_id, group_name, protocol, ports, remote...)."""
    proto = params.get("protocol")
    return RuleFix(
        security_group_id=params["security_group_id"],
        security_group_name=params.get("group_name") or params.get("security_group_name") or params["security_group_id"],
        protocol=None if proto in (None, "", "any") else ("4" if str(proto) == "ipip" else str(proto)),
        port_range_min=params.get("port_range_min"), port_range_max=params.get("port_range_max"),
        remote_group_id=params.get("remote_group_id"), remote_group_name=params.get("remote_group_name"),
        remote_ip_prefix=params.get("remote_ip_prefix"), direction=params.get("direction", "ingress"),
        ether_type=params.get("ether_type") or "IPv4", description=params.get("description") or "",
        requirement=params.get("requirement", ""),
        replaces=tuple(r if isinstance(r, SGRule) else SGRule(**r) for r in params.get("replaces") or ()))


def action_for(fix: RuleFix | PairsFix | PortSecurityFix, action_id: str | None = None) -> Action:
    """The Action for one fix: exact command, API call, revert, catalogue kind."""
    if isinstance(fix, RuleFix):
        return Action(id=action_id or f"rule:{fix.requirement}:{fix.security_group_id[:8]}:{fix.direction}:"
                                      f"{fix.protocol}:{fix.port_range_min}:{fix.remote_ip_prefix or ''}",
                      title=fix.title, command=fix.command(), kind="openstack", target=fix.security_group_name,
                      risk=Risk.CHANGE, revert=fix.revert_command(), api=fix.api(), change="openstack.sg-rule",
                      data={"fix": fix, "requirement": fix.requirement})
    if isinstance(fix, PairsFix):
        return Action(id=action_id or f"pairs:{fix.node}", title=fix.title, command=fix.command(), kind="openstack",
                      target=fix.port_name or fix.port_id, risk=Risk.CHANGE, revert=fix.revert_command(), api=fix.api(),
                      change="openstack.port-pairs",
                      data={"fix": fix, "requirement": fix.requirement, "blocked": fix.blocked})
    return Action(id=action_id or f"port-security:{fix.node}", title=fix.title, command=fix.command(), kind="openstack",
                  target=fix.port_name or fix.port_id, risk=Risk.DESTRUCTIVE, revert=fix.revert_command(), api=fix.api(),
                  change="openstack.port-security",
                  data={"fix": fix, "requirement": "port-security", "cost": PortSecurityFix.COST})


def fix_actions(report: Report, only: Iterable[str] | None = None) -> list[Action]:
    """Actions for the missing and suspicious requirements: rules first, then allowed-address-pairs.
    Port security off is never among them (see `port_security_actions`)."""
    fixes = report.fixes(only)
    ordered = [f for f in fixes if isinstance(f, RuleFix)] + [f for f in fixes if isinstance(f, PairsFix)]
    return [action_for(f) for f in ordered]


def port_security_actions(report: Report, nodes: Iterable[str] | None = None) -> list[Action]:
    """The last resort, offered separately: port security off on the node ports."""
    wanted = set(nodes) if nodes else None
    return [action_for(f) for f in port_security_fixes(report.lab) if wanted is None or f.node in wanted]


# --------------------------------------------------------------------------- the kinds


class _OpenStackChange(ChangeKind):
    layer = "openstack"

    def revert(self, ctx: Any, change: Any) -> str:
        from labtui.adapters.openstack import revert_change

        return revert_change(_conn(ctx), change)


@register
class SecurityGroupRule(_OpenStackChange):
    """Create a rule in a group (replacing an 'ipip'-named rule Neutron counts as the same)."""

    kind = "openstack.sg-rule"

    def applied(self, ctx: Any, action: Action) -> bool | None:
        from labtui.adapters.openstack import find_rule

        fix: RuleFix = action.data["fix"]
        if fix.replaces:
            return False
        existing = find_rule(_conn(ctx), fix)
        return existing is not None and existing.protocol != "ipip"

    def verify(self, ctx: Any, action: Action, applied: Applied) -> str | None:
        from labtui.adapters.openstack import find_rule

        existing = find_rule(_conn(ctx), action.data["fix"])
        if existing is None or existing.protocol == "ipip":
            return f"{action.title}: the group does not show the new rule"
        return None

    def run(self, ctx: Any, action: Action) -> Applied:
        from labtui.adapters.openstack import create_rule

        fix: RuleFix = action.data["fix"]
        res = create_rule(_conn(ctx), fix)
        data: dict[str, Any] = {"rule_id": res.id, "security_group_id": fix.security_group_id}
        if fix.replaces:
            data["replaced"] = [asdict(r) for r in fix.replaces]
        return Applied(res.created, data, result={"rule_id": res.id, "created": res.created},
                       revert_command=fix.revert_command(res.id), target=fix.security_group_name,
                       note="" if res.created else "the rule already exists (HTTP 409)")


@register
class PortPairs(_OpenStackChange):
    """Merge a CIDR into a port's allowed-address-pairs (Neutron replaces the whole list)."""

    kind = "openstack.port-pairs"

    def applied(self, ctx: Any, action: Action) -> bool | None:
        from labtui.adapters.openstack import get_port

        fix: PairsFix = action.data["fix"]
        port = get_port(_conn(ctx), fix.port_id)
        return any(p.get("ip_address") == fix.cidr for p in port["allowed_address_pairs"])

    def run(self, ctx: Any, action: Action) -> Applied:
        from labtui.adapters.openstack import add_allowed_address_pairs

        fix: PairsFix = action.data["fix"]
        if fix.blocked:
            raise LabError(f"{fix.node}: {fix.blocked}", "remove pairs you no longer need, or use IPIP Always instead",
                           code="cloud-aap-quota")
        res = add_allowed_address_pairs(_conn(ctx), fix.port_id, [fix.cidr])
        return Applied(bool(res.added), {"port_id": fix.port_id, "added": [{"ip_address": a} for a in res.added]},
                       result={"port_id": fix.port_id, "added": res.added}, target=fix.port_name or fix.port_id)


@register
class PortSecurityOff(_OpenStackChange):
    """Port security off (groups and pairs removed with it); the revert puts them back."""

    kind = "openstack.port-security"

    def applied(self, ctx: Any, action: Action) -> bool | None:
        from labtui.adapters.openstack import get_port

        fix: PortSecurityFix = action.data["fix"]
        return not get_port(_conn(ctx), fix.port_id)["port_security_enabled"]

    def run(self, ctx: Any, action: Action) -> Applied:
        from labtui.adapters.openstack import disable_port_security

        fix: PortSecurityFix = action.data["fix"]
        before = disable_port_security(_conn(ctx), fix.port_id)
        return Applied(bool(before["was_enabled"]),
                       {k: before[k] for k in ("port_id", "security_groups", "allowed_address_pairs")},
                       result={"port_id": fix.port_id, "disabled": before["was_enabled"]},
                       target=fix.port_name or fix.port_id)
