"""The Kubernetes stage and Calico's install end to end on four real sshd nodes, with the SIMULATED
cluster tools (tests/cluster/simulation) on the nodes' PATH: apt-get, systemctl, containerd, crictl,
kubeadm, kubelet, kubectl replay the real tools' output and keep state on the nodes."""

from __future__ import annotations

import os
import re
import stat

import pytest

from labtui.steps import StepState
from tests.cluster.conftest import all_text, reset_nodes, run_stage
from tests.cluster.simulation import tools

pytestmark = pytest.mark.root

TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")


def _states(outcomes):
    return {o.step: o.state for o in outcomes}



def test_four_fresh_nodes_to_a_cluster_then_nothing_to_do(fresh_nodes, open_lab, store, lab_home):
    lab = fresh_nodes
    lab_session, events = open_lab(lab)
    outcomes = run_stage(lab_session, "kubernetes")
    assert _states(outcomes) == {s: StepState.DONE for s in
                                 ("runtime-preflight", "containerd", "kube-packages", "kubeadm-init", "join", "admin-conf")}, \
        [o.detail for o in outcomes]
    cluster = tools.cluster_state(lab)
    assert sorted(cluster["nodes"]) == ["kcp", "kw1", "kw2", "kw3"]
    # each node: containerd 2.x configured with SystemdCgroup in the version-3 table, packages held
    for node in lab.nodes:
        config = lab.node_exec(node, ["cat", "/etc/containerd/config.toml"]).stdout
        assert "SystemdCgroup = true" in config and "sandbox = 'registry.k8s.io/pause:3.10.2'" in config
        held = lab.node_exec(node, ["apt-mark", "showhold"]).stdout.split()
        assert held == ["cri-tools", "kubeadm", "kubectl", "kubelet"]  # crictl: kubeadm no longer pulls it
    # the kubeadm config on the control plane, as shown before init
    config = lab.node_exec(lab.nodes[0], ["cat", "/etc/kubernetes/labtui-kubeadm.yaml"]).stdout
    assert "podSubnet: 172.16.0.0/16" in config and f"advertiseAddress: {lab.nodes[0].address}" in config
    assert "kubernetesVersion: v1.36.2" in config  # the installed kubeadm's version
    # admin.conf: 0600 in the session directory, never in the database
    conf = lab_home / "sessions" / "k8s" / "admin.conf"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    assert "client-key-data" in conf.read_text()
    # Calico through the operator, with the plan's pool
    outcomes = run_stage(lab_session, "calico", until="calico-install")
    assert outcomes[0].step == "calico-install" and outcomes[0].state == StepState.DONE, outcomes[0].detail
    inst = tools.cluster_state(lab)["objects"]["Installation/default"]
    assert inst["encapsulation"] == "IPIP" and inst["cidr"] == "172.16.0.0/16"
    recorded = store.changes(lab_session.record.id)
    kinds = sorted(c.kind for c in recorded)
    assert kinds == ["kube.calico-install", "kube.containerd", "kube.init", "kube.join", "kube.packages"]
    assert {c.target for c in recorded if c.kind == "kube.join"} == {"kw1, kw2, kw3"}

    # the same again: every check sees what is there; nothing applied, nothing recorded
    before = len(events)
    outcomes = run_stage(lab_session, "kubernetes") + run_stage(lab_session, "calico", until="calico-install")
    assert all(o.state == StepState.DONE for o in outcomes), [o.detail for o in outcomes]
    assert len(store.changes(lab_session.record.id)) == len(recorded)
    acted = [e.message for e in events[before:]
             if e.kind == "change" or (e.kind == "action.start" and "labtui-facts.sh" not in e.message)]
    assert acted == []  # only the read-only facts script ran
    print("\n".join(f"{o.step}: {o.detail}" for o in outcomes))

    # secrets: no bootstrap token anywhere labtui writes or prints (the discovery hash may be)
    lab_session.close()
    text = all_text(store, lab_home, events)
    assert not TOKEN.search(text), TOKEN.search(text)
    tokens = list(tools.cluster_state(lab)["tokens"])
    assert tokens and not any(t in text for t in tokens)
    assert "the CA hash sha256:<hash>" in text and "kubeadm join --config /etc/kubernetes/labtui-join.yaml" in text  # shown, no token


def test_containerd_2_3_from_docker_with_config_version_4_and_a_mirror(kubelab, open_lab):
    """F2, F3, F11 on fresh nodes: apt's containerd candidate is 1.7 (too old for 1.36), so
    containerd.io comes from Docker (2.3.4, config version 4); the CRI is asked with ctr (no crictl
    yet); the registry mirror's config_path and hosts.toml are written."""
    lab = reset_nodes(kubelab, containerd_version="2.3.4", candidates={"containerd": "1.7.28-0ubuntu1~22.04.1"})
    lab_session, events = open_lab(lab, name="k8s-v4", sources={"registry_mirror": "mirror.lab.example:5000"})
    outcomes = run_stage(lab_session, "kubernetes", until="containerd")
    assert _states(outcomes)["containerd"] == StepState.DONE, [o.detail for o in outcomes]
    for node in lab.nodes:
        config = lab.node_exec(node, ["cat", "/etc/containerd/config.toml"]).stdout
        assert config.startswith("# labtui test fixture") and "version = 4" in config
        assert "            SystemdCgroup = true" in config
        assert "      config_path = '/etc/containerd/certs.d'" in config
        hosts = lab.node_exec(node, ["cat", "/etc/containerd/certs.d/registry.k8s.io/hosts.toml"]).stdout
        assert '[host."https://mirror.lab.example:5000"]' in hosts
        assert "download.docker.com" in lab.node_exec(node, ["cat", "/etc/apt/sources.list.d/docker.list"]).stdout
        assert lab.node_exec(node, ["sh", "-c", "command -v crictl && crictl info"], check=False).returncode != 0
    assert any("candidate is 1.7.28-0ubuntu1~22.04.1: installing containerd.io from Docker's repository" in e.message
               for e in events)


def test_built_cluster_is_what_the_calico_stage_reads(kubelab, open_lab, store):
    """After the build and Calico's install, the rest of the Calico stage (API reached with the
    fetched admin.conf, Calico read, the pool's encapsulation, calico-node Ready) finds the plan's
    IPIP Always pool: nothing to change. The API server is kmock loaded with the simulated cluster's
    state (tools.mirror_to_api)."""
    from tests.harness.kube import FakeCluster, kubeconfig_text

    with FakeCluster(host=kubelab.gateway) as api:
        lab = reset_nodes(kubelab, admin_conf=kubeconfig_text(api.url))
        lab_session, events = open_lab(lab)
        out = run_stage(lab_session, "kubernetes") + run_stage(lab_session, "calico", until="calico-install")
        assert all(o.state == StepState.DONE for o in out), [o.detail for o in out]
        tools.mirror_to_api(lab, api)
        api.clear_requests()
        out = run_stage(lab_session, "calico")
        assert {o.step: o.state for o in out} == {s: StepState.DONE for s in
                                                  ("calico-install", "kube-access", "calico-read", "encapsulation",
                                                   "calico-ready")}, [o.detail for o in out]
        assert "every enabled IPv4 pool is IPIP" in out[3].detail
        assert api.writes() == []  # the pool already had the plan's encapsulation
        kinds = [c.kind for c in store.changes(lab_session.record.id)]
        assert not any(k.startswith("calico.") for k in kinds)
