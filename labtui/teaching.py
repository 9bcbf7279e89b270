""""Show me how" with the lab's own values.

A step's `by_hand` text is written once for every lab, with placeholders in capitals (`ssh NODE ...`,
`openstack --os-cloud CLOUD ...`). A learner should be able to copy the line and run it: this module
puts in what the lab already knows (its cloud, its nodes and how labtui logs in to them, the names of
what it provisioned) and leaves a placeholder only where the lab does not know the value yet.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from labtui.model import NodeSpec, Plan, Role
from labtui.provision_plan import Names


def path_arg(path: str) -> str:
    """`path` as one shell word, keeping a leading `~/` outside the quotes so the shell expands it."""
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def ssh_target(node: NodeSpec) -> str:
    """The `ssh` arguments that reach `node` the way labtui does: key, port, jump host, user@host."""
    parts: list[str] = []
    if node.key_file:
        parts += ["-i", path_arg(node.key_file)]
    if node.port != 22:
        parts += ["-p", str(node.port)]
    if node.proxy_jump:
        parts += ["-J", shlex.quote(node.proxy_jump)]
    parts.append(f"{node.user}@{node.ssh_host or node.address}")
    return " ".join(parts)


@dataclass(frozen=True)
class LabValues:
    """What a lab knows that a `by_hand` placeholder stands for (None: not known yet)."""

    lab: str
    cloud: str | None = None
    plan: Plan | None = None
    # the plan wizard's inputs while its plan is not saved yet (nodes, prov_*, src_http_proxy)
    drafts: dict[str, Any] = field(default_factory=dict)

    def _nodes(self) -> list[NodeSpec]:
        if self.plan is not None:
            return list(self.plan.nodes)
        found = []
        for raw in self.drafts.get("nodes") or []:
            try:  # a row still being typed: only the valid ones say anything
                found.append(NodeSpec.model_validate({k: v for k, v in dict(raw).items() if v not in (None, "")}))
            except (ValueError, TypeError):
                continue
        return found

    def _first(self, role: Role | None = None) -> NodeSpec | None:
        nodes = self._nodes()
        for node in nodes:
            if role is None or node.role == role:
                return node
        return nodes[0] if nodes else None

    def values(self) -> list[tuple[str, str]]:
        """(pattern, value) in the order they are put in: longer placeholders first."""
        found: list[tuple[str, str]] = [(r"\bLAB\b", self.lab)]
        cloud = self.cloud or (self.plan.cloud if self.plan else None)
        if cloud:
            found.append((r"\bCLOUD\b", shlex.quote(cloud)))
        first = self._first()
        control_plane = self._first(Role.CONTROL_PLANE)
        if first is not None:
            found.append((r"\bUSER@ADDRESS\b", f"{first.user}@{first.ssh_host or first.address}"))
            found.append((r"\bNODE\b", ssh_target(first)))
            if first.key_file:
                found.append((r"\bKEY_FILE\b", path_arg(first.key_file)))
        if control_plane is not None:
            found.append((r"\bCONTROL_PLANE\b", ssh_target(control_plane)))
        if self.plan is not None:
            provisioned = self.plan.provision is not None
            public_key = self.plan.provision.public_key_file if self.plan.provision else None
        else:
            provisioned = self.drafts.get("provision_mode") == "create"
            public_key = self.drafts.get("prov_public_key_file") or None
        if provisioned:
            names = Names(self.lab)
            found.append((r"\bGROUP\b", names.group))
            if first is not None:
                found.append((r"\bSERVER\b", names.server(first.name)))
                found.append((r"(?<![:\w])PORT\b", names.port(first.name)))
            if public_key and (first is None or not first.key_file):
                key = public_key.removesuffix(".pub")
                found.append((r"\bKEY_FILE\b", path_arg(key)))
        proxy = self.plan.sources.http_proxy if self.plan else self.drafts.get("src_http_proxy") or None
        if proxy:
            found.append((r"http://PROXY:PORT\b", proxy))
        return found


PLACEHOLDER = re.compile(r"\b(?:[A-Z]+@[A-Z]+|[A-Z][A-Z_]*[A-Z])\b")  # USER@ADDRESS as one
_KNOWN = ("LAB", "CLOUD", "NODE", "USER@ADDRESS", "KEY_FILE", "CONTROL_PLANE", "GROUP", "SERVER", "PORT",
          "PROXY")


def fill(text: str, values: LabValues) -> str:
    """`text` with every placeholder the lab knows replaced by its value."""
    for pattern, value in values.values():
        text = re.sub(pattern, lambda _m, v=value: v, text)
    return text


def unknown_placeholders(text: str) -> list[str]:
    """The placeholders still in `text` (to say they are values the lab does not know yet)."""
    seen: list[str] = []
    for match in PLACEHOLDER.finditer(text):
        word = match.group(0)
        if (word in _KNOWN or "@" in word) and word not in seen:
            seen.append(word)
    return seen
