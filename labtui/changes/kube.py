"""The cluster build's changes: container runtime, Kubernetes packages, kubeadm init and join,
Calico's install. All are commands on nodes over SSH, each with its idempotence check.

The per-node kinds (`kube.containerd`, `kube.packages`, `kube.join`) take the list of nodes in
`action.data["nodes"]` and work them in parallel (the wall time is the slowest node's, not the
sum): a node already so is skipped; one node failing does not stop the others. The change records
the nodes that changed (its target and revert data), and its verification names the nodes that
failed, so the step stops with a clear message and a re-run retries only those.

Secrets: the bootstrap token exists only in memory for the join (`kubeadm token create
--print-join-command` runs quiet), commands are shown with `<token>`, streamed output goes through
the redacting event bus, and no result carries kubeadm's raw output.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from pathlib import Path
from typing import Any

from labtui.adapters.interfaces import NodeCommands
from labtui.adapters.ssh import session_ssh
from labtui.changes import Applied, AppliedThenFailed, ChangeKind, FailedCleanly, register
from labtui.cluster import apt, containerd as ctd, kubeadm as kadm
from labtui.cluster.calico import edit_manifest
from labtui.errors import LabError
from labtui.model import DEFAULT_DOCKER_REPO, DEFAULT_KUBERNETES_REPO
from labtui.redact import redact
from labtui.steps import StepContext

ADMIN = "/etc/kubernetes/admin.conf"
KUBECTL = f"kubectl --kubeconfig {ADMIN}"
CALICO_DIR = "/etc/kubernetes/labtui-calico"
CRI = f"crictl --runtime-endpoint {ctd.CRI_SOCKET}"


def _ssh(ctx: StepContext) -> NodeCommands:
    return session_ssh(ctx)


def _failure(node: str, what: str, res: Any) -> LabError:
    """A failed node command as a LabError, with kubeadm's preflight errors explained."""
    text = (res.stdout or "") + "\n" + (res.stderr or "")
    errors = kadm.preflight_errors(text)
    if errors:
        return LabError(f"{node}: {what}: kubeadm's preflight found {len(errors)} problem(s):\n"
                        + "\n".join(e.render() for e in errors),
                        "fix each one as said, then run the step again", code="kubeadm-preflight")
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), f"exit code {res.exit_code}")
    return LabError(f"{node}: {what} failed (exit {res.exit_code}): {redact(last)}",
                    "the command's output is in the command log", code="command-failed")


class NodeLeft(LabError):
    """A node's change failed after it had changed the node: `value` is that node's revert data
    (what `node_revert_command` undoes), `left` says what is there. The fan-out records it."""

    def __init__(self, error: LabError, value: dict[str, Any], left: str) -> None:
        super().__init__(f"{error.message} (it left: {left}; recorded with its revert)", error.hint, code=error.code)
        self.value = value
        self.left = left


def _state_lines(ctx: Any, node: str, command: str) -> list[str] | None:
    """The output of a read-only state command, or None when it cannot be read."""
    try:
        res = _ssh(ctx).run(node, command, sudo=True, timeout=60.0, stream=False)
    except LabError:
        return None
    return [ln.rstrip() for ln in res.stdout.splitlines() if ln.strip()] if res.exit_code == 0 else None


def _seen(ctx: Any, action: Any) -> dict[str, tuple[float, bool]]:
    """This run's per-node check results for one action: {node: (monotonic time, done)}."""
    with _SEEN_LOCK:
        seen: dict[str, tuple[float, bool]] = ctx.memo.bucket("kube_seen").setdefault(id(action), {})
        return seen


_SEEN_LOCK = threading.Lock()


class FanOut(ChangeKind):
    """A change made on several nodes in parallel (see the module's doc)."""

    layer = "kube"
    what = "change"

    def node_done(self, ctx: Any, node: str, action: Any) -> bool:
        raise NotImplementedError

    def node_run(self, ctx: Any, node: str, action: Any) -> dict[str, Any]:
        raise NotImplementedError

    def node_revert_command(self, node: str, data: dict[str, Any]) -> str | None:
        return None

    # A node's check, read once for `applied()` (which the executor asks just before `run`) and
    # reused by `run` when it is that fresh: each check is an SSH round trip and several commands.
    FRESH = 5.0

    def _states(self, ctx: Any, action: Any) -> dict[str, Any]:
        seen = _seen(ctx, action)

        def one(n: str) -> bool:
            done = self.node_done(ctx, n, action)
            seen[n] = (time.monotonic(), done)
            return done

        return _ssh(ctx).fan_out(action.data["nodes"], one)

    def applied(self, ctx: Any, action: Any) -> bool | None:
        states = self._states(ctx, action)
        if any(not r.ok for r in states.values()):
            return None
        return all(r.value for r in states.values())

    def run(self, ctx: Any, action: Any) -> Applied:
        ssh = _ssh(ctx)
        seen = _seen(ctx, action)

        def one(node: str) -> dict[str, Any] | None:
            at, done = seen.pop(node, (0.0, False))
            if time.monotonic() - at > self.FRESH:
                done = self.node_done(ctx, node, action)
            if done:
                return None
            return self.node_run(ctx, node, action)

        results = ssh.fan_out(action.data["nodes"], one)
        # a node that failed after changing itself (NodeLeft) is recorded like a changed one
        partial = {n: r.error for n, r in results.items() if not r.ok and isinstance(r.error, NodeLeft)}
        values = {n: (partial[n].value if n in partial else r.value) for n, r in results.items()
                  if n in partial or (r.ok and r.value is not None)}
        changed = list(values)
        failed = {n: r.error.render() if r.error else "failed" for n, r in results.items() if not r.ok}
        if failed and not changed:
            msgs = [r.error for r in results.values() if not r.ok and r.error]
            if len(msgs) == 1:
                raise msgs[0]
            error = LabError("; ".join(m.message for m in msgs),
                             "fix what each node's message says, then run the step again", code="nodes-failed")
            if msgs and all(isinstance(m, FailedCleanly) for m in msgs):  # each node checked it left nothing
                raise FailedCleanly(error, "; ".join(m.checked for m in msgs))  # type: ignore[attr-defined]
            raise error
        if not changed:
            return Applied(False, note="already so on every node")
        note = ("; failed on " + ", ".join(sorted(failed))) if failed else ""
        return Applied(True, revert_data={"nodes": changed, **values},
                       result={"nodes": [n for n in changed if n not in partial], "failed": failed,
                               "partial": {n: e.left for n, e in partial.items()}},
                       revert_command=self._revert_text(changed, values), target=", ".join(changed), note=note)

    def _revert_text(self, nodes: list[str], values: dict[str, Any]) -> str | None:
        parts = [f"ssh {n} sudo sh -c {shlex.quote(c)}" for n in nodes
                 if (c := self.node_revert_command(n, values[n] or {}))]
        return "; ".join(parts) or None

    def verify(self, ctx: Any, action: Any, applied: Applied) -> str | None:
        failed = (applied.result or {}).get("failed") or {}
        if failed:
            done = applied.result.get("nodes") or []
            return (f"{self.what}: " + (f"done on {', '.join(done)}; " if done else "") + "failed on "
                    + "; ".join(f"{msg}" for msg in failed.values())
                    + ". Run the step again: it retries only the failed node(s)")
        return None

    def revert(self, ctx: Any, change: Any) -> str:
        data = change.revert_data or {}
        nodes = data.get("nodes") or []
        ssh = _ssh(ctx)

        def one(node: str) -> None:
            cmd = self.node_revert_command(node, data.get(node) or {})
            if cmd:
                ssh.run(node, cmd, sudo=True, timeout=600.0).check(f"revert {change.description}")

        results = ssh.fan_out(nodes, one)
        bad = [r.error.message for r in results.values() if not r.ok and r.error]
        if bad:
            raise LabError("; ".join(bad), "undo it by hand on those nodes", code="revert-failed")
        return "reverted on " + ", ".join(nodes)


# --------------------------------------------------------------------------- container runtime

# Does the CRI answer? crictl when it is there and works, else containerd's own ctr, which every
# containerd package ships: its `plugins ls` says whether the CRI plugin (type io.containerd.grpc.v1,
# id cri: containerd plugins/cri/cri.go) loaded ("ok") or not ("error"/"skip") (cmd/ctr/commands/
# plugins/plugins.go). crictl comes only with cri-tools, which the next step installs.
CRI_ANSWERS = (f"{{ {CRI} info >/dev/null 2>&1 || ctr --address {ctd.SOCKET_PATH} plugins ls 2>/dev/null "
               "| awk '$1==\"io.containerd.grpc.v1\" && $2==\"cri\" {print $4}' | grep -qx ok; }")


def containerd_files(data: dict[str, Any]) -> dict[str, str | None]:
    """{path: content} of the files around config.toml the plan wants (None: must be absent)."""
    files: dict[str, str | None] = dict(ctd.hosts_files(data.get("mirror")))
    files[ctd.PROXY_DROPIN] = ctd.proxy_dropin(data.get("proxy"))
    return files


def _status_command(files: dict[str, str | None]) -> str:
    parts = [f"containerd --version 2>/dev/null | head -n 1; echo @@config; cat {ctd.CONFIG_PATH} 2>/dev/null; "
             f"echo @@active; systemctl is-active containerd 2>/dev/null; echo @@cri; "
             f"{CRI_ANSWERS} && echo ok"]
    for path in files:
        parts.append(f"echo @@file {shlex.quote(path)}; cat {shlex.quote(path)} 2>/dev/null")
    return "; ".join(parts)


def _have_version(line: str) -> tuple[int, int]:
    for word in line.split():
        if apt.version_tuple(word) != (0, 0):
            return apt.version_tuple(word)
    return (0, 0)


def containerd_problems(ctx: Any, node: str, minor: str, pause: str, data: dict[str, Any] | None = None) -> list[str]:
    """What keeps containerd on `node` from serving kubeadm as the plan wants it (empty: ready)."""
    data = data or {}
    files = containerd_files(data)
    res = _ssh(ctx).run(node, _status_command(files), sudo=True, timeout=60.0, stream=False)
    head, _, rest = res.stdout.partition("@@config\n")
    config, _, rest = rest.partition("@@active\n")
    active, _, rest = rest.partition("@@cri\n")
    cri, *chunks = rest.split("@@file ")
    version = head.strip()
    if not version:
        return ["containerd is not installed"]
    have = _have_version(version)
    out = []
    if have < apt.containerd_needed(minor):
        out.append(f"containerd {have[0]}.{have[1]} is too old for Kubernetes {minor}")
    if not config.strip():
        out.append(f"{ctd.CONFIG_PATH} is missing")
    else:
        out += ctd.problems(config, pause, registry_config_path=ctd.CERTS_DIR if data.get("mirror") else None)
    seen = {}
    for chunk in chunks:
        path, _, content = chunk.partition("\n")
        seen[path.strip()] = content
    for path, want in files.items():
        got = seen.get(path, "")
        if want is None and got.strip():
            out.append(f"{path} is there but the plan has no proxy")
        elif want is not None and got.strip() != want.strip():
            out.append(f"{path} is {'missing' if not got.strip() else 'not what the plan says'}")
    if active.strip() != "active":
        out.append("containerd is not running")
    elif cri.strip() != "ok":
        out.append("the CRI socket does not answer")
    return out


@register
class Containerd(FanOut):
    kind = "kube.containerd"
    what = "container runtime"

    def node_done(self, ctx: Any, node: str, action: Any) -> bool:
        d = action.data
        problems = containerd_problems(ctx, node, d["minor"], d["pause"], d)
        with _SEEN_LOCK:
            ctx.memo.bucket("kube_containerd")[node] = problems
        return not problems

    def _install(self, ctx: Any, node: str, d: dict[str, Any]) -> str:
        """containerd from the distribution when apt's candidate is new enough, else Docker's
        containerd.io; `containerd --version` read again after, falling back to Docker once."""
        ssh = _ssh(ctx)
        step, proxy = d.get("step"), d.get("proxy")
        policy = ssh.run(node, apt.containerd_policy_script(proxy), sudo=True, timeout=900.0, stream=False)
        if policy.exit_code != 0:
            raise _failure(node, "apt-cache policy containerd", policy)
        candidate = apt.policy_candidate(policy.stdout)
        source = apt.containerd_source(candidate, d["minor"])
        ctx.info(f"{node}: apt's containerd candidate is {candidate or '(none)'}: installing "
                 + ("it" if source == "distribution" else "containerd.io from Docker's repository"),
                 node=node, step=step)
        for attempt in (source, "docker"):
            script = apt.containerd_install_script(attempt, d["os"].get(node, "ubuntu"),
                                                   docker_repo=d.get("docker_repo") or DEFAULT_DOCKER_REPO,
                                                   proxy=proxy)
            res = ssh.run(node, script, sudo=True, timeout=1200.0, step=step)
            if res.exit_code != 0:
                raise _failure(node, "installing containerd", res)
            ver = ssh.run(node, "containerd --version", sudo=True, timeout=60.0, stream=False)
            have = _have_version(ver.stdout)
            if have >= apt.containerd_needed(d["minor"]):
                return attempt
            if attempt == "docker":
                break
            ctx.warn(f"{node}: the distribution's containerd is {have[0]}.{have[1]} after all: trying Docker's",
                     node=node, step=step)
        raise LabError(f"{node}: containerd is still older than {'.'.join(map(str, apt.containerd_needed(d['minor'])))} "
                       f"after the install", "look at the node's apt sources (a mirror without containerd.io 2.x?)",
                       code="containerd-version")

    def node_run(self, ctx: Any, node: str, action: Any) -> dict[str, Any]:
        ssh = _ssh(ctx)
        d = action.data
        step = d.get("step")
        # cloud-init's runcmd may still be installing containerd and writing its config: wait first
        wait = ssh.run(node, apt.CLOUD_INIT_WAIT, sudo=True, timeout=1800.0, stream=False)
        if wait.exit_code != 0:
            raise _failure(node, "waiting for cloud-init", wait)
        with _SEEN_LOCK:
            problems = ctx.memo.bucket("kube_containerd").pop(node, None)
        if problems is None:
            problems = containerd_problems(ctx, node, d["minor"], d["pause"], d)
        if any("not installed" in p or "too old" in p for p in problems):
            self._install(ctx, node, d)
        default = ssh.run(node, "containerd config default", sudo=True, timeout=60.0, stream=False)
        if default.exit_code != 0:
            raise _failure(node, "containerd config default", default)
        config = ctd.edit_config(default.stdout, d["pause"],
                                 registry_config_path=ctd.CERTS_DIR if d.get("mirror") else None)
        backup = ssh.run(node, f"mkdir -p /etc/containerd && if [ -f {ctd.CONFIG_PATH} ] && [ ! -f {ctd.CONFIG_PATH}.labtui-bak ]; "
                               f"then cp -p {ctd.CONFIG_PATH} {ctd.CONFIG_PATH}.labtui-bak && echo saved; fi",
                         sudo=True, timeout=60.0, stream=False)
        backup.check("saving containerd's config")
        written: list[str] = []
        saved = {"backup": "saved" in backup.stdout, "files": written}
        try:  # from here on the node is changed: a failure is recorded with its revert (NodeLeft)
            ssh.put(node, config, ctd.CONFIG_PATH, mode=0o644, sudo=True)
            for path, content in containerd_files(d).items():
                if content is None:
                    ssh.run(node, f"rm -f {shlex.quote(path)}", sudo=True, timeout=60.0, stream=False).check(f"rm {path}")
                    continue
                ssh.run(node, f"mkdir -p {shlex.quote(path.rsplit('/', 1)[0])}", sudo=True, timeout=60.0,
                        stream=False).check(f"mkdir for {path}")
                ssh.put(node, content, path, mode=0o644, sudo=True)
                written.append(path)
            res = ssh.run(node, f"systemctl daemon-reload && systemctl restart containerd && systemctl enable containerd "
                                f"&& {CRI_ANSWERS}", sudo=True, timeout=300.0, step=step)
            if res.exit_code != 0:
                raise _failure(node, "restarting containerd (and asking its CRI plugin)", res)
        except LabError as exc:
            left = f"labtui's {ctd.CONFIG_PATH}" + (f" (the old one saved as {ctd.CONFIG_PATH}.labtui-bak)"
                                                     if saved["backup"] else "")
            if written:
                left += ", " + ", ".join(written)
            raise NodeLeft(exc, saved, left) from exc
        return saved

    def node_revert_command(self, node: str, data: dict[str, Any]) -> str | None:
        restore = (f"mv {ctd.CONFIG_PATH}.labtui-bak {ctd.CONFIG_PATH}" if data.get("backup")
                   else f"rm -f {ctd.CONFIG_PATH}")
        files = " ".join(shlex.quote(f) for f in data.get("files") or [])
        return f"{restore}" + (f" && rm -f {files}" if files else "") + " && systemctl daemon-reload && systemctl restart containerd"


# --------------------------------------------------------------------------- packages


@register
class Packages(FanOut):
    kind = "kube.packages"
    what = "kubeadm, kubelet, kubectl"

    def node_done(self, ctx: Any, node: str, action: Any) -> bool:
        res = _ssh(ctx).run(node, apt.installed_check(action.data["minor"]), sudo=True, timeout=60.0, stream=False)
        return res.exit_code == 0

    def node_run(self, ctx: Any, node: str, action: Any) -> dict[str, Any]:
        d = action.data
        script = apt.install_script(d["minor"], repo=d.get("repo") or DEFAULT_KUBERNETES_REPO, proxy=d.get("proxy"))
        before = _state_lines(ctx, node, apt.packages_state())
        res = _ssh(ctx).run(node, script, sudo=True, timeout=1800.0, step=d.get("step"))
        if res.exit_code != 0:
            error = _failure(node, f"installing kubeadm, kubelet and kubectl {action.data['minor']}", res)
            after = _state_lines(ctx, node, apt.packages_state()) if before is not None else None
            if after is None:  # cannot tell: say so, and the revert to run if needed
                raise LabError(error.message + "; labtui could not tell whether it installed part of them",
                               f"undo it if needed: ssh {node} sudo sh -c {shlex.quote(apt.remove_script())}",
                               code=error.code)
            assert before is not None  # after is read only when before was
            left = [ln for ln in after if ln not in before]
            if left or len(after) != len(before):
                raise NodeLeft(error, {}, "; ".join(left) or "a package or file was removed")
            raise FailedCleanly(error, f"nothing was left on {node} (checked: its packages, holds and apt source "
                                       "read as before)")
        return {}

    def node_revert_command(self, node: str, data: dict[str, Any]) -> str | None:
        return apt.remove_script()


# --------------------------------------------------------------------------- kubeadm init / reset

INIT_STATUS = (f"ls /etc/kubernetes/manifests 2>/dev/null | tr '\\n' ' '; echo; "
               f"[ -f {ADMIN} ] && echo admin; "
               f"[ -f {ADMIN} ] && {KUBECTL} get nodes -o name >/dev/null 2>&1 && echo api")


def control_plane_state(ctx: Any, node: str) -> str:
    """'ready' (init done, API answers), 'half' (files of an init but no API), 'fresh'."""
    res = _ssh(ctx).run(node, INIT_STATUS, sudo=True, timeout=60.0, stream=False)
    lines = res.stdout.splitlines()
    manifests = lines[0].split() if lines else []
    if "api" in lines:
        return "ready"
    if manifests or "admin" in lines:
        return "half"
    return "fresh"


@register
class Init(ChangeKind):
    kind = "kube.init"
    layer = "kube"

    def applied(self, ctx: Any, action: Any) -> bool | None:
        return control_plane_state(ctx, action.data["node"]) == "ready"

    def run(self, ctx: Any, action: Any) -> Applied:
        ssh = _ssh(ctx)
        node = action.data["node"]
        ssh.run(node, "mkdir -p /etc/kubernetes", sudo=True, timeout=60.0, stream=False).check("mkdir /etc/kubernetes")
        ssh.put(node, action.data["config"], kadm.CONFIG_PATH, mode=0o600, sudo=True)
        res = ssh.run(node, f"kubeadm init --config {kadm.CONFIG_PATH}", sudo=True, timeout=1200.0,
                      step=action.data.get("step"))
        if res.exit_code != 0:
            raise _failure(node, "kubeadm init", res)
        join = kadm.worker_join(res.stdout)
        return Applied(True, revert_data={"node": node}, target=node,
                       result={"endpoint": join.endpoint if join else None,
                               "discovery_hash": join.ca_hash if join else None})

    def verify(self, ctx: Any, action: Any, applied: Applied) -> str | None:
        if control_plane_state(ctx, action.data["node"]) != "ready":
            return f"{action.data['node']}: kubeadm init finished but the API does not answer `kubectl get nodes`"
        return None

    def revert(self, ctx: Any, change: Any) -> str:
        node = (change.revert_data or {}).get("node") or change.target
        _ssh(ctx).run(node, "kubeadm reset -f", sudo=True, timeout=600.0).check("kubeadm reset")
        return f"kubeadm reset on {node}"


@register
class Reset(ChangeKind):
    """`kubeadm reset -f` on a node a previous init or join left half-done (confirmed: destructive)."""

    kind = "kube.reset"
    layer = "kube"
    revertible = False

    def applied(self, ctx: Any, action: Any) -> bool | None:
        return control_plane_state(ctx, action.data["node"]) == "fresh"

    def run(self, ctx: Any, action: Any) -> Applied:
        node = action.data["node"]
        res = _ssh(ctx).run(node, "kubeadm reset -f", sudo=True, timeout=600.0, step=action.data.get("step"))
        if res.exit_code != 0:
            raise _failure(node, "kubeadm reset", res)
        return Applied(True, target=node, note="the node's cluster state was wiped")

    def verify(self, ctx: Any, action: Any, applied: Applied) -> str | None:
        return None

    def revert(self, ctx: Any, change: Any) -> str:
        raise LabError(f"change #{change.id} (kubeadm reset on {change.target}) cannot be undone",
                       "run kubeadm init again (the Kubernetes stage does)", code="no-revert")


# --------------------------------------------------------------------------- join

_JOIN_LOCK = threading.Lock()
_EXPIRED_MARKERS = ("could not find a JWS signature", "token id", "has expired", "invalid bootstrap token")


def cluster_nodes(ctx: Any, cp: str) -> dict[str, bool]:
    """{node name: Ready} as the control plane's kubectl sees them."""
    res = _ssh(ctx).run(cp, f"{KUBECTL} get nodes -o json", sudo=True, timeout=60.0, stream=False)
    if res.exit_code != 0:
        raise _failure(cp, "kubectl get nodes", res)
    try:
        items = json.loads(res.stdout).get("items", [])
    except ValueError:
        raise LabError(f"{cp}: kubectl get nodes printed no JSON", "look at the control plane", code="kubectl") from None
    out = {}
    for it in items:
        conds = {c.get("type"): c.get("status") for c in it.get("status", {}).get("conditions", [])}
        out[it["metadata"]["name"]] = conds.get("Ready") == "True"
    return out


def _join_cache(ctx: Any) -> dict[str, Any]:
    """The join command, in memory for this run only (it holds the token)."""
    with _JOIN_LOCK:
        cache: dict[str, Any] = ctx.memo.bucket("kube_join")
        return cache


def join_command(ctx: Any, cp: str, *, fresh: bool = False) -> kadm.JoinCommand:
    cache = _join_cache(ctx)
    with _JOIN_LOCK:
        if not fresh and cache.get("join"):
            cached: kadm.JoinCommand = cache["join"]
            return cached
        res = _ssh(ctx).run(cp, "kubeadm token create --print-join-command", sudo=True, timeout=120.0, stream=False)
        if res.exit_code != 0:
            raise _failure(cp, "kubeadm token create", res)
        join = kadm.worker_join(res.stdout)
        if join is None:
            raise LabError(f"{cp}: kubeadm token create printed no join command", "run it by hand to see why",
                           code="kubeadm")
        cache["join"] = join
        return join


@register
class Join(FanOut):
    kind = "kube.join"
    what = "join"

    def applied(self, ctx: Any, action: Any) -> bool | None:
        registered = cluster_nodes(ctx, action.data["control_plane"])
        return all(n in registered for n in action.data["nodes"])

    def node_done(self, ctx: Any, node: str, action: Any) -> bool:
        return node in cluster_nodes(ctx, action.data["control_plane"])

    def node_run(self, ctx: Any, node: str, action: Any) -> dict[str, Any]:
        """The token never goes on a command line (sudo logs those): kubeadm reads it from a
        JoinConfiguration file written over SFTP (0600, `install -m 600` under sudo) and removed
        right after, whatever kubeadm's exit."""
        ssh = _ssh(ctx)
        cp = action.data["control_plane"]
        step = action.data.get("step")
        join = join_command(ctx, cp)
        for attempt in (1, 2):
            ctx.info(f"$ ssh {node} sudo kubeadm join --config {kadm.JOIN_CONFIG_PATH}   # {join.shown()} "
                     f"--node-name {node}, the token in the 0600 file (removed after)", node=node, step=step)
            ssh.run(node, "mkdir -p /etc/kubernetes", sudo=True, timeout=60.0, stream=False).check("mkdir /etc/kubernetes")
            ssh.put(node, kadm.join_config(join, node), kadm.JOIN_CONFIG_PATH, mode=0o600, sudo=True)
            res = ssh.run(node, f"kubeadm join --config {kadm.JOIN_CONFIG_PATH}; rc=$?; rm -f {kadm.JOIN_CONFIG_PATH}; "
                                f"exit $rc", sudo=True, timeout=900.0, step=step)
            if res.exit_code == 0:
                return {"control_plane": cp}
            text = (res.stdout + res.stderr).lower()
            if attempt == 1 and any(m.lower() in text for m in _EXPIRED_MARKERS):
                ctx.warn(f"{node}: the bootstrap token was refused (expired or deleted): creating a new one",
                         node=node, step=action.data.get("step"))
                join = join_command(ctx, cp, fresh=True)
                continue
            raise _failure(node, "kubeadm join", res)
        raise AssertionError("unreachable")

    def node_revert_command(self, node: str, data: dict[str, Any]) -> str | None:
        return "kubeadm reset -f"

    def revert(self, ctx: Any, change: Any) -> str:
        """`kubeadm reset -f` on each worker, then its Node object deleted on the control plane."""
        said = super().revert(ctx, change)
        data = change.revert_data or {}
        nodes = data.get("nodes") or []
        cp = next((data[n].get("control_plane") for n in nodes if isinstance(data.get(n), dict)), None)
        if cp and nodes:
            res = _ssh(ctx).run(cp, f"{KUBECTL} delete node --ignore-not-found " + " ".join(map(shlex.quote, nodes)),
                                sudo=True, timeout=120.0)
            if res.exit_code != 0:
                ctx.warn(f"{cp}: could not delete the Node objects of {', '.join(nodes)}: {redact(res.stderr.strip())}")
            else:
                said += f"; their Node objects deleted on {cp}"
        return said


# --------------------------------------------------------------------------- Calico


@register
class CalicoInstall(ChangeKind):
    """Calico through the operator (tigera-operator + Installation) or as calico.yaml, applied with
    the control plane's kubectl. The files go to CALICO_DIR on the control plane: downloaded there
    from Calico's release URL, or uploaded from the user's file."""

    kind = "kube.calico-install"
    layer = "calico"

    def applied(self, ctx: Any, action: Any) -> bool | None:
        return calico_installed(ctx, action.data["node"]) is not None

    def run(self, ctx: Any, action: Any) -> Applied:
        ssh = _ssh(ctx)
        d = action.data
        node, step = d["node"], d.get("step")
        ssh.run(node, f"mkdir -p {CALICO_DIR}", sudo=True, timeout=60.0, stream=False).check("mkdir " + CALICO_DIR)
        files: list[str] = []
        for item in d["files"]:
            dest = f"{CALICO_DIR}/{item['name']}"
            if item.get("content") is not None:
                ssh.put(node, item["content"], dest, mode=0o644, sudo=True)
            elif item.get("local"):
                ssh.put(node, Path(item["local"]), dest, mode=0o644, sudo=True)
            else:
                proxy = d.get("proxy")
                via = f" -x {shlex.quote(proxy['http_proxy'])} --noproxy {shlex.quote(proxy['no_proxy'])}" if proxy else ""
                res = ssh.run(node, f"curl -fsSL{via} {shlex.quote(item['url'])} -o {dest}", sudo=True, timeout=300.0,
                              step=step)
                if res.exit_code != 0:
                    raise LabError(f"{node}: cannot download {item['url']}: {redact(res.stderr.strip()[-200:])}",
                                   "a control plane without internet: give the file with --calico-manifest FILE "
                                   "(labtui uploads it)", code="download")
            if item.get("edit"):
                raw = ssh.get(node, dest, sudo=True)
                ssh.put(node, edit_manifest(raw.decode(), d["pod_cidr"], d["encapsulation"]), dest, mode=0o644, sudo=True)
            files.append(dest)
        def applied(sent: list[str], note: str = "") -> Applied:
            return Applied(True, revert_data={"node": node, "files": sent}, target=node, note=note,
                           revert_command=f"ssh {node} sudo sh -c '" + "; ".join(
                               f"{KUBECTL} delete --ignore-not-found -f {f}" for f in reversed(sent)) + "'")

        verb = "create" if d["mode"] == "operator" else "apply"
        for i, dest in enumerate(files):
            res = ssh.run(node, f"{KUBECTL} {verb} -f {dest}", sudo=True, timeout=300.0, step=step)
            if res.exit_code != 0 and "AlreadyExists" not in res.stderr:
                error = _failure(node, f"kubectl {verb} -f {dest}", res)
                # kubectl creates a manifest's objects one by one: this file may be partly in the
                # cluster, the ones before it are: recorded with their delete
                sent = files[:i + 1]
                left = ", ".join(sent[:-1]) + (" and " if i else "") + f"part of {dest} may be"
                raise AppliedThenFailed(LabError(f"{error.message} ({left} in the cluster)", error.hint,
                                                 code=error.code), applied(sent, "failed halfway"))
        return applied(files)

    def verify(self, ctx: Any, action: Any, applied: Applied) -> str | None:
        if calico_installed(ctx, action.data["node"]) is None:
            return "Calico's objects are not in the cluster after kubectl create"
        return None

    def revert(self, ctx: Any, change: Any) -> str:
        data = change.revert_data or {}
        ssh = _ssh(ctx)
        for f in reversed(data.get("files") or []):
            ssh.run(data["node"], f"{KUBECTL} delete --ignore-not-found -f {f}", sudo=True, timeout=300.0)
        return "Calico's objects deleted"


def calico_installed(ctx: Any, cp: str) -> str | None:
    """'operator' / 'manifest' when Calico is installed (as the control plane's kubectl sees it), else None."""
    res = _ssh(ctx).run(cp, f"{KUBECTL} get installation default -o json >/dev/null 2>&1 && echo operator; "
                            f"{KUBECTL} get daemonset calico-node -n kube-system -o json >/dev/null 2>&1 && echo manifest",
                        sudo=True, timeout=60.0, stream=False)
    words = res.stdout.split()
    return "operator" if "operator" in words else ("manifest" if "manifest" in words else None)


def calico_pods(ctx: Any, cp: str) -> list[dict[str, Any]]:
    """calico-node pods: [{node, ready, reason, message}]."""
    res = _ssh(ctx).run(cp, f"{KUBECTL} get pods -A -l k8s-app=calico-node -o json", sudo=True, timeout=60.0, stream=False)
    if res.exit_code != 0:
        raise _failure(cp, "kubectl get pods", res)
    try:
        items = json.loads(res.stdout).get("items", [])
    except ValueError:
        raise LabError(f"{cp}: kubectl get pods printed no JSON", "look at the control plane", code="kubectl") from None
    out = []
    for it in items:
        status = it.get("status", {})
        reason = message = ""
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
        for cs in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
            waiting = (cs.get("state") or {}).get("waiting")
            if waiting:
                reason, message = waiting.get("reason", ""), waiting.get("message", "")
                break
        out.append({"pod": it["metadata"]["name"], "namespace": it["metadata"].get("namespace"),
                    "node": it.get("spec", {}).get("nodeName"), "ready": ready, "reason": reason, "message": message})
    return out
