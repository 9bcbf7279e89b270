"""Pure parts of the gatherers: node probe output, BGP status, the merge of the three sources."""

from __future__ import annotations

from labtui.doctor.model import Calico
from labtui.net.calico import IPPoolInfo
from labtui.net.model import NodePort, SecurityGroup
from labtui.doctor.gather import merge, parse_bgp_status, parse_node_probe, primary_address

PROBE = """@addr
2: eth0    inet 10.100.200.11/24 brd 10.100.200.255 scope global eth0\\       valid_lft forever preferred_lft forever
5: tunl0    inet 172.16.200.0/32 scope global tunl0\\       valid_lft forever preferred_lft forever
7: vxlan.calico    inet 172.16.200.1/32 scope global vxlan.calico\\       valid_lft forever preferred_lft forever
@route
@modules
br_netfilter
@sysmodule
vxlan
@tools
tcpdump
kubectl
@end
"""

# `calicoctl node status` as Calico's documentation prints it (no calicoctl can run here)
CALICOCTL = """Calico process is running.

IPv4 BGP status
+---------------+-------------------+-------+----------+--------------------------------+
| PEER ADDRESS  |     PEER TYPE     | STATE |  SINCE   |              INFO              |
+---------------+-------------------+-------+----------+--------------------------------+
| 10.100.200.21 | node-to-node mesh | up    | 08:15:20 | Established                    |
| 10.100.200.22 | node-to-node mesh | start | 08:15:20 | Active Socket: Connection      |
+---------------+-------------------+-------+----------+--------------------------------+

IPv6 BGP status
No IPv6 peers found.
"""

BIRDCL = """BIRD v0.3.3+birdv1.6.8 ready.
name     proto    table    state  since       info
static1  Static   master   up     08:15:19
kernel1  Kernel   master   up     08:15:19
device1  Device   master   up     08:15:19
direct1  Direct   master   up     08:15:19
Mesh_10_100_200_21 BGP      master   up     08:15:20    Established
Mesh_10_100_200_22 BGP      master   start  08:15:20    Active        Socket: Connection refused
"""


def test_node_probe():
    p = parse_node_probe(PROBE)
    assert p["addresses"] == [("eth0", "10.100.200.11/24")]  # tunnels are not the node's interface
    assert p["ipip"] is False and p["vxlan"] is True and p["tools"] == {"tcpdump", "kubectl"} and p["complete"]
    assert primary_address(p, ["10.100.200.11"]) == ("eth0", "10.100.200.11/24")
    assert primary_address(p, [None]) == ("eth0", "10.100.200.11/24")


def test_bgp_status_both_formats():
    for text in (CALICOCTL, BIRDCL):
        peers = parse_bgp_status(text)
        assert [p.address for p in peers] == ["10.100.200.21", "10.100.200.22"]
        assert peers[0].up and not peers[1].up
    assert parse_bgp_status("calicoctl: command not found") is None


def test_merge_matches_by_name_then_address():
    plan = [{"name": "cp1", "address": "192.0.2.10", "role": "control-plane"},  # a floating IP for SSH
            {"name": "w1", "address": "10.100.200.21", "role": "worker"}]
    cluster = ([IPPoolInfo("p", "172.16.0.0/16", "CrossSubnet")], Calico(backend="bird"), {
        "cp1": {"internal_ip": "10.100.200.4", "calico_cidr": "10.100.200.4/24", "k8s_ready": True, "calico_ready": True},
        "worker-1": {"internal_ip": "10.100.200.21", "calico_cidr": "10.100.200.21/24", "calico_ready": False},
        "stranger": {"internal_ip": "10.9.9.9"},
    })
    ports = {"cp1": NodePort("p1", fixed_ips=[{"ip_address": "10.100.200.4"}]),
             "other": NodePort("p2", fixed_ips=[{"ip_address": "10.100.200.21"}])}
    nodes, pools, calico, groups = merge(plan, cluster, (ports, {"g": SecurityGroup("g", "k8s")}), {
        "cp1": parse_node_probe(PROBE.replace("10.100.200.11", "10.100.200.4"))})
    assert [n.name for n in nodes] == ["cp1", "w1"]  # the stranger is not in the plan
    cp, w1 = nodes
    assert cp.address == "10.100.200.4" and cp.calico_cidr == "10.100.200.4/24" and cp.iface == "eth0"
    assert cp.port.id == "p1" and w1.port.id == "p2" and w1.calico_ready is False
    assert pools[0].name == "p" and calico.backend == "bird" and "g" in groups


def test_merge_without_a_plan_takes_the_cluster_nodes():
    cluster = ([], Calico(), {"a": {"internal_ip": "10.0.0.1", "control_plane": True}, "b": {"internal_ip": "10.0.0.2"}})
    nodes, *_ = merge([], cluster, None, None)
    assert [(n.name, n.role, n.address) for n in nodes] == [("a", "control-plane", "10.0.0.1"), ("b", "worker", "10.0.0.2")]
