"""The one executor on real sshd nodes: idempotence (already so records nothing), order, confirmation,
a failure mid-list (what was applied stays recorded), revert of exactly that, newest first."""

from __future__ import annotations

import os

import pytest

from labtui import events as ev
from labtui.changes.node import node_action
from labtui.execute import ALREADY, APPLIED, Executor, ExecutionStopped

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def nodes():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, sshd)")
    from tests.harness.sshnodes import SSHNodes

    with SSHNodes(2) as lab:
        yield lab


@pytest.fixture
def lab(nodes, store, lab_home, monkeypatch):
    from labtui.session import LabSession

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("LABTUI_SSH_CONFIG", str(nodes.ssh_config))
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(nodes.known_hosts))
    name = f"ex{os.getpid()}"
    store.create_session(name, plan=nodes.plan_data(name, via_config=True))
    events: list = []
    session = LabSession(store, name, emit=events.append)
    session.events = events
    yield session
    from labtui.adapters.ssh import session_ssh

    for n in ("node1", "node2"):
        session_ssh(session.ctx).run(n, "rm -rf /tmp/labtui-ex", sudo=True, stream=False)
    session.close()


def _touch(node: str, name: str, *, fail: bool = False):
    path = f"/tmp/labtui-ex/{name}"
    command = "mkdir -p /tmp/labtui-ex && " + ("false" if fail else f"echo made > {path}")
    return node_action(node, f"touch-{name}@{node}", f"{node}: create {path}", command,
                       revert=f"rm -f {path}", check=f"test -e {path}")


def _exists(lab, node: str, name: str) -> bool:
    from labtui.adapters.ssh import session_ssh

    return session_ssh(lab.ctx).run(node, f"test -e /tmp/labtui-ex/{name}", stream=False).exit_code == 0


def test_apply_then_reapply_records_nothing_the_second_time(lab):
    asked = []
    actions = [_touch("node1", "a"), _touch("node2", "b")]
    run = Executor(lab.ctx, confirm=lambda acts: asked.append(acts) or True).run(actions)
    assert [o.status for o in run.outcomes] == [APPLIED, APPLIED]
    assert len(asked) == 1 and len(asked[0]) == 2  # one confirmation showing both
    changes = lab.store.changes(lab.record.id)
    assert [c.kind for c in changes] == ["node.command", "node.command"]
    assert "rm -f /tmp/labtui-ex/a" in changes[0].revert_command
    assert _exists(lab, "node1", "a") and _exists(lab, "node2", "b")

    asked.clear()
    again = Executor(lab.ctx, confirm=lambda acts: asked.append(acts) or True).run([_touch("node1", "a"), _touch("node2", "b")])
    assert [o.status for o in again.outcomes] == [ALREADY, ALREADY]
    assert asked == []  # nothing to change: nothing to confirm
    assert len(lab.store.changes(lab.record.id)) == 2  # nothing new recorded
    assert any(e.kind == ev.INFO and e.message.startswith("already so:") for e in lab.events)


def test_not_confirmed_changes_nothing(lab):
    run = Executor(lab.ctx, confirm=lambda acts: False).run([_touch("node1", "n")])
    assert not run.confirmed
    assert not _exists(lab, "node1", "n")
    assert lab.store.changes(lab.record.id) == []


def test_failure_mid_list_keeps_what_was_applied_and_revert_undoes_exactly_that(lab):
    actions = [_touch("node1", "one"), _touch("node2", "two"), _touch("node1", "bad", fail=True),
               _touch("node2", "never")]
    with pytest.raises(ExecutionStopped) as err:
        Executor(lab.ctx, confirm=lambda acts: True).run(actions)
    stopped = err.value
    assert [o.status for o in stopped.execution.outcomes] == [APPLIED, APPLIED, "failed"]
    assert "stopped at 'node1: create /tmp/labtui-ex/bad'" in stopped.hint
    assert "the 2 change(s) applied before it are recorded" in stopped.hint
    assert not _exists(lab, "node2", "never")
    changes = lab.store.changes(lab.record.id)
    assert [c.description for c in changes] == ["node1: create /tmp/labtui-ex/one", "node2: create /tmp/labtui-ex/two"]

    reverted_order = []
    lab.ctx.emit = (lambda emit: lambda e: (reverted_order.append(e.message) if e.kind == ev.CHANGE else None,
                                            emit(e)))(lab.ctx.emit)
    done, failed = Executor(lab.ctx).revert(changes, confirmed=True)
    assert failed == [] and [c.id for c in done] == [changes[1].id, changes[0].id]  # newest first
    assert reverted_order[0].startswith(f"reverted change #{changes[1].id}")
    assert not _exists(lab, "node1", "one") and not _exists(lab, "node2", "two")
    assert all(c.reverted for c in lab.store.changes(lab.record.id))
    # reverting again: nothing left to do
    assert Executor(lab.ctx).revert(lab.store.changes(lab.record.id), confirmed=True) == ([], [])


def test_order_is_layer_by_layer_and_stable(lab):
    from labtui.execute import order
    from labtui.steps import Action

    calico = Action(id="c", title="pool", command="kubectl patch ...", change="calico.pool-mode")
    rule = Action(id="r", title="rule", command="openstack security group rule create ...", change="openstack.sg-rule")
    node_a, node_b = _touch("node1", "x"), _touch("node2", "y")
    read = Action(id="read", title="read", command="kubectl get nodes", kind="local")
    assert [a.id for a in order([calico, node_a, rule, read, node_b])] == [node_a.id, node_b.id, "r", "c", "read"]


def test_keep_going_names_what_it_cannot_revert(lab):
    from labtui.store import Change

    lab.store.record_change(lab.record.id, Change(kind="node.command", target="node1", description="no revert known",
                                                   command="ssh node1 'something'", revert_command=None,
                                                   revert_data={"node": "node1", "command": None}))
    Executor(lab.ctx, confirm=lambda a: True).run([_touch("node2", "k")])
    changes = lab.store.changes(lab.record.id)
    done, failed = Executor(lab.ctx).revert(changes, keep_going=True, confirmed=True)
    assert [c.description for c in done] == ["node2: create /tmp/labtui-ex/k"]
    assert [c.description for c, _ in failed] == ["no revert known"] and "has no revert command" in failed[0][1]


def _meet(node: str, name: str, together: str, *, of: int, fail: bool = False):
    """An action that arrives at a barrier and waits (up to 10 s) until `of` actions arrived: it
    passes only when they run together (one after another, the first would give up)."""
    d = "/tmp/labtui-ex/meet"
    wait = (f"mkdir -p {d} && touch {d}/{name} && i=0; while [ $(ls {d} | wc -l) -lt {of} ] && [ $i -lt 100 ]; "
            f"do sleep 0.1; i=$((i+1)); done; [ $(ls {d} | wc -l) -ge {of} ]")
    a = node_action(node, f"meet-{name}", f"{node}: meet {name}", wait + (" && false" if fail else ""),
                    revert=f"rm -f {d}/{name}", check=f"test -e {d}/{name}")
    a.together = together
    return a


def test_independent_actions_of_one_batch_run_together_in_order_and_a_failure_keeps_the_others(lab):
    from labtui.execute import batches

    meet = [_meet("node1", f"m{i}", "meet", of=4) for i in range(4)]
    alone = _touch("node2", "after")
    assert [len(b) for b in batches(meet + [alone])] == [4, 1]
    run = Executor(lab.ctx, confirm=lambda acts: True).run(meet + [alone])
    # the four met at the barrier (run one after another, the first would have given up); the outcomes keep
    # the list's order, each change was recorded as it finished, the action after the batch ran after it
    assert [o.action.id for o in run.outcomes] == [a.id for a in meet] + [alone.id]
    assert [o.status for o in run.outcomes] == [APPLIED] * 5
    recorded = [c.description for c in lab.store.changes(lab.record.id)]
    assert sorted(recorded[:4]) == sorted(a.title for a in meet) and recorded[4] == alone.title

    # a failure in a batch: the others of the batch finish and stay recorded; nothing after the batch runs
    from labtui.adapters.ssh import session_ssh

    session_ssh(lab.ctx).run("node1", "rm -rf /tmp/labtui-ex/meet", sudo=True, stream=False)
    again = [_meet("node1", f"n{i}", "again", of=3, fail=(i == 1)) for i in range(3)]
    with pytest.raises(ExecutionStopped) as err:
        Executor(lab.ctx, confirm=lambda acts: True).run(again + [_touch("node2", "never")])
    assert [o.status for o in err.value.execution.outcomes] == [APPLIED, "failed", APPLIED]
    assert "stopped at 'node1: meet n1'" in err.value.hint
    assert not _exists(lab, "node2", "never")
    descriptions = [c.description for c in lab.store.changes(lab.record.id)]
    assert sorted(descriptions[-2:]) == ["node1: meet n0", "node1: meet n2"] and len(descriptions) == 7


def test_labtui_revert_lists_then_reverts_one_change_on_the_node(lab, capsys):
    """`labtui revert NAME` (the command the executor's hint names after a stop) lists the recorded
    changes with their undo; `labtui revert NAME N` asks (no --yes: nothing reverted); with --yes it
    reverts exactly that one on the node."""
    from labtui.cli import main

    Executor(lab.ctx, confirm=lambda actions: True).run([_touch("node1", "a"), _touch("node2", "b")])
    assert _exists(lab, "node1", "a") and _exists(lab, "node2", "b")
    first, second = sorted(lab.store.changes(lab.record.id), key=lambda c: c.id)
    name = lab.record.name
    capsys.readouterr()
    assert main(["revert", name]) == 0
    listed = capsys.readouterr().out
    assert f"#{first.id} " in listed and f"#{second.id} " in listed and "rm -f /tmp/labtui-ex/a" in listed
    assert main(["revert", name, str(first.id)]) == 1  # headless without --yes: shown, not reverted
    assert _exists(lab, "node1", "a")
    assert main(["revert", name, str(first.id), "--yes"]) == 0
    assert not _exists(lab, "node1", "a") and _exists(lab, "node2", "b")
    assert main(["revert", name, "999"]) == 2  # a number that is not a change: a clear error
    assert "no change #999" in capsys.readouterr().err
    assert main(["revert", "nosuchlab"]) == 2
    err = capsys.readouterr().err
    assert "there is no lab named 'nosuchlab'" in err and "labtui sessions" in err and "--adopt" not in err
