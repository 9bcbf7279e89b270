"""`labtui nodes ...` headless, end to end against real sshd nodes."""

from __future__ import annotations

import json

import pytest

from labtui.cli import main
from tests.harness.sshnodes import root_ip_forward

pytestmark = pytest.mark.root


@pytest.fixture
def cli_lab(fresh_lab, ssh_env, store, tmp_path, monkeypatch):
    monkeypatch.setenv("LABTUI_SSH_CONFIG", str(fresh_lab.ssh_config))
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(tmp_path / "empty_known_hosts"))
    data = fresh_lab.plan_data("lab", via_config=True)
    data["encapsulation"] = "VXLAN"
    from labtui.model import Plan

    plan = Plan.parse(data).model_dump(mode="json")
    store.create_session("lab", plan=plan, wizard="nodes")
    return fresh_lab


def test_headless_host_keys_run_and_shell(cli_lab, capsys):
    lab = cli_lab
    assert main(["nodes", "check", "lab"]) == 1
    out = capsys.readouterr().out
    assert "is not known yet" in out and lab.nodes[0].fingerprint in out and "--accept-new-host-keys" in out

    assert main(["nodes", "check", "lab", "--accept-new-host-keys", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["nodes"]["node1"]["reachable"] and data["nodes"]["node2"]["facts"]["hostname"] == "node2"
    assert any(f["check"] == "ip-forward" and f["severity"] == "error" for f in data["findings"])

    new = lab.rebuild_host_key("node2")
    assert main(["nodes", "check", "lab", "--accept-new-host-keys"]) == 1
    out = capsys.readouterr().out
    assert "has CHANGED" in out and "Was this VM rebuilt?" in out and new in out

    assert main(["nodes", "trust", "lab", "node2", "--yes"]) == 1  # no --replace: refused
    captured = capsys.readouterr()
    assert "CHANGED" in captured.out and "--replace" in captured.err
    assert main(["nodes", "trust", "lab", "node2", "--replace", "--yes"]) == 0
    assert "replaced in" in capsys.readouterr().out
    assert main(["nodes", "check", "lab"]) == 0
    capsys.readouterr()

    assert main(["nodes", "run", "lab", "node1", "--", "echo hi; echo err >&2; exit 4"]) == 4
    captured = capsys.readouterr()
    assert captured.out == "hi\n" and "err" in captured.err and "exit code 4" in captured.err

    assert main(["nodes", "run", "lab", "--all", "--", "hostname"]) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == ["[node1] node1", "[node2] node2"]

    assert main(["nodes", "ssh", "lab", "node1", "--print"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("ssh ") and "StrictHostKeyChecking=yes" in line and lab.nodes[0].address in line

    assert main(["nodes", "facts", "lab", "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)) == ["node1", "node2"]


def test_preflight_fix_with_confirmation_and_revert(cli_lab, capsys, store):
    lab = cli_lab
    node1 = lab.nodes[0]

    def fwd(node):
        return lab.node_exec(node, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()

    assert main(["nodes", "preflight", "lab", "--accept-new-host-keys"]) == 1
    err = capsys.readouterr().err
    assert "labtui would change the nodes" in err and "net.ipv4.ip_forward = 1" in err and "Not applied" in err
    assert fwd(node1) == "0"

    assert main(["nodes", "preflight", "lab", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "Preflight checks: done" in out
    assert fwd(node1) == "1" and fwd(lab.nodes[1]) == "1"
    assert root_ip_forward() == "0"  # the node's network namespace only
    conf = node1.dir / "sysctl.d" / "99-labtui-kubernetes.conf"  # labtui's own file, not cloud-init's
    assert "net.ipv4.ip_forward = 1" in conf.read_text()
    rec = store.get_session("lab")
    changes = store.changes(rec.id)
    assert sorted(c.target for c in changes) == ["node1", "node2"] and all(c.kind == "node.sysctl" for c in changes)
    assert all("ip_forward=0" in c.revert_command for c in changes)

    assert main(["nodes", "revert", "lab"]) == 1  # shows the revert, needs --yes
    assert main(["nodes", "revert", "lab", "--yes"]) == 0
    assert main(["nodes", "revert", "lab", "--yes"]) == 0
    capsys.readouterr()
    assert fwd(node1) == "0" and fwd(lab.nodes[1]) == "0"
    assert not conf.exists()
    assert all(c.reverted for c in store.changes(rec.id))


def test_create_a_lab_from_an_inventory(fresh_lab, ssh_env, tmp_path, monkeypatch, capsys):
    import yaml

    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(fresh_lab.known_hosts))
    inv = tmp_path / "hosts.yaml"
    inv.write_text(yaml.safe_dump({"nodes": fresh_lab.node_specs()}))
    assert main(["nodes", "check", "adopted", "--inventory", str(inv)]) == 0
    captured = capsys.readouterr()
    assert "created the lab adopted" in captured.err and f"subnet {fresh_lab.subnet}" in captured.err
    assert "node1" in captured.out and "yes" in captured.out


def test_no_such_lab_or_node(ssh_env, store, capsys):
    assert main(["nodes", "check", "nope"]) == 2
    assert "no lab named 'nope'" in capsys.readouterr().err
