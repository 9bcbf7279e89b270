"""`labtui doctor NAME --revert all` (issue 12, item 8): every recorded change goes back through the
change catalogue, newest first; one that cannot be reverted is named and the rest continue. On real
sshd nodes: the node changes are made by the executor itself (not written into the store by hand).
The cloud and Calico kinds go the same way in e2e_incident (fix option 1, then --revert all)."""

from __future__ import annotations

import pytest

from labtui.changes.node import node_action
from labtui.cli import main
from labtui.execute import Executor
from labtui.store import Change

pytestmark = [pytest.mark.root]


def test_revert_all_newest_first_names_what_it_cannot_and_continues(sshlab, open_lab, store, capsys):
    lab, _ = open_lab("rev", plan=sshlab.plan_data("rev"), known_hosts=sshlab.known_hosts)
    node = sshlab.nodes[1].name
    log = "/tmp/labtui-revert-order"
    actions = [
        node_action(node, "first", "mark one", f"touch /tmp/labtui-mark-1 && echo made-1 >> {log}",
                    revert=f"rm -f /tmp/labtui-mark-1 && echo undone-1 >> {log}"),
        node_action(node, "second", "mark two", f"touch /tmp/labtui-mark-2 && echo made-2 >> {log}",
                    revert=f"rm -f /tmp/labtui-mark-2 && echo undone-2 >> {log}"),
        node_action(node, "third", "mark three (no way back)", "touch /tmp/labtui-mark-3"),
    ]
    sshlab.node_exec(node, ["rm", "-f", log, "/tmp/labtui-mark-1", "/tmp/labtui-mark-2", "/tmp/labtui-mark-3"])
    Executor(lab.ctx, step="test").run(actions, confirmed=True)
    # a change recorded by something this labtui does not know how to undo
    store.record_change(lab.ctx.session.id, Change(kind="legacy.tweak", target=node, description="an old tweak",
                                                   command="tweak --on", revert_command="tweak --off"))
    lab.close()
    made = {c.description: c for c in store.changes(store.get_session("rev").id)}
    assert set(made) == {"mark one", "mark two", "mark three (no way back)", "an old tweak"}

    # without --yes: shown, nothing reverted
    assert main(["doctor", "rev", "--revert", "all", "--accept-new-host-keys"]) == 1
    err = capsys.readouterr().err
    assert "labtui will revert, newest first:" in err and "not reverted; re-run with --yes" in err
    assert err.index("an old tweak") < err.index("mark two") < err.index("mark one")

    code = main(["doctor", "rev", "--revert", "all", "--yes", "--accept-new-host-keys"])
    out = capsys.readouterr()
    assert code == 1, out.out + out.err
    assert "reverted 2 change(s); 2 could not be reverted:" in out.out
    assert f"#{made['an old tweak'].id} an old tweak: labtui does not know the change kind 'legacy.tweak'" in out.out
    assert f"#{made['mark three (no way back)'].id} mark three (no way back): change" in out.out
    assert "Traceback" not in out.err
    # newest first on the node itself, and both marks gone; the one without a revert stays
    assert sshlab.node_exec(node, ["cat", log]).stdout.split() == ["made-1", "made-2", "undone-2", "undone-1"]
    ls = sshlab.node_exec(node, ["ls", "/tmp"]).stdout.split()
    assert "labtui-mark-1" not in ls and "labtui-mark-2" not in ls and "labtui-mark-3" in ls
    left = {c.description for c in store.changes(store.get_session("rev").id, include_reverted=False)}
    assert left == {"mark three (no way back)", "an old tweak"}

    # a single change by number; an unknown number is a clear error
    assert main(["doctor", "rev", "--revert", "999", "--yes"]) == 2
    assert "no change #999 to revert in rev" in capsys.readouterr().err
