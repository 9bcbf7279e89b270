"""Changes on a node over SSH: a command with its revert, and an optional check that tells
whether it is already in effect (exit 0 = already so).

`node.command` is the general kind; the preflight fixes (`node.sysctl`, `node.modules`,
`node.swap`) and the cluster build's node commands are the same shape. Build Actions with
`node_action(...)`; the executor runs them.
"""

from __future__ import annotations

from typing import Any

from labtui.changes import Applied, ChangeKind, register
from labtui.steps import Action, Risk


def node_action(node: str, action_id: str, title: str, command: str, *, revert: str | None = None,
                check: str | None = None, sudo: bool = True, kind: str = "node.command",
                risk: Risk = Risk.CHANGE, timeout: float = 600.0, shown: str | None = None,
                shown_revert: str | None = None, **data: Any) -> Action:
    """An Action that runs `command` on `node` (through sudo when `sudo`).

    `check`: a command that exits 0 when the effect is already there (then nothing runs and
    nothing is recorded). `shown`: how to print it when the real command holds a secret."""
    from labtui.adapters.ssh import shown_command

    return Action(id=action_id, title=title, kind="ssh", target=node, risk=risk, change=kind,
                  command=shown or shown_command(node, command, sudo=sudo),
                  revert=shown_revert or (shown_command(node, revert, sudo=sudo) if revert else None),
                  data={"node": node, "command": command, "revert": revert, "check": check, "sudo": sudo,
                        "timeout": timeout, **data})


class NodeCommand(ChangeKind):
    kind = "node.command"
    layer = "node"

    def applied(self, ctx: Any, action: Action) -> bool | None:
        check = action.data.get("check")
        if not check:
            return None
        from labtui.adapters.ssh import session_ssh

        res = session_ssh(ctx).run(action.data["node"], check, sudo=action.data.get("sudo", True),
                                   timeout=60.0, stream=False)
        return res.exit_code == 0

    def run(self, ctx: Any, action: Action) -> Applied:
        from labtui.adapters.ssh import session_ssh

        d = action.data
        res = session_ssh(ctx).run(d["node"], d["command"], sudo=d.get("sudo", True),
                                   timeout=float(d.get("timeout") or 600.0), step=d.get("step"))
        res.check(action.title)
        return Applied(True, {"node": d["node"], "command": d.get("revert"), "sudo": d.get("sudo", True)},
                       result={"exit_code": res.exit_code, "stdout": res.stdout[-4000:]}, target=d["node"])

    def revert(self, ctx: Any, change: Any) -> str:
        from labtui.adapters.ssh import session_ssh
        from labtui.errors import LabError

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


# The preflight fixes record their own kind names; they behave as node commands.
for _name in ("sysctl", "modules", "swap"):
    register(type(f"Node_{_name}", (NodeCommand,), {"kind": f"node.{_name}"}))
