"""What the rest of labtui may ask of an adapter: one small typed interface per side of the outside
(the SSH side, the Kubernetes API, Calico over that API), as harlequin's adapters and pyinfra's
connectors put theirs.

They live in one module, apart from the adapters that implement them, so that the step types
(labtui.steps: `Adapters` holds the lab's connections with these types) and the change catalogue
depend on the interfaces only, and a test can pass anything of the same shape. The SDKs
(paramiko, kubernetes) stay behind the implementations, imported lazily there.

Implementations: `CloudSession` by labtui.adapters.openstack.CloudConnection (the module's functions
take it: discover, create_rule, ...), `NodeCommands` by labtui.adapters.ssh.NodeSSH, `KubeAPI` by
labtui.adapters.kube.KubeClient, `CalicoAPI` by labtui.adapters.calico.Calico, `Shell` by
labtui.adapters.ssh's node shell (and the tests' simulated shell).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from labtui.adapters.sshkeys import NodeResult, RunResult
from labtui.events import Event
from labtui.model import Plan
from labtui.net.calico import ClusterState, IPPoolInfo
from labtui.net.modechange import ModeChange

Forwarder = Callable[[str, int], "tuple[int, Callable[[], None]]"]
"""forwarder(remote_host, remote_port) -> (local_port, close): an SSH local port forward."""


class LabContext(Protocol):
    """What an adapter's session glue reads from a lab's context (a labtui.steps.StepContext):
    named here so an adapter never imports the step layer above it."""

    @property
    def adapters(self) -> Any: ...  # the lab's connections (labtui.steps.Adapters)

    @property
    def session(self) -> Any: ...  # the session record (name, plan, inputs)

    @property
    def store(self) -> Any: ...  # the session store (its home directory)

    @property
    def prompts(self) -> Any: ...  # how the front end asks (host key, passphrase)

    @property
    def tuning(self) -> Any: ...  # timeouts and the tests' factories

    @property
    def inputs(self) -> dict[str, Any]: ...

    @property
    def plan(self) -> Plan | None: ...  # the saved plan, typed

    def emit(self, event: Event) -> None: ...


class CloudSession(Protocol):
    """One logged-in OpenStack cloud: every API call goes through `call` (announced in the command log,
    errors translated); the functions of labtui.adapters.openstack and .provision take it."""

    name: str
    timeout: float

    def new_token(self) -> None: ...

    def first_answered(self, timeout: float | None = None) -> None: ...

    def call(self, what: str, api: str, fn: Callable[[], Any], command: str | None = None,
             ok_codes: tuple[int, ...] = ()) -> Any: ...

    @property
    def project_id(self) -> str | None: ...

    def close(self) -> None: ...


class NodeCommands(Protocol):
    """The SSH side: commands and files on the lab's nodes, by node name (labtui.adapters.ssh.NodeSSH)."""

    def run(self, node: str, command: str, *, sudo: bool = False, timeout: float | None = None,
            step: str | None = None, stream: bool = True, announce: bool = False, display: str | None = None,
            input: bytes | str | None = None, check: bool = False,
            cancel: threading.Event | None = None) -> RunResult: ...

    def put(self, node: str, data: bytes | str | Path, remote_path: str, *, mode: int = 0o644,
            sudo: bool = False) -> None: ...

    def get(self, node: str, remote_path: str, *, sudo: bool = False, local_path: Path | None = None) -> bytes: ...

    def fan_out(self, nodes: Iterable[str], fn: Callable[[str], Any], *,
                max_workers: int | None = None) -> dict[str, NodeResult]: ...

    def forward_local(self, node: str, remote_host: str, remote_port: int, *, local_port: int = 0,
                      bind: str = "127.0.0.1") -> tuple[int, Callable[[], None]]: ...

    def close(self) -> None: ...


class Shell(Protocol):
    """A command runner on one node (the control plane): labtui.adapters.ssh in real use, a simulation
    in tests. `run` must not stream stdout into the event log when `quiet` is set (admin.conf is a secret)."""

    node: str

    def run(self, command: str, *, timeout: float = 30.0, quiet: bool = False) -> tuple[int, str, str]: ...


class KubeAPI(Protocol):
    """The Kubernetes API side: raw JSON reads and the one patch labtui sends (labtui.adapters.kube.KubeClient)."""

    @property
    def server(self) -> str: ...

    def connect(self) -> None: ...

    def version(self) -> dict[str, Any]: ...

    def list_nodes(self) -> list[dict[str, Any]]: ...

    def list_pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]: ...

    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list_daemonsets(self) -> list[dict[str, Any]]: ...

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def get_custom(self, group: str, version: str, plural: str, name: str) -> dict[str, Any] | None: ...

    def list_custom(self, group: str, version: str, plural: str) -> list[dict[str, Any]] | None: ...

    def served(self, group: str, version: str) -> tuple[bool, str | None]: ...

    def patch_custom(self, group: str, version: str, plural: str, name: str, body: Any,
                     content_type: str) -> dict[str, Any]: ...

    def close(self) -> None: ...


class CalicoAPI(Protocol):
    """The Calico side, over one cluster's API: read the cluster's Calico state and a pool, apply a
    planned pool-mode change (labtui.adapters.calico.Calico)."""

    def read_cluster(self) -> ClusterState: ...

    def read_pool(self, state: ClusterState, name: str) -> IPPoolInfo | None: ...

    def apply_change(self, state: ClusterState, change: ModeChange, *, shell: Shell | None = None,
                     accept_warning: bool = False, emit: Callable[[Event], None] | None = None,
                     wait_timeout: float = 90.0, poll: float = 1.0, revert: bool = False) -> IPPoolInfo: ...
