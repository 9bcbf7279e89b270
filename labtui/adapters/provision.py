"""OpenStack reads and creates for the Provision stage (openstacksdk through a CloudConnection).

Returns plain data (dicts and labtui.provision_plan types); builds no Actions and writes nothing
to the store: the change catalogue (labtui.changes.cloud) decides what to create and records it.
Every call goes through `CloudConnection.call`: announced on the event channel with its API text,
every SDK failure translated into a LabError naming the cloud and the resource.

Lists are always filtered to the lab's own project: an admin token would otherwise see (and
a careless teardown would touch) every project's resources.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

from labtui.errors import LabError
from labtui.provision_plan import FlavorInfo, ImageInfo

# kind -> (openstacksdk proxy, resource method stem, API path, CLI noun)
KINDS = {
    "network": ("network", "network", "/v2.0/networks", "network"),
    "subnet": ("network", "subnet", "/v2.0/subnets", "subnet"),
    "router": ("network", "router", "/v2.0/routers", "router"),
    "security-group": ("network", "security_group", "/v2.0/security-groups", "security group"),
    "sg-rule": ("network", "security_group_rule", "/v2.0/security-group-rules", "security group rule"),
    "port": ("network", "port", "/v2.0/ports", "port"),
    "floating-ip": ("network", "ip", "/v2.0/floatingips", "floating ip"),
    "server": ("compute", "server", "/compute/v2.1/servers", "server"),
    "keypair": ("compute", "keypair", "/compute/v2.1/os-keypairs", "keypair"),
}


# ----------------------------------------------------------------------------- what the cloud offers


def my_address(c: Any) -> str | None:
    """The local address labtui uses to reach the cloud's identity endpoint (the user's own
    address as a private cloud sees it), or None."""
    try:
        url = c.conn.config.get_auth_args().get("auth_url") or ""
        host = urlparse(url).hostname
        if not host:
            return None
        port = urlparse(url).port or 443
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect(infos[0][4])  # UDP: no packet leaves, the kernel only picks the route
            return s.getsockname()[0]
        finally:
            s.close()
    except (OSError, IndexError, AttributeError):
        return None


def offer(c: Any) -> dict[str, Any]:
    """Images, flavors, networks (own and shared), external networks, routers, keypairs and
    availability zones, as plain data."""
    from concurrent.futures import ThreadPoolExecutor

    sdk = c.conn
    pid = c.project_id

    def azs_or_none() -> list[str]:
        try:
            return c.call("list the availability zones", "GET /compute/v2.1/os-availability-zone",
                          lambda: [z.name for z in sdk.compute.availability_zones()])
        except LabError:
            return []

    reads = {  # independent reads: made together
        "images": lambda: c.call("list the images", "GET /v2/images", lambda: list(sdk.image.images())),
        "flavors": lambda: c.call("list the flavors", "GET /compute/v2.1/flavors/detail",
                                  lambda: list(sdk.compute.flavors(details=True))),
        "nets": lambda: c.call("list the networks", "GET /v2.0/networks", lambda: list(sdk.network.networks())),
        "routers": lambda: c.call("list the routers", f"GET /v2.0/routers?project_id={pid}",
                                  lambda: list(sdk.network.routers(project_id=pid))),
        "keypairs": lambda: c.call("list the keypairs", "GET /compute/v2.1/os-keypairs",
                                   lambda: list(sdk.compute.keypairs())),
        "azs": azs_or_none,
    }
    with ThreadPoolExecutor(len(reads)) as pool:
        futures = {k: pool.submit(fn) for k, fn in reads.items()}
        got = {k: f.result() for k, f in futures.items()}
    images, flavors, nets, routers, keypairs, azs = (got[k] for k in ("images", "flavors", "nets", "routers",
                                                                      "keypairs", "azs"))
    return {
        "images": [ImageInfo(i.id, i.name or i.id, i.status or "", dict(getattr(i, "properties", None) or {}) |
                             {k: getattr(i, k) for k in ("os_distro", "os_version", "os_admin_user")
                              if getattr(i, k, None)},
                             int(i.min_ram or 0), int(i.min_disk or 0)) for i in images],
        "flavors": [FlavorInfo(f.id, f.name, int(f.vcpus or 0), int(f.ram or 0), int(f.disk or 0)) for f in flavors],
        "networks": [{"id": n.id, "name": n.name, "external": bool(n.is_router_external), "shared": bool(n.is_shared),
                      "project_id": n.project_id, "subnet_ids": list(n.subnet_ids or [])} for n in nets],
        "routers": [{"id": r.id, "name": r.name} for r in routers],
        "keypairs": [{"name": k.name, "fingerprint": k.fingerprint} for k in keypairs],
        "availability_zones": azs,
    }


def subnets_of(c: Any, network_id: str) -> list[dict[str, Any]]:
    subs = c.call("list the subnets", f"GET /v2.0/subnets?network_id={network_id}",
                  lambda: list(c.conn.network.subnets(network_id=network_id)))
    return [{"id": s.id, "name": s.name, "cidr": s.cidr, "gateway_ip": s.gateway_ip} for s in subs]


def quota_left(c: Any) -> dict[str, int | None]:
    """What is left of each quota the plan uses (None: unlimited)."""
    sdk = c.conn
    pid = c.project_id
    out: dict[str, int | None] = {}
    lim = c.call("read the compute limits", "GET /compute/v2.1/limits", lambda: sdk.compute.get_limits()).absolute

    def left(limit: Any, used: Any) -> int | None:
        if limit is None or int(limit) < 0:
            return None
        return int(limit) - int(used or 0)

    out["instances"] = left(lim.instances, lim.instances_used)
    out["cores"] = left(lim.total_cores, lim.total_cores_used)
    out["ram"] = left(lim.total_ram, lim.total_ram_used)
    q = c.call("read the network quotas", f"GET /v2.0/quotas/{pid}/details",
               lambda: sdk.network.get_quota(pid, details=True))
    for attr, name in (("networks", "networks"), ("subnets", "subnets"), ("routers", "routers"), ("ports", "ports"),
                       ("floating_ips", "floating_ips"), ("security_groups", "security_groups"),
                       ("security_group_rules", "security_group_rules")):
        d = getattr(q, attr, None) or {}
        if isinstance(d, dict) and "limit" in d:
            out[name] = left(d.get("limit"), int(d.get("used") or 0) + int(d.get("reserved") or 0))
    return out


# ----------------------------------------------------------------------------- finding

LISTERS: dict[str, Callable[[Any, str | None, dict[str, Any]], Iterable[Any]]] = {
    "network": lambda s, pid, q: s.network.networks(project_id=pid, **q),
    "subnet": lambda s, pid, q: s.network.subnets(project_id=pid, **q),
    "router": lambda s, pid, q: s.network.routers(project_id=pid, **q),
    "security-group": lambda s, pid, q: s.network.security_groups(project_id=pid, **q),
    "port": lambda s, pid, q: s.network.ports(project_id=pid, **q),
    "floating-ip": lambda s, pid, q: s.network.ips(project_id=pid, **q),
    "server": lambda s, pid, q: s.compute.servers(details=True, **q),
}


def summary(kind: str, obj: Any) -> dict[str, Any]:
    """The fields labtui keeps of a resource."""
    base = {"id": getattr(obj, "id", None) or getattr(obj, "name", None), "name": getattr(obj, "name", None),
            "tags": list(getattr(obj, "tags", None) or []), "description": getattr(obj, "description", None) or ""}
    if kind == "server":
        fault = getattr(obj, "fault", None) or {}
        base.update(status=obj.status, fault=(fault.get("message") if isinstance(fault, dict) else str(fault)) or "",
                    addresses=dict(obj.addresses or {}), description=getattr(obj, "description", None) or "")
    elif kind == "port":
        base.update(device_id=obj.device_id, fixed_ips=list(obj.fixed_ips or []), network_id=obj.network_id)
    elif kind == "floating-ip":
        base.update(address=obj.floating_ip_address, port_id=obj.port_id, name=obj.floating_ip_address)
    elif kind == "subnet":
        base.update(cidr=obj.cidr, network_id=obj.network_id)
    elif kind == "keypair":
        base.update(fingerprint=obj.fingerprint, public_key=obj.public_key, id=obj.name)
    return base


def find(c: Any, kind: str, *, name: str | None = None, tag: str | None = None,
         port_id: str | None = None) -> list[dict[str, Any]]:
    """Resources of the lab's project by exact name, by tag, or (floating IPs) by the port they serve."""
    sdk = c.conn
    if kind == "keypair":
        if name is None:
            return []
        try:
            kp = c.call(f"look up keypair {name}", f"GET /compute/v2.1/os-keypairs/{name}",
                        lambda: sdk.compute.get_keypair(name), ok_codes=(404,))
        except Exception as exc:
            if getattr(exc, "code", None) == 404:
                return []
            raise
        return [summary("keypair", kp)]
    q: dict[str, Any] = {}
    api = KINDS[kind][2] + "?"
    if name is not None and kind != "floating-ip":
        q["name"] = name if kind != "server" else f"^{_regex_escape(name)}$"
        api += f"name={name}"
    if tag is not None:
        q["tags"] = tag
        api += f"tags={tag}"
    if port_id is not None:
        q["port_id"] = port_id
        api += f"port_id={port_id}"
    pid = c.project_id
    if kind != "server":
        api += f"&project_id={pid}"
    found = c.call(f"look up {KINDS[kind][3]}s", "GET " + api, lambda: list(LISTERS[kind](sdk, pid, q)))
    out = [summary(kind, o) for o in found]
    if name is not None and kind != "floating-ip":
        out = [o for o in out if o["name"] == name]
    return out


def _regex_escape(text: str) -> str:
    import re

    return re.escape(text)


def get(c: Any, kind: str, rid: str) -> dict[str, Any] | None:
    """One resource by id (None when it is gone: 404)."""
    sdk = c.conn
    proxy, stem, path, noun = KINDS[kind]
    fn = getattr(getattr(sdk, proxy), f"get_{stem}")
    try:
        obj = c.call(f"read {noun} {rid}", f"GET {path}/{rid}", lambda: fn(rid), ok_codes=(404,))
    except Exception as exc:
        if getattr(exc, "code", None) == 404:
            return None
        raise
    return summary(kind, obj)


# ----------------------------------------------------------------------------- creating


def tag(c: Any, kind: str, rid: str, tags: list[str]) -> None:
    proxy, stem, path, noun = KINDS[kind]
    sdk = c.conn
    getter = getattr(sdk.network, f"get_{stem}")
    c.call(f"tag {noun} {rid}", f"PUT {path}/{rid}/tags {{\"tags\": {tags}}}",
           lambda: sdk.network.set_tags(getter(rid), tags))


def create(c: Any, kind: str, attrs: dict[str, Any], *, api: str, command: str | None = None,
           name: str | None = None) -> dict[str, Any]:
    """Create one resource (`name`: how messages call it, else its name attribute); returns its summary."""
    proxy, stem, path, noun = KINDS[kind]
    sdk = c.conn
    if kind == "keypair":
        fn = lambda: sdk.compute.create_keypair(**attrs)  # noqa: E731
    else:
        fn = lambda: getattr(getattr(sdk, proxy), f"create_{stem}")(**attrs)  # noqa: E731
    obj = c.call(f"create {noun} {name or attrs.get('name') or ''}".strip(), api, fn, command=command)
    return summary(kind, obj)


def add_router_interface(c: Any, router_id: str, subnet_id: str) -> None:
    c.call("add the subnet to the router", f"PUT /v2.0/routers/{router_id}/add_router_interface "
           f"{{\"subnet_id\": \"{subnet_id}\"}}",
           lambda: c.conn.network.add_interface_to_router(router_id, subnet_id=subnet_id))


def router_interface_subnets(c: Any, router_id: str) -> list[str]:
    """The subnets the router has an interface on (its router_interface ports' fixed IPs)."""
    ports = c.call("list the router's ports", f"GET /v2.0/ports?device_id={router_id}",
                   lambda: list(c.conn.network.ports(device_id=router_id)))
    return [f["subnet_id"] for p in ports if (p.device_owner or "").startswith("network:router_interface")
            for f in p.fixed_ips or [] if f.get("subnet_id")]


def router_has_interface(c: Any, router_id: str, subnet_id: str) -> bool | None:
    """True/False, or None when the router is gone."""
    ports = c.call("list the router's ports", f"GET /v2.0/ports?device_id={router_id}",
                   lambda: list(c.conn.network.ports(device_id=router_id)))
    if get(c, "router", router_id) is None:
        return None
    return any(f.get("subnet_id") == subnet_id for p in ports for f in (p.fixed_ips or [])
               if p.device_owner and p.device_owner.startswith("network:router_interface"))


def remove_router_interface(c: Any, router_id: str, subnet_id: str) -> bool:
    """False when already gone (router or interface: 404)."""
    try:
        c.call("remove the subnet from the router", f"PUT /v2.0/routers/{router_id}/remove_router_interface "
               f"{{\"subnet_id\": \"{subnet_id}\"}}",
               lambda: c.conn.network.remove_interface_from_router(router_id, subnet_id=subnet_id), ok_codes=(404,))
    except Exception as exc:
        if getattr(exc, "code", None) == 404:
            return False
        raise
    return True


def delete(c: Any, kind: str, rid: str, *, command: str | None = None) -> bool:
    """Delete one resource; False when it was already gone (404 counts as deleted)."""
    proxy, stem, path, noun = KINDS[kind]
    fn = getattr(getattr(c.conn, proxy), f"delete_{stem}")
    try:
        c.call(f"delete {noun} {rid}", f"DELETE {path}/{rid}", lambda: fn(rid, ignore_missing=False),
               command=command, ok_codes=(404,))
    except Exception as exc:
        if getattr(exc, "code", None) == 404:
            return False
        raise
    return True


def wait_gone(c: Any, kind: str, rid: str, timeout: float = 120.0, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get(c, kind, rid) is None:
            return
        time.sleep(poll)
    raise LabError(f"cloud {c.name}: {KINDS[kind][3]} {rid} is still there {timeout:g} s after its delete",
                   "look at it with `openstack " + KINDS[kind][3] + f" show {rid}` and run teardown again",
                   code="cloud-timeout")


def wait_servers(c: Any, ids: dict[str, str], *, timeout: float = 600.0, poll: float = 1.0,
                 on_change: Callable[[str, dict[str, Any]], None] | None = None,
                 cancel: Any = None) -> dict[str, dict[str, Any]]:
    """Poll the servers (node -> server id) together until each is ACTIVE or ERROR (one list call
    per round). Returns node -> summary; a server still building at the deadline keeps BUILD."""
    sdk = c.conn
    last: dict[str, str] = {}
    state: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    wanted = set(ids.values())
    by_id = {v: k for k, v in ids.items()}
    while True:
        servers = c.call("read the servers' status", "GET /compute/v2.1/servers/detail",
                         lambda: [s for s in sdk.compute.servers(details=True) if s.id in wanted])
        seen = set()
        for s in servers:
            node = by_id[s.id]
            seen.add(s.id)
            info = summary("server", s)
            state[node] = info
            if last.get(node) != info["status"]:
                last[node] = info["status"]
                if on_change:
                    on_change(node, info)
        for sid in wanted - seen:
            node = by_id[sid]
            state[node] = {"id": sid, "status": "DELETED", "fault": "the server disappeared", "addresses": {}}
        if all(v.get("status") in ("ACTIVE", "ERROR", "DELETED") for v in state.values()) and len(state) == len(ids):
            return state
        if time.monotonic() > deadline or (cancel is not None and cancel.is_set()):
            return state
        time.sleep(poll)


def console_output(c: Any, server_id: str) -> str:
    out = c.call("read the console log", f"POST /compute/v2.1/servers/{server_id}/action "
                 "{\"os-getConsoleOutput\": {}}",
                 lambda: c.conn.compute.get_server_console_output(server_id))
    return (out or {}).get("output") or ""
