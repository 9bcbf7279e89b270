"""Build the incident's layout on the test cloud through the real APIs (openstacksdk, project venv).

One network and subnet (10.100.200.0/24), one security group `k8s` that has the usual
Kubernetes rules but no rule for IP protocol 4, and four servers booted by Nova (cp1, w1, w2,
w3), each with one port on that subnet at a fixed address, in that group.

`build_incident_layout()` is idempotent: it reuses what exists and then resets the group's
rules and the ports (no allowed-address-pairs, port security on, only the `k8s` group) to the
incident's state, so a test can call it (or `layout.reset()`) to start from a known state.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

INCIDENT_SUBNET = "10.100.200.0/24"
INCIDENT_POD_CIDR = "172.16.0.0/16"
INCIDENT_SERVICE_CIDR = "10.96.0.0/16"
# (name, fixed IP, role) as in the incident report (10.100.200.4 and .21 appear in its tcpdump)
INCIDENT_NODES: tuple[tuple[str, str, str], ...] = (
    ("cp1", "10.100.200.4", "control-plane"),
    ("w1", "10.100.200.21", "worker"),
    ("w2", "10.100.200.22", "worker"),
    ("w3", "10.100.200.23", "worker"),
)

# The incident's group: what a kubeadm how-to makes you open, but nothing for IP protocol 4.
# (protocol, port_min, port_max, source) with source "group" (the group itself) or a CIDR.
BASELINE_RULES: tuple[tuple[str, int | None, int | None, str], ...] = (
    ("tcp", 22, 22, "0.0.0.0/0"),
    ("tcp", 6443, 6443, "0.0.0.0/0"),
    ("tcp", 2379, 2380, "group"),
    ("tcp", 10250, 10250, "group"),
    ("tcp", 10257, 10257, "group"),
    ("tcp", 10259, 10259, "group"),
    ("tcp", 179, 179, "group"),
    ("tcp", 30000, 32767, "0.0.0.0/0"),
    ("icmp", None, None, "0.0.0.0/0"),
)


@dataclass
class LayoutNode:
    name: str
    ip: str
    role: str
    server_id: str = ""
    port_id: str = ""


@dataclass
class IncidentLayout:
    """What was built; `conn` is the openstacksdk Connection it was built with."""

    conn: Any = field(repr=False)
    cloud: str
    name: str
    network_id: str
    network_name: str
    subnet_id: str
    subnet_cidr: str
    security_group_id: str
    security_group_name: str
    nodes: list[LayoutNode]
    pod_cidr: str = INCIDENT_POD_CIDR
    service_cidr: str = INCIDENT_SERVICE_CIDR

    def node(self, name: str) -> LayoutNode:
        return next(n for n in self.nodes if n.name == name)

    def plan(self, lab: str = "incident", encapsulation: str = "IPIPCrossSubnet", **extra: Any) -> dict[str, Any]:
        """labtui plan data for this layout (pass to `Store.create_session(..., plan=...)`)."""
        return {
            "name": lab, "cloud": self.cloud, "node_subnet": self.subnet_cidr,
            "pod_cidr": self.pod_cidr, "service_cidr": self.service_cidr, "encapsulation": encapsulation,
            "nodes": [{"name": n.name, "address": n.ip, "role": n.role, "user": "ubuntu"} for n in self.nodes],
            **extra,
        }

    def rules(self) -> list[Any]:
        return list(self.conn.network.security_group_rules(security_group_id=self.security_group_id))

    def port(self, node: str) -> Any:
        return self.conn.network.get_port(self.node(node).port_id)

    def reset(self) -> "IncidentLayout":
        """Back to the incident's state: baseline rules only; ports with no pairs, security on."""
        net = self.conn.network
        wanted = {_baseline_key(r, self.security_group_id) for r in BASELINE_RULES}
        have: set[tuple] = set()
        for rule in net.security_group_rules(security_group_id=self.security_group_id):
            key = _rule_key(rule)
            if rule.direction == "egress" and rule.remote_ip_prefix is None and rule.remote_group_id is None \
                    and rule.protocol is None:
                have.add(key)  # Neutron's default egress rules stay
                continue
            if key in wanted and key not in have:
                have.add(key)
            else:
                net.delete_security_group_rule(rule, ignore_missing=True)
        for ether in ("IPv4", "IPv6"):  # restore default egress if a test removed it
            if ("egress", ether, None, None, None, None, None) not in have:
                net.create_security_group_rule(security_group_id=self.security_group_id, direction="egress",
                                               ether_type=ether)
        for proto, pmin, pmax, source in BASELINE_RULES:
            if _baseline_key((proto, pmin, pmax, source), self.security_group_id) not in have:
                net.create_security_group_rule(**_baseline_attrs(proto, pmin, pmax, source, self.security_group_id))
        for node in self.nodes:
            port = net.get_port(node.port_id)
            if (port.allowed_address_pairs or not port.is_port_security_enabled
                    or list(port.security_group_ids or []) != [self.security_group_id]):
                if not port.is_port_security_enabled:
                    net.update_port(port, port_security_enabled=True)
                net.update_port(port, allowed_address_pairs=[], security_groups=[self.security_group_id])
        return self

    def delete(self) -> None:
        """Remove the servers, ports, group, subnet and network of this layout."""
        net, compute = self.conn.network, self.conn.compute
        for node in self.nodes:
            if node.server_id:
                compute.delete_server(node.server_id, ignore_missing=True)
        for node in self.nodes:
            if node.server_id:
                compute.wait_for_delete(compute.get_server(node.server_id), wait=120) if _exists(compute, node.server_id) else None
            if node.port_id:
                net.delete_port(node.port_id, ignore_missing=True)
        net.delete_security_group(self.security_group_id, ignore_missing=True)
        net.delete_subnet(self.subnet_id, ignore_missing=True)
        net.delete_network(self.network_id, ignore_missing=True)


def _exists(compute: Any, server_id: str) -> bool:
    return compute.find_server(server_id, ignore_missing=True) is not None


def _baseline_attrs(proto: str, pmin: int | None, pmax: int | None, source: str, sg_id: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"security_group_id": sg_id, "direction": "ingress", "ether_type": "IPv4",
                             "protocol": proto}
    if pmin is not None:
        attrs.update(port_range_min=pmin, port_range_max=pmax)
    if source == "group":
        attrs["remote_group_id"] = sg_id
    else:
        attrs["remote_ip_prefix"] = source
    return attrs


def _baseline_key(spec: tuple, sg_id: str) -> tuple:
    proto, pmin, pmax, source = spec
    return ("ingress", "IPv4", proto, pmin, pmax, sg_id if source == "group" else None,
            None if source == "group" else source)


def _rule_key(rule: Any) -> tuple:
    return (rule.direction, rule.ether_type, rule.protocol, rule.port_range_min, rule.port_range_max,
            rule.remote_group_id, rule.remote_ip_prefix)


def _find_or_create(finder, creator, name: str, **attrs: Any) -> Any:
    obj = finder(name, ignore_missing=True)
    return obj if obj is not None else creator(name=name, **attrs)


def _roomy_quotas(conn: Any) -> None:
    """The layouts of the test suite (incident, doctor, scenarios, benches) live side by side in the
    admin project, each reused by name: Nova's default of 10 instances is exactly what they use
    together, so one more server (a bench, a second layout) would fail with "Quota exceeded". The
    fake virt driver costs nothing per instance: give the project room (once per project)."""
    project_id = conn.current_project_id
    if project_id in _ROOMY:
        return
    try:
        q = conn.compute.get_quota_set(project_id)
        if (q.instances or 0) != -1 and (q.instances or 0) < 40:
            conn.compute.update_quota_set(project_id, instances=40, cores=80, ram=80 * 1024)
        _ROOMY.add(project_id)
    except Exception:  # a member cannot raise its own quota: keep the defaults
        _ROOMY.add(project_id)


_ROOMY: set[str] = set()


def build_incident_layout(
    conn: Any,
    *,
    cloud: str = "labtui-admin",
    name: str = "incident",
    sg_name: str = "k8s",
    subnet_cidr: str = INCIDENT_SUBNET,
    nodes: tuple[tuple[str, str, str], ...] = INCIDENT_NODES,
    image: str = "labtui-image",
    flavor: str = "labtui.tiny",
    network_conn: Any = None,
    shared_network: bool = False,
    boot_timeout: int = 180,
) -> IncidentLayout:
    """Build (or reuse and reset) the layout with `conn`; see the module docstring.

    `network_conn` (default `conn`) owns the network and subnet: pass an admin connection and
    `shared_network=True` to put a member's servers on a network they do not own (the usual
    shared provider network, where Neutron's policy forbids them some port updates).
    `nodes` entries are (server name, fixed IP inside subnet_cidr or None for any, role).
    """
    _roomy_quotas(conn)
    net_owner = network_conn or conn
    net_name = f"{name}-net"
    network = net_owner.network.find_network(net_name, ignore_missing=True)
    if network is None:
        network = net_owner.network.create_network(name=net_name, shared=shared_network)
    subnet = next(iter(net_owner.network.subnets(network_id=network.id, cidr=subnet_cidr)), None)
    if subnet is None:
        subnet = net_owner.network.create_subnet(name=f"{name}-subnet", network_id=network.id, ip_version=4,
                                                 cidr=subnet_cidr)
    sg = _find_or_create(conn.network.find_security_group, conn.network.create_security_group, sg_name,
                         description="the incident's node group: no rule for IP protocol 4")
    net = conn.network
    image_obj = conn.image.find_image(image, ignore_missing=False)
    flavor_obj = conn.compute.find_flavor(flavor, ignore_missing=False)
    built: list[LayoutNode] = []
    pending: list[Any] = []
    for node_name, ip, role in nodes:
        port_name = f"{name}-{node_name}"
        if ip:
            if ipaddress.ip_address(ip) not in ipaddress.ip_network(subnet_cidr):
                raise ValueError(f"{node_name}: {ip} is outside {subnet_cidr}")
            port = next(iter(net.ports(network_id=network.id, fixed_ips=f"ip_address={ip}")), None)
        else:
            port = next(iter(net.ports(network_id=network.id, name=port_name)), None)
        if port is None:
            fixed = {"fixed_ips": [{"subnet_id": subnet.id, "ip_address": ip}]} if ip else {}
            port = net.create_port(network_id=network.id, name=port_name, security_groups=[sg.id], **fixed)
        ip = ip or port.fixed_ips[0]["ip_address"]
        # exact-name matches (find_server matches by regex and refuses duplicates); a duplicate left by an
        # interrupted run, a server in ERROR or one not on this port is replaced
        same = [s for s in conn.compute.servers(name=f"^{node_name}$") if s.name == node_name]
        keep = next((s for s in same if s.status != "ERROR" and port.device_id == s.id), None)
        for s in same:
            if s is not keep:
                conn.compute.delete_server(s)
                conn.compute.wait_for_delete(s, wait=120)
        server = keep
        if server is None:
            server = conn.compute.create_server(name=node_name, image_id=image_obj.id, flavor_id=flavor_obj.id,
                                                networks=[{"port": port.id}])
            pending.append(server)
        built.append(LayoutNode(node_name, ip, role, server.id, port.id))
    for server in pending:
        conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=1, wait=boot_timeout)
    layout = IncidentLayout(
        conn=conn, cloud=cloud, name=name, network_id=network.id, network_name=net_name, subnet_id=subnet.id,
        subnet_cidr=subnet_cidr, security_group_id=sg.id, security_group_name=sg_name, nodes=built,
    )
    return layout.reset()
