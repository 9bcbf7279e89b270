"""Changes to a cloud's network security: security-group rules, allowed-address-pairs, port security.

The fix descriptions (RuleFix, PairsFix, PortSecurityFix) come from the one rule evaluator
(labtui.net.check); this module turns them into Actions and knows, for each kind, whether it is
already in effect, how it runs (through labtui.adapters.openstack) and how it is undone.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterable

from labtui.adapters.openstack import (
    CloudConnection,
    add_allowed_address_pairs,
    create_rule,
    delete_rule,
    disable_port_security,
    enable_port_security,
    find_rule,
    post_rule,
    get_port,
    remove_allowed_address_pairs,
    restore_rule,
    session_cloud,
)
from labtui.adapters.provision import delete
from labtui.changes import Applied, ChangeKind, register
from labtui.changes.cloud import forget_rules, lab_rule, lab_rule_applied
from labtui.errors import LabError
from labtui.net.check import Report, port_security_fixes
from labtui.net.fixes import PairsFix, PortSecurityFix, RuleFix, in_effect
from labtui.steps import Action, Risk
from labtui.store import Change


def _conn(ctx: Any) -> CloudConnection:
    return session_cloud(ctx)


# --------------------------------------------------------------------------- building actions


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


@register
class SecurityGroupRule(ChangeKind):
    """Create one security-group rule: the one kind that does. Two kinds of Action name it:
    - a rule of its own (Action.data["fix"], a labtui.net.fixes.RuleFix) from the cloud check or the
      doctor, replacing first an 'ipip'-named rule Neutron counts as the same;
    - a rule of the lab's own new group (Action.data["rule"], a RuleSpec, and the group's name) from
      the Provision stage, recorded as `cloud.sg-rule` and run with the lab's resources (the cloud layer);
      deleting the group deletes its rules.
    Whether it is there: labtui.net.fixes.same_rule (HTTP 409 also counts as done)."""

    kind = "openstack.sg-rule"
    layer = "openstack"

    @staticmethod
    def of_the_lab(action: Action) -> bool:
        return "fix" not in action.data

    def layer_for(self, action: Action) -> str:
        return "cloud" if self.of_the_lab(action) else self.layer

    def applied(self, ctx: Any, action: Action) -> bool | None:
        if self.of_the_lab(action):
            return lab_rule_applied(ctx, action)
        fix: RuleFix = action.data["fix"]
        if fix.replaces:
            return False
        existing = find_rule(_conn(ctx), fix)
        return existing is not None and in_effect(existing)

    def verify(self, ctx: Any, action: Action, applied: Applied) -> str | None:
        if self.of_the_lab(action):
            return None  # the stage's check reads the group again
        existing = find_rule(_conn(ctx), action.data["fix"])
        if existing is None or not in_effect(existing):
            return f"{action.title}: the group does not show the new rule"
        return None

    def run(self, ctx: Any, action: Action) -> Applied:
        if self.of_the_lab(action):
            return self._run_lab_rule(ctx, action)
        fix: RuleFix = action.data["fix"]
        res = create_rule(_conn(ctx), fix)
        data: dict[str, Any] = {"rule_id": res.id, "security_group_id": fix.security_group_id}
        if fix.replaces:
            data["replaced"] = [asdict(r) for r in fix.replaces]
        return Applied(res.created, data, result={"rule_id": res.id, "created": res.created},
                       revert_command=fix.revert_command(res.id), target=fix.security_group_name,
                       note="" if res.created else "the rule already exists (HTTP 409)")

    def _run_lab_rule(self, ctx: Any, action: Action) -> Applied:
        want = lab_rule(ctx, action)
        forget_rules(ctx, want.security_group_id)
        made = post_rule(_conn(ctx), want, what="create the rule", api=action.api or "POST /v2.0/security-group-rules",
                         command=action.command)
        if made is None:
            return Applied(False, note="the group has this rule already (HTTP 409)")
        return Applied(True, {"id": made.id, "group_id": want.security_group_id, "lab": action.data["lab"]},
                       result={"id": made.id, "protocol": made.protocol}, target=action.data["group"],
                       revert_command=f"openstack security group rule delete {made.id}")

    def revert(self, ctx: Any, change: Change) -> str:
        data = change.revert_data or {}
        conn = _conn(ctx)
        if "rule_id" not in data:  # a rule of the lab's own group (recorded by the Provision stage)
            rid = data.get("id")
            if not rid or not delete(conn, "sg-rule", rid, command=change.revert_command):
                return "already gone"
            return f"deleted rule {rid}"
        gone = not delete_rule(conn, data["rule_id"])
        msg = "the rule was already gone" if gone else f"deleted rule {data['rule_id']}"
        for old in data.get("replaced") or []:
            restore_rule(conn, old)
            msg += f"; restored the rule it replaced (protocol {old.get('protocol')})"
        return msg


@register
class PortPairs(ChangeKind):
    """Merge a CIDR into a port's allowed-address-pairs (Neutron replaces the whole list)."""

    kind = "openstack.port-pairs"
    layer = "openstack"

    def applied(self, ctx: Any, action: Action) -> bool | None:
        fix: PairsFix = action.data["fix"]
        port = get_port(_conn(ctx), fix.port_id)
        return any(p.get("ip_address") == fix.cidr for p in port["allowed_address_pairs"])

    def run(self, ctx: Any, action: Action) -> Applied:
        fix: PairsFix = action.data["fix"]
        if fix.blocked:
            raise LabError(f"{fix.node}: {fix.blocked}", "remove pairs you no longer need, or use IPIP Always instead",
                           code="cloud-aap-quota")
        res = add_allowed_address_pairs(_conn(ctx), fix.port_id, [fix.cidr])
        return Applied(bool(res.added), {"port_id": fix.port_id, "added": [{"ip_address": a} for a in res.added]},
                       result={"port_id": fix.port_id, "added": res.added}, target=fix.port_name or fix.port_id)

    def revert(self, ctx: Any, change: Change) -> str:
        data = change.revert_data or {}
        res = remove_allowed_address_pairs(_conn(ctx), data["port_id"], data.get("added") or [])
        return f"removed {', '.join(res.added)}" if res.added else "the pairs were already gone"


@register
class PortSecurityOff(ChangeKind):
    """Port security off (groups and pairs removed with it); the revert puts them back."""

    kind = "openstack.port-security"
    layer = "openstack"

    def applied(self, ctx: Any, action: Action) -> bool | None:
        fix: PortSecurityFix = action.data["fix"]
        return not get_port(_conn(ctx), fix.port_id)["port_security_enabled"]

    def run(self, ctx: Any, action: Action) -> Applied:
        fix: PortSecurityFix = action.data["fix"]
        before = disable_port_security(_conn(ctx), fix.port_id)
        return Applied(bool(before["was_enabled"]),
                       {k: before[k] for k in ("port_id", "security_groups", "allowed_address_pairs")},
                       result={"port_id": fix.port_id, "disabled": before["was_enabled"]},
                       target=fix.port_name or fix.port_id)

    def revert(self, ctx: Any, change: Change) -> str:
        data = change.revert_data or {}
        enable_port_security(_conn(ctx), data["port_id"], list(data.get("security_groups") or []),
                             list(data.get("allowed_address_pairs") or []))
        return "port security is on again, with its groups and pairs"
