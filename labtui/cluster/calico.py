"""Calico as the plan wants it: the operator's Installation, or the calico.yaml manifest's pool
settings. Both carry the plan's pod CIDR and encapsulation (facts/domain.md 1.3, 1.4)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from labtui.errors import LabError
from labtui.model import DEFAULT_CALICO_MANIFESTS as DEFAULT_MANIFESTS_BASE  # then /v3.32.2/manifests/NAME
from labtui.model import Encapsulation

POOL_NAME = "default-ipv4-ippool"
# calico-node's probe arguments that ask BIRD: only with the bird backend. The chart emits them only
# `if and (eq .Values.network "calico") ... (not .Values.vxlan)` (calico@v3.32.1
# charts/calico/templates/calico-node.yaml:405-425), and with CALICO_NETWORKING_BACKEND=vxlan the node
# image starts no BIRD ("no need to run a BGP daemon", node/filesystem/etc/rc.local:51-53).
BIRD_PROBE_ARGS = {"livenessProbe": "-bird-live", "readinessProbe": "-bird-ready"}


def _version(version: str) -> str:
    v = version.lstrip("v")
    if not re.fullmatch(r"\d+\.\d+\.\d+", v):
        raise LabError(f"{version!r} is not a Calico version such as 3.32.2", "choose a Calico version in the plan",
                       code="calico-version")
    return v


def manifest_url(version: str, name: str, base: str = DEFAULT_MANIFESTS_BASE) -> str:
    return f"{base.rstrip('/')}/v{_version(version)}/manifests/{name}"


def operator_manifests(version: str, base: str = DEFAULT_MANIFESTS_BASE) -> list[str]:
    """The files `kubectl create -f` takes, in order, for an operator install. From 3.30 on
    tigera-operator.yaml carries no CRD (calico@v3.30.7 and v3.31.7: 0 CRDs there, 32 in
    operator-crds.yaml), so operator-crds.yaml goes first or `installation.yaml` fails with "no
    matches for kind Installation"; at v3.32.1 operator-crds.yaml and v1_crd_projectcalico_org.yaml
    are the same blob (7cb3ee9), so one name serves 3.30 to 3.32."""
    v = _version(version)
    major, minor = (int(x) for x in v.split(".")[:2])
    names = (["operator-crds.yaml"] if (major, minor) >= (3, 30) else []) + ["tigera-operator.yaml"]
    return [manifest_url(v, n, base) for n in names]


def _encapsulation(value: Encapsulation | str) -> Encapsulation:
    try:
        return Encapsulation(value)
    except ValueError:
        raise LabError(f"{value!r} is not a Calico encapsulation", "choose one in the plan",
                       code="encapsulation") from None


def installation(pod_cidr: str, encapsulation: Encapsulation | str, *, block_size: int = 26) -> str:
    """The Installation (and APIServer) for the operator: one IPv4 pool with the plan's CIDR and
    encapsulation, natOutgoing Enabled. BGP stays on for IPIP (the operator requires it) and is off
    for VXLAN (no BIRD, so no TCP 179 between nodes)."""
    enc = _encapsulation(encapsulation)
    network = {
        "bgp": "Disabled" if enc.backend == "vxlan" else "Enabled",
        "ipPools": [{
            "name": POOL_NAME, "blockSize": block_size, "cidr": pod_cidr, "encapsulation": enc.value,
            "natOutgoing": "Enabled", "nodeSelector": "all()",
        }],
    }
    docs = [
        {"apiVersion": "operator.tigera.io/v1", "kind": "Installation", "metadata": {"name": "default"},
         "spec": {"calicoNetwork": network}},
        {"apiVersion": "operator.tigera.io/v1", "kind": "APIServer", "metadata": {"name": "default"}, "spec": {}},
    ]
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def _yaml():
    from ruamel.yaml import YAML

    y = YAML()  # round-trip: comments, order and quoting kept
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _docs(text: str) -> list[Any]:
    try:
        return [d for d in _yaml().load_all(text)]
    except Exception as exc:  # ruamel's errors have no common public base worth naming
        raise LabError(f"calico.yaml is not valid YAML: {str(exc).splitlines()[0]}",
                       "give an unmodified calico.yaml", code="calico-manifest") from None


def _find(docs: list[Any], kind: str, name: str) -> Any:
    return next((d for d in docs if isinstance(d, dict) and d.get("kind") == kind
                 and (d.get("metadata") or {}).get("name") == name), None)


def _node_container(docs: list[Any]) -> Any:
    ds = _find(docs, "DaemonSet", "calico-node")
    if ds is None:
        return None
    containers = ds["spec"]["template"]["spec"].get("containers") or []
    return next((c for c in containers if c.get("name") == "calico-node"), None)


def _set_env(container: Any, name: str, value: str) -> None:
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    env = container.setdefault("env", [])
    quoted = DoubleQuotedScalarString(value)
    for item in env:
        if item.get("name") == name:
            item["value"] = quoted
            return
    entry = CommentedMap([("name", name), ("value", quoted)])
    # beside its siblings (CALICO_IPV4POOL_CIDR ships commented out after CALICO_IPV6POOL_VXLAN)
    at = max((i + 1 for i, it in enumerate(env) if str(it.get("name", "")).startswith("CALICO_IPV")), default=len(env))
    env.insert(at, entry)


def _drop_probe_arg(container: Any, probe: str, arg: str) -> None:
    command = ((container.get(probe) or {}).get("exec") or {}).get("command")
    if command is not None:
        while arg in command:
            command.remove(arg)


def edit_manifest(text: str, pod_cidr: str, encapsulation: Encapsulation | str) -> str:
    """calico.yaml with the pool's CIDR, IPIP/VXLAN modes, the backend the encapsulation needs and,
    without BIRD, no BIRD probe arguments. Structural (ruamel.yaml round trip): every other line
    and comment is kept."""
    enc = _encapsulation(encapsulation)
    if "calico-node" not in text or "CALICO_IPV4POOL_IPIP" not in text:
        raise LabError("this file is not Calico's calico.yaml (no calico-node with CALICO_IPV4POOL_IPIP)",
                       "give the calico.yaml of the plan's Calico release (manifests/calico.yaml)", code="calico-manifest")
    (ipip, vxlan), backend = enc.pool_modes, enc.backend  # CALICO_IPV4POOL_IPIP / _VXLAN, calico_backend
    docs = _docs(text)
    container = _node_container(docs)
    config = _find(docs, "ConfigMap", "calico-config")
    if container is None:
        raise LabError("calico.yaml has no calico-node container", "give an unmodified calico.yaml", code="calico-manifest")
    if config is None or "calico_backend" not in (config.get("data") or {}):
        raise LabError("calico.yaml has no calico_backend setting", "give an unmodified calico.yaml", code="calico-manifest")
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    config["data"]["calico_backend"] = DoubleQuotedScalarString(backend)
    for name, value in (("CALICO_IPV4POOL_CIDR", pod_cidr), ("CALICO_IPV4POOL_IPIP", ipip),
                        ("CALICO_IPV4POOL_VXLAN", vxlan)):
        _set_env(container, name, value)
    if backend != "bird":
        for probe, arg in BIRD_PROBE_ARGS.items():
            _drop_probe_arg(container, probe, arg)
    import io

    buf = io.StringIO()
    _yaml().dump_all(docs, buf)
    return buf.getvalue()


def manifest_settings(text: str) -> dict[str, Any]:
    """The pool settings a calico.yaml carries, and its probe arguments (for checks and tests)."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    out: dict[str, Any] = {}
    ds = next((d for d in docs if d.get("kind") == "DaemonSet" and d["metadata"]["name"] == "calico-node"), None)
    if ds:
        c = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "calico-node")
        for e in c.get("env", []):
            if e["name"] in ("CALICO_IPV4POOL_CIDR", "CALICO_IPV4POOL_IPIP", "CALICO_IPV4POOL_VXLAN") and "value" in e:
                out[e["name"]] = e["value"]
    cm = next((d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "calico-config"), None)
    if cm and "calico_backend" in (cm.get("data") or {}):
        out["calico_backend"] = cm["data"]["calico_backend"]
    return out


def probe_args(text: str) -> list[str]:
    """calico-node's liveness and readiness probe arguments."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    ds = next(d for d in docs if d.get("kind") == "DaemonSet" and d["metadata"]["name"] == "calico-node")
    c = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "calico-node")
    return [a for p in BIRD_PROBE_ARGS for a in ((c.get(p) or {}).get("exec") or {}).get("command", [])]
