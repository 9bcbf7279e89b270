"""Calico as the plan wants it: the operator's Installation, or the calico.yaml manifest's pool
settings. Both carry the plan's pod CIDR and encapsulation (facts/domain.md 1.3, 1.4)."""

from __future__ import annotations

import re

import yaml

from labtui.errors import LabError

RELEASE_BASE = "https://raw.githubusercontent.com/projectcalico/calico/v{version}/manifests"
POOL_NAME = "default-ipv4-ippool"

# encapsulation -> (CALICO_IPV4POOL_IPIP, CALICO_IPV4POOL_VXLAN, calico_backend)
MANIFEST_MODES = {
    "IPIP": ("Always", "Never", "bird"),
    "IPIPCrossSubnet": ("CrossSubnet", "Never", "bird"),
    "VXLAN": ("Never", "Always", "vxlan"),
    "VXLANCrossSubnet": ("Never", "CrossSubnet", "vxlan"),
    "None": ("Never", "Never", "bird"),
}


def _version(version: str) -> str:
    v = version.lstrip("v")
    if not re.fullmatch(r"\d+\.\d+\.\d+", v):
        raise LabError(f"{version!r} is not a Calico version such as 3.32.2", "choose a Calico version in the plan",
                       code="calico-version")
    return v


def manifest_url(version: str, name: str) -> str:
    return RELEASE_BASE.format(version=_version(version)) + "/" + name


def operator_manifests(version: str) -> list[str]:
    """The files `kubectl create -f` takes, in order, for an operator install (3.32 split the CRDs out)."""
    v = _version(version)
    major, minor = (int(x) for x in v.split(".")[:2])
    names = (["v1_crd_projectcalico_org.yaml"] if (major, minor) >= (3, 32) else []) + ["tigera-operator.yaml"]
    return [manifest_url(v, n) for n in names]


def installation(pod_cidr: str, encapsulation: str, *, block_size: int = 26) -> str:
    """The Installation (and APIServer) for the operator: one IPv4 pool with the plan's CIDR and
    encapsulation, natOutgoing Enabled. BGP stays on for IPIP (the operator requires it) and is off
    for VXLAN (no BIRD, so no TCP 179 between nodes)."""
    if encapsulation not in MANIFEST_MODES:
        raise LabError(f"{encapsulation!r} is not a Calico encapsulation", "choose one in the plan", code="encapsulation")
    network = {
        "bgp": "Disabled" if encapsulation.startswith("VXLAN") else "Enabled",
        "ipPools": [{
            "name": POOL_NAME, "blockSize": block_size, "cidr": pod_cidr, "encapsulation": encapsulation,
            "natOutgoing": "Enabled", "nodeSelector": "all()",
        }],
    }
    docs = [
        {"apiVersion": "operator.tigera.io/v1", "kind": "Installation", "metadata": {"name": "default"},
         "spec": {"calicoNetwork": network}},
        {"apiVersion": "operator.tigera.io/v1", "kind": "APIServer", "metadata": {"name": "default"}, "spec": {}},
    ]
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def _set_env(text: str, name: str, value: str) -> tuple[str, bool]:
    """Set `- name: NAME` / `value: "..."` in calico-node's env, uncommenting it when it is
    commented out (CALICO_IPV4POOL_CIDR ships commented)."""
    pattern = re.compile(
        r"^(?P<i>[ \t]*)(?P<c>#[ \t]*)?- name: " + re.escape(name) + r"[ \t]*\n"
        r"(?P<j>[ \t]*)(?:#[ \t]*)?(?P<pad>[ \t]*)value: [^\n]*$", re.M)
    m = pattern.search(text)
    if not m:
        return text, False
    indent = m.group("i")
    value_indent = indent + "  "
    new = f"{indent}- name: {name}\n{value_indent}value: \"{value}\""
    return text[:m.start()] + new + text[m.end():], True


def edit_manifest(text: str, pod_cidr: str, encapsulation: str) -> str:
    """calico.yaml with the pool's CIDR, IPIP/VXLAN modes and the backend the encapsulation needs."""
    if encapsulation not in MANIFEST_MODES:
        raise LabError(f"{encapsulation!r} is not a Calico encapsulation", "choose one in the plan", code="encapsulation")
    if "calico-node" not in text or "CALICO_IPV4POOL_IPIP" not in text:
        raise LabError("this file is not Calico's calico.yaml (no calico-node with CALICO_IPV4POOL_IPIP)",
                       "give the calico.yaml of the plan's Calico release (manifests/calico.yaml)", code="calico-manifest")
    ipip, vxlan, backend = MANIFEST_MODES[encapsulation]
    out = text
    for name, value in (("CALICO_IPV4POOL_CIDR", pod_cidr), ("CALICO_IPV4POOL_IPIP", ipip),
                        ("CALICO_IPV4POOL_VXLAN", vxlan)):
        out, found = _set_env(out, name, value)
        if not found:
            raise LabError(f"calico.yaml has no {name} entry to set", "give an unmodified calico.yaml", code="calico-manifest")
    out, n = re.subn(r'^(\s*calico_backend:\s*)"[^"]*"', lambda m: m.group(1) + f'"{backend}"', out, count=1, flags=re.M)
    if not n:
        raise LabError("calico.yaml has no calico_backend setting", "give an unmodified calico.yaml", code="calico-manifest")
    return out


def manifest_settings(text: str) -> dict[str, str]:
    """The pool settings a calico.yaml carries (for checks and tests)."""
    out = {}
    for name in ("CALICO_IPV4POOL_CIDR", "CALICO_IPV4POOL_IPIP", "CALICO_IPV4POOL_VXLAN"):
        m = re.search(r"^[ \t]*- name: " + name + r"[ \t]*\n[ \t]*value: \"([^\"]*)\"", text, re.M)
        if m:
            out[name] = m.group(1)
    m = re.search(r'^\s*calico_backend:\s*"([^"]*)"', text, re.M)
    if m:
        out["calico_backend"] = m.group(1)
    return out
