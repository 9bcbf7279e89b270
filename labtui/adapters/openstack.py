"""The OpenStack adapter (openstacksdk, imported lazily): connect, discover the lab, make the calls.

    conn = connect("mycloud", emit=ctx.emit)        # clouds.yaml / OS_CLOUD / OS_* variables
    lab = discover(conn, plan.nodes)                # -> labtui.net.model.LabNetwork
    report = labtui.net.check.evaluate(lab, CalicoNetworking.for_encapsulation(...))
    create_rule(conn, ...) / add_allowed_address_pairs(conn, port, [cidr]) / disable_port_security(conn, port)

The Actions that use these calls are built by the change catalogue (labtui.changes.openstack and
labtui.changes.cloud); each of its kinds reverts through these calls too.

Every failure is a LabError that names the cloud and says what to do: cloud not in clouds.yaml,
wrong credentials (401), not allowed (403), endpoint unreachable or slow (timeout), TLS
verification failure, no network service in the catalog. Every API call is announced on the
event channel (the command log) before it is made, and every call has a timeout.
"""

from __future__ import annotations

import json
import shlex
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from labtui import events as ev
from labtui.net.check import AAP_QUOTA
from labtui.net.fixes import RuleFix, find_same_rule
from labtui.net.model import LabNetwork, LabNode, NodePort, SecurityGroup, SGRule
from labtui.errors import LabError
from labtui.events import Event

if TYPE_CHECKING:  # pragma: no cover
    from labtui.adapters.keystone import EarlyLogin

DEFAULT_TIMEOUT = 20.0

__all__ = [
    "CloudConnection", "RuleResult", "PairsResult", "connect", "discover", "discover_by_address", "create_rule", "delete_rule",
    "add_allowed_address_pairs", "remove_allowed_address_pairs", "disable_port_security",
    "enable_port_security", "session_cloud", "find_rule", "get_port", "post_rule", "group_rules",
]


@dataclass
class RuleResult:
    created: bool  # False: the rule already existed (HTTP 409), nothing changed
    id: str
    rule: SGRule | None = None


@dataclass
class PairsResult:
    port_id: str
    added: list[str] = field(default_factory=list)  # ip_address values added by this call
    pairs: list[dict[str, str]] = field(default_factory=list)  # the port's pairs afterwards


# --------------------------------------------------------------------------- errors


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 8:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def status_code(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries (looked for along its chain), or None."""
    for e in _chain(exc):
        code = getattr(e, "status_code", None) or getattr(e, "http_status", None)
        if isinstance(code, int):
            return code
    text = str(exc)
    for code in (401, 403, 404, 409):
        if f"(HTTP {code})" in text or f"{code}: Client Error" in text:
            return code
    return None


def _server_message(exc: BaseException) -> str:
    """The part of an openstacksdk error the server said (policy text etc.), without the URL noise."""
    text = str(exc)
    if "Client Error for url:" in text:
        text = text.split("Client Error for url:", 1)[1]
        text = text.split(",", 1)[1].strip() if "," in text else text
    details = getattr(exc, "details", None)
    if isinstance(details, str) and details and details not in text:
        text = details
    return text.strip()[:300]


def translate_error(exc: BaseException, cloud: str, what: str, timeout: float | None = None,
                    command: str | None = None) -> LabError:
    """Turn an openstacksdk / keystoneauth exception into a LabError that says what to do."""
    from keystoneauth1 import exceptions as ka
    from openstack import exceptions as osx

    chain = _chain(exc)
    kinds = {type(e) for e in chain}

    def has(*types: type) -> bool:
        return any(issubclass(k, types) for k in kinds)

    by_hand = f" The command is: {command}" if command else ""
    if has(ka.SSLError):
        return LabError(f"cloud {cloud}: TLS verification failed while trying to {what}",
                        "the endpoint's certificate is not trusted here: set `cacert: /path/to/ca.pem` for this "
                        "cloud in clouds.yaml (or, for a throw-away lab only, `verify: false`)", code="cloud-tls")
    if has(ka.ConnectTimeout, ka.RequestTimeout) or "timed out" in str(exc):
        limit = f" within {timeout:g} s" if timeout else ""
        return LabError(f"cloud {cloud}: no answer{limit} while trying to {what}",
                        "the endpoint is slow or a firewall swallows the packets: check the auth_url in "
                        "clouds.yaml, your VPN, and try again", code="cloud-timeout")
    if has(ka.ConnectFailure, ka.DiscoveryFailure) and not status_code(exc):
        return LabError(f"cloud {cloud}: cannot reach the endpoint while trying to {what} ({_short(exc)})",
                        "check the auth_url in clouds.yaml, your network or VPN, and that the cloud is up",
                        code="cloud-unreachable")
    code = status_code(exc)
    if code == 401 or has(ka.Unauthorized):
        return LabError(f"cloud {cloud}: the credentials were refused (HTTP 401) while trying to {what}",
                        "check username, password, project and domain names for this cloud in clouds.yaml "
                        "(an application credential may have expired)", code="cloud-unauthorized")
    if code == 403 or has(ka.Forbidden, osx.ForbiddenException):
        return LabError(f"cloud {cloud}: not allowed to {what} (HTTP 403: {_server_message(exc)})",
                        "your user's role in this project does not permit it (on a network owned by another "
                        "project, e.g. a shared provider network, members may not change allowed-address-pairs "
                        "or port security). Ask the cloud's admin to make the change, or choose a fix that "
                        "needs no port change: Calico IPIP Always plus a security-group rule for protocol 4."
                        + by_hand, code="cloud-forbidden")
    if has(osx.ServiceDisabledException, osx.EndpointNotFound, ka.EndpointNotFound, ka.EmptyCatalog):
        return LabError(f"cloud {cloud}: no network service (Neutron) in the catalog while trying to {what}",
                        "check region_name and interface for this cloud in clouds.yaml; without Neutron labtui "
                        "cannot read security groups or ports", code="cloud-no-network")
    if has(osx.ConfigException):
        return LabError(f"cloud {cloud}: {exc}", "check the cloud's entry in clouds.yaml", code="cloud-config")
    if code == 404:
        return LabError(f"cloud {cloud}: not found while trying to {what} (HTTP 404: {_server_message(exc)})",
                        "it may have been deleted meanwhile: run the check again", code="cloud-not-found-object")
    if code:
        return LabError(f"cloud {cloud}: {what} failed (HTTP {code}: {_server_message(exc)})",
                        "look at the command log; run the check again." + by_hand, code="cloud-http")
    return LabError(f"cloud {cloud}: {what} failed: {_short(exc)}", "look at the command log; run the check again",
                    code="cloud-error")


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) < 200 else text[:200] + "..."


# --------------------------------------------------------------------------- the connection


class CloudConnection:
    """One authenticated openstacksdk Connection to a cloud, with the lab's event channel."""

    def __init__(self, name: str, conn: Any, timeout: float, emit: Callable[[Event], None] | None = None) -> None:
        self.name = name
        self.conn = conn
        self.timeout = timeout
        self.emit = emit or (lambda e: None)
        # A service checks a token it has not seen with Keystone (keystonemiddleware), once, then caches
        # it; requests that arrive together with a new token are each checked (on the test cloud, three
        # parallel first reads cost Keystone three validations, about 0.3 s of its CPU). So after a
        # login the first call goes alone and calls made meanwhile wait for its answer.
        self._first_alone = threading.Lock()
        self._token_seen = threading.Event()
        self._token_seen.set()

    def new_token(self) -> None:
        """Just logged in: the next call goes alone (see __init__)."""
        self._token_seen.clear()

    def first_answered(self, timeout: float | None = None) -> None:
        """Wait until the first call after the login has answered: a reader that starts beside the one
        that matters most (the doctor's extensions beside its port look-up) lets that one go first."""
        self._token_seen.wait(self.timeout if timeout is None else timeout)

    # every API call goes through here: announced in the command log, errors translated
    def call(self, what: str, api: str, fn: Callable[[], Any], command: str | None = None,
             ok_codes: tuple[int, ...] = ()) -> Any:
        if not self._token_seen.is_set():
            with self._first_alone:
                if not self._token_seen.is_set():
                    try:
                        return self._call(what, api, fn, command, ok_codes)
                    finally:
                        self._token_seen.set()
        return self._call(what, api, fn, command, ok_codes)

    def _call(self, what: str, api: str, fn: Callable[[], Any], command: str | None,
              ok_codes: tuple[int, ...]) -> Any:
        self.emit(Event(ev.ACTION_OUTPUT, f"{self.name}: {api}", stream="api", data={"api": api, "cloud": self.name}))
        try:
            return fn()
        except LabError:
            raise
        except Exception as exc:
            if ok_codes and status_code(exc) in ok_codes:
                raise _Expected(status_code(exc), exc) from exc
            raise translate_error(exc, self.name, what, self.timeout, command) from exc

    @property
    def project_id(self) -> str | None:
        try:
            return self.conn.current_project_id
        except Exception:
            return None

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


class _Expected(Exception):
    """An HTTP status the caller expects (`ok_codes`): 409 already there, 404 already gone."""

    def __init__(self, code: int | None, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.code = code
        self.exc = exc


def _quiet_sdk_logging() -> None:
    from labtui.adapters.keystone import quiet_loggers

    quiet_loggers()
    import warnings

    from openstack import warnings as osw

    for category in (osw.OpenStackWarning, osw._RemovedInSDKWarning):  # deprecation notes for the SDK's users
        warnings.filterwarnings("ignore", category=category)


def load_sdk() -> None:
    """Import openstacksdk now (about 0.4 s of CPU in a fresh process), so a caller can order it
    before other work."""
    import openstack  # noqa: F401


def connect(name: str, *, timeout: float = DEFAULT_TIMEOUT, emit: Callable[[Event], None] | None = None,
            check_network: bool = True, early: EarlyLogin | None = None) -> CloudConnection:
    """Authenticate to the cloud `name` and make sure it has a network service (with `early`'s token
    when it is the same identity)."""
    from labtui.cloudconfig import ENV_CLOUD, load_clouds

    if not name:
        raise LabError("no cloud is set for this lab", "pass --cloud NAME, or choose a cloud in the plan",
                       code="cloud-not-set")
    cfg = load_clouds()
    if name != ENV_CLOUD:
        cfg.require(name)  # LabError listing the known clouds
    _quiet_sdk_logging()
    import openstack
    from openstack import exceptions as osx

    emitter = emit or (lambda e: None)
    emitter(Event(ev.INFO, f"connecting to cloud {name} ({cfg.describe(name)}), timeout {timeout:g} s"))
    try:
        sdk = openstack.connect(cloud=name, api_timeout=timeout, connect_retries=0, status_code_retries=0)
    except osx.ConfigException as exc:
        raise LabError(f"cloud {name}: {exc}", "check the cloud's entry in clouds.yaml", code="cloud-config") from exc
    except Exception as exc:
        raise translate_error(exc, name, "read its configuration", timeout) from exc
    c = CloudConnection(name, sdk, timeout, emit)

    def log_in() -> Any:
        if early is not None and early.name == name:
            early.hand_over(sdk.session.auth, timeout)  # its token, or its failure; else the SDK's own log-in
        return sdk.authorize()

    c.call("log in (Keystone)", "POST /v3/auth/tokens", log_in)
    if check_network:
        ep = c.call("read the service catalog", "GET /v3/auth/catalog",
                    lambda: _endpoint(sdk, "network"))
        if not ep:
            raise LabError(f"cloud {name}: no network service (Neutron) in the catalog",
                           "check region_name and interface for this cloud in clouds.yaml; without Neutron labtui "
                           "cannot read security groups or ports", code="cloud-no-network")
    c.new_token()
    return c


def _endpoint(sdk: Any, service_type: str) -> str | None:
    try:
        return sdk.session.get_endpoint(service_type=service_type, interface=sdk.config.get_interface(),
                                        region_name=sdk.config.get_region_name())
    except Exception as exc:
        from keystoneauth1 import exceptions as ka

        if isinstance(exc, (ka.EndpointNotFound, ka.EmptyCatalog)):
            return None
        raise


# --------------------------------------------------------------------------- discovery


def _port_from_api(p: Any, subnets: dict[str, Any], networks: dict[str, Any]) -> NodePort:
    fixed = [{"ip_address": f.get("ip_address"), "subnet_id": f.get("subnet_id")} for f in (p.fixed_ips or [])]
    v4 = next((f for f in fixed if f["ip_address"] and ":" not in f["ip_address"]), fixed[0] if fixed else None)
    sub = subnets.get(v4["subnet_id"]) if v4 else None
    net = networks.get(p.network_id)
    return NodePort(
        id=p.id, name=p.name or "", network_id=p.network_id, network_name=getattr(net, "name", None),
        mac_address=p.mac_address, fixed_ips=fixed, subnet_id=v4["subnet_id"] if v4 else None,
        subnet_cidr=getattr(sub, "cidr", None), subnet_name=getattr(sub, "name", None),
        security_group_ids=list(p.security_group_ids or []),
        port_security_enabled=p.is_port_security_enabled is not False,
        allowed_address_pairs=[{k: v for k, v in dict(a).items() if v} for a in (p.allowed_address_pairs or [])],
        device_id=p.device_id, device_owner=p.device_owner, project_id=p.project_id,
        network_mtu=getattr(net, "mtu", None),
    )


def _server_ips(server: Any) -> set[str]:
    out: set[str] = set()
    for addrs in (getattr(server, "addresses", None) or {}).values():
        for a in addrs or []:
            if a.get("addr"):
                out.add(a["addr"])
    return out


def _node_fields(node: Any) -> tuple[str, str, str]:
    get = node.get if isinstance(node, dict) else (lambda k, d=None: getattr(node, k, d))
    role = get("role", "worker")
    return str(get("name")), str(get("address") or ""), str(getattr(role, "value", role) or "worker")


def _is_ip(text: str | None) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text or "")
    except ValueError:
        return False
    return True


def discover(conn: CloudConnection, nodes: Iterable[Any], include_rules: bool = True) -> LabNetwork:
    """Map each plan node (NodeSpec or dict: name, address, role) to its server (by name, else by
    fixed IP) and its Neutron ports; read their subnets and security groups (with rules).

    Nodes that are not servers of this cloud come back with `found=False` and a note."""
    sdk = conn.conn
    plan = [_node_fields(n) for n in nodes]
    lab = LabNetwork(cloud=conn.name, project_id=conn.project_id)
    has_compute = bool(conn.call("read the service catalog", "GET /v3/auth/catalog", lambda: _endpoint(sdk, "compute")))
    servers: list[Any] = []
    if has_compute:
        servers = conn.call("list the servers", "GET /compute/v2.1/servers/detail",
                            lambda: list(sdk.compute.servers(details=True)))
    else:
        lab.notes.append("the cloud has no compute service in its catalog: nodes are matched to ports by address")
    by_name = {s.name: s for s in servers}
    matched: dict[str, tuple[Any | None, str | None]] = {}
    for name, address, _role in plan:
        server = by_name.get(name)
        how = "name" if server else None
        if server is None and address:
            server = next((s for s in servers if address in _server_ips(s)), None)
            how = "address" if server else None
        matched[name] = (server, how)
    server_ids = sorted({s.id for s, _ in matched.values() if s is not None})
    ports: list[Any] = []
    if server_ids:
        ports = conn.call("list the servers' ports", "GET /v2.0/ports?" + "&".join(f"device_id={i}" for i in server_ids),
                          lambda: list(sdk.network.ports(device_id=server_ids)))
    for name, address, _role in plan:  # nodes without a server: a port with their address?
        if matched[name][0] is None and _is_ip(address):
            found = conn.call(f"look up the port of {address}", f"GET /v2.0/ports?fixed_ips=ip_address={address}",
                              lambda a=address: list(sdk.network.ports(fixed_ips=f"ip_address={a}")))
            ports.extend(p for p in found if p.id not in {q.id for q in ports})
    subnet_ids = sorted({f.get("subnet_id") for p in ports for f in (p.fixed_ips or []) if f.get("subnet_id")})
    network_ids = sorted({p.network_id for p in ports if p.network_id})
    subnets = {s.id: s for s in conn.call("read the subnets", "GET /v2.0/subnets?" + "&".join(f"id={i}" for i in subnet_ids),
                                          lambda: list(sdk.network.subnets(id=subnet_ids)))} if subnet_ids else {}
    networks = {n.id: n for n in conn.call("read the networks", "GET /v2.0/networks?" + "&".join(f"id={i}" for i in network_ids),
                                           lambda: list(sdk.network.networks(id=network_ids)))} if network_ids else {}
    node_ports = [_port_from_api(p, subnets, networks) for p in ports]
    for name, address, role in plan:
        server, how = matched[name]
        node = LabNode(name=name, role=role, address=address or None)
        if server is not None:
            node.found, node.server_id, node.server_name = True, server.id, server.name
            node.server_status, node.matched_by = server.status, how
            node.ports = [p for p in node_ports if p.device_id == server.id]
            if not node.ports:
                node.note = f"server {server.name} has no port on a network this project can see"
        else:
            mine = [p for p in node_ports if address and address in p.ips]
            if mine:
                node.found, node.matched_by, node.ports = True, "port", mine
                node.note = (f"no server of cloud {conn.name} is named {name} or has {address}, but port "
                             f"{mine[0].label} has this address")
            else:
                node.note = (f"not a server of cloud {conn.name} (no server named {name}"
                             + (f" and none with address {address}" if address else "") + ")")
        lab.nodes.append(node)
    if include_rules:
        group_ids = sorted({g for p in node_ports for g in p.security_group_ids})
        if group_ids:
            groups = conn.call("read the security groups", "GET /v2.0/security-groups?" + "&".join(f"id={i}" for i in group_ids),
                               lambda: list(sdk.network.security_groups(id=group_ids)))
            for g in groups:
                lab.groups.append(_group_from_api(g))
    return lab


def _group_from_api(g: Any) -> SecurityGroup:
    return SecurityGroup(g.id, g.name or "", [SGRule.from_api(r, g.id) for r in (g.security_group_rules or [])],
                         g.project_id, stateful=getattr(g, "stateful", None))


def discover_by_address(conn: CloudConnection, nodes: Iterable[Any]) -> LabNetwork:
    """`discover` for the doctor: the nodes' Neutron ports found by their fixed IP in one request, then
    their subnets, networks (their MTU) and groups (their statefulness) in parallel: no Nova listing
    (1-1.5 s on a busy cloud). Nodes whose address is not a fixed IP of this cloud (a floating IP, a
    host name) go through `discover` (servers by name), so "not a server of this cloud" keeps its meaning."""
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    sdk = conn.conn
    plan = [_node_fields(n) for n in nodes]
    ips = [addr for _name, addr, _role in plan if _is_ip(addr)]
    found: list[Any] = []
    if ips:
        query = "&".join(f"fixed_ips=ip_address={ip}" for ip in ips)
        found = conn.call("find the nodes' ports by address", f"GET /v2.0/ports?{query}",
                          lambda: list(sdk.network.ports(fixed_ips=[f"ip_address={ip}" for ip in ips])))
    by_ip: dict[str, list[Any]] = {}
    for p in found:
        for f in p.fixed_ips or []:
            by_ip.setdefault(f.get("ip_address"), []).append(p)
    common = Counter(p.network_id for ps in by_ip.values() if len(ps) == 1 for p in ps)
    chosen: dict[str, Any] = {}
    missing = []
    for name, addr, role in plan:
        cands = by_ip.get(addr) or []
        if len(cands) > 1:  # the same address on several networks: the lab's network wins
            best = max(cands, key=lambda p: common.get(p.network_id, 0))
            cands = [best] if common.get(best.network_id) else []
        if cands:
            chosen[name] = cands[0]
        else:
            missing.append({"name": name, "address": addr, "role": role})
    subnet_ids = sorted({f.get("subnet_id") for p in chosen.values() for f in (p.fixed_ips or []) if f.get("subnet_id")})
    group_ids = sorted({g for p in chosen.values() for g in (p.security_group_ids or [])})
    network_ids = sorted({p.network_id for p in chosen.values() if p.network_id})
    jobs: dict[str, Callable[[], Any]] = {}
    if subnet_ids:
        jobs["subnets"] = lambda: conn.call("read the subnets", "GET /v2.0/subnets?" + "&".join(f"id={i}" for i in subnet_ids),
                                            lambda: list(sdk.network.subnets(id=subnet_ids)))
    if group_ids:
        jobs["groups"] = lambda: conn.call("read the security groups",
                                           "GET /v2.0/security-groups?" + "&".join(f"id={i}" for i in group_ids),
                                           lambda: list(sdk.network.security_groups(id=group_ids)))
    if network_ids:  # their MTU, for the doctor's MTU check (same wave: no extra wait)
        jobs["networks"] = lambda: conn.call("read the networks", "GET /v2.0/networks?" + "&".join(f"id={i}" for i in network_ids),
                                             lambda: list(sdk.network.networks(id=network_ids)))
    if missing:
        jobs["discover"] = lambda: discover(conn, missing, include_rules=True)
    res: dict[str, Any] = {}
    if jobs:
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="doctor-cloud") as pool:
            futs = {k: pool.submit(fn) for k, fn in jobs.items()}
            res = {k: f.result() for k, f in futs.items()}
    subnets = {s.id: s for s in res.get("subnets", [])}
    networks = {n.id: n for n in res.get("networks", [])}
    lab = LabNetwork(cloud=conn.name, project_id=conn.project_id)
    slow = {n.name: n for n in (res["discover"].nodes if "discover" in res else [])}
    for name, addr, role in plan:
        p = chosen.get(name)
        if p is None:
            lab.nodes.append(slow.get(name) or LabNode(name=name, role=role, address=addr or None,
                                                       note=f"no port of cloud {conn.name} has the address {addr}"))
            continue
        lab.nodes.append(LabNode(name=name, role=role, address=addr or None, found=True, matched_by="port",
                                 server_id=p.device_id or None, ports=[_port_from_api(p, subnets, networks)]))
    lab.groups.extend(_group_from_api(g) for g in res.get("groups", []))
    if "discover" in res:
        have = {g.id for g in lab.groups}
        lab.groups.extend(g for g in res["discover"].groups if g.id not in have)
    return lab


# --------------------------------------------------------------------------- changes


def post_rule(conn: CloudConnection, fix: RuleFix, *, what: str | None = None, api: str | None = None,
              command: str | None = None) -> SGRule | None:
    """POST one rule (the body: `fix.attrs()`); None when Neutron answers HTTP 409 (the group has it)."""
    body = fix.attrs()
    if body.get("protocol") == "ipip":  # never: old iptables clouds render it as protocol 94
        body["protocol"] = "4"
    sdk = conn.conn
    try:
        rule = conn.call(what or f"create a rule in security group {fix.security_group_name}", api or fix.api(),
                         lambda: sdk.network.create_security_group_rule(**body), command=command or fix.command(),
                         ok_codes=(409,))
    except _Expected:
        return None
    return SGRule.from_api(rule, fix.security_group_id)


def create_rule(conn: CloudConnection, fix: RuleFix | None = None, **attrs: Any) -> RuleResult:
    """Create a security-group rule; an existing identical rule (HTTP 409) counts as done. The
    'ipip'-named rules `fix.replaces` are deleted first (Neutron counts them as the same rule).

    Pass a RuleFix, or the rule's attributes (security_group_id, protocol, port_range_min/max,
    remote_group_id, remote_ip_prefix, direction, ether_type, description)."""
    if fix is None:
        fix = RuleFix(security_group_id=attrs["security_group_id"],
                      security_group_name=attrs.get("security_group_name") or attrs["security_group_id"],
                      protocol=None if attrs.get("protocol") in (None, "", "any") else str(attrs["protocol"]),
                      port_range_min=attrs.get("port_range_min"), port_range_max=attrs.get("port_range_max"),
                      remote_group_id=attrs.get("remote_group_id"), remote_ip_prefix=attrs.get("remote_ip_prefix"),
                      direction=attrs.get("direction", "ingress"),
                      ether_type=attrs.get("ether_type") or attrs.get("ethertype") or "IPv4",
                      description=attrs.get("description") or "")
    for old in fix.replaces:  # an 'ipip' rule Neutron would count as this one (409): delete it first
        delete_rule(conn, old.id)
    made = post_rule(conn, fix)
    if made is None:
        existing = find_rule(conn, fix)
        if existing is not None and existing.protocol == "ipip" and fix.attrs().get("protocol") in ("4", "ipip"):
            raise LabError(f"cloud {conn.name}: group {fix.security_group_name} has rule {existing.id} with protocol "
                           "'ipip', which Neutron counts as the same rule as protocol 4 (HTTP 409)",
                           "run the check again: labtui then replaces that rule (delete it, create protocol 4)",
                           code="cloud-ipip-conflict")
        conn.emit(Event(ev.INFO, f"{fix.security_group_name}: the rule already exists"
                        + (f" ({existing.id})" if existing else "") + " (HTTP 409): nothing to do"))
        return RuleResult(False, existing.id if existing else "", existing)
    return RuleResult(True, made.id, made)


def group_rules(conn: CloudConnection, group_id: str, what: str = "read the rules") -> list[SGRule]:
    """Every rule of one group, as the network model's SGRules."""
    sdk = conn.conn
    rules = conn.call(what, f"GET /v2.0/security-group-rules?security_group_id={group_id}",
                      lambda: list(sdk.network.security_group_rules(security_group_id=group_id)))
    return [SGRule.from_api(r, group_id) for r in rules]


def restore_rule(conn: CloudConnection, rule: SGRule | dict[str, Any]) -> RuleResult:
    """Create a rule exactly as it was (a revert: protocol 'ipip' stays 'ipip'); 409 = already there."""
    r = rule if isinstance(rule, SGRule) else SGRule(**rule)
    body: dict[str, Any] = {"security_group_id": r.security_group_id, "direction": r.direction,
                            "ether_type": r.ether_type}
    for key in ("protocol", "port_range_min", "port_range_max", "remote_group_id", "remote_ip_prefix"):
        if getattr(r, key) is not None:
            body[key] = getattr(r, key)
    if r.description:
        body["description"] = r.description
    sdk = conn.conn
    api = "POST /v2.0/security-group-rules " + json.dumps({"security_group_rule": body}, sort_keys=True)
    try:
        created = conn.call("restore a security-group rule", api,
                            lambda: sdk.network.create_security_group_rule(**body), ok_codes=(409,))
    except _Expected:
        return RuleResult(False, "", r)
    return RuleResult(True, created.id, SGRule.from_api(created, r.security_group_id))


def delete_rule(conn: CloudConnection, rule_id: str) -> bool:
    """Delete a rule; False when it was already gone."""
    sdk = conn.conn
    try:
        conn.call("delete a security-group rule", f"DELETE /v2.0/security-group-rules/{rule_id}",
                  lambda: sdk.network.delete_security_group_rule(rule_id, ignore_missing=False),
                  command=f"openstack security group rule delete {rule_id}", ok_codes=(404,))
    except _Expected:
        return False
    return True


def _get_port(conn: CloudConnection, port_id: str) -> Any:
    sdk = conn.conn
    return conn.call(f"read port {port_id}", f"GET /v2.0/ports/{port_id}", lambda: sdk.network.get_port(port_id))


def _pairs_of(port: Any) -> list[dict[str, str]]:
    return [{k: v for k, v in dict(a).items() if v} for a in (port.allowed_address_pairs or [])]


def add_allowed_address_pairs(conn: CloudConnection, port_id: str, cidrs: Iterable[str | dict[str, str]]) -> PairsResult:
    """Merge `cidrs` into the port's allowed-address-pairs (Neutron replaces the whole list, so the
    pairs already there are sent back with the new ones). Already present: nothing to do."""
    port = _get_port(conn, port_id)
    pairs = _pairs_of(port)
    have = {(p.get("ip_address"), p.get("mac_address")) for p in pairs}
    added: list[str] = []
    for c in cidrs:
        entry = dict(c) if isinstance(c, dict) else {"ip_address": str(c)}
        if (entry.get("ip_address"), entry.get("mac_address")) in have or \
                (entry.get("mac_address") is None and any(p.get("ip_address") == entry["ip_address"] for p in pairs)):
            continue
        pairs.append(entry)
        added.append(entry["ip_address"])
    if not added:
        conn.emit(Event(ev.INFO, f"port {port.name or port_id}: the pairs are already there: nothing to do"))
        return PairsResult(port_id, [], pairs)
    if len(pairs) > AAP_QUOTA:
        raise LabError(f"cloud {conn.name}: port {port.name or port_id} would have {len(pairs)} allowed-address-pairs; "
                       f"Neutron's default quota is {AAP_QUOTA}",
                       "remove pairs you no longer need, or use IPIP Always with a protocol-4 rule instead",
                       code="cloud-aap-quota")
    label = port.name or port_id
    cmd = " ".join(f"--allowed-address ip-address={shlex.quote(a)}" for a in added)
    sdk = conn.conn
    updated = conn.call(f"set allowed-address-pairs on port {label}",
                        f"PUT /v2.0/ports/{port_id} " + json.dumps({"port": {"allowed_address_pairs": pairs}}),
                        lambda: sdk.network.update_port(port, allowed_address_pairs=pairs),
                        command=f"openstack port set {cmd} {shlex.quote(label)}")
    return PairsResult(port_id, added, _pairs_of(updated))


def remove_allowed_address_pairs(conn: CloudConnection, port_id: str, remove: Iterable[str | dict[str, str]]) -> PairsResult:
    """Remove exactly these pairs (by ip_address, and mac_address when given); keep all others."""
    port = _get_port(conn, port_id)
    pairs = _pairs_of(port)
    targets = [dict(r) if isinstance(r, dict) else {"ip_address": str(r)} for r in remove]

    def hit(p: dict[str, str]) -> bool:
        return any(p.get("ip_address") == t.get("ip_address") and
                   (t.get("mac_address") is None or p.get("mac_address") == t.get("mac_address")) for t in targets)

    keep = [p for p in pairs if not hit(p)]
    removed = [p["ip_address"] for p in pairs if hit(p)]
    if not removed:
        return PairsResult(port_id, [], pairs)
    sdk = conn.conn
    label = port.name or port_id
    cmd = " ".join(f"--allowed-address ip-address={shlex.quote(a)}" for a in removed)
    updated = conn.call(f"remove allowed-address-pairs from port {label}",
                        f"PUT /v2.0/ports/{port_id} " + json.dumps({"port": {"allowed_address_pairs": keep}}),
                        lambda: sdk.network.update_port(port, allowed_address_pairs=keep),
                        command=f"openstack port unset {cmd} {shlex.quote(label)}")
    return PairsResult(port_id, removed, _pairs_of(updated))


def disable_port_security(conn: CloudConnection, port_id: str) -> dict[str, Any]:
    """Port security off: Neutron refuses it while groups or pairs remain, so all go in one update.
    Returns what the revert needs (the groups and pairs that were on the port)."""
    port = _get_port(conn, port_id)
    before = {"port_id": port_id, "security_groups": list(port.security_group_ids or []),
              "allowed_address_pairs": _pairs_of(port), "was_enabled": port.is_port_security_enabled is not False}
    if not before["was_enabled"]:
        conn.emit(Event(ev.INFO, f"port {port.name or port_id}: port security is already off"))
        return before
    sdk = conn.conn
    label = port.name or port_id
    conn.call(f"disable port security on port {label}",
              f"PUT /v2.0/ports/{port_id} " + json.dumps({"port": {"port_security_enabled": False, "security_groups": [],
                                                                   "allowed_address_pairs": []}}),
              lambda: sdk.network.update_port(port, port_security_enabled=False, security_groups=[],
                                              allowed_address_pairs=[]),
              command=f"openstack port set --no-security-group --no-allowed-address --disable-port-security {shlex.quote(label)}")
    return before


def enable_port_security(conn: CloudConnection, port_id: str, security_groups: list[str],
                         allowed_address_pairs: list[dict[str, str]]) -> None:
    """Undo `disable_port_security`: port security on, then its groups and pairs back."""
    sdk = conn.conn
    port = _get_port(conn, port_id)
    label = port.name or port_id
    groups = " ".join(f"--security-group {g}" for g in security_groups)
    conn.call(f"enable port security on port {label}",
              f"PUT /v2.0/ports/{port_id} " + json.dumps({"port": {"port_security_enabled": True,
                                                                   "security_groups": security_groups,
                                                                   "allowed_address_pairs": allowed_address_pairs}}),
              lambda: sdk.network.update_port(port, port_security_enabled=True, security_groups=security_groups,
                                              allowed_address_pairs=allowed_address_pairs),
              command=f"openstack port set --enable-port-security {groups} {shlex.quote(label)}")


# --------------------------------------------------------------------------- what the cloud supports


def extension_aliases(conn: CloudConnection) -> list[str]:
    """The Neutron extensions (allowed-address-pairs, port-security...), sorted."""
    sdk = conn.conn
    return conn.call("list the Neutron extensions", "GET /v2.0/extensions",
                     lambda: sorted(e.alias for e in sdk.network.extensions()))


def agent_types(conn: CloudConnection) -> list[str]:
    """The network agents' types (they name the ML2 backend)."""
    sdk = conn.conn
    return conn.call("list the network agents (the ML2 backend)", "GET /v2.0/agents",
                     lambda: [a.agent_type for a in sdk.network.agents()])


def network_mtus(conn: CloudConnection, network_ids: list[str]) -> dict[str, int]:
    """{network id: MTU} for these networks."""
    sdk = conn.conn
    return conn.call("read the networks' MTU", "GET /v2.0/networks?" + "&".join(f"id={i}" for i in network_ids),
                     lambda: {n.id: n.mtu for n in sdk.network.networks(id=network_ids)})


def groups_stateful(conn: CloudConnection, group_ids: list[str]) -> dict[str, bool]:
    """{security group id: stateful} for these groups."""
    sdk = conn.conn
    return conn.call("read the groups' statefulness", "GET /v2.0/security-groups?" + "&".join(f"id={i}" for i in group_ids),
                     lambda: {g.id: g.stateful for g in sdk.network.security_groups(id=group_ids)})


# --------------------------------------------------------------------------- the session's connection


def session_cloud(ctx: Any, cloud: str | None = None, timeout: float | None = None) -> CloudConnection:
    """The lab's one connection (ctx.adapters.cloud), made on first use with the lab's timeout
    (ctx.tuning.cloud_timeout); a different cloud name makes a new one."""
    svc = ctx.adapters.cloud
    name = cloud or ctx.session.cloud_name
    if svc is not None and (not name or svc.name == name):
        return svc
    if not name:
        raise LabError(f"lab {ctx.session.name} has no cloud (it adopts machines)",
                       "pass --cloud NAME (a cloud from clouds.yaml), or pick a cloud in the plan", code="cloud-not-set")
    if svc is not None:
        ctx.adapters.pop("cloud").close()
    svc = connect(name, emit=ctx.emit, timeout=float(timeout or ctx.tuning.cloud_timeout),
                  early=ctx.adapters.pop("cloud_login"))
    ctx.adapters.cloud = svc
    return svc


def find_rule(conn: CloudConnection, fix: RuleFix) -> SGRule | None:
    """The group's rule that Neutron counts as the same as `fix` (None: not there)."""
    return find_same_rule(group_rules(conn, fix.security_group_id), fix)


def get_port(conn: CloudConnection, port_id: str) -> dict[str, Any]:
    """A port's security state: pairs, groups, port security."""
    port = _get_port(conn, port_id)
    return {"id": port.id, "name": port.name or "", "allowed_address_pairs": _pairs_of(port),
            "security_group_ids": list(port.security_group_ids or []),
            "port_security_enabled": port.is_port_security_enabled is not False}
