"""The fixes the rule evaluator proposes (a rule to create, a CIDR to merge into a port's
allowed-address-pairs, port security off), each with its exact `openstack ...` command, API request
and revert. The change catalogue (labtui.changes.openstack) runs them."""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass
from typing import Any, Iterable

from labtui.net.model import SGRule
from labtui.provision_plan import RuleSpec

# Protocol names Neutron knows, as numbers: "tcp" and "6" are one rule to its duplicate check, and
# 'ipip' is stored as given but counted as 4 (IP-in-IP; see labtui.net.check.IPIP_NAME_WARNING)
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "ipip": 4, "ipencap": 4, "gre": 47, "esp": 50, "ah": 51,
                    "sctp": 132, "icmpv6": 58, "ipv6-icmp": 58}


@dataclass(frozen=True)
class RuleFix:
    """Create one security-group rule (protocol "4" as a string for IPIP, never "ipip")."""

    security_group_id: str
    security_group_name: str
    protocol: str | None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_group_id: str | None = None
    remote_group_name: str | None = None
    remote_ip_prefix: str | None = None
    direction: str = "ingress"
    ether_type: str = "IPv4"
    description: str = ""
    requirement: str = ""
    kind: str = "sg-rule"
    # rules with protocol "ipip" that Neutron counts as this same rule (HTTP 409): deleted first
    replaces: tuple[SGRule, ...] = ()

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.kind, self.security_group_id, self.direction, self.ether_type, self.protocol,
                self.port_range_min, self.port_range_max, self.remote_group_id, self.remote_ip_prefix)

    @property
    def title(self) -> str:
        what = {"4": "IP protocol 4", None: "any protocol"}.get(self.protocol, (self.protocol or "").upper())
        if self.port_range_min is not None:
            hi = self.port_range_max
            what += f" {self.port_range_min}" + (f"-{hi}" if hi not in (None, self.port_range_min) else "")
        src = f"group {self.remote_group_name or self.remote_group_id}" if self.remote_group_id else \
            (self.remote_ip_prefix or "anywhere")
        if self.direction == "egress":
            return f"{self.security_group_name}: allow {what} egress to {src}"
        return f"{self.security_group_name}: allow {what} from {src}"

    def attrs(self) -> dict[str, Any]:
        """openstacksdk `create_security_group_rule(**attrs)`."""
        out: dict[str, Any] = {"security_group_id": self.security_group_id, "direction": self.direction,
                               "ether_type": self.ether_type}
        if self.protocol is not None:
            out["protocol"] = str(self.protocol)
        if self.port_range_min is not None:
            out["port_range_min"] = self.port_range_min
            out["port_range_max"] = self.port_range_max if self.port_range_max is not None else self.port_range_min
        if self.remote_group_id:
            out["remote_group_id"] = self.remote_group_id
        elif self.remote_ip_prefix:
            out["remote_ip_prefix"] = self.remote_ip_prefix
        if self.description:
            out["description"] = self.description
        return out

    def command(self) -> str:
        q = shlex.quote
        parts = ["openstack security group rule create", f"--{self.direction}", f"--ethertype {self.ether_type}"]
        parts.append(f"--protocol {q(self.protocol)}" if self.protocol is not None else "--protocol any")
        if self.port_range_min is not None:
            hi = self.port_range_max if self.port_range_max is not None else self.port_range_min
            parts.append(f"--dst-port {self.port_range_min}" + (f":{hi}" if hi != self.port_range_min else ""))
        if self.remote_group_id:
            parts.append(f"--remote-group {q(self.remote_group_name or self.remote_group_id)}")
        elif self.remote_ip_prefix:
            parts.append(f"--remote-ip {q(self.remote_ip_prefix)}")
        if self.description:
            parts.append(f"--description {q(self.description)}")
        parts.append(q(self.security_group_name or self.security_group_id))
        deletes = [f"openstack security group rule delete {r.id} && " for r in self.replaces]
        return "".join(deletes) + " ".join(parts)

    def short_command(self) -> str:
        """The same rule as a person writes it in a sentence: the defaults left out (ingress, IPv4, no
        description), the remote always said (0.0.0.0/0 when none), any protocol by no --protocol."""
        parts = ["openstack", "security", "group", "rule", "create"] + (["--egress"] if self.direction == "egress" else [])
        if self.protocol is not None:
            parts += ["--protocol", self.protocol]
        if self.port_range_min is not None:
            hi = self.port_range_max if self.port_range_max is not None else self.port_range_min
            parts += ["--dst-port", f"{self.port_range_min}" + (f":{hi}" if hi != self.port_range_min else "")]
        parts += (["--remote-group", self.remote_group_name or self.remote_group_id] if self.remote_group_id
                  else ["--remote-ip", self.remote_ip_prefix or "0.0.0.0/0"])
        return shlex.join(parts + [self.security_group_name or self.security_group_id])

    def api(self) -> str:
        body = {k if k != "ether_type" else "ethertype": v for k, v in self.attrs().items()}
        deletes = "".join(f"DELETE /v2.0/security-group-rules/{r.id}, then " for r in self.replaces)
        return deletes + "POST /v2.0/security-group-rules " + json.dumps({"security_group_rule": body}, sort_keys=True)

    def revert_command(self, rule_id: str | None = None) -> str:
        cmd = f"openstack security group rule delete {rule_id or '<new rule id>'}"
        for r in self.replaces:
            cmd += " && " + rule_create_command(r, self.security_group_name, self.remote_group_name)
        return cmd


def protocol_number(protocol: str | int | None) -> int | None:
    """None for any protocol; a number otherwise (-1 for a name Neutron does not know)."""
    if protocol in (None, "", "any", "ANY"):
        return None
    text = str(protocol).strip().lower()
    if text.isdigit():
        return int(text)
    return PROTOCOL_NUMBERS.get(text, -1)


def normal_prefix(prefix: str | None) -> str | None:
    """A CIDR as Neutron stores it (10.0.0.5/24 -> 10.0.0.0/24); None for none."""
    if not prefix:
        return None
    try:
        return str(ipaddress.ip_network(prefix, strict=False))
    except ValueError:
        return prefix


def same_rule(existing: SGRule, want: RuleFix) -> bool:
    """The one matcher: does Neutron count `existing` as the rule `want` would create (its duplicate
    check answers HTTP 409)? The protocol by number ('ipip' is 4), the port range (a single port as
    min = max), the remote group, else the remote prefix normalised."""
    def top(lo: int | None, hi: int | None) -> int | None:
        return hi if hi is not None else lo

    return (existing.direction == want.direction and (existing.ether_type or "IPv4") == want.ether_type
            and protocol_number(existing.protocol) == protocol_number(want.protocol)
            and existing.port_range_min == want.port_range_min
            and top(existing.port_range_min, existing.port_range_max) == top(want.port_range_min, want.port_range_max)
            and (existing.remote_group_id or None) == (want.remote_group_id or None)
            and normal_prefix(existing.remote_ip_prefix) == (None if want.remote_group_id
                                                             else normal_prefix(want.remote_ip_prefix)))


def find_same_rule(rules: Iterable[SGRule], want: RuleFix) -> SGRule | None:
    """The first of `rules` Neutron counts as `want` (None: the rule is not there)."""
    return next((r for r in rules if same_rule(r, want)), None)


def in_effect(rule: SGRule) -> bool:
    """A rule that carries what it says: one named 'ipip' is protocol 94 on some clouds, so a rule
    that matches `want` only by that name is replaced, not counted as done."""
    return str(rule.protocol or "") != "ipip"


def lab_rule_fix(spec: RuleSpec, group_id: str, group_name: str) -> RuleFix:
    """A rule of the lab's own group (the Provision stage's RuleSpec) in the one rule shape: the group
    itself as the remote, or a CIDR; described `labtui: <requirement>`."""
    return RuleFix(security_group_id=group_id, security_group_name=group_name,
                   protocol=str(spec.protocol) if spec.protocol is not None else None,
                   port_range_min=spec.port_min,
                   port_range_max=(spec.port_max if spec.port_max is not None else spec.port_min)
                   if spec.port_min is not None else None,
                   remote_group_id=group_id if spec.remote == "group" else None,
                   remote_group_name=group_name if spec.remote == "group" else None,
                   remote_ip_prefix=spec.cidr if spec.remote != "group" and spec.cidr else None,
                   description=f"labtui: {spec.requirement}", requirement=spec.requirement)


def rule_create_command(rule: SGRule, group_name: str, remote_group_name: str | None = None) -> str:
    """The `openstack security group rule create` that makes `rule` again (e.g. to revert)."""
    fix = RuleFix(rule.security_group_id, group_name, rule.protocol, rule.port_range_min, rule.port_range_max,
                  rule.remote_group_id, remote_group_name if rule.remote_group_id else None, rule.remote_ip_prefix,
                  rule.direction, rule.ether_type, rule.description)
    return fix.command()


@dataclass(frozen=True)
class PairsFix:
    """Add one CIDR to a port's allowed-address-pairs, merged with the pairs already there."""

    port_id: str
    port_name: str
    node: str
    cidr: str
    existing: tuple[str, ...] = ()  # ip_address of the pairs already on the port (for the preview)
    requirement: str = "pod-cidr-pairs"
    kind: str = "port-pairs"
    blocked: str | None = None  # why it cannot be applied (quota)
    port_ref: str = ""  # how a command names the port, when `port_name` is a label for people

    @property
    def port_arg(self) -> str:
        return shlex.quote(self.port_ref or self.port_name or self.port_id)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.kind, self.port_id, self.cidr)

    @property
    def title(self) -> str:
        return f"{self.node}: allow {self.cidr} as a source on port {self.port_name or self.port_id[:8]}"

    def command(self) -> str:
        return f"openstack port set --allowed-address ip-address={shlex.quote(self.cidr)} {self.port_arg}"

    def api(self) -> str:
        pairs = [{"ip_address": ip} for ip in self.existing] + [{"ip_address": self.cidr}]
        return f"PUT /v2.0/ports/{self.port_id} " + json.dumps({"port": {"allowed_address_pairs": pairs}})

    def revert_command(self) -> str:
        return f"openstack port unset --allowed-address ip-address={shlex.quote(self.cidr)} {self.port_arg}"


@dataclass(frozen=True)
class PortSecurityFix:
    """Turn port security off on one port (removes its groups and pairs). Offered last."""

    port_id: str
    port_name: str
    node: str
    security_group_ids: tuple[str, ...] = ()
    security_group_names: tuple[str, ...] = ()
    allowed_address_pairs: tuple[tuple[str, str | None], ...] = ()  # (ip_address, mac_address)
    kind: str = "port-security-off"
    requirement: str = "port-security"
    port_ref: str = ""  # how a command names the port, when `port_name` is a label for people

    COST = ("Port security off removes anti-spoofing AND every security group from the port: the "
            "node accepts any traffic from anywhere its network reaches, and it can send with any "
            "source address. Use it only on an isolated lab network, and prefer IPIP Always with a "
            "protocol-4 rule.")

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.kind, self.port_id)

    @property
    def title(self) -> str:
        return f"{self.node}: disable port security on port {self.port_name or self.port_id[:8]}"

    def command(self) -> str:
        return ("openstack port set --no-security-group --no-allowed-address --disable-port-security "
                + shlex.quote(self.port_ref or self.port_name or self.port_id))

    def api(self) -> str:
        return f"PUT /v2.0/ports/{self.port_id} " + json.dumps(
            {"port": {"port_security_enabled": False, "security_groups": [], "allowed_address_pairs": []}})

    def revert_command(self) -> str:
        parts = ["openstack port set --enable-port-security"]
        parts += [f"--security-group {shlex.quote(n)}" for n in (self.security_group_names or self.security_group_ids)]
        parts += [f"--allowed-address ip-address={shlex.quote(ip)}" + (f",mac-address={mac}" if mac else "")
                  for ip, mac in self.allowed_address_pairs]
        parts.append(shlex.quote(self.port_ref or self.port_name or self.port_id))
        return " ".join(parts)


Fix = RuleFix | PairsFix | PortSecurityFix


