"""The types of a step: Step / Action / Wizard (probe -> plan -> approve -> apply -> verify) and the
context a step runs in. The Runner that walks them, and resume, are in labtui.runner (the execute
layer): this module imports no executor, so the change catalogue below the executor can use it.

A Step reads reality in `check()` (what makes resume honest and re-runs safe), returns the
Actions it would take from `plan()`, runs them in `apply()` and proves the result in `verify()`.
An Action is one concrete change or command, renderable exactly as the user would type it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from labtui import events as ev
from labtui.adapters.interfaces import CloudSession, Forwarder, KubeAPI, NodeCommands, Shell
from labtui.adapters.sshkeys import HostKeyInfo
from labtui.events import Event
from labtui.model import Plan
from labtui.store import Change, SessionRecord, Store


class Risk(str, Enum):
    READ = "read"  # reads only
    LOCAL = "local"  # changes labtui's own state only
    CHANGE = "change"  # changes a node, the cloud or the cluster (needs confirmation)
    DESTRUCTIVE = "destructive"  # deletes or weakens something (needs confirmation, shown in red)


class StepState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


STATE_ICONS = {
    StepState.PENDING: "○",
    StepState.RUNNING: "◐",
    StepState.DONE: "●",
    StepState.FAILED: "✗",
    StepState.SKIPPED: "–",
}


@dataclass
class Action:
    """One concrete change or command. `command` is exactly what the user would type."""

    id: str
    title: str
    command: str
    kind: str = "local"  # local | ssh | openstack | kube
    target: str | None = None  # node, security group, port, pool...
    risk: Risk = Risk.LOCAL
    revert: str | None = None  # the command that undoes it, when there is one
    api: str | None = None  # the API call, when it is one (e.g. "POST /v2.0/security-group-rules {...}")
    run: Callable[["StepContext", "Action"], Any] | None = field(default=None, repr=False, compare=False)
    data: dict[str, Any] = field(default_factory=dict)
    change: str | None = None  # the change catalogue's kind (labtui.changes) for anything that changes state
    # independent of the actions next to it with the same key: the executor runs such a run of
    # actions (consecutive once ordered, same layer) together, e.g. the rules of one security group
    together: str | None = None

    @property
    def needs_confirmation(self) -> bool:
        return self.risk in (Risk.CHANGE, Risk.DESTRUCTIVE)

    def render(self) -> str:
        """The confirmation text: the exact command, the API call, the revert (or the change's own
        fuller text, e.g. a Calico change with its method and warning)."""
        if self.data.get("render"):
            return str(self.data["render"])
        line = f"$ {self.command}"
        if self.api:
            line += f"\n  API: {self.api}"
        if self.revert:
            line += f"\n  revert: {self.revert}"
        return line


@dataclass
class CheckResult:
    """What a step's check found. `done`: nothing to do. `skip`: the step does not apply to this lab
    (the detail says why). A check step that found work for a later step is done, and says so in
    `detail` ("1 rule missing: the next step adds it"). `blocked`: the step has work to do but a
    precondition failed (e.g. Runtime preflight found systemd not running on a node): the detail names
    the finding and the node, `hint` says what to do, and no change is offered."""

    done: bool
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    skip: bool = False
    blocked: bool = False
    hint: str = ""


@dataclass
class InputField:
    """An input a step needs. The UI renders these generically; headless commands take them as options."""

    name: str
    label: str
    kind: str = "text"  # text | choice | bool | nodes | path
    default: Any = None
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    help: str = ""
    required: bool = True
    when: tuple[str, Any] | None = None  # (other field, value): shown only while that field has that value


class _Slots:
    def pop(self, name: str) -> Any:
        """Take a value out (None when unset)."""
        value = getattr(self, name)
        setattr(self, name, None)
        return value


@dataclass
class Adapters(_Slots):
    """The connections a lab's steps share (made on first use, closed with the session)."""

    ssh: NodeCommands | None = None  # adapters.ssh.NodeSSH
    cloud: CloudSession | None = None  # adapters.openstack.CloudConnection
    kube: KubeAPI | None = None  # adapters.kube.KubeClient
    cloud_login: Any = None  # adapters.keystone.EarlyLogin, until the first cloud connection takes it

    def close_all(self) -> None:
        self.pop("cloud_login")
        for name in ("kube", "cloud", "ssh"):
            svc = self.pop(name)
            close = getattr(svc, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # closing must not mask the real outcome
                    pass


@dataclass
class Memo(_Slots):
    """What the steps of one run share so they do not read the same thing twice."""

    cloud_report: Any = None  # (monotonic time, net.check.Report)
    calico_state: Any = None  # net.calico.ClusterState
    doctor_cluster: Any = None
    doctor_diag: Any = None
    doctor_option: Any = None
    node_facts: Any = None  # (monotonic time, results)
    provision_choices: Any = None  # the cloud's offer as read by the Provision stage
    provision_seen: Any = None  # resources found by the lab's tag, by kind
    provision_ids: Any = None  # names -> ids of this lab's resources
    provision_rules: Any = None  # security group id -> its rules
    provision_pool: Any = None  # the thread pool posting servers in parallel
    provision_posts: Any = None  # server name -> its pending create
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)  # a stage's own per-run dicts (bucket())

    def bucket(self, name: str) -> dict[str, Any]:
        """A per-run dict a stage keeps its own caches in (forgotten by clear())."""
        return self.buckets.setdefault(name, {})

    def clear(self) -> None:
        """Forget everything this run read."""
        for name in self.__dataclass_fields__:
            setattr(self, name, {} if name == "buckets" else None)

@dataclass
class Tuning:
    """Timeouts and the test harness's knobs."""

    simulated: bool = False  # the doctor's live proof runs against simulated kubectl (tests)
    calico_wait: float = 90.0
    calico_poll: float = 1.0
    cloud_timeout: float = 20.0
    kube_shell_factory: Callable[["StepContext"], Shell | None] | None = None
    kube_forwarder_factory: Callable[["StepContext"], Forwarder | None] | None = None


@dataclass
class Prompts:
    """How a front end asks the user a question from a worker thread (None: headless, refuse)."""

    host_key: Callable[[HostKeyInfo], bool] | None = None  # accept this host key?
    passphrase: Callable[[str, str], str | None] | None = None  # (node, key path) -> passphrase


@dataclass
class StepContext:
    store: Store
    session: SessionRecord
    emit: Callable[[Event], None]
    confirm: Callable[[list[Action]], bool] | None = None  # asked before CHANGE/DESTRUCTIVE actions
    cancel: threading.Event = field(default_factory=threading.Event)
    adapters: Adapters = field(default_factory=Adapters)
    memo: Memo = field(default_factory=Memo)
    tuning: Tuning = field(default_factory=Tuning)
    prompts: Prompts = field(default_factory=Prompts)

    @property
    def inputs(self) -> dict[str, Any]:
        return self.session.inputs

    _plan_read: tuple[object, Plan | None] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def plan(self) -> Plan | None:
        """The lab's saved plan, typed and validated by Plan.saved (THE validation), or None before the
        plan wizard saved one. Stages, the doctor and the commands read the plan here, never as a dict.
        Read once per saved plan: a save or a reload gives the session a new plan object."""
        data = self.session.plan
        if self._plan_read is None or self._plan_read[0] is not data:  # held, so never a reused id
            self._plan_read = (data, Plan.saved(data))
        return self._plan_read[1]

    def reload(self) -> None:
        self.session = self.store.get_session(self.session.name)

    def remember_kubeconfig(self, kubeconfig: str | None) -> None:
        """The lab remembers a kubeconfig the user named once it worked (its path, never its content):
        `labtui calico --kubeconfig`, `labtui doctor --kubeconfig`."""
        if not kubeconfig:
            return
        path = str(Path(kubeconfig).expanduser().resolve())
        if self.inputs.get("kubeconfig") != path:
            self.store.save_inputs(self.session.name, {"kubeconfig": path})
            self.reload()

    def info(self, message: str, **kw: Any) -> None:
        self.emit(Event(ev.INFO, message, **kw))

    def warn(self, message: str, **kw: Any) -> None:
        self.emit(Event(ev.WARN, message, **kw))

    def record_change(self, change: Change) -> Change:
        recorded = self.store.record_change(self.session.id, change)
        self.emit(Event(ev.CHANGE, f"changed {change.target}: {change.description}",
                        data={"command": change.command, "revert": change.revert_command}))
        return recorded


class Step:
    """Subclass and override. Defaults make a step that is done once its inputs are saved."""

    id: str = ""
    title: str = ""
    why: str = ""
    hint: str = ""  # what to do when the step cannot complete by itself
    fields: list[InputField] = []
    # teaching: what the learner should see when it worked, the commands to do it by hand ("show me
    # how"; the planned actions' commands are shown too), and the terms the glossary explains (F1)
    expect: str = ""
    by_hand: str = ""
    glossary: tuple[str, ...] = ()

    def check(self, ctx: StepContext) -> CheckResult:
        return CheckResult(done=False)

    def validate(self, ctx: StepContext, values: dict[str, Any]) -> list[Any]:  # list[model.Problem]
        return []

    def plan(self, ctx: StepContext) -> list[Action]:
        return []

    def after_apply(self, ctx: StepContext, execution: Any) -> None:
        """Called after the executor ran this step's actions (e.g. read the facts again)."""

    def verify(self, ctx: StepContext) -> CheckResult:
        return self.check(ctx)


@dataclass
class Wizard:
    id: str
    title: str
    steps: list[Step]

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def index(self, step_id: str | None) -> int:
        for i, s in enumerate(self.steps):
            if s.id == step_id:
                return i
        return 0
