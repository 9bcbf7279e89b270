"""Changes on a node over SSH: a command with its revert, and an optional check that tells
whether it is already in effect (exit 0 = already so).

`node.command` is the general kind; the preflight fixes (`node.sysctl`, `node.modules`,
`node.swap`) and the cluster build's node commands are the same shape. Build Actions with
`node_action(...)`; the executor runs them.
"""

from __future__ import annotations

from typing import Any

from labtui.adapters.interfaces import NodeCommands
from labtui.adapters.ssh import session_ssh
from labtui.adapters.sshkeys import shown_command
from labtui.changes import (
    Applied,
    AppliedThenFailed,
    ChangeKind,
    FailedCleanly,
    register,
)
from labtui.errors import LabError
from labtui.nodes.preflight import fix_state
from labtui.steps import Action, Risk, StepContext
from labtui.store import Change


def node_action(node: str, action_id: str, title: str, command: str, *, revert: str | None = None,
                check: str | None = None, sudo: bool = True, kind: str = "node.command",
                risk: Risk = Risk.CHANGE, timeout: float = 600.0, shown: str | None = None,
                shown_revert: str | None = None, **data: Any) -> Action:
    """An Action that runs `command` on `node` (through sudo when `sudo`).

    `check`: a command that exits 0 when the effect is already there (then nothing runs and
    nothing is recorded). `shown`: how to print it when the real command holds a secret."""
    return Action(id=action_id, title=title, kind="ssh", target=node, risk=risk, change=kind,
                  command=shown or shown_command(node, command, sudo=sudo),
                  revert=shown_revert or (shown_command(node, revert, sudo=sudo) if revert else None),
                  data={"node": node, "command": command, "revert": revert, "check": check, "sudo": sudo,
                        "timeout": timeout, **data})


class NodeCommand(ChangeKind):
    kind = "node.command"
    layer = "node"

    def applied(self, ctx: StepContext, action: Action) -> bool | None:
        check = action.data.get("check")
        if not check:
            return None
        res = session_ssh(ctx).run(action.data["node"], check, sudo=action.data.get("sudo", True),
                                   timeout=60.0, stream=False)
        return res.exit_code == 0

    def state_command(self, action: Action) -> str | None:
        """A read-only command printing what the change touches (`state=` on the Action; the
        preflight fixes have theirs): read before and after a failure to tell what it left."""
        d = action.data
        if d.get("state"):
            return str(d["state"])
        if d.get("fix"):
            return fix_state(d["fix"])
        return None

    def run(self, ctx: StepContext, action: Action) -> Applied:
        d = action.data
        node = d["node"]
        ssh = session_ssh(ctx)
        state = self.state_command(action)
        before = _read_state(ssh, node, state, d) if state else None
        res = ssh.run(node, d["command"], sudo=d.get("sudo", True),
                      timeout=float(d.get("timeout") or 600.0), step=d.get("step"))
        if res.exit_code != 0:
            try:
                res.check(what_of(action, node))
            except LabError as exc:
                raise self._failed(ctx, action, exc, state, before) from None
        return Applied(True, self._revert_data(action),
                       result={"exit_code": res.exit_code, "stdout": res.stdout[-4000:]}, target=node)

    @staticmethod
    def _revert_data(action: Action) -> dict[str, Any]:
        d = action.data
        return {"node": d["node"], "command": d.get("revert"), "sudo": d.get("sudo", True)}

    def _failed(self, ctx: StepContext, action: Action, exc: LabError, state: str | None,
                before: list[str] | None) -> LabError:
        """What a failed command left on its node, checked: nothing (`FailedCleanly`), something
        (`AppliedThenFailed`: recorded with its revert), or cannot tell (the error as it is; the
        executor then says so, never "nothing was changed")."""
        node = action.data["node"]
        if state is None or before is None:
            return exc
        try:
            after = _read_state(session_ssh(ctx), node, state, action.data)
        except LabError:
            return exc
        if after == before:
            return FailedCleanly(exc, f"nothing was left on {node} (checked: what it touches reads as before)")
        left = [ln for ln in after if ln not in before] or ["(a setting it touches is gone)"]
        error = LabError(exc.message + f"; it left on {node}: " + "; ".join(left), exc.hint, code=exc.code)
        return AppliedThenFailed(error, Applied(True, self._revert_data(action), target=node,
                                                note="failed halfway: " + "; ".join(left)))

    def revert(self, ctx: StepContext, change: Change) -> str:
        data = change.revert_data or {}
        command = data.get("command")
        if not command:
            raise LabError(f"change #{change.id} ({change.description}) has no revert command",
                           "undo it by hand on the node if needed", code="no-revert")
        command = command.split("   (")[0]  # the preflight reverts carry a note after three spaces
        res = session_ssh(ctx).run(data["node"], command, sudo=data.get("sudo", True), timeout=300.0)
        res.check(f"revert {change.description}")
        return f"ran the revert on {data['node']}"


register(NodeCommand)


def what_of(action: Action, node: str) -> str:
    """The action's title without its node: the failure says the node once."""
    return action.title[len(node) + 2:] if action.title.startswith(f"{node}: ") else action.title


def _read_state(ssh: NodeCommands, node: str, state: str, d: dict[str, Any]) -> list[str]:
    res = ssh.run(node, state, sudo=d.get("sudo", True), timeout=60.0, stream=False)
    if res.exit_code != 0:
        raise LabError(f"{node}: could not read what the change touches (exit {res.exit_code})", code="state-unread")
    return [ln.rstrip() for ln in res.stdout.splitlines() if ln.strip()]


# The preflight fixes record their own kind names; they behave as node commands.
for _name in ("sysctl", "modules", "swap"):
    register(type(f"Node_{_name}", (NodeCommand,), {"kind": f"node.{_name}"}))
