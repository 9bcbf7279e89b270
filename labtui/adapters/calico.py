"""Calico through the Kubernetes API: read the cluster's Calico state, plan and apply a pool-mode change.

`read_cluster(kc)` reads install mode, API flavour, backend, BGP, Typha, version, pools, nodes and
calico-node pods (in parallel) through a labtui.adapters.kube `KubeClient` into
`labtui.net.calico.ClusterState` (the parsing is labtui.net.calico's, pure).
`plan_change(...)` picks the supported way (Installation JSON patch / v3 / calicoctl / v1 CRD;
the plan is labtui.net.modechange's, this adds whether calicoctl is on the control plane);
`apply_change(...)` runs it (one request setting ipipMode and vxlanMode together) and, for the
operator, waits until the pool shows the new mode. `Calico(kc)` is the same three calls behind the
`CalicoAPI` interface (labtui.adapters.interfaces) for the change catalogue. The Action and its record are the change
catalogue's (labtui.changes.calico); this adapter only talks to the API (and, for calicoctl, to the
control plane's `Shell`).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from labtui import events as ev
from labtui.adapters.interfaces import KubeAPI, Shell
from labtui.errors import LabError
from labtui.events import Event, null_emit
from labtui.net.calico import (
    OPERATOR_API,
    V1,
    V3,
    ClusterState,
    IPPoolInfo,
    attach_pods,
    detect_install,
    image_version,
    parse_node,
    parse_pod,
    parse_pool,
)
from labtui.net.modechange import ModeChange, plan_mode_change

# --------------------------------------------------------------------------- Calico read


def read_cluster(kc: KubeAPI) -> ClusterState:
    """Everything the Calico screen, CLI and doctor need, read in two parallel waves."""
    started = time.monotonic()
    kc.connect()  # connect (or forward) once, before the threads
    warnings: list[str] = []

    def optional(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            try:
                return fn()
            except LabError as exc:
                if exc.code == "forbidden":
                    warnings.append(exc.message)
                    return None
                raise
        return run

    wave1 = {
        "version": kc.version,
        "nodes": kc.list_nodes,
        "daemonsets": optional(kc.list_daemonsets),
        "installation": optional(lambda: kc.get_custom(*OPERATOR_API, "installations", "default")),
        "operator": optional(lambda: kc.read_deployment("tigera-operator", "tigera-operator")),
        "typha_ks": optional(lambda: kc.read_deployment("kube-system", "calico-typha")),
        "typha_cs": optional(lambda: kc.read_deployment("calico-system", "calico-typha")),
        "calico_config": optional(lambda: kc.read_configmap("kube-system", "calico-config")),
        "v3": lambda: kc.served(*V3),
        "v1": lambda: kc.served(*V1),
        "pods_ks": optional(lambda: kc.list_pods("kube-system", "k8s-app=calico-node")),
        "pods_cs": optional(lambda: kc.list_pods("calico-system", "k8s-app=calico-node")),
    }
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="kube-read") as pool:
        futures = {k: pool.submit(fn) for k, fn in wave1.items()}
        r = {k: f.result() for k, f in futures.items()}
    v3_served, v3_error = r["v3"]
    v1_served, _ = r["v1"]
    install = detect_install(
        daemonsets=r["daemonsets"] or [],
        installation=r["installation"],
        operator_deployment=r["operator"],
        typha_deployment=r["typha_cs"] or r["typha_ks"],
        calico_config=r["calico_config"],
        v3_served=v3_served,
        v3_error=v3_error,
        v1_crds=v1_served,
    )
    if v3_error:
        warnings.append(f"projectcalico.org/v3 is registered but failing ({v3_error}): the Calico API server is down")
    pools: list[IPPoolInfo] = []
    if v3_served:
        items = optional(lambda: kc.list_custom(*V3, "ippools"))()
        pools = [parse_pool(o, "projectcalico.org/v3") for o in items or []]
    elif v1_served:
        items = optional(lambda: kc.list_custom(*V1, "ippools"))()
        pools = [parse_pool(o, "crd.projectcalico.org/v1") for o in items or []]
    pools.sort(key=lambda p: (p.version, p.name))
    nodes = [parse_node(o) for o in r["nodes"]]
    nodes.sort(key=lambda n: ("control-plane" not in n.roles, n.name))
    pod_items = (r["pods_cs"] or []) if install.namespace == "calico-system" else (r["pods_ks"] or [])
    pods = [parse_pod(o) for o in pod_items if ((o.get("metadata") or {}).get("labels") or {}).get("k8s-app") == "calico-node"]
    attach_pods(nodes, pods)
    if install.version is None:
        install.version = next((v for v in (image_version(p.image) for p in pods) if v), None)
    version = r["version"] or {}
    return ClusterState(
        server=kc.server,
        kubernetes_version=version.get("gitVersion"),
        install=install,
        pools=pools,
        nodes=nodes,
        warnings=warnings,
        read_seconds=round(time.monotonic() - started, 3),
        objects={"daemonsets": r["daemonsets"], "calico_config": r["calico_config"],
                 "installation": r["installation"]},
    )


def read_pool(kc: KubeAPI, state: ClusterState, name: str) -> IPPoolInfo | None:
    group, version = V3 if state.install.v3_served else V1
    obj = kc.get_custom(group, version, "ippools", name)
    return parse_pool(obj, f"{group}/{version}") if obj else None


# --------------------------------------------------------------------------- Calico change


def has_calicoctl(shell: Shell | None) -> tuple[bool, str | None]:
    """(present, why it could not be checked) for calicoctl on the control plane."""
    if shell is None:
        return False, None
    try:
        rc, _out, _err = shell.run("command -v calicoctl", timeout=15.0)
    except LabError as exc:
        return False, f"could not check for calicoctl on {shell.node}: {exc.message}"
    return rc == 0, None


def plan_change(kc: KubeAPI, state: ClusterState, pool: str, target: Any, *,
                shell: Shell | None = None) -> ModeChange:
    """The supported change for this cluster; probes calicoctl on the control plane only when the
    operator and the v3 API are both out of the picture."""
    calicoctl, why = False, None
    if state.install.mode != "operator" and not state.install.v3_served:
        calicoctl, why = has_calicoctl(shell)
    change = plan_mode_change(state, pool, target, calicoctl=calicoctl)
    if why:
        change.notes.insert(0, why)
    if change.method == "calicoctl" and shell is not None:
        change.command = change.command.replace("CONTROL_PLANE", shell.node)
        change.revert_command = change.revert_command.replace("CONTROL_PLANE", shell.node)
    return change


def apply_change(
    kc: KubeAPI,
    state: ClusterState,
    change: ModeChange,
    *,
    shell: Shell | None = None,
    accept_warning: bool = False,
    emit: Callable[[Event], None] = null_emit,
    wait_timeout: float = 90.0,
    poll: float = 1.0,
    revert: bool = False,
) -> IPPoolInfo:
    """Send the one request (or calicoctl command) and wait until the pool shows the modes."""
    if change.warning and not accept_warning:
        raise LabError(f"not applied: {change.warning}",
                       "accept the warning explicitly (UI: confirm the red dialog; headless: --accept-crd-warning)",
                       code="needs-consent")
    api = change.revert_api if revert else change.api
    remote = change.revert_remote_command if revert else change.remote_command
    command = change.revert_command if revert else change.command
    want = change.old_modes if revert else change.new_modes
    emit(Event(ev.ACTION_START, f"$ {command}", node=shell.node if remote and shell else None,
               data={"pool": change.pool, "method": change.method}))
    if change.method == "calicoctl":
        if shell is None:
            raise LabError("calicoctl needs SSH to the control plane, which is not available here",
                           "open the lab that built this cluster, or pass a kubeconfig for the v3/CRD path")
        rc, out, err = shell.run(remote or "", timeout=60.0)
        if rc != 0:
            raise LabError(f"{shell.node}: calicoctl patch ippool {change.pool} failed (exit {rc}): "
                           f"{(err or out).strip()[:300]}", "look at the command log", code="calicoctl")
    else:
        assert api is not None
        _, group, version, plural, name = _split_path(api.path)
        kc.patch_custom(group, version, plural, name, api.body, api.content_type)
    change.sent = True
    limit = wait_timeout if change.method == "installation" else min(wait_timeout, 15.0)
    deadline = time.monotonic() + limit
    seen = None
    while True:
        seen = read_pool(kc, state, change.pool)
        if seen is not None and (seen.ipip_mode, seen.vxlan_mode) == want:
            break
        if time.monotonic() >= deadline:
            got = f"ipipMode {seen.ipip_mode}, vxlanMode {seen.vxlan_mode}" if seen else "the pool is gone"
            who = "the tigera-operator did not apply the Installation change" if change.method == "installation" \
                else "the pool does not show the new mode"
            raise LabError(
                f"{who} to IP pool {change.pool} within {limit:g}s ({got})",
                "look at `kubectl get tigerastatus` and the Installation's status; the request itself was accepted",
                code="timeout")
        emit(Event(ev.INFO, f"waiting for IP pool {change.pool} to show ipipMode {want[0]}, vxlanMode {want[1]}"))
        time.sleep(poll)
    emit(Event(ev.ACTION_DONE, f"IP pool {change.pool}: ipipMode {seen.ipip_mode}, vxlanMode {seen.vxlan_mode}"))
    return seen


class Calico:
    """The Calico side over one cluster's API (`CalicoAPI`): read_cluster, read_pool, apply_change."""

    def __init__(self, kc: KubeAPI) -> None:
        self.kc = kc

    def read_cluster(self) -> ClusterState:
        return read_cluster(self.kc)

    def read_pool(self, state: ClusterState, name: str) -> IPPoolInfo | None:
        return read_pool(self.kc, state, name)

    def apply_change(self, state: ClusterState, change: ModeChange, *, shell: Shell | None = None,
                     accept_warning: bool = False, emit: Callable[[Event], None] | None = None,
                     wait_timeout: float = 90.0, poll: float = 1.0, revert: bool = False) -> IPPoolInfo:
        return apply_change(self.kc, state, change, shell=shell, accept_warning=accept_warning,
                            emit=emit or null_emit, wait_timeout=wait_timeout, poll=poll, revert=revert)


def _split_path(path: str) -> tuple[str, str, str, str, str]:
    # /apis/{group}/{version}/{plural}/{name}
    parts = path.strip("/").split("/")
    if len(parts) != 5 or parts[0] != "apis":
        raise ValueError(path)
    return parts[0], parts[1], parts[2], parts[3], parts[4]

