"""The containerd config edit, done as a text edit of the node's own `containerd config default`.

containerd 1.x prints config version 2; its runc options table is
`[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]` with `SystemdCgroup = false`
and the sandbox image is `sandbox_image` in `[plugins."io.containerd.grpc.v1.cri"]`.
containerd 2.x prints config version 3: the table is
`[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]` and has NO SystemdCgroup
line at all (so the usual `sed s/SystemdCgroup = false/.../` does nothing there): the key is
inserted. The sandbox image is `sandbox` in `[plugins.'io.containerd.cri.v1.images'.pinned_images]`.

Only those lines change; comments, order and every other value are kept.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

from labtui.errors import LabError

CONFIG_PATH = "/etc/containerd/config.toml"
CRI_SOCKET = "unix:///run/containerd/containerd.sock"

V2_CRI = ("plugins", "io.containerd.grpc.v1.cri")
V2_RUNC_OPTIONS = V2_CRI + ("containerd", "runtimes", "runc", "options")
V3_RUNC_OPTIONS = ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "runc", "options")
V3_PINNED = ("plugins", "io.containerd.cri.v1.images", "pinned_images")


@dataclass(frozen=True)
class Layout:
    version: int
    cgroup_table: tuple[str, ...]
    sandbox_table: tuple[str, ...]
    sandbox_key: str
    quote: str  # the string quote the version's `config default` uses


LAYOUTS = {
    2: Layout(2, V2_RUNC_OPTIONS, V2_CRI, "sandbox_image", '"'),
    3: Layout(3, V3_RUNC_OPTIONS, V3_PINNED, "sandbox", "'"),
}

_HEADER = re.compile(r"^(\s*)\[([^\[\]]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_.\-\"']+)\s*=")


def split_key(text: str) -> tuple[str, ...]:
    """`plugins."io.containerd.grpc.v1.cri".containerd` -> ('plugins', 'io.containerd.grpc.v1.cri', 'containerd')."""
    parts: list[str] = []
    buf = ""
    quote = ""
    for ch in text.strip():
        if quote:
            if ch == quote:
                quote = ""
            else:
                buf += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(buf.strip())
            buf = ""
        else:
            buf += ch
    parts.append(buf.strip())
    return tuple(parts)


def config_version(text: str) -> int:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LabError(f"the containerd config is not valid TOML: {exc}",
                       "regenerate it with `containerd config default`", code="containerd-config") from None
    return int(data.get("version", 1))


def layout_for(text: str) -> Layout:
    version = config_version(text)
    layout = LAYOUTS.get(version)
    if layout is None:
        raise LabError(f"containerd config version {version} is not supported (labtui edits versions 2 and 3)",
                       "install containerd 1.6 or later (config version 2) or 2.x (version 3)", code="containerd-config")
    return layout


def _value(layout: Layout, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{layout.quote}{value}{layout.quote}"


def set_key(text: str, table: tuple[str, ...], key: str, literal: str) -> str:
    """Set `key = literal` in `[table]`: the existing line's value is replaced (indentation kept),
    else the key is added after the table's last key, else the table is appended."""
    lines = text.splitlines(keepends=True)
    start = None
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m and split_key(m.group(2)) == table:
            start = i
            break
    if start is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        header = ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else f'"{p}"' for p in table)
        return text + sep + f"\n[{header}]\n  {key} = {literal}\n"
    end = len(lines)
    for j in range(start + 1, len(lines)):
        if _HEADER.match(lines[j]):
            end = j
            break
    last_key = None
    indent = None
    for j in range(start + 1, end):
        m = _KEY.match(lines[j])
        if not m:
            continue
        if indent is None:
            indent = m.group(1)
        last_key = j
        if split_key(m.group(2)) == (key,):
            newline = "\n" if lines[j].endswith("\n") else ""
            lines[j] = f"{m.group(1)}{key} = {literal}{newline}"
            return "".join(lines)
    if indent is None:
        header_indent = _HEADER.match(lines[start]).group(1)  # type: ignore[union-attr]
        indent = header_indent + "  "
    at = (last_key if last_key is not None else start) + 1
    if not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    lines.insert(at, f"{indent}{key} = {literal}\n")
    return "".join(lines)


def edit_config(text: str, sandbox_image: str | None = None) -> str:
    """The node's default config with SystemdCgroup = true (and the sandbox image) set."""
    layout = layout_for(text)
    out = set_key(text, layout.cgroup_table, "SystemdCgroup", "true")
    if sandbox_image:
        out = set_key(out, layout.sandbox_table, layout.sandbox_key, _value(layout, sandbox_image))
    return out


def _get(data: dict, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(data, dict) or p not in data:
            return None
        data = data[p]
    return data


def problems(text: str, sandbox_image: str | None = None) -> list[str]:
    """What is wrong with a config for kubeadm (empty: nothing)."""
    try:
        layout = layout_for(text)
    except LabError as exc:
        return [exc.message]
    data = tomllib.loads(text)
    out = []
    options = _get(data, layout.cgroup_table) or {}
    if options.get("SystemdCgroup") is not True:
        out.append("SystemdCgroup is not true in [" + ".".join(layout.cgroup_table) + "]")
    if sandbox_image:
        current = _get(data, layout.sandbox_table + (layout.sandbox_key,))
        if current != sandbox_image:
            out.append(f"the sandbox image is {current or 'unset'}, kubeadm expects {sandbox_image}")
    return out
