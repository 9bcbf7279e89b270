"""Gather the doctor's facts from the three adapters, in parallel, and merge them into DoctorFacts.

- the cluster (labtui.adapters.calico): Calico install mode, backend/BGP, pools and their modes, nodes with
  their Calico address (address/prefix: the subnet Calico decides CrossSubnet with), calico-node
  health;
- the cloud (labtui.adapters.openstack): each node's Neutron port (fixed IP, subnet, port security,
  allowed-address-pairs, security groups) and the groups' rules;
- the nodes (labtui.adapters.ssh): the interface holding the node's address and its prefix, whether the
  ipip module is loaded, BGP session state when calicoctl is there.

A source that cannot be reached becomes an `Unchecked` ("could not check the security groups:
cloud 'lab' did not answer within 10 s"), never an exception. The pure parsers are at the top.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable

from labtui.adapters.openstack import (
    agent_types,
    extension_aliases,
    groups_stateful,
    network_mtus,
    session_cloud,
)
from labtui.doctor.model import BgpPeer, Calico, DoctorFacts, Neutron, Node, Unchecked
from labtui.errors import LabError
from labtui.events import INFO, WARN, Event, null_emit
from labtui.net.calico import V1, V3, IPPoolInfo, find_installation_pool
from labtui.net.model import LabNetwork, NodePort, SecurityGroup

TUNNEL_IFACES = re.compile(r"^(tunl\d*|vxlan\.calico|vxlan-v6\.calico|cali[0-9a-f]+|wireguard\.cali|docker\d*|cni\d*|kube-ipvs\d*|lo)$")

# The doctor reads the nodes with the one node-facts script (labtui.nodes.facts), only the sections
# the reasoning needs: the whole script forks about 40 processes (tool versions, listening sockets,
# systemd), about 0.2 s of a node's CPU that the doctor would throw away.
NODE_SECTIONS = ("addr", "route", "modules", "sysmodule", "tools")

BGP_STATUS = "calicoctl node status 2>&1"


# --------------------------------------------------------------------------- pure parsers


def parse_node_probe(text: str) -> dict[str, Any]:
    sections: dict[str, list[str]] = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("@"):  # FACTS_SCRIPT's "@@name" sections (a bare "@name" is read too)
            cur = line.lstrip("@").strip()
            sections.setdefault(cur, [])
        elif cur and line.strip():
            sections[cur].append(line.rstrip())
    addrs: list[tuple[str, str]] = []  # (iface, address/prefix)
    for line in sections.get("addr", []):
        m = re.match(r"\d+:\s+(\S+)\s+inet\s+(\d+\.\d+\.\d+\.\d+/\d+)", line)
        if m:
            iface = m.group(1).split("@")[0]
            if not TUNNEL_IFACES.match(iface):
                addrs.append((iface, m.group(2)))
    default_dev = None
    for line in sections.get("route", []):
        m = re.search(r"\bdev (\S+)", line)
        if m:
            default_dev = m.group(1)
            break
    modules = set(sections.get("modules", [])) | set(sections.get("sysmodule", []))
    return {
        "addresses": addrs,
        "default_dev": default_dev,
        "ipip": "ipip" in modules,
        "vxlan": "vxlan" in modules,
        "tools": set(sections.get("tools", [])),
        "complete": "end" in sections,
    }


def primary_address(probe: dict[str, Any], known_ips: list[str | None]) -> tuple[str | None, str | None]:
    """(iface, address/prefix): the interface holding a known node address, else the default route's."""
    addrs = probe.get("addresses") or []
    for ip in known_ips:
        if not ip:
            continue
        for iface, cidr in addrs:
            if cidr.split("/")[0] == ip:
                return iface, cidr
    for iface, cidr in addrs:
        if iface == probe.get("default_dev"):
            return iface, cidr
    return (addrs[0] if addrs else (None, None))


_PEER_ROW = re.compile(r"^\|\s*(\d+\.\d+\.\d+\.\d+)\s*\|\s*([^|]+?)\s*\|\s*(\S+)\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|")
_BIRD_ROW = re.compile(r"^Mesh_(\d+_\d+_\d+_\d+)\s+BGP\s+\S+\s+(\S+)\s+\S+\s*(.*)$")


def parse_bgp_status(text: str) -> list[BgpPeer] | None:
    """Peers from `calicoctl node status` (table) or `birdcl show protocols`; None if neither."""
    peers: list[BgpPeer] = []
    for line in text.splitlines():
        m = _PEER_ROW.match(line.strip())
        if m and m.group(1) != "PEER ADDRESS":
            peers.append(BgpPeer(m.group(1), m.group(3), m.group(5)))
            continue
        m = _BIRD_ROW.match(line.strip())
        if m:
            peers.append(BgpPeer(m.group(1).replace("_", "."), m.group(2), m.group(3).strip()))
    if peers:
        return peers
    if "Calico process is running" in text or "BIRD" in text:
        return []
    return None


# --------------------------------------------------------------------------- conversions from the adapters


def facts_from_cluster(state: Any) -> tuple[list[IPPoolInfo], Calico, dict[str, dict[str, Any]]]:
    """labtui.adapters.calico's ClusterState -> its pools (each with its place in the operator's
    Installation), Calico, and per-node cluster facts."""
    inst = state.install
    pools = [replace(p, installation_index=find_installation_pool(inst, p) if inst.mode == "operator" else None)
             for p in state.pools]
    calico = Calico(install_mode=inst.mode, backend=inst.backend, bgp=inst.bgp, typha=inst.typha,
                    version=inst.version, api="v3" if inst.v3_served else ("crd" if inst.v1_crds else None))
    nodes: dict[str, dict[str, Any]] = {}
    for n in state.nodes:
        pod = n.calico_pod
        nodes[n.name] = {
            "internal_ip": n.internal_ip,
            "calico_cidr": n.calico_ipv4,
            "k8s_ready": n.ready,
            "calico_ready": pod.ready if pod else None,
            "calico_restarts": pod.restarts if pod else None,
            "calico_pod": f"{pod.namespace}/{pod.name}" if pod else None,
            "control_plane": "control-plane" in (n.roles or []) or "master" in (n.roles or []),
        }
    return pools, calico, nodes


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if isinstance(obj, dict):
            if name in obj and obj[name] is not None:
                return obj[name]
        elif getattr(obj, name, None) is not None:
            return getattr(obj, name)
    return default


def facts_from_cloud(lab: LabNetwork, support: dict[str, Any] | None = None) -> tuple[dict[str, NodePort], dict[str, SecurityGroup]]:
    """labtui.adapters.openstack's LabNetwork -> each found node's port by node name, the groups by id: the
    one network model's types as they are. `support` (read_cloud_support) fills in the networks' MTU and
    the groups' statefulness where the look-up did not read them."""
    support = support or {}
    mtus = support.get("mtu") or {}
    stateful = support.get("stateful") or {}
    groups = {g.id: replace(g, stateful=stateful[g.id]) if g.id in stateful else g for g in lab.groups}
    ports: dict[str, NodePort] = {}
    for node in lab.nodes:
        p = node.port
        if not node.found or p is None:
            continue
        ports[node.name] = p if p.network_mtu or not mtus.get(p.network_id) else replace(p, network_mtu=mtus[p.network_id])
    return ports, groups


# --------------------------------------------------------------------------- the finer facts: MTU, Felix, the cloud's support

# Neutron agent types -> the ML2 backend they reveal (GET /v2.0/agents is admin-only on most clouds)
AGENT_BACKENDS = {"open vswitch agent": "ovs", "ovn controller agent": "ovn", "ovn controller gateway agent": "ovn",
                  "ovn metadata agent": "ovn", "ovn agent": "ovn", "linux bridge agent": "linuxbridge"}


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def calico_settings(installation: dict[str, Any] | None, calico_config: dict[str, Any] | None,
                    felix: dict[str, Any] | None, daemonsets: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Calico's configured pod MTU and Felix's VXLAN port, with where each came from.

    MTU: the operator's Installation `spec.calicoNetwork.mtu`, else the manifest's calico-config
    `veth_mtu` (0 or missing: Calico detects it from the host interface, so None here).
    VXLAN port: `FELIX_VXLANPORT` on the calico-node container (environment beats the datastore),
    else FelixConfiguration default `spec.vxlanPort`; None means Felix's default, 4789."""
    out: dict[str, Any] = {"mtu": None, "mtu_source": "", "vxlan_port": None, "vxlan_port_source": ""}
    net = ((installation or {}).get("spec") or {}).get("calicoNetwork") or {}
    if _int(net.get("mtu")):
        out["mtu"], out["mtu_source"] = _int(net.get("mtu")), "Installation calicoNetwork.mtu"
    elif _int(((calico_config or {}).get("data") or {}).get("veth_mtu")):
        out["mtu"], out["mtu_source"] = _int(calico_config["data"]["veth_mtu"]), "calico-config veth_mtu"
    if _int(((felix or {}).get("spec") or {}).get("vxlanPort")):
        out["vxlan_port"] = _int(felix["spec"]["vxlanPort"])
        out["vxlan_port_source"] = "FelixConfiguration default vxlanPort"
    for ds in daemonsets or []:
        meta = ds.get("metadata") or {}
        if meta.get("name") != "calico-node":
            continue
        containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        for c in containers:
            for env in c.get("env") or []:
                if env.get("name") == "FELIX_VXLANPORT" and _int(env.get("value")):
                    out["vxlan_port"] = _int(env["value"])
                    out["vxlan_port_source"] = f"FELIX_VXLANPORT on {meta.get('namespace', '?')}/calico-node"
    return out


def read_calico_settings(kc: Any, state: Any) -> dict[str, Any]:
    """`calico_settings` from the Installation, calico-config and DaemonSets the cluster read already
    fetched (`state.objects`, not asked again) and FelixConfiguration default, read here (optional)."""
    install = getattr(state, "install", None)
    objects = getattr(state, "objects", None) or {}
    try:
        felix = kc.get_custom(*(V3 if getattr(install, "v3_served", False) else V1), "felixconfigurations", "default")
    except LabError:
        felix = None  # forbidden or missing: Felix's default port stands
    installation = objects.get("installation") if getattr(install, "mode", None) == "operator" else None
    return calico_settings(installation, objects.get("calico_config"), felix, objects.get("daemonsets"))


def backend_from_agents(agent_types: list[str] | None) -> str | None:
    seen = {AGENT_BACKENDS.get(str(t).strip().lower()) for t in agent_types or []} - {None}
    return next(iter(seen)) if len(seen) == 1 else None


def read_cloud_support(conn: Any, lab: Any = None, prefetched: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the cloud supports and how it filters, in parallel: the extensions (allowed-address-pairs,
    port-security), the network agents (the ML2 backend; a refusal leaves it unknown), the networks' MTU
    and the groups' statefulness. Through labtui.adapters.openstack's CloudConnection (`conn.call`
    announces and translates).

    Without `lab` (the prefetch, run while the ports are looked up) only the extensions and the agents
    are read; with `lab`, the networks and groups of its ports, by id, and what `prefetched` lacks. (Listing
    every network and group of the project beside the look-up was slower on a busy Neutron than this.)"""
    out: dict[str, Any] = {"errors": {}, "mtu": {}, "stateful": {}}
    if prefetched:
        out.update({k: (dict(v) if isinstance(v, dict) else v) for k, v in prefetched.items()})
    jobs: dict[str, Callable[[], Any]] = {}
    if "extensions" not in out:
        jobs["extensions"] = lambda: extension_aliases(conn)
    if "agents" not in out and "agents" not in out["errors"]:
        jobs["agents"] = lambda: agent_types(conn)
    if lab is not None:
        ports = [p for n in (_get(lab, "nodes", default=[]) or []) for p in (_get(n, "ports", default=[]) or [])]
        groups = _get(lab, "groups", default=[]) or []
        # what the look-up already read (NodePort.network_mtu, SecurityGroup.stateful) is not read again
        out["mtu"].update({_get(p, "network_id"): _get(p, "network_mtu") for p in ports if _get(p, "network_mtu")})
        out["stateful"].update({_get(g, "id"): _get(g, "stateful") for g in groups if _get(g, "stateful") is not None})
        net_ids = sorted({_get(p, "network_id") for p in ports if _get(p, "network_id")} - set(out["mtu"]))
        group_ids = sorted({_get(g, "id") for g in groups} - set(out["stateful"]))
        if net_ids:
            jobs["mtu"] = lambda: network_mtus(conn, net_ids)
        if group_ids:
            jobs["stateful"] = lambda: groups_stateful(conn, group_ids)
    if jobs:
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="doctor-neutron") as pool:
            futures = {k: pool.submit(fn) for k, fn in jobs.items()}
            for key, fut in futures.items():
                try:
                    got = fut.result()
                except LabError as exc:
                    out["errors"][key] = exc.message
                    continue
                if key in ("mtu", "stateful"):
                    out[key].update(got)
                else:
                    out[key] = got
    out["backend"] = backend_from_agents(out.get("agents"))
    out["backend_source"] = "network agents" if out["backend"] else ""
    return out


def neutron_from(support: dict[str, Any] | None) -> Neutron:
    support = support or {}
    return Neutron(extensions=support.get("extensions"), backend=support.get("backend"),
                   backend_source=support.get("backend_source") or "")


def calico_settings_reader(ctx: Any, kubeconfig: str | None = None) -> Callable[[Any], dict[str, Any]]:
    """For `gather(read_cluster_extras=...)`: runs in the Kubernetes job, after the cluster was read."""
    def read(state: Any) -> dict[str, Any]:
        from labtui.adapters.kube import kube_for

        return read_calico_settings(kube_for(ctx, kubeconfig), state)

    return read


def cloud_support_reader(ctx: Any) -> Callable[..., dict[str, Any]] | None:
    """For `gather(read_cloud_support=...)`: `read(lab, prefetched)` runs in the cloud job after the ports
    were found; `read.prefetch()`, called first in that job (it connects, once, in that thread), returns
    the reads that need no port, which gather runs while the ports are looked up."""
    name = ctx.session.cloud_name
    if not name:
        return None

    def read(lab: Any, prefetched: dict[str, Any] | None = None) -> dict[str, Any]:
        return read_cloud_support(session_cloud(ctx, name), lab, prefetched)

    def prefetch() -> Callable[[], dict[str, Any]]:
        conn = session_cloud(ctx, name)

        def start() -> dict[str, Any]:
            conn.first_answered()  # the port look-up goes first: Neutron checks the new token once
            return read_cloud_support(conn, None)
        return start

    read.prefetch = prefetch  # type: ignore[attr-defined]
    return read


# --------------------------------------------------------------------------- the merge


def merge(
    plan_nodes: list[Any],
    cluster: tuple[list[IPPoolInfo], Calico, dict[str, dict[str, Any]]] | None,
    cloud: tuple[dict[str, NodePort], dict[str, SecurityGroup]] | None,
    ssh: dict[str, dict[str, Any]] | None,
    bgp: dict[str, list[BgpPeer] | None] | None = None,
) -> tuple[list[Node], list[IPPoolInfo], Calico, dict[str, SecurityGroup]]:
    """One Node per machine, matched by name first, then by address."""
    pools, calico, knodes = cluster if cluster else ([], Calico(), {})
    ports, groups = cloud if cloud else ({}, {})
    nodes: list[Node] = []
    by_name: dict[str, Node] = {}
    for spec in plan_nodes:
        name = getattr(spec, "name", None) or spec["name"]
        role = getattr(spec, "role", None) or spec.get("role", "worker")
        addr = getattr(spec, "address", None) or spec.get("address")
        n = Node(name=name, role=str(getattr(role, "value", role)))
        try:
            ipaddress.ip_address(addr)
            n.address = addr
        except (TypeError, ValueError):
            pass
        nodes.append(n)
        by_name[name] = n
    # Kubernetes nodes: match by name, else by InternalIP / Calico address
    for kname, k in knodes.items():
        ip = k.get("internal_ip") or (k.get("calico_cidr") or "").split("/")[0] or None
        n = by_name.get(kname) or next((x for x in nodes if x.address and x.address == ip), None)
        if n is None:
            if plan_nodes:
                continue  # a node that is not in the plan: leave it out of the lab's reasoning
            n = Node(name=kname, role="control-plane" if k.get("control_plane") else "worker")
            nodes.append(n)
            by_name[kname] = n
        n.calico_cidr = k.get("calico_cidr")
        if ip:
            n.address = ip  # the address Calico uses beats an SSH address (that may be a floating IP)
        n.k8s_ready = k.get("k8s_ready")
        n.calico_ready = k.get("calico_ready")
        n.calico_restarts = k.get("calico_restarts")
        n.calico_pod = k.get("calico_pod")
    # what the nodes say about themselves
    for n in nodes:
        probe = (ssh or {}).get(n.name)
        if probe:
            iface, cidr = primary_address(probe, [n.address, (n.calico_cidr or "").split("/")[0] or None])
            n.iface, n.iface_cidr = iface, cidr
            if not n.address and cidr:
                n.address = cidr.split("/")[0]
            n.ipip_module = probe.get("ipip")
        if bgp and n.name in bgp and bgp[n.name] is not None:
            n.bgp_peers = bgp[n.name]
            n.bgp_source = "calicoctl node status"
    # the cloud's ports: by node name, else by fixed IP
    by_ip = {ip: p for p in ports.values() for ip in p.ipv4s}
    for n in nodes:
        port = ports.get(n.name) or (by_ip.get(n.address) if n.address else None)
        if port is None and n.iface_cidr:
            port = by_ip.get(n.iface_cidr.split("/")[0])
        n.port = port
        if n.port and not n.address and n.port.ipv4s:
            n.address = n.port.ipv4s[0]
    order = {(getattr(s, "name", None) or s["name"]): i for i, s in enumerate(plan_nodes)}
    nodes.sort(key=lambda x: (x.role != "control-plane", order.get(x.name, len(order)), x.name))
    return nodes, pools, calico, groups


# --------------------------------------------------------------------------- running the gatherers


def _unchecked_from(exc: BaseException, source: str, what: str) -> Unchecked:
    if isinstance(exc, LabError):
        return Unchecked(source, what, exc.message, exc.hint or "")
    return Unchecked(source, what, f"{type(exc).__name__}: {exc}", "see the command log")


def _preimport_http_stack() -> None:
    """Import the HTTP libraries that the Kubernetes client and openstacksdk share, in this thread,
    before both start at once. Two threads importing `requests` concurrently in a fresh process can
    hit Python's import-deadlock avoidance, which hands one of them a partially initialised module
    ("cannot import name 'parse_dict_header' from partially initialized module 'requests.utils'").
    The SDKs themselves stay lazy (imported by the adapters only)."""
    import importlib

    for name in ("urllib3", "requests", "requests.adapters"):
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - then the adapter will say what is missing
            pass


def gather(
    *,
    plan_nodes: list[Any],
    cluster_name: str = "",
    cloud_name: str | None = None,
    read_cluster: Callable[[], Any] | None = None,
    read_cloud: Callable[[], Any] | None = None,
    ssh: Any | None = None,
    node_names: list[str] | None = None,
    emit: Callable[[Event], None] = null_emit,
    ssh_timeout: float = 20.0,
    read_cluster_extras: Callable[[Any], dict[str, Any]] | None = None,
    read_cloud_support: Callable[[Any], dict[str, Any]] | None = None,
) -> DoctorFacts:
    """Run the three sources at once; each failure becomes an Unchecked.

    `read_cluster()` returns a labtui.adapters.calico ClusterState; `read_cloud(nodes)` returns the cloud
    adapter's LabNetwork for those nodes (the plan's; without a plan, the cluster's, after the
    cluster was read); `ssh` is a labtui.adapters.ssh.NodeSSH for the plan's nodes.
    `read_cluster_extras(state)` (Calico's MTU, Felix's VXLAN port) and `read_cloud_support(lab)` (extensions,
    backend, networks' MTU, stateful groups) run right after their source, in its thread; their failure
    leaves those facts unknown."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    unchecked: list[Unchecked] = []
    sources: dict[str, bool] = {}

    def timed(key: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            t0 = time.monotonic()
            try:
                return fn()
            finally:
                timings[key] = round(time.monotonic() - t0, 3)
        return run

    def do_ssh() -> dict[str, Any]:
        names = node_names or [getattr(s, "name", None) or s["name"] for s in plan_nodes]
        from labtui.nodes.facts import facts_script

        script = facts_script(NODE_SECTIONS)
        res = ssh.fan_out(names, lambda n: ssh.run(n, script, timeout=ssh_timeout, stream=False))
        out: dict[str, Any] = {"probe": {}, "errors": {}, "tools": {}}
        for name, r in res.items():
            if r.ok and r.value is not None:
                parsed = parse_node_probe(r.value.stdout)
                out["probe"][name] = parsed
                out["tools"][name] = parsed["tools"]
            else:
                out["errors"][name] = r.error
        return out

    extras: dict[str, Any] = {}

    def then(key: str, first: Callable[..., Any], more: Callable[[Any], Any] | None,
             *args: Any) -> Callable[[], Any]:
        def run() -> Any:
            value = first(*args)
            if more is not None:
                try:
                    extras[key] = more(value)
                except Exception as exc:
                    extras[f"{key}-error"] = exc
            return value
        return run

    # The cloud is the longest chain of waits (Keystone, then the ports, then their groups and subnets):
    # its SDK (~0.4 s of CPU) is imported first, alone, and the SSH and Kubernetes jobs import theirs
    # while the cloud waits on its answers, instead of all three imports sharing the GIL up front.
    cloud_sdk_loaded = threading.Event()

    def after_cloud_sdk(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            cloud_sdk_loaded.wait(timeout=5.0)
            return fn()
        return run

    def cloud_then(nodes: list[Any]) -> Callable[[], Any]:
        """The cloud job: the support reads that need no port run beside the port look-up."""
        def run() -> Any:
            try:
                prepare = getattr(read_cloud, "prepare", None)
                if prepare is not None:
                    prepare()
            finally:
                cloud_sdk_loaded.set()
            prefetch = getattr(read_cloud_support, "prefetch", None)
            side = fut = None
            if prefetch is not None:
                start = prefetch()
                side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="doctor-neutron-pre")
                fut = side.submit(start)
            try:
                lab = read_cloud(nodes)
            finally:
                if side is not None:
                    side.shutdown(wait=False)
            if read_cloud_support is not None:
                try:
                    pre = None
                    if fut is not None:
                        try:
                            pre = fut.result()
                        except Exception:
                            pre = None
                    extras["cloud"] = read_cloud_support(lab, pre) if pre is not None else read_cloud_support(lab)
                except Exception as exc:
                    extras["cloud-error"] = exc
            return lab
        return run

    jobs: dict[str, Callable[[], Any]] = {}
    if read_cluster is not None:
        jobs["kube"] = timed("kube", then("kube", read_cluster, read_cluster_extras))
    else:
        unchecked.append(Unchecked("kube", "the Calico pools and nodes", "no kubeconfig for this lab",
                                   "pass --kubeconfig FILE, or let labtui fetch admin.conf from the control plane"))
    cloud_after_kube = read_cloud is not None and not plan_nodes
    if read_cloud is not None and plan_nodes:
        jobs["cloud"] = timed("cloud", cloud_then(plan_nodes))
    elif read_cloud is None and cloud_name is None:
        unchecked.append(Unchecked("cloud", "the security groups and ports",
                                   "no cloud in the plan (machines of your own): there are no security groups, ports "
                                   "or anti-spoofing to read, so the checks of the cloud's side were skipped; your "
                                   "network must let the encapsulation through between the nodes",
                                   "if the machines are on OpenStack, pass --cloud NAME (from clouds.yaml) to check "
                                   "that side too", skipped=True))
    if ssh is not None and plan_nodes:
        jobs["ssh"] = timed("ssh", do_ssh)
    if "kube" in jobs and "cloud" in jobs:
        _preimport_http_stack()
    if "cloud" in jobs:
        for key in ("kube", "ssh"):
            if key in jobs:
                jobs[key] = after_cloud_sdk(jobs[key])
    else:
        cloud_sdk_loaded.set()
    results: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(jobs)), thread_name_prefix="doctor-gather") as pool:
        futures = {k: pool.submit(fn) for k, fn in jobs.items()}
        for key, fut in futures.items():
            try:
                results[key] = fut.result()
                sources[key] = True
            except Exception as exc:
                sources[key] = False
                what = {"kube": "the Calico pools and nodes (Kubernetes API)",
                        "cloud": "the security groups and ports (OpenStack)",
                        "ssh": "the nodes over SSH"}[key]
                unchecked.append(_unchecked_from(exc, key, what))  # reported once, by the caller
    if cloud_after_kube:
        # no plan: the cloud is asked about the cluster's own nodes (names and addresses)
        knodes = [{"name": n.name, "address": n.internal_ip or (n.calico_ipv4 or "").split("/")[0] or None,
                   "role": "control-plane" if "control-plane" in (n.roles or []) else "worker"}
                  for n in getattr(results.get("kube"), "nodes", []) or []]
        if knodes:
            try:
                results["cloud"] = timed("cloud", cloud_then(knodes))()
                sources["cloud"] = True
            except Exception as exc:
                sources["cloud"] = False
                unchecked.append(_unchecked_from(exc, "cloud", "the security groups and ports (OpenStack)"))
        else:
            unchecked.append(Unchecked("cloud", "the security groups and ports (OpenStack)",
                                       "no nodes to look up: give the nodes, or a kubeconfig to read them from"))
    cluster = None
    if "kube" in results:
        cluster = facts_from_cluster(results["kube"])
        for w in getattr(results["kube"], "warnings", []) or []:
            emit(Event(WARN, f"Kubernetes API: {w}"))
    cloud = facts_from_cloud(results["cloud"], extras.get("cloud")) if "cloud" in results else None
    for key, what in (("kube", "Calico's MTU and Felix's VXLAN port"),
                      ("cloud", "the cloud's extensions, backend, network MTU and group statefulness")):
        if f"{key}-error" in extras:
            unchecked.append(_unchecked_from(extras[f"{key}-error"], f"{key}:extras", what))
    for key, msg in ((extras.get("cloud") or {}).get("errors") or {}).items():
        if key != "agents":  # the agents are admin-only on most clouds: then the backend stays unknown
            unchecked.append(Unchecked("cloud:extras", {"extensions": "the Neutron extensions", "mtu": "the networks' MTU",
                                                        "stateful": "whether the groups are stateful"}.get(key, key), msg))
    ssh_probe = None
    if "ssh" in results:
        ssh_probe = results["ssh"]["probe"]
        for name, err in results["ssh"]["errors"].items():
            unchecked.append(Unchecked(f"ssh:{name}", f"the interface and modules of {name}",
                                       err.message if err else "no answer", (err.hint or "") if err else ""))
        sources["ssh"] = bool(ssh_probe)
    nodes, pools, calico, groups = merge(plan_nodes, cluster, cloud, ssh_probe)
    for key, value in (extras.get("kube") or {}).items():
        setattr(calico, key, value)
    facts = DoctorFacts(cluster=cluster_name, cloud=cloud_name, nodes=nodes, groups=groups, pools=pools,
                        calico=calico, neutron=neutron_from(extras.get("cloud")), unchecked=unchecked, sources=sources)
    # BGP state: only when bird runs and calicoctl is on the node (optional, quick)
    if ssh is not None and ssh_probe and calico.backend == "bird":
        with_ctl = [n for n, p in ssh_probe.items() if "calicoctl" in p.get("tools", set())]
        if with_ctl:
            res = ssh.fan_out(with_ctl, lambda n: ssh.run(n, BGP_STATUS, sudo=True, timeout=10, stream=False))
            for n in facts.nodes:
                r = res.get(n.name)
                if r is not None and r.ok and r.value is not None:
                    peers = parse_bgp_status(r.value.stdout)
                    if peers is not None:
                        n.bgp_peers, n.bgp_source = peers, "calicoctl node status"
    timings["gather"] = round(time.monotonic() - started, 3)
    facts.timings = timings
    emit(Event(INFO, f"doctor: facts gathered in {timings['gather']:.2f}s ("
                     + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items() if k != "gather") + ")"))
    return facts
