"""Issue 20 items 1 and 4: a node change that fails halfway is told and recorded as what it did,
and the failure message says the node and the step once."""

from __future__ import annotations

import pytest

from labtui.cli import main

pytestmark = pytest.mark.root

REFUSING_SYSCTL = """#!/bin/sh
# like a container's sysctl: reads work, writes are refused
for a in "$@"; do
  case "$a" in
    *=*) echo "sysctl: permission denied on key \\"${a%%=*}\\"" >&2; exit 1 ;;
  esac
done
exec /usr/sbin/sysctl "$@"
"""


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


def _node_state(lab, node) -> dict:
    files = sorted(p.name for p in (node.dir / "sysctl.d").iterdir()) if (node.dir / "sysctl.d").exists() else []
    fwd = lab.node_exec(node, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
    return {"sysctl.d": files, "ip_forward": fwd}


def test_a_preflight_fix_refused_halfway_leaves_nothing_and_says_so(cli_lab, capsys, store):
    lab = cli_lab
    node1 = lab.nodes[0]
    lab.install_script(node1, "sysctl", REFUSING_SYSCTL)
    main(["nodes", "check", "lab", "--accept-new-host-keys"])
    capsys.readouterr()
    before = _node_state(lab, node1)
    assert before["ip_forward"] == "0"

    assert main(["nodes", "preflight", "lab", "--yes"]) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    # the node after the failure holds exactly what the record holds: nothing on node1
    assert _node_state(lab, node1) == before, text
    rec = store.get_session("lab")
    on_node1 = [c for c in store.changes(rec.id) if c.target == "node1" and not c.reverted]
    assert on_node1 == []
    # the message says it, checked, and says the node and the step once
    assert "permission denied" in text
    assert "node1: node1:" not in text and "Preflight checks: Preflight checks:" not in text
    assert "nothing was left on node1" in text, text

    assert main(["revert", "lab", "all", "--yes"]) == 0
    capsys.readouterr()
    assert _node_state(lab, node1) == before
    assert not (node1.dir / "sysctl.d" / "99-labtui-kubernetes.conf").exists()
    lab.remove_script(node1, "sysctl")


def test_a_node_command_that_fails_after_its_first_write_is_recorded_with_its_revert(cli_lab, capsys, store):
    """A command that is not all-or-nothing: the executor reads the node's state before and after
    and records what the failed command left, with its revert; `labtui revert NAME all` undoes it."""
    from labtui.changes.node import node_action
    from labtui.execute import ExecutionStopped, Executor

    lab = cli_lab
    node1 = lab.nodes[0]
    main(["nodes", "check", "lab", "--accept-new-host-keys"])
    capsys.readouterr()
    path = "/etc/sysctl.d/50-partial.conf"
    action = node_action("node1", "partial@node1", "write two settings", f"echo a > {path} && false && echo b >> {path}",
                         revert=f"rm -f {path}", state=f"cat {path} 2>/dev/null; echo .")
    from labtui.session import LabSession

    ctx = LabSession(store, "lab").ctx
    with pytest.raises(ExecutionStopped) as stopped:
        Executor(ctx, confirm=lambda actions: True).run([action])
    exc = stopped.value
    assert (node1.dir / "sysctl.d" / "50-partial.conf").exists()
    rec = store.get_session("lab")
    changes = [c for c in store.changes(rec.id) if not c.reverted]
    assert [(c.target, c.revert_command) for c in changes] == [("node1", action.revert)]
    assert exc.execution.changes and exc.execution.changes[0].id == changes[0].id
    said = exc.render()
    assert "nothing was changed" not in said
    assert "write two settings" in said and "recorded" in said and "labtui revert" in said

    assert main(["revert", "lab", "all", "--yes"]) == 0
    capsys.readouterr()
    assert not (node1.dir / "sysctl.d" / "50-partial.conf").exists()
