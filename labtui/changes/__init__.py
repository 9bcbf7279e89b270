"""The change catalogue: one entry per kind of change labtui can make.

A kind of change (`ChangeKind`) knows, for the Actions it builds:
- how it is rendered: the exact command a user would type and the API call (on the Action);
- whether it is already in effect (`applied`): the executor then reports "already so" and records
  nothing;
- how it runs (`run`), returning what the revert needs (`Applied`);
- how it is reverted (`revert`), from the recorded Change alone.

Kinds are registered by the modules below, imported lazily by the prefix of the kind's name
(`openstack.sg-rule` -> labtui.changes.openstack), so a headless command or the first screen pays
for nothing it does not use. Adapters do the talking; these modules decide what to say.

A kind may answer to other names too (the names older records carry): ALIASES maps each to the
kind that owns it now, so such a record is run and reverted by that entry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from labtui.errors import LabError

if TYPE_CHECKING:  # pragma: no cover
    from labtui.steps import Action, StepContext
    from labtui.store import Change

# Where each family of kinds lives (the prefix before the first dot).
MODULES = {
    "openstack": "labtui.changes.openstack",  # security-group rules, allowed-address-pairs, port security
    "calico": "labtui.changes.calico",  # IP pool encapsulation through each supported path
    "node": "labtui.changes.node",  # sysctl, kernel module, swap, commands on a node
    "cloud": "labtui.changes.cloud",  # provisioned cloud resources (network, group, keypair, servers...)
    "kube": "labtui.changes.kube",  # cluster build steps (runtime, packages, kubeadm, CNI install)
}

# The order the executor runs a mixed list in: nodes, then the cloud's resources, then the
# network's rules and ports, then the cluster, then Calico (network before Calico).
LAYER_ORDER = {"node": 0, "cloud": 1, "openstack": 2, "kube": 3, "calico": 4, "local": 5}

_KINDS: dict[str, "ChangeKind"] = {}

# Names a kind also answers to -> the kind that owns them (one place: the rule of the lab's own group
# was a kind of its own, cloud.sg-rule; the Provision stage still records it under that name)
ALIASES = {"cloud.sg-rule": "openstack.sg-rule"}


@dataclass
class Applied:
    """What `run` did: `changed` False means the effect was already there (nothing is recorded)."""

    changed: bool
    revert_data: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    revert_command: str | None = None  # when only known after the run (e.g. the new rule's id)
    target: str | None = None
    note: str = ""


class AppliedThenFailed(LabError):
    """A change that took effect and then failed (e.g. accepted by the cluster, then the wait timed
    out): the executor records it with its revert, then stops with the error."""

    def __init__(self, error: LabError, applied: Applied) -> None:
        super().__init__(error.message, error.hint, code=error.code)
        self.applied = applied


class FailedCleanly(LabError):
    """A change that failed and checked it left nothing behind (`checked` says what was checked):
    the executor may then say that nothing was changed."""

    def __init__(self, error: LabError, checked: str) -> None:
        super().__init__(error.message, error.hint, code=error.code)
        self.checked = checked


class ChangeKind:
    """Subclass, set `kind` and `layer`, implement `run` and `revert`; `applied` when it can tell."""

    kind: ClassVar[str] = ""
    layer: ClassVar[str] = "local"
    revertible: ClassVar[bool] = True

    def layer_for(self, action: "Action") -> str:
        """The layer this Action runs in (the executor's order); the kind's own unless it says otherwise."""
        return self.layer

    def applied(self, ctx: "StepContext", action: "Action") -> bool | None:
        """True: already in effect (nothing to do). False: not yet. None: cannot tell without doing it."""
        return None

    def run(self, ctx: "StepContext", action: "Action") -> Applied:
        raise NotImplementedError

    def verify(self, ctx: "StepContext", action: "Action", applied: Applied) -> str | None:
        """After a run: None when the effect is there, else what is wrong. Default: `applied()`."""
        if self.applied(ctx, action) is False:
            return f"{action.title}: the change did not take effect"
        return None

    def revert(self, ctx: "StepContext", change: "Change") -> str:
        """Undo a recorded change; return a sentence saying what was done (already undone is fine)."""
        raise LabError(f"change #{change.id} ({change.kind}) has no automatic revert",
                       f"revert it by hand: {change.revert_command or 'see the command log'}", code="no-revert")


def register(cls: type[ChangeKind]) -> type[ChangeKind]:
    """Class decorator: add a kind to the catalogue."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    entry = cls()
    _KINDS[cls.kind] = entry
    for alias, owner in ALIASES.items():
        if owner == cls.kind:
            _KINDS[alias] = entry
    return cls


def kind(name: str) -> ChangeKind:
    """The catalogue entry for `name` (imports its module on first use)."""
    if name not in _KINDS:
        module = MODULES.get(ALIASES.get(name, name).split(".", 1)[0])
        if module is not None:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
    try:
        return _KINDS[name]
    except KeyError:
        raise LabError(f"labtui does not know the change kind '{name}'",
                       "this is a bug in labtui, or a record from a newer version", code="unknown-change-kind") from None


def known(name: str) -> bool:
    try:
        kind(name)
    except LabError:
        return False
    return True


def layer_of(action: "Action") -> str:
    if action.change:
        return kind(action.change).layer_for(action)
    return action.kind if action.kind in LAYER_ORDER else "local"
