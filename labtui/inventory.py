"""Import nodes from an inventory file: labtui's YAML, kubespray's hosts.yaml, or an Ansible INI."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from labtui.errors import LabError

CONTROL_PLANE_GROUPS = {"kube_control_plane", "kube-master", "kube_master", "control_plane", "control-plane", "masters", "master"}
WORKER_GROUPS = {"kube_node", "kube-node", "workers", "worker", "nodes"}


def _node(name: str, vars_: dict[str, Any], role: str) -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": str(name),
        "address": str(vars_.get("ansible_host") or vars_.get("address") or vars_.get("ip") or name),
        "role": role,
    }
    user = vars_.get("ansible_user") or vars_.get("user")
    if user:
        node["user"] = str(user)
    port = vars_.get("ansible_port") or vars_.get("port")
    if port:
        try:
            node["port"] = int(port)
        except (TypeError, ValueError):
            raise LabError(f"host {name}: port {port!r} is not a number", "fix ansible_port in the inventory", code="inventory") from None
    key = vars_.get("ansible_ssh_private_key_file") or vars_.get("key_file")
    if key:
        node["key_file"] = str(key)
    jump = vars_.get("proxy_jump")
    if jump:
        node["proxy_jump"] = str(jump)
    return node


def parse_ini(text: str, source: str = "inventory") -> list[dict[str, Any]]:
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    group_vars: dict[str, dict[str, Any]] = {}
    section = "ungrouped"
    kind = "hosts"
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise LabError(f"{source}, line {lineno}: unclosed section header {line!r}", "write it as [group]", code="inventory")
            header = line[1:-1].strip()
            section, _, suffix = header.partition(":")
            kind = suffix or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise LabError(f"{source}, line {lineno}: unknown section kind {suffix!r}", "use [group], [group:vars] or [group:children]", code="inventory")
            groups.setdefault(section, [])
            continue
        try:
            parts = shlex.split(line, comments=True)
        except ValueError as exc:
            raise LabError(f"{source}, line {lineno}: {exc}", "check the quoting on that line", code="inventory") from None
        if not parts:
            continue
        if kind == "vars":
            key, eq, value = line.partition("=")
            if not eq:
                raise LabError(f"{source}, line {lineno}: expected key=value in [{section}:vars]", "write it as key=value", code="inventory")
            group_vars.setdefault(section, {})[key.strip()] = value.strip()
            continue
        if kind == "children":
            groups.setdefault(section, []).append("@" + parts[0])
            continue
        name, *pairs = parts
        vars_: dict[str, Any] = {}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq:
                raise LabError(f"{source}, line {lineno}: {pair!r} is not key=value", "host variables are written key=value", code="inventory")
            vars_[key] = value
        hosts.setdefault(name, {}).update(vars_)
        groups.setdefault(section, []).append(name)

    def members(group: str, seen: set[str] | None = None) -> set[str]:
        seen = seen or set()
        out: set[str] = set()
        for m in groups.get(group, []):
            if m.startswith("@"):
                child = m[1:]
                if child not in seen:
                    seen.add(child)
                    out |= members(child, seen)
            else:
                out.add(m)
        return out

    if not hosts:
        raise LabError(f"{source} lists no hosts", "add one line per host, e.g. node1 ansible_host=10.0.0.11", code="inventory")
    cps: set[str] = set()
    for g in CONTROL_PLANE_GROUPS:
        cps |= members(g)
    all_vars = group_vars.get("all", {})
    nodes = []
    for name, vars_ in hosts.items():
        merged = dict(all_vars)
        for g, gv in group_vars.items():
            if name in members(g):
                merged.update(gv)
        merged.update(vars_)
        nodes.append(_node(name, merged, "control-plane" if name in cps else "worker"))
    return nodes


def parse_yaml(text: str, source: str = "inventory") -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise LabError(f"{source} is not valid YAML{where}", "fix the file, or use the Ansible INI format", code="inventory") from exc
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        out = []
        for i, item in enumerate(data["nodes"]):
            if not isinstance(item, dict) or "name" not in item:
                raise LabError(f"{source}: nodes[{i}] needs at least name and address", "write each node as a mapping with name:, address:, role:", code="inventory")
            out.append({k: v for k, v in item.items() if v is not None})
        if not out:
            raise LabError(f"{source} lists no nodes", "add entries under nodes:", code="inventory")
        return out
    if isinstance(data, dict) and isinstance(data.get("all"), dict):  # kubespray / Ansible YAML inventory
        root = data["all"]
        hosts = root.get("hosts") or {}
        children = root.get("children") or {}
        if not isinstance(hosts, dict) or not hosts:
            raise LabError(f"{source}: all.hosts is empty", "list the hosts under all: hosts:", code="inventory")

        def group_members(name: str, seen: set[str]) -> set[str]:
            g = children.get(name) or {}
            if not isinstance(g, dict):
                return set()
            out = set((g.get("hosts") or {}).keys())
            for child in (g.get("children") or {}):
                if child not in seen:
                    seen.add(child)
                    out |= group_members(child, seen)
            return out

        cps: set[str] = set()
        for g in CONTROL_PLANE_GROUPS:
            cps |= group_members(g, set())
        return [_node(name, vars_ or {}, "control-plane" if name in cps else "worker") for name, vars_ in hosts.items()]
    raise LabError(
        f"{source} is neither a labtui inventory (nodes: [...]) nor an Ansible YAML inventory (all: hosts: ...)",
        "see the README section 'Inventory files' for both formats",
        code="inventory",
    )


def load_inventory(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except OSError as exc:
        raise LabError(f"cannot read the inventory {p}: {exc.strerror or exc}", "check the path", code="inventory") from exc
    stripped = text.lstrip()
    looks_ini = p.suffix in (".ini", ".cfg", "") and (stripped.startswith("[") or "ansible_host=" in text)
    if p.suffix in (".yaml", ".yml", ".json") or not looks_ini:
        return parse_yaml(text, str(p))
    return parse_ini(text, str(p))
