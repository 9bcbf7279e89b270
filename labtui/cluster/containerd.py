"""The containerd config edit: structural (tomlkit, comments and layout kept) on the node's own
`containerd config default`, plus the files around it (registry hosts.toml, the proxy drop-in).

Where the keys live is data, one `Layout` per config version (LAYOUTS); a new version is a new row,
not new code. Sources (containerd v2.3.4, docs/cri/config.md "Config versions" and "Cgroup Driver";
cmd/containerd/server/config/config.go `migrations`):
- version 2 (containerd 1.x): `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`
  SystemdCgroup (printed as `false`), `sandbox_image` in `[plugins."io.containerd.grpc.v1.cri"]`, the
  registry `config_path` in `[plugins."io.containerd.grpc.v1.cri".registry]`;
- version 3 (containerd 2.0-2.2): `[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]`
  with NO SystemdCgroup line at all (so `sed s/SystemdCgroup = false/.../` does nothing: the key is
  inserted), `sandbox` in `[plugins.'io.containerd.cri.v1.images'.pinned_images]`, `config_path` in
  `[plugins.'io.containerd.cri.v1.images'.registry]`;
- version 4 (containerd >= 2.3, version/version.go `ConfigVersion = 4`): "Version 3 has server
  properties moved to plugins for version 4" (grpc/ttrpc/debug/metrics become
  `io.containerd.server.v1.*` plugins): the CRI tables are those of version 3. A config version
  newer than the last row is read with that row (CRI plugin IDs are unchanged,
  plugins/cri/runtime/plugin.go), and the check after the restart proves it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from labtui.errors import LabError

CONFIG_PATH = "/etc/containerd/config.toml"
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
SOCKET_PATH = "/run/containerd/containerd.sock"
CERTS_DIR = "/etc/containerd/certs.d"
PROXY_DROPIN = "/etc/systemd/system/containerd.service.d/http-proxy.conf"

V2_CRI = ("plugins", "io.containerd.grpc.v1.cri")
V2_RUNC_OPTIONS = V2_CRI + ("containerd", "runtimes", "runc", "options")
V2_REGISTRY = V2_CRI + ("registry",)
V3_RUNC_OPTIONS = ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "runc", "options")
V3_IMAGES = ("plugins", "io.containerd.cri.v1.images")
V3_PINNED = V3_IMAGES + ("pinned_images",)
V3_REGISTRY = V3_IMAGES + ("registry",)


@dataclass(frozen=True)
class Layout:
    version: int
    cgroup_table: tuple[str, ...]
    sandbox_table: tuple[str, ...]
    sandbox_key: str
    registry_table: tuple[str, ...]
    literal: bool  # the version's `config default` writes 'literal' strings (2.x) or "basic" ones (1.x)


_V3 = dict(cgroup_table=V3_RUNC_OPTIONS, sandbox_table=V3_PINNED, sandbox_key="sandbox", registry_table=V3_REGISTRY,
           literal=True)
LAYOUTS = {
    2: Layout(2, V2_RUNC_OPTIONS, V2_CRI, "sandbox_image", V2_REGISTRY, False),
    3: Layout(3, **_V3),
    4: Layout(4, **_V3),  # only server settings moved (see the module's doc)
}


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
    if layout is None and version > max(LAYOUTS):
        layout = LAYOUTS[max(LAYOUTS)]
    if layout is None:
        raise LabError(f"containerd config version {version} is not supported (labtui edits version 2 and later)",
                       "install containerd 1.7 or later (config version 2) or 2.x (version 3 and later)",
                       code="containerd-config")
    return layout


def _table(doc: Any, path: tuple[str, ...]) -> Any:
    """The table at `path`, created (as nested tables) when missing."""
    import tomlkit

    t = doc
    for i, part in enumerate(path):
        if part not in t:
            t.add(part, tomlkit.table(is_super_table=i < len(path) - 1))
        t = t[part]
    return t


def _set(table: Any, key: str, value: Any) -> None:
    """`key = value` in `table`: an existing key keeps its place and indentation; a new one takes
    the indentation of the table's other keys."""
    from tomlkit.items import Table

    if key in table:
        table[key] = value
        return
    table.add(key, value)
    body = table.value.body if isinstance(table, Table) else []
    indents = [item.trivia.indent for k, item in body if k is not None and not isinstance(item, Table)
               and k.key != key and hasattr(item, "trivia")]
    if indents:
        table.value.item(key).trivia.indent = indents[0]


def _string(layout: Layout, value: str) -> Any:
    import tomlkit

    return tomlkit.string(value, literal=layout.literal)


def edit_config(text: str, sandbox_image: str | None = None, *, registry_config_path: str | None = None) -> str:
    """The node's default config with SystemdCgroup = true, the sandbox image and (for a registry
    mirror) the CRI registry's config_path set; everything else byte-identical."""
    import tomlkit

    layout = layout_for(text)
    doc = tomlkit.parse(text)
    _set(_table(doc, layout.cgroup_table), "SystemdCgroup", True)
    if sandbox_image:
        _set(_table(doc, layout.sandbox_table), layout.sandbox_key, _string(layout, sandbox_image))
    if registry_config_path:
        _set(_table(doc, layout.registry_table), "config_path", _string(layout, registry_config_path))
    return tomlkit.dumps(doc)


def _get(data: dict, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(data, dict) or p not in data:
            return None
        data = data[p]
    return data


def problems(text: str, sandbox_image: str | None = None, *, registry_config_path: str | None = None) -> list[str]:
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
    if registry_config_path:
        current = _get(data, layout.registry_table + ("config_path",))
        if current != registry_config_path:
            out.append(f"the CRI registry config_path is {current or 'unset'}, the registry mirror needs "
                       f"{registry_config_path}")
    return out


# --------------------------------------------------------------------------- registry mirror, proxy

# the registries a kubeadm + Calico cluster pulls from, and the upstream each falls back to
# (containerd docs/hosts.md, "Setup a Local Mirror for Docker": `server` is the upstream, each
# `[host."…"]` is tried first; docker.io's API host is registry-1.docker.io)
MIRRORED = {"docker.io": "https://registry-1.docker.io", "registry.k8s.io": "https://registry.k8s.io",
            "quay.io": "https://quay.io"}


def mirror_url(mirror: str) -> str:
    return mirror if mirror.startswith(("http://", "https://")) else f"https://{mirror}"


def hosts_files(mirror: str | None) -> dict[str, str]:
    """{path: content} of the hosts.toml files that send pulls of docker.io, registry.k8s.io and
    quay.io to the mirror first (containerd docs/hosts.md: `server`, `[host."…"]`, `capabilities`)."""
    if not mirror:
        return {}
    import tomlkit

    out = {}
    for registry, upstream in MIRRORED.items():
        doc = tomlkit.document()
        doc.add(tomlkit.comment(f"labtui: pull {registry} images through the lab's registry mirror"))
        doc.add("server", upstream)
        host = tomlkit.table()
        host.add("capabilities", ["pull", "resolve"])
        hosts = tomlkit.table(is_super_table=True)
        hosts.add(mirror_url(mirror), host)
        doc.add("host", hosts)
        out[f"{CERTS_DIR}/{registry}/hosts.toml"] = tomlkit.dumps(doc)
    return out


def proxy_dropin(proxy: dict[str, str] | None) -> str | None:
    """containerd's systemd drop-in with the proxy (image pulls go through it), or None.
    `proxy` = {"http_proxy": URL, "no_proxy": "a,b,c"} (apt.proxy_settings)."""
    if not proxy or not proxy.get("http_proxy"):
        return None
    url, no_proxy = proxy["http_proxy"], proxy.get("no_proxy", "")
    return ("# labtui: containerd pulls images through the lab's proxy\n[Service]\n"
            f'Environment="HTTP_PROXY={url}"\nEnvironment="HTTPS_PROXY={url}"\nEnvironment="NO_PROXY={no_proxy}"\n')
