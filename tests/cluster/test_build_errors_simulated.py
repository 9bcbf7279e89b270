"""The Kubernetes stage's failure paths on real sshd nodes with the SIMULATED cluster tools:
kubeadm's preflight errors explained, the runtime preflight stopping on cgroup v1 and a busy port,
a worker unreachable then retried alone with a fresh token, a half-done init reset, a Calico pod
stuck in ImagePullBackOff reported."""

from __future__ import annotations

import pytest

from labtui.stages import wizard_for
from labtui.steps import Risk, StepState
from tests.cluster.conftest import all_text, reset_nodes, run_stage
from tests.cluster.simulation import tools

pytestmark = pytest.mark.root

LISTEN_6443 = ("python3 -c 'import socket,time; s=socket.socket(); s.bind((\"0.0.0.0\",6443)); s.listen(); "
               "time.sleep(900)' </dev/null >/dev/null 2>&1 &")


def _step(lab_session, step_id):
    wizard = wizard_for("kubernetes")
    return lab_session.runner(wizard).run_step(wizard.step(step_id))


def test_runtime_preflight_stops_on_cgroup_v1_and_a_busy_port(kubelab, open_lab):
    lab = reset_nodes(kubelab, cgroup_v1=("kw1",))
    lab.node_exec(lab.nodes[0], ["sh", "-c", LISTEN_6443])
    lab_session, events = open_lab(lab)
    out = run_stage(lab_session, "kubernetes")
    assert [o.step for o in out] == ["runtime-preflight"] and out[0].state == StepState.FAILED
    detail = out[0].detail
    assert "kw1: the node runs cgroup v1" in detail and "refuses cgroup v1" in detail
    assert "kcp: ports in use: 6443 (the Kubernetes API server)" in detail
    assert "fix what each finding says" in detail  # the step's hint
    assert tools.cluster_state(lab) == {}  # nothing ran


def test_kubeadm_preflight_errors_each_explained(kubelab, open_lab, tmp_path):
    lab = reset_nodes(kubelab)
    lab_session, events = open_lab(lab)
    for step in ("containerd", "kube-packages"):
        assert _step(lab_session, step).state == StepState.DONE
    cp = lab.nodes[0]
    # cgroup v1 from here on (the runtime preflight would have blocked the installs: issue 18, item 1):
    # kubeadm's own preflight says it
    tools.prepare_node(lab, cp, cgroup_v1=True)
    lab.node_exec(cp, ["sh", "-c", LISTEN_6443])
    lab.node_exec(cp, ["sh", "-c", "printf 'Filename\\tType\\tSize\\tUsed\\tPriority\\n/swap.img file 2097148 0 -2\\n' "
                                   "> /tmp/swaps && mount --bind /tmp/swaps /proc/swaps"])
    out = _step(lab_session, "kubeadm-init")
    assert out.state == StepState.FAILED
    d = out.detail
    assert "kubeadm's preflight found 3 problem(s)" in d
    assert "[ERROR Port-6443] Port 6443 is in use" in d and "ss -ltnp 'sport = :6443'" in d
    assert "[ERROR Swap]" in d and "swapoff -a" in d
    assert "[ERROR SystemVerification]" in d and "cgroup v2" in d
    assert not tools.cluster_state(lab).get("initialized")
    assert [c.kind for c in lab_session.store.changes(lab_session.record.id)] == ["kube.containerd", "kube.packages"]


def test_worker_unreachable_then_retried_alone_with_a_new_token(kubelab, open_lab, store, lab_home):
    lab = reset_nodes(kubelab)
    lab_session, events = open_lab(lab)
    out = run_stage(lab_session, "kubernetes", until="kubeadm-init")
    assert out[-1].step == "kubeadm-init" and out[-1].state == StepState.DONE, [o.detail for o in out]
    w3 = lab.nodes[3]
    lab.node_exec(w3, ["ip", "link", "set", "eth0", "down"])  # kw3 drops off the network
    try:
        out = _step(lab_session, "join")
    finally:
        lab.node_exec(w3, ["ip", "link", "set", "eth0", "up"])
    assert out.state == StepState.FAILED
    assert "kw3" in out.detail and "retries only the failed node" in out.detail
    assert sorted(tools.cluster_state(lab)["nodes"]) == ["kcp", "kw1", "kw2"]
    joins = [c for c in store.changes(lab_session.record.id) if c.kind == "kube.join"]
    assert [c.target for c in joins] == ["kw1, kw2"]  # recorded: the two that joined

    old_tokens = list(tools.cluster_state(lab)["tokens"])  # init's and the one labtui created for the join
    tools.expire_tokens(lab)  # a day later: the token labtui still holds has expired
    out = _step(lab_session, "join")
    assert out.state == StepState.DONE, out.detail
    assert sorted(tools.cluster_state(lab)["nodes"]) == ["kcp", "kw1", "kw2", "kw3"]
    assert any("bootstrap token was refused" in e.message and e.node == "kw3" for e in events)
    joins = [c for c in store.changes(lab_session.record.id) if c.kind == "kube.join"]
    assert [c.target for c in joins] == ["kw1, kw2", "kw3"]
    lab_session.close()
    text = all_text(store, lab_home, events)
    new_tokens = list(tools.cluster_state(lab)["tokens"])
    assert len(old_tokens) == 2 and len(new_tokens) == 1
    assert not any(t in text for t in old_tokens + new_tokens)


def test_half_done_init_is_reset_after_confirmation(kubelab, open_lab):
    lab = reset_nodes(kubelab)
    cp = lab.nodes[0]
    tools.update_scenario(lab, cp, init_breaks_at_wait_control_plane=True)
    asked = []

    def confirm(actions):
        asked.append([(a.id, a.risk) for a in actions])
        return True

    lab_session, events = open_lab(lab, confirm=confirm)
    out = run_stage(lab_session, "kubernetes", until="kubeadm-init")
    assert out[-1].state == StepState.FAILED and "kubeadm init failed" in out[-1].detail
    assert "kubelet" in out[-1].detail  # kubeadm's last line says why
    tools.update_scenario(lab, cp, init_breaks_at_wait_control_plane=False)
    step = wizard_for("kubernetes").step("kubeadm-init")
    check = step.check(lab_session.ctx)
    assert not check.done and "stopped half-way" in check.detail
    out = _step(lab_session, "kubeadm-init")
    assert out.state == StepState.DONE, out.detail
    assert asked[-1] == [("kubeadm-reset", Risk.DESTRUCTIVE), ("kubeadm-init", Risk.CHANGE)]
    assert tools.cluster_state(lab)["initialized"]


def test_calico_pod_in_image_pull_backoff_is_reported(kubelab, open_lab):
    lab = reset_nodes(kubelab)
    lab_session, events = open_lab(lab)
    out = run_stage(lab_session, "kubernetes")
    assert out[-1].step == "admin-conf" and out[-1].state == StepState.DONE, [o.detail for o in out]
    tools.update_scenario(lab, lab.nodes[0], calico_waiting={"kw2": "ImagePullBackOff"})
    out = run_stage(lab_session, "calico", until="calico-install")
    assert out[0].step == "calico-install" and out[0].state == StepState.FAILED
    assert "calico-node cannot start: kw2: calico-system/calico-node-kw2 ImagePullBackOff" in out[0].detail
    assert "quay.io" in out[0].detail  # the pull error's reason
    assert "registry mirror" in out[0].detail  # the hint


def test_calico_manifest_download_offline_then_online(kubelab, open_lab, store):
    """calico.yaml downloaded on the control plane: without internet the step says to give the file;
    with it, the downloaded manifest is edited for the plan (pod CIDR, IPIP Always, bird) and applied."""
    lab = reset_nodes(kubelab)
    store.create_session("dl", cloud=None, wizard="kubernetes",
                         plan=dict(lab.plan_data("dl"), kubernetes="1.36", encapsulation="IPIP"))
    store.save_inputs("dl", {"calico_install": "manifest"})
    lab_session, events = open_lab(lab, "dl")
    out = run_stage(lab_session, "kubernetes")
    assert out[-1].step == "admin-conf" and out[-1].state == StepState.DONE, [o.detail for o in out]
    tools.update_scenario(lab, lab.nodes[0], offline=True)
    out = run_stage(lab_session, "calico", until="calico-install")
    assert out[0].state == StepState.FAILED
    assert "cannot download https://raw.githubusercontent.com/projectcalico/calico/v3.32.2/manifests/calico.yaml" in out[0].detail
    assert "--calico-manifest FILE" in out[0].detail
    assert store.changes(lab_session.record.id)[-1].kind == "kube.join"  # nothing recorded for Calico
    tools.update_scenario(lab, lab.nodes[0], offline=False)
    out = run_stage(lab_session, "calico", until="calico-install")
    assert out[0].state == StepState.DONE, out[0].detail
    ds = tools.cluster_state(lab)["objects"]["DaemonSet/calico-node"]
    assert ds["env"]["CALICO_IPV4POOL_CIDR"] == "172.16.0.0/16"
    assert (ds["env"]["CALICO_IPV4POOL_IPIP"], ds["env"]["CALICO_IPV4POOL_VXLAN"]) == ("Always", "Never")
    edited = lab.node_exec(lab.nodes[0], ["cat", "/etc/kubernetes/labtui-calico/calico.yaml"]).stdout
    # structural edit: one real CIDR entry added, upstream's commented example left as a comment
    assert 'calico_backend: "bird"' in edited and edited.count("\n            - name: CALICO_IPV4POOL_CIDR\n") == 1
