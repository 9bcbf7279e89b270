"""Reading Calico's state from a real HTTP API server (kmock) loaded with realistic objects."""

from __future__ import annotations

from labtui.net.calico import explain_pool
from labtui.adapters.calico import read_cluster
from labtui.adapters.kube import KubeClient
from tests.harness.kube import (
    FakeCluster,
    calico_node_pod,
    incident_cluster,
    ippool,
    k8s_node,
    operator_cluster,
    v3_cluster,
)

INCIDENT_SENTENCE = ("CrossSubnet, and all 4 nodes are on 10.100.200.0/24: pod traffic leaves the VMs "
                     "unencapsulated with pod source addresses")


def test_incident_manifest_install_crosssubnet(incident, kubeconfig_for):
    kc = KubeClient(kubeconfig_for(incident))
    state = read_cluster(kc)
    inst = state.install
    assert (inst.mode, inst.cni, inst.namespace) == ("manifest", "Calico", "kube-system")
    assert inst.api_flavour == "crd.projectcalico.org/v1 only" and not inst.v3_served and inst.v1_crds
    assert (inst.backend, inst.bgp, inst.typha, inst.version) == ("bird", True, False, "3.32.2")
    assert state.kubernetes_version == "v1.36.2"
    assert kc.via == "direct"

    [pool] = state.pools
    assert (pool.name, pool.cidr, pool.ipip_mode, pool.vxlan_mode) == ("default-ipv4-ippool", "172.16.0.0/16", "CrossSubnet", "Never")
    assert pool.nat_outgoing and not pool.disabled and pool.node_selector == "all()" and pool.owner is None
    assert pool.encapsulation.value == "IPIPCrossSubnet"

    assert [n.name for n in state.nodes] == ["cp1", "w1", "w2", "w3"]
    cp = state.nodes[0]
    assert cp.roles == ["control-plane"] and cp.ready and cp.internal_ip == "10.100.200.4"
    assert cp.calico_ipv4 == "10.100.200.4/24" and cp.subnet == "10.100.200.0/24"
    assert cp.ipip_tunnel == "172.16.200.0" and cp.vxlan_tunnel is None and cp.pod_cidr == "172.16.0.0/24"
    assert all(n.calico_pod is not None and n.calico_pod.ready and n.calico_pod.restarts == 0 for n in state.nodes)
    assert state.node_subnets == {"10.100.200.0/24": ["cp1", "w1", "w2", "w3"]}

    [meaning] = state.meanings()
    assert meaning.severity == "bad"
    assert meaning.summary == "IPIP " + INCIDENT_SENTENCE
    assert any("anti-spoofing" in d and "172.16.0.0/16" in d for d in meaning.details)
    assert any("protocol 4" in n for n in meaning.needs)

    # only reads: every request a GET, each to a known path
    assert {r.method for r in incident.requests} == {"GET"}
    paths = {r.path for r in incident.requests}
    assert {"/version/", "/api/v1/nodes", "/apis/apps/v1/daemonsets", "/apis/projectcalico.org/v3",
            "/apis/crd.projectcalico.org/v1", "/apis/crd.projectcalico.org/v1/ippools",
            "/apis/operator.tigera.io/v1/installations/default"} <= paths


def test_operator_install_vxlan_crosssubnet(operator, kubeconfig_for):
    state = read_cluster(KubeClient(kubeconfig_for(operator)))
    inst = state.install
    assert (inst.mode, inst.namespace, inst.version, inst.operator_version) == ("operator", "calico-system", "3.32.2", "1.42.3")
    assert inst.v3_served and inst.api_flavour == "projectcalico.org/v3"
    assert (inst.backend, inst.bgp, inst.typha) == ("bird", True, True)
    assert inst.installation_pools[0]["encapsulation"] == "VXLANCrossSubnet"
    [pool] = state.pools
    assert pool.api == "projectcalico.org/v3" and pool.operator_managed
    assert (pool.ipip_mode, pool.vxlan_mode) == ("Never", "CrossSubnet")
    assert all(n.vxlan_tunnel and n.calico_pod and n.calico_pod.namespace == "calico-system" for n in state.nodes)
    m = explain_pool(pool, state)
    assert m.summary == "VXLAN " + INCIDENT_SENTENCE
    assert any("tigera-operator" in d for d in m.details)


def test_v3_served_on_a_manifest_install(v3, kubeconfig_for):
    state = read_cluster(KubeClient(kubeconfig_for(v3)))
    assert state.install.mode == "manifest" and state.install.v3_served
    assert state.pools[0].api == "projectcalico.org/v3"
    assert any(r.path == "/apis/projectcalico.org/v3/ippools" for r in v3.requests)
    assert not any(r.path == "/apis/crd.projectcalico.org/v1/ippools" for r in v3.requests)


def test_v3_registered_but_down_falls_back_to_v1_with_a_warning(kubeconfig_for):
    with v3_cluster(v3_unavailable=True) as c:
        state = read_cluster(KubeClient(kubeconfig_for(c)))
    assert not state.install.v3_served and state.install.v3_error.startswith("503")
    assert state.pools[0].api == "crd.projectcalico.org/v1"
    assert any("Calico API server is down" in w for w in state.warnings)


def test_ipv6_disabled_and_two_ipv4_pools(kubeconfig_for):
    extra = [ippool("default-ipv6-ippool", "fd00:10:244::/48", vxlan="Never"),
             ippool("old-pool", "10.244.0.0/16", ipip="Always", disabled=True),
             ippool("infra-pool", "172.17.0.0/16", vxlan="Always", nat=False, node_selector="role == 'infra'")]
    with incident_cluster(extra_pools=extra) as c:
        state = read_cluster(KubeClient(kubeconfig_for(c)))
    names = [p.name for p in state.pools]
    assert names == ["default-ipv4-ippool", "infra-pool", "old-pool", "default-ipv6-ippool"]
    by = {p.name: p for p in state.pools}
    assert by["default-ipv6-ippool"].version == 6 and by["default-ipv6-ippool"].block_size == 122
    assert by["old-pool"].disabled and by["old-pool"].ipip_mode == "Always"
    assert by["infra-pool"].node_selector == "role == 'infra'" and not by["infra-pool"].nat_outgoing
    m = {x.pool: x for x in state.meanings()}
    assert any("IPv6" in d and "IPIP cannot carry" in d for d in m["default-ipv6-ippool"].details)
    assert any(d.startswith("Disabled") for d in m["old-pool"].details)
    assert any("role == 'infra'" in d for d in m["infra-pool"].details)
    assert any("natOutgoing is off" in d for d in m["infra-pool"].details)
    assert m["infra-pool"].severity == "ok" and m["infra-pool"].needs == ["UDP 4789 between the nodes"]
    assert m["default-ipv4-ippool"].summary.endswith(INCIDENT_SENTENCE)


def test_nodes_on_two_subnets_and_unready_calico_node(kubeconfig_for):
    c = FakeCluster()
    from tests.harness.kube import calico_config, calico_node_daemonset

    c.add("apps/v1/daemonsets", calico_node_daemonset())
    c.add("v1/configmaps", calico_config())
    c.add("v1/nodes", k8s_node("cp1", "10.100.200.4", control_plane=True, tunnel="172.16.200.0"))
    c.add("v1/nodes", k8s_node("w1", "10.100.200.21", tunnel="172.16.110.0"))
    c.add("v1/nodes", k8s_node("w9", "10.100.201.9", ready=False, calico=False))
    c.add("v1/pods", calico_node_pod("cp1", suffix="aaaaa"))
    c.add("v1/pods", calico_node_pod("w1", ready=False, restarts=7, suffix="bbbbb"))
    c.add_pool(ippool("default-ipv4-ippool", "172.16.0.0/16", ipip="CrossSubnet"))
    with c:
        state = read_cluster(KubeClient(kubeconfig_for(c)))
    by = {n.name: n for n in state.nodes}
    assert by["w1"].calico_pod.ready is False and by["w1"].calico_pod.restarts == 7
    assert by["w9"].ready is False and by["w9"].calico_pod is None and by["w9"].subnet is None
    m = state.meanings()[0]
    assert m.severity == "bad"
    assert "the nodes are on 10.100.200.0/24 (cp1, w1): traffic between nodes of the same subnet leaves" in m.summary
    assert any("w9" in d and "subnet is unknown" in d for d in m.details)

    c2 = FakeCluster()
    for name, ip in (("a", "10.0.1.5"), ("b", "10.0.2.5")):
        c2.add("v1/nodes", k8s_node(name, ip))
    c2.add("apps/v1/daemonsets", calico_node_daemonset())
    c2.add_pool(ippool("p", "172.16.0.0/16", ipip="CrossSubnet"))
    with c2:
        state = read_cluster(KubeClient(kubeconfig_for(c2)))
    m = state.meanings()[0]
    assert m.severity == "info"
    assert "10.0.1.0/24 (a); 10.0.2.0/24 (b): every node pair crosses a subnet" in m.summary


def test_no_calico_and_another_cni(kubeconfig_for):
    with FakeCluster() as c:
        c.add("v1/nodes", k8s_node("n1", "10.0.0.5", calico=False))
        state = read_cluster(KubeClient(kubeconfig_for(c)))
    assert state.install.mode == "none" and state.pools == []
    assert "not installed" in state.install.describe()

    c = FakeCluster(v1=False)
    c.add("v1/nodes", k8s_node("n1", "10.0.0.5", calico=False))
    c.add("apps/v1/daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet",
                                 "metadata": {"name": "cilium", "namespace": "kube-system"}, "spec": {}})
    with c:
        state = read_cluster(KubeClient(kubeconfig_for(c)))
    assert (state.install.mode, state.install.cni) == ("other", "Cilium")
    assert state.install.describe() == "no Calico: the cluster runs Cilium"


def test_operator_with_bgp_disabled_reads_vxlan_backend(kubeconfig_for):
    with operator_cluster(encapsulation="VXLAN", bgp="Disabled") as c:
        state = read_cluster(KubeClient(kubeconfig_for(c)))
    assert (state.install.bgp, state.install.backend, state.install.installation_bgp) == (False, "vxlan", "Disabled")
    assert state.meanings()[0].severity == "ok"


def test_state_to_dict_is_json_and_complete(incident, kubeconfig_for):
    import json

    data = read_cluster(KubeClient(kubeconfig_for(incident))).to_dict()
    text = json.dumps(data)
    assert data["install"]["api_flavour"] == "crd.projectcalico.org/v1 only"
    assert data["pools"][0]["encapsulation"] == "IPIPCrossSubnet"
    assert data["pools"][0]["meaning"]["summary"].endswith(INCIDENT_SENTENCE)
    assert data["nodes"][0]["subnet"] == "10.100.200.0/24"
    assert "admin-token" not in text



def test_the_doctors_calico_settings_reuse_what_the_cluster_read_fetched(kubeconfig_for):
    """The doctor's MTU and Felix VXLAN port come from calico-config and the calico-node DaemonSet,
    which the cluster read already fetched: they are not asked again (one request each), and
    FelixConfiguration (not read before) is."""
    from labtui.doctor.gather import read_calico_settings
    from tests.harness.kube import calico_config, calico_node_daemonset

    ds = calico_node_daemonset("kube-system")
    ds["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "FELIX_VXLANPORT", "value": "4790"})
    cfg = calico_config()
    cfg["data"]["veth_mtu"] = "1430"
    with incident_cluster() as c:
        c.add("apps/v1/daemonsets", ds).add("v1/configmaps", cfg)
        kc = KubeClient(kubeconfig_for(c))
        state = read_cluster(kc)
        got = read_calico_settings(kc, state)
        paths = [r.path for r in c.requests]
    assert (got["mtu"], got["mtu_source"]) == (1430, "calico-config veth_mtu")
    assert (got["vxlan_port"], got["vxlan_port_source"]) == (4790, "FELIX_VXLANPORT on kube-system/calico-node")
    assert paths.count("/api/v1/namespaces/kube-system/configmaps/calico-config") == 1
    assert paths.count("/apis/apps/v1/daemonsets") == 1
    assert paths.count("/apis/crd.projectcalico.org/v1/felixconfigurations/default") == 1
    assert "objects" not in state.to_dict()  # the raw objects are not stored
