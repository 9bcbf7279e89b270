"""Headless: `labtui up NAME --from kubernetes --until kubernetes --yes --json` builds the cluster on
four real sshd nodes (SIMULATED cluster tools); Calico's install step uploads calico.yaml from the
user's file (a control plane without internet: downloads fail there); `labtui kubernetes NAME
--write-kubeconfig PATH`. No bootstrap token in the JSON, on stderr, in the database or the log.

(The rest of the Calico stage reads the cluster through the Kubernetes API, which the simulation
does not serve: those steps are tested against kmock in tests/kube.)"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from labtui.cli import main
from tests.cluster.conftest import reset_nodes
from tests.cluster.simulation import tools

pytestmark = pytest.mark.root

TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")
DATA = Path(__file__).parent / "data"


def test_up_headless_with_an_uploaded_calico_manifest(kubelab, store, lab_home, tmp_path, capsys):
    events = []
    lab = reset_nodes(kubelab)
    plan = dict(lab.plan_data("cli"), kubernetes="1.36", encapsulation="VXLAN")
    store.create_session("cli", cloud=None, wizard="kubernetes", plan=plan)
    manifest = tmp_path / "calico.yaml"
    manifest.write_text((DATA / "calico-excerpt.yaml").read_text())
    assert main(["kubernetes", "cli", "--calico-manifest", str(manifest), "--calico-install", "manifest",
                 "--write-kubeconfig", str(tmp_path / "kc")]) == 0
    out = capsys.readouterr().out
    assert "calico_install: manifest" in out and "not built yet" in out

    rc = main(["up", "cli", "--from", "kubernetes", "--until", "kubernetes", "--yes", "--json",
               "--accept-new-host-keys"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert rc == 0, json.dumps(report, indent=1)[-3000:]
    steps = {s["step"]: s["state"] for st in report["stages"] for s in st["steps"]}
    assert steps == {s: "done" for s in ("runtime-preflight", "containerd", "kube-packages", "kubeadm-init", "join",
                                         "admin-conf")}

    # Calico's install step, with the nodes offline: the file is uploaded, edited for the plan
    for node in lab.nodes:
        tools.update_scenario(lab, node, offline=True)
    from labtui.adapters.ssh import configure_session_ssh
    from labtui.session import LabSession
    from labtui.stages import wizard_for

    with LabSession(store, "cli", emit=events.append, confirm=lambda actions: True) as lab_session:
        configure_session_ssh(lab_session.ctx, user_known_hosts=[lab.known_hosts], headless=True, look_for_keys=False)
        wizard = wizard_for("calico")
        out = lab_session.runner(wizard).run_step(wizard.step("calico-install"))
    assert out.state.value == "done", out.detail
    ds = tools.cluster_state(lab)["objects"]["DaemonSet/calico-node"]
    assert ds["env"]["CALICO_IPV4POOL_CIDR"] == "172.16.0.0/16"
    assert (ds["env"]["CALICO_IPV4POOL_IPIP"], ds["env"]["CALICO_IPV4POOL_VXLAN"]) == ("Never", "Always")
    kc = tmp_path / "kc"
    assert stat.S_IMODE(os.stat(kc).st_mode) == 0o600 and "client-key-data" in kc.read_text()

    text = captured.out + captured.err + "\n".join(e.message for e in events)
    for p in lab_home.rglob("*"):
        if p.is_file() and p.name != "admin.conf":
            text += p.read_bytes().decode("utf-8", errors="replace")
    assert not TOKEN.search(text), TOKEN.search(text)
    assert not any(t in text for t in tools.cluster_state(lab)["tokens"])
    assert "client-key-data: U0lN" not in text  # admin.conf's key never leaves its 0600 files

    # again: nothing to do
    assert main(["up", "cli", "--from", "kubernetes", "--until", "kubernetes", "--yes", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert all(s["state"] in ("done", "skipped") for st in again["stages"] for s in st["steps"])


def test_kubernetes_command_bad_input(store, capsys):
    store.create_session("k", cloud=None, wizard="kubernetes", plan={})
    assert main(["kubernetes", "k", "--calico-manifest", "/nonexistent/calico.yaml"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
    assert main(["kubernetes", "k", "--api-floating-ip", "nope"]) == 2
    assert "not an IP address" in capsys.readouterr().err
    assert main(["kubernetes", "k", "--api-floating-ip", "203.0.113.7", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["options"]["api_floating_ip"] == "203.0.113.7"


def test_revert_all_undoes_the_build_newest_first(kubelab, store, capsys):
    lab = reset_nodes(kubelab)
    store.create_session("rv", cloud=None, wizard="kubernetes", plan=dict(lab.plan_data("rv"), kubernetes="1.36"))
    # --dry-run first: every command it would run, nothing changed on the nodes, nothing recorded
    assert main(["up", "rv", "--from", "kubernetes", "--until", "kubernetes", "--dry-run", "--json",
                 "--accept-new-host-keys", "--quiet"]) == 0
    dry = json.loads(capsys.readouterr().out)
    would = {st["step"]: [a["command"] for a in st.get("actions", [])] for s in dry["stages"] for st in s["steps"]}
    assert any("-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
               "install -y -q containerd" in c for c in would["containerd"])
    assert any("kubeadm=1.36.*" in c for c in would["kube-packages"])
    assert tools.cluster_state(lab) == {} and store.changes(store.get_session("rv").id) == []
    for node in lab.nodes:
        assert lab.node_exec(node, ["test", "-e", "/tmp/labtui-sim/node.json"], check=False).returncode == 1
    assert main(["up", "rv", "--from", "kubernetes", "--until", "kubernetes", "--yes", "--accept-new-host-keys",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert sorted(tools.cluster_state(lab)["nodes"]) == ["kcp", "kw1", "kw2", "kw3"]
    assert main(["kubernetes", "rv", "--revert", "all"]) == 1  # not a terminal, no --yes: shown, refused
    out = capsys.readouterr().out
    assert "Re-run with --yes" in out and "Nothing was reverted" in out and tools.cluster_state(lab)["initialized"]
    before = {n.name: lab.node_exec(n, ["cat", "/etc/containerd/config.toml"], check=False).stdout for n in lab.nodes}
    assert main(["kubernetes", "rv", "--revert", "all", "--yes"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    reverted = [ln for ln in out.splitlines() if ln.startswith("reverted #")]
    assert [ln.split(": ", 1)[1].split(" ")[0] for ln in reverted] == ["kubeadm", "kubeadm", "kubeadm,", "containerd"]
    assert "their Node objects deleted on kcp" in captured.err  # the revert's progress line
    state = tools.cluster_state(lab)
    assert not state["initialized"] and state["nodes"] == {}
    for node in lab.nodes:
        assert lab.node_exec(node, ["apt-mark", "showhold"]).stdout.split() == []
        # the config the node had before labtui (the image's own) is back
        restored = lab.node_exec(node, ["cat", "/etc/containerd/config.toml"], check=False).stdout
        assert restored == Path("/etc/containerd/config.toml").read_text() != before[node.name]
    assert all(c.reverted for c in store.changes(store.get_session("rv").id))
