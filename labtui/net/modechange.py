"""Planning a change of one Calico IP pool's encapsulation: the supported way, the exact request, its revert.

Pure (no kubernetes import), over a labtui.net.calico `ClusterState`: `plan_mode_change` picks the
supported way to change a pool's encapsulation (the operator's Installation, the v3 API, calicoctl
on the control plane, last the raw v1 CRD with a warning to accept), refuses what Calico forbids
(`refusal`), and builds the exact command, API request and revert as a `ModeChange`
(facts: domain.md 1.2-1.4). labtui.adapters.calico sends it; labtui.changes.calico records it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from labtui.errors import LabError
from labtui.model import Encapsulation
from labtui.net.calico import ClusterState, IPPoolInfo, find_installation_pool

V1_WARNING = (
    "Calico's documentation says: never modify resources in the crd.projectcalico.org API group "
    "directly; they are internal data representations and editing them may result in unexpected "
    "behaviour. Neither the Calico API server (projectcalico.org/v3) nor calicoctl is available "
    "here, so the only way left is that raw CRD: nothing validates the values and nothing applies "
    "Calico's defaulting. labtui sends one patch that sets ipipMode and vxlanMode together."
)


# --------------------------------------------------------------------------- change planning


@dataclass
class ApiCall:
    method: str
    path: str
    content_type: str
    body: Any

    def render(self) -> str:
        return f"{self.method} {self.path} ({self.content_type}) {json.dumps(self.body, separators=(',', ':'))}"


@dataclass
class ModeChange:
    """One encapsulation change, ready to show (command, API) and to run, with its revert."""

    pool: str
    cidr: str
    method: str  # installation | v3 | calicoctl | v1-crd
    old: Encapsulation
    new: Encapsulation
    old_modes: tuple[str, str]
    new_modes: tuple[str, str]
    command: str
    revert_command: str
    api: ApiCall | None = None
    revert_api: ApiCall | None = None
    remote_command: str | None = None  # calicoctl: what runs on the control plane (argv string)
    revert_remote_command: str | None = None
    warning: str | None = None  # must be accepted explicitly (v1 CRD)
    installation_index: int | None = None
    notes: list[str] = field(default_factory=list)
    sent: bool = False  # set once the request (or calicoctl) was accepted by the cluster

    @property
    def noop(self) -> bool:
        return self.old_modes == self.new_modes

    @property
    def description(self) -> str:
        ipip, vxlan = self.new_modes
        return (f"IP pool {self.pool} ({self.cidr}): {self.old.value} -> {self.new.value} "
                f"(ipipMode {ipip}, vxlanMode {vxlan}) via {METHOD_LABELS[self.method]}")

    def lines(self) -> list[str]:
        """What a confirmation shows: the exact command, the API request, the revert, the warning."""
        out = []
        if self.warning:
            out.append("WARNING: " + self.warning)
        out.append(f"$ {self.command}")
        if self.api:
            out.append(f"  API: {self.api.render()}")
        out.append(f"  revert: {self.revert_command}")
        out.extend(f"  note: {n}" for n in self.notes)
        return out

    def render(self) -> str:
        return "\n".join(self.lines())

    def revert_data(self) -> dict[str, Any]:
        return {
            "pool": self.pool, "cidr": self.cidr, "method": self.method,
            "old": self.old.value, "new": self.new.value,
            "ipipMode": self.old_modes[0], "vxlanMode": self.old_modes[1],
            "installation_index": self.installation_index,
            "revert_api": asdict(self.revert_api) if self.revert_api else None,
            "revert_remote_command": self.revert_remote_command,
        }


METHOD_LABELS = {
    "installation": "the operator's Installation",
    "v3": "the Calico API (projectcalico.org/v3)",
    "calicoctl": "calicoctl on the control plane",
    "v1-crd": "the raw crd.projectcalico.org/v1 CRD",
}


def parse_encapsulation(value: str) -> Encapsulation:
    """Accept IPIP, ipip, IPIPCrossSubnet, ipip-crosssubnet, VXLAN, none, never... (case-insensitive)."""
    if isinstance(value, Encapsulation):
        return value
    key = re.sub(r"[\s_-]", "", str(value)).lower()
    aliases = {"ipipalways": "ipip", "vxlanalways": "vxlan", "never": "none", "off": "none", "direct": "none"}
    key = aliases.get(key, key)
    for enc in Encapsulation:
        if enc.value.lower() == key:
            return enc
    raise LabError(f"{value!r} is not a Calico encapsulation",
                   "use one of " + ", ".join(e.value for e in Encapsulation), code="invalid")


def _json(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def refusal(state: ClusterState, pool: IPPoolInfo, target: Encapsulation) -> str | None:
    """Why this change must not be made, or None."""
    ipip, vxlan = target.pool_modes
    if pool.load_balancer and target != Encapsulation.NONE:
        return f"{pool.name} is a LoadBalancer pool: Calico forbids IPIP or VXLAN on it"
    if pool.version == 6 and ipip != "Never":
        return f"{pool.name} ({pool.cidr}) is IPv6: IPIP cannot carry IPv6; use VXLAN or None"
    if ipip != "Never" and state.install.bgp is False:
        where = (f"the Installation sets calicoNetwork.bgp: {state.install.installation_bgp}"
                 if state.install.mode == "operator" else f"calico_backend is {state.install.backend}")
        return (f"IPIP needs BGP, and BGP is disabled on this cluster ({where}): IPIP routes are spread by "
                "Calico's BGP daemon (bird), so the pool would never route. Use VXLAN (UDP 4789) instead, or "
                "enable BGP first")
    return None


def plan_mode_change(
    state: ClusterState,
    pool_name: str,
    target: Encapsulation | str,
    *,
    calicoctl: bool = False,
) -> ModeChange:
    """The supported way to set this pool's encapsulation, in order: the operator's Installation,
    the v3 API, calicoctl over SSH, and last the v1 CRD (with a warning to accept)."""
    target = parse_encapsulation(target) if isinstance(target, str) else target
    pool = state.pool(pool_name)
    reason = refusal(state, pool, target)
    if reason:
        raise LabError(f"refused: {reason}", "choose another encapsulation", code="refused")
    old = pool.encapsulation
    old_modes = (pool.ipip_mode, pool.vxlan_mode)
    new_modes = target.pool_modes
    spec = {"spec": {"ipipMode": new_modes[0], "vxlanMode": new_modes[1]}}
    revert_spec = {"spec": {"ipipMode": old_modes[0], "vxlanMode": old_modes[1]}}
    q = shlex.quote
    common: dict[str, Any] = dict(pool=pool.name, cidr=pool.cidr, old=old, new=target, old_modes=old_modes, new_modes=new_modes)

    if state.install.mode == "operator" and (
        pool.operator_managed or find_installation_pool(state.install, pool) is not None
    ):
        idx = find_installation_pool(state.install, pool)
        if idx is None:
            raise LabError(
                f"{pool.name} is managed by the tigera-operator but the Installation 'default' lists no pool "
                f"named {pool.name} or with CIDR {pool.cidr}",
                "look at `kubectl get installation default -o yaml`; the operator reverts direct edits of its pools",
                code="calico")
        entry = state.install.installation_pools[idx]
        old_value = entry.get("encapsulation")
        guard_key = "name" if entry.get("name") else "cidr" if entry.get("cidr") else None

        def ops(value: str, current: str | None) -> list[dict[str, Any]]:
            out = []
            if guard_key:
                out.append({"op": "test", "path": f"/spec/calicoNetwork/ipPools/{idx}/{guard_key}",
                            "value": entry[guard_key]})
            out.append({"op": "replace" if current is not None else "add",
                        "path": f"/spec/calicoNetwork/ipPools/{idx}/encapsulation", "value": value})
            return out

        body = ops(target.value, old_value)
        revert_body = ops(old_value or old.value, target.value)
        path = "/apis/operator.tigera.io/v1/installations/default"
        return ModeChange(
            method="installation", installation_index=idx,
            command=f"kubectl patch installation default --type=json -p {q(_json(body))}",
            revert_command=f"kubectl patch installation default --type=json -p {q(_json(revert_body))}",
            api=ApiCall("PATCH", path, "application/json-patch+json", body),
            revert_api=ApiCall("PATCH", path, "application/json-patch+json", revert_body),
            notes=["the tigera-operator then updates the IP pool; labtui waits until the pool shows the new mode",
                   "switching encapsulation can disrupt connections in flight"],
            **common,
        )
    if state.install.v3_served:
        path = f"/apis/projectcalico.org/v3/ippools/{pool.name}"
        return ModeChange(
            method="v3",
            command=f"kubectl patch ippools.projectcalico.org {q(pool.name)} --type=merge -p {q(_json(spec))}",
            revert_command=f"kubectl patch ippools.projectcalico.org {q(pool.name)} --type=merge -p {q(_json(revert_spec))}",
            api=ApiCall("PATCH", path, "application/merge-patch+json", spec),
            revert_api=ApiCall("PATCH", path, "application/merge-patch+json", revert_spec),
            notes=["switching encapsulation can disrupt connections in flight"],
            **common,
        )
    if calicoctl:
        remote = calicoctl_patch_command(pool.name, spec)
        revert_remote = calicoctl_patch_command(pool.name, revert_spec)
        return ModeChange(
            method="calicoctl",
            command=f"ssh CONTROL_PLANE {q(remote)}",
            revert_command=f"ssh CONTROL_PLANE {q(revert_remote)}",
            remote_command=remote, revert_remote_command=revert_remote,
            notes=["calicoctl validates and applies Calico's defaulting (kubespray uses the same command)",
                   "switching encapsulation can disrupt connections in flight"],
            **common,
        )
    path = f"/apis/crd.projectcalico.org/v1/ippools/{pool.name}"
    return ModeChange(
        method="v1-crd",
        command=f"kubectl patch ippools.crd.projectcalico.org {q(pool.name)} --type=merge -p {q(_json(spec))}",
        revert_command=f"kubectl patch ippools.crd.projectcalico.org {q(pool.name)} --type=merge -p {q(_json(revert_spec))}",
        api=ApiCall("PATCH", path, "application/merge-patch+json", spec),
        revert_api=ApiCall("PATCH", path, "application/merge-patch+json", revert_spec),
        warning=V1_WARNING,
        notes=["switching encapsulation can disrupt connections in flight"],
        **common,
    )


def calicoctl_patch_command(pool: str, spec: dict[str, Any]) -> str:
    q = shlex.quote
    return (f"sudo -n env DATASTORE_TYPE=kubernetes KUBECONFIG=/etc/kubernetes/admin.conf "
            f"calicoctl patch ippool {q(pool)} -p {q(_json(spec))}")

