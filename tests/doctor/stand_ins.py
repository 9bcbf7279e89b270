"""Stand-ins for the change catalogue's cloud and Calico kinds in tests that run the doctor on
scenario facts (no cloud, no cluster): each records that it ran and says it changed something, so
the one executor, the recording and the re-diagnosis still run for real."""

from __future__ import annotations

from typing import Any, Callable

from labtui import changes
from labtui.changes import Applied, ChangeKind
from labtui.steps import Action, Risk


class Recorder(ChangeKind):
    def __init__(self, name: str, ran: list[str], after: Callable[[Any, Action], None] | None = None) -> None:
        self.kind = name  # type: ignore[misc]
        self.layer = "calico" if name.startswith("calico.") else "openstack"  # type: ignore[misc]
        self.ran = ran
        self.after = after

    def applied(self, ctx: Any, action: Action) -> bool | None:
        return False

    def run(self, ctx: Any, action: Action) -> Applied:
        self.ran.append(self.kind.split(".", 1)[1].replace("pool-mode", "pool-mode"))
        if self.after is not None:
            self.after(ctx, action)
        return Applied(True, {"stand_in": True}, revert_command=action.revert or "(stand-in)")

    def verify(self, ctx: Any, action: Action, applied: Applied) -> str | None:
        return None


def install(monkeypatch, ran: list[str], after_calico: Callable[[Any, Action], None] | None = None) -> None:
    """Replace the openstack.* and calico.pool-mode kinds; the doctor's Calico action is built from the
    fix itself (no cluster to plan against)."""
    import labtui.changes.calico
    import labtui.changes.openstack  # noqa: F401
    import labtui.doctor.run as dr

    for name in ("openstack.sg-rule", "openstack.port-pairs", "openstack.port-security"):
        monkeypatch.setitem(changes._KINDS, name, Recorder(name, ran))
    monkeypatch.setitem(changes._KINDS, "calico.pool-mode", Recorder("calico.pool-mode", ran, after_calico))

    def calico_action(ctx, fa, accept):
        return Action(id=fa.id, title=fa.title, command=fa.command, kind="kube", target=fa.target, risk=Risk.CHANGE,
                      revert=fa.revert, change="calico.pool-mode", data={"pool": fa.params.get("pool")})

    monkeypatch.setattr(dr, "_calico_action", calico_action)
