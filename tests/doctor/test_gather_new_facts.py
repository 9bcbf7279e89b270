"""The doctor's finer facts: Calico's MTU, Felix's VXLAN port, the cloud's extensions and backend,
the networks' MTU and stateful groups. The parsers on recorded API objects; the Neutron reads against
the real OpenStack test backend."""

from __future__ import annotations

import pytest

from labtui.doctor.gather import (
    backend_from_agents,
    calico_settings,
    facts_from_cloud,
    gather,
    neutron_from,
)

# shapes as the Kubernetes API returns them (operator Installation, manifest calico-config, Felix)
INSTALLATION = {"apiVersion": "operator.tigera.io/v1", "kind": "Installation", "metadata": {"name": "default"},
                "spec": {"calicoNetwork": {"mtu": 1400, "ipPools": [{"cidr": "192.168.0.0/16",
                                                                    "encapsulation": "VXLANCrossSubnet"}]}}}
CALICO_CONFIG = {"kind": "ConfigMap", "metadata": {"name": "calico-config", "namespace": "kube-system"},
                 "data": {"calico_backend": "bird", "typha_service_name": "none", "veth_mtu": "1440"}}
CALICO_CONFIG_AUTO = {"kind": "ConfigMap", "metadata": {"name": "calico-config", "namespace": "kube-system"},
                      "data": {"calico_backend": "bird", "veth_mtu": "0"}}
FELIX = {"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration", "metadata": {"name": "default"},
         "spec": {"vxlanPort": 8472, "bpfLogLevel": ""}}
CALICO_NODE = {"kind": "DaemonSet", "metadata": {"name": "calico-node", "namespace": "kube-system"},
               "spec": {"template": {"spec": {"containers": [{"name": "calico-node", "env": [
                   {"name": "CALICO_IPV4POOL_IPIP", "value": "Always"},
                   {"name": "FELIX_VXLANPORT", "value": "4790"}]}]}}}}


def test_calico_mtu_from_the_installation_first_then_veth_mtu():
    assert calico_settings(INSTALLATION, CALICO_CONFIG, None, [])["mtu"] == 1400
    got = calico_settings(None, CALICO_CONFIG, None, [])
    assert (got["mtu"], got["mtu_source"]) == (1440, "calico-config veth_mtu")
    # veth_mtu "0": Calico detects the MTU itself, nothing to compare
    assert calico_settings(None, CALICO_CONFIG_AUTO, None, [])["mtu"] is None


def test_felix_vxlan_port_environment_beats_the_felixconfiguration():
    got = calico_settings(None, None, FELIX, [])
    assert (got["vxlan_port"], got["vxlan_port_source"]) == (8472, "FelixConfiguration default vxlanPort")
    got = calico_settings(None, None, FELIX, [CALICO_NODE])
    assert (got["vxlan_port"], got["vxlan_port_source"]) == (4790, "FELIX_VXLANPORT on kube-system/calico-node")
    assert calico_settings(None, None, None, [])["vxlan_port"] is None


def test_backend_from_the_agents():
    assert backend_from_agents(["Open vSwitch agent", "DHCP agent", "L3 agent"]) == "ovs"
    assert backend_from_agents(["OVN Controller Gateway agent", "OVN Metadata agent"]) == "ovn"
    assert backend_from_agents([]) is None and backend_from_agents(None) is None
    # unknown: assumed ML2/OVS (only the sender checks); OVN also checks the destination
    assert neutron_from({"extensions": ["port-security"], "backend": None}).checks_destination is False
    assert neutron_from({"backend": "ovs"}).checks_destination is False
    assert neutron_from({"backend": "ovn"}).checks_destination is True


def test_gather_merges_the_extras_and_a_failing_extra_only_leaves_them_unknown():
    from labtui.net.model import LabNetwork, LabNode, NodePort, SecurityGroup

    lab = LabNetwork("lab", groups=[SecurityGroup("g1", "k8s")],
                     nodes=[LabNode("a", address="10.0.0.5", found=True, ports=[NodePort(
                         "p1", network_id="n1", fixed_ips=[{"ip_address": "10.0.0.5"}], security_group_ids=["g1"])])])
    support = {"mtu": {"n1": 1450}, "stateful": {"g1": False}, "extensions": ["security-group"],
               "backend": "ovn", "backend_source": "network agents", "errors": {}}

    def boom(_state):
        raise RuntimeError("felixconfigurations: forbidden")

    from labtui.net.calico import ClusterState, InstallInfo

    state = ClusterState(server="https://10.0.0.5:6443", kubernetes_version="v1.36.1", install=InstallInfo(),
                         pools=[], nodes=[])
    facts = gather(plan_nodes=[{"name": "a", "address": "10.0.0.5"}], read_cloud=lambda nodes: lab,
                   read_cloud_support=lambda got: support, read_cluster=lambda: state, read_cluster_extras=boom)
    assert facts.node("a").port.network_mtu == 1450 and facts.groups["g1"].stateful is False
    assert facts.neutron.backend == "ovn" and facts.neutron.supports("allowed-address-pairs") is False
    assert any(u.source == "kube:extras" and "MTU" in u.what for u in facts.unchecked)
    ports, groups = facts_from_cloud(lab)  # without the support: not read (the doctor takes it as stateful), no MTU
    assert ports["a"].network_mtu is None and groups["g1"].stateful is not False


@pytest.mark.openstack
@pytest.mark.timeout(300)
def test_cloud_support_read_from_the_real_neutron(incident):
    from labtui.adapters.openstack import connect, discover
    from labtui.doctor.gather import read_cloud_support

    conn = connect(incident.cloud)
    lab = discover(conn, incident.plan()["nodes"])
    support = read_cloud_support(conn, lab)
    assert {"allowed-address-pairs", "port-security", "security-group"} <= set(support["extensions"])
    net = incident.conn.network.get_network(incident.network_id)
    assert support["mtu"] == {incident.network_id: net.mtu}
    assert support["stateful"] == {incident.security_group_id: True}
    # the test cloud runs no agents: the backend stays unknown, and the doctor says it assumes OVN
    assert support["backend"] is None
    # the prefetch (run beside the port look-up) reads what needs no port; the rest comes by id after
    pre = read_cloud_support(conn, None)
    assert pre["extensions"] == support["extensions"] and pre["mtu"] == {} and pre["stateful"] == {}
    both = read_cloud_support(conn, lab, pre)
    assert (both["mtu"][incident.network_id], both["stateful"][incident.security_group_id]) == (net.mtu, True)
    # the doctor's own look-up (by address) reads the networks in its second wave and keeps the groups'
    # statefulness: after it, nothing but the prefetched extensions and agents is left to read
    from labtui.adapters.openstack import discover_by_address

    quick = discover_by_address(conn, incident.plan()["nodes"])
    assert {p.network_mtu for n in quick.nodes for p in n.ports} == {net.mtu}
    assert {g.stateful for g in quick.groups} == {True}
    calls, emit = [], conn.emit
    conn.emit = calls.append
    try:
        again = read_cloud_support(conn, quick, pre)
    finally:
        conn.emit = emit
    assert calls == [] and again["mtu"] == {incident.network_id: net.mtu}
    ports, groups = facts_from_cloud(lab, support)
    assert all(p.network_mtu == net.mtu for p in ports.values())
    facts = gather(plan_nodes=incident.plan()["nodes"], read_cloud=lambda nodes: discover(conn, nodes),
                   read_cloud_support=lambda got: read_cloud_support(conn, got))
    assert facts.node("w3").port.network_mtu == net.mtu and facts.groups[incident.security_group_id].stateful is True
    assert facts.neutron.supports("allowed-address-pairs") is True and facts.neutron.backend is None
