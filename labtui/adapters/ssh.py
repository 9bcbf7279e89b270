"""SSH to the lab nodes the way a careful admin would (paramiko, imported lazily).

`NodeSSH` is the one object that talks SSH for a session:

* Where to connect: the plan's node settings merged with `~/.ssh/config` (HostName, User, Port,
  IdentityFile, IdentitiesOnly, ProxyJump, ProxyCommand, HostKeyAlias). A ProxyJump hop is
  reached through a `direct-tcpip` channel on the previous hop's transport (one shared
  connection per jump host, like OpenSSH's ControlMaster).
* How to log in: key files from the plan and the config (a passphrase is asked through the
  `passphrase` callback, kept only in memory, never stored), then the ssh-agent, then the
  default `~/.ssh/id_*` keys.
* Host keys: labtui's own known_hosts (`paths.known_hosts_path()`) plus the user's
  `~/.ssh/known_hosts` (read-only, never written). An unknown key goes to the `host_key_decider`
  callback (the UI shows the SHA256 fingerprint; headless refuses unless
  `--accept-new-host-keys`). A changed key is always refused ("was this VM rebuilt?") until the
  user explicitly replaces it (`replace_host_key`). Nothing is ever accepted silently.
* Commands: stdout and stderr streamed into the event channel as complete lines (ACTION_OUTPUT
  events with node and stream; one event per received chunk, so output that trickles in arrives
  line by line and bulk output in batches of lines, `data["lines"]` > 1), exit code and duration
  in a `RunResult`, sudo for non-root users
  (passwordless sudo detected; a sudo that wants a password stops with a clear message), a
  timeout on everything.
* SFTP get/put, a local port forward, and a bounded parallel fan-out with per-node results.

Every failure is a `LabError` whose message names the node and says what went wrong.
"""

from __future__ import annotations

import codecs
import os
import select
import shlex
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

from labtui import events as ev
from labtui.adapters.interfaces import LabContext
from labtui.adapters.sshconnect import SSHConnections
from labtui.adapters.sshkeys import (
    MAX_CAPTURE,
    SUDO_PASSWORD_MARKERS,
    Endpoint,
    HostKeyChanged,
    HostKeyUnknown,
    NodeResult,
    NodeStatus,
    RunResult,
    close_quietly,
    short,
    shown_command,
)
from labtui.errors import LabError
from labtui.events import Event
from labtui.model import NodeSpec
from labtui.paths import known_hosts_path, write_private


# --------------------------------------------------------------------------- the adapter


class NodeSSH(SSHConnections):
    """SSH access to a set of nodes; thread-safe; connections are reused per node."""

    def run(
        self,
        node: str,
        command: str,
        *,
        sudo: bool = False,
        timeout: float | None = None,
        step: str | None = None,
        stream: bool = True,
        announce: bool = False,
        display: str | None = None,  # the whole line to show instead of `ssh NODE 'command'`
        input: bytes | str | None = None,
        check: bool = False,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Run `command` (a shell command line) on `node`. With stream, every output line becomes
        an ACTION_OUTPUT event; with stream=False (secrets) nothing of the output is emitted."""
        timeout = self.command_timeout if timeout is None else timeout
        ep = self.resolve(node)
        use_sudo = False
        remote = command
        if sudo and ep.user != "root":
            self.require_sudo(node)
            use_sudo = True
            remote = "sudo -n -- sh -c " + shlex.quote(command)
        if announce:
            line = display or shown_command(node, command, use_sudo)
            self.emit(Event(ev.ACTION_START, f"$ {line}", step=step, node=node, data={"kind": "ssh"}))
        started = time.monotonic()
        raw = self._exec(node, ep, remote, timeout=timeout, step=step, stream=stream, input=input, cancel=cancel)
        exit_code, out, err = raw
        result = RunResult(node=node, command=command, exit_code=exit_code, stdout=out, stderr=err,
                           duration=time.monotonic() - started, sudo=use_sudo)
        if use_sudo and exit_code == 1 and any(m in err for m in SUDO_PASSWORD_MARKERS):
            self._sudo[node] = "password"
            raise self._sudo_password_error(node, ep)
        if announce:
            kind = ev.ACTION_DONE if exit_code == 0 else ev.ACTION_FAILED
            self.emit(Event(kind, f"exit {exit_code} in {result.duration:.2f}s", step=step, node=node,
                            data={"exit_code": exit_code, "duration": round(result.duration, 3)}))
        if check:
            result.check()
        return result

    def _exec(self, node: str, ep: Endpoint, command: str, *, timeout: float, step: str | None, stream: bool,
              input: bytes | str | None, cancel: threading.Event | None, raw_bytes: bool = False):
        import paramiko

        deadline = time.monotonic() + timeout
        chan = self._open_session(node, ep)
        try:
            chan.settimeout(max(1.0, min(timeout, 30.0)))
            chan.exec_command(command)
            if input is not None:
                chan.sendall(input.encode() if isinstance(input, str) else input)
            chan.shutdown_write()
            outs: dict[str, Any] = {
                "stdout": _Collector(self.emit if stream else None, node, "stdout", step, raw_bytes),
                "stderr": _Collector(self.emit if stream else None, node, "stderr", step, raw_bytes),
            }
            while True:
                while chan.recv_ready():
                    outs["stdout"].feed(chan.recv(65536))
                while chan.recv_stderr_ready():
                    outs["stderr"].feed(chan.recv_stderr(65536))
                if chan.eof_received or chan.closed:
                    if not chan.recv_ready() and not chan.recv_stderr_ready():
                        break
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LabError(
                        f"{node}: `{short(command)}` did not finish within {timeout:.0f} s (stopped)",
                        "it may wait for input or for the network; open a shell on the node to look, or allow more time",
                        code="timeout",
                    )
                if cancel is not None and cancel.is_set():
                    raise LabError(f"{node}: `{short(command)}` was stopped by the user", "run it again when ready", code="cancelled")
                select.select([chan], [], [], min(0.25, remaining))
            remaining = max(0.1, deadline - time.monotonic())
            if not chan.status_event.wait(min(remaining, 10.0)):
                code = -1
            else:
                code = chan.exit_status
            return code, outs["stdout"].finish(), outs["stderr"].finish()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.drop(node)
            raise LabError(f"{node}: the connection broke while running `{short(command)}`: {exc or type(exc).__name__}",
                           "check that the node is up (r re-checks); the command may or may not have run", code="connection") from None
        finally:
            chan.close()

    def _open_session(self, node: str, ep: Endpoint):
        import paramiko

        for attempt in (1, 2):
            t = self._transport_for(ep)
            try:
                return t.open_session(timeout=self.connect_timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self.drop(node)
                if attempt == 2:
                    raise LabError(f"{node}: cannot open a session on {ep.display}: {exc or 'timeout'}",
                                   "the server may limit sessions (MaxSessions) or be overloaded; try again", code="session") from None
        raise AssertionError("unreachable")

    def sudo_mode(self, node: str) -> str:
        """root | nopasswd | password | none (cached per node)."""
        if node in self._sudo:
            return self._sudo[node]
        ep = self.resolve(node)
        if ep.user == "root":
            mode = "root"
        else:
            code, out, err = self._exec(node, ep, "sudo -n true", timeout=min(self.command_timeout, 30), step=None,
                                        stream=False, input=None, cancel=None)
            if code == 0:
                mode = "nopasswd"
            elif any(m in err for m in SUDO_PASSWORD_MARKERS):
                mode = "password"
            else:
                mode = "none"
        self._sudo[node] = mode
        return mode

    def require_sudo(self, node: str) -> None:
        mode = self.sudo_mode(node)
        ep = self.resolve(node)
        if mode == "password":
            raise self._sudo_password_error(node, ep)
        if mode == "none":
            raise LabError(
                f"{node}: {ep.user} may not use sudo (or sudo is not installed) and labtui needs root for this",
                f"connect as a user with sudo rights, or add {ep.user} to the sudo group on {node}",
                code="sudo",
            )

    @staticmethod
    def _sudo_password_error(node: str, ep: Endpoint) -> LabError:
        return LabError(
            f"{node}: sudo for {ep.user} wants a password; labtui never asks for or stores sudo passwords, so it stops here",
            f"allow passwordless sudo for {ep.user} on {node} (as root: echo '{ep.user} ALL=(ALL) NOPASSWD:ALL' > "
            f"/etc/sudoers.d/{ep.user}; cloud images set this up for their default user), or connect as root",
            code="sudo-password",
        )

    # ------------------------------------------------------------------ checks and fan-out
    def check(self, node: str) -> NodeStatus:
        """Connect (or reuse), measure one round trip, detect sudo. Never raises."""
        started = time.monotonic()
        try:
            was = self.connected(node)
            ep = self.resolve(node)
            self._transport_for(ep)
            connect_ms = None if was else (time.monotonic() - started) * 1000
            t0 = time.monotonic()
            code, _, _ = self._exec(node, ep, "true", timeout=min(self.command_timeout, 30), step=None, stream=False,
                                    input=None, cancel=None)
            latency = (time.monotonic() - t0) * 1000
            sudo = self.sudo_mode(node)
            return NodeStatus(node, True, latency_ms=latency, connect_ms=connect_ms, user=ep.user, sudo=sudo)
        except (HostKeyUnknown, HostKeyChanged) as exc:
            return NodeStatus(node, False, error=exc.message, hint=exc.hint or "", code=exc.code, host_key=exc.info)
        except LabError as exc:
            return NodeStatus(node, False, error=exc.message, hint=exc.hint or "", code=exc.code)
        except Exception as exc:  # never a traceback to the user
            import logging

            logging.getLogger("labtui.ssh").warning("check %s", node, exc_info=True)
            return NodeStatus(node, False, error=f"{node}: unexpected error: {exc}", code="error")

    def fan_out(self, nodes: Iterable[str], fn: Callable[[str], Any], *, max_workers: int | None = None) -> dict[str, NodeResult]:
        """Call fn(node) for every node in a bounded pool. Per-node results; nobody waits on a
        slow node beyond that node's own timeouts."""
        names = list(dict.fromkeys(nodes))
        results: dict[str, NodeResult] = {}
        if not names:
            return results

        def one(name: str) -> NodeResult:
            t0 = time.monotonic()
            try:
                return NodeResult(name, True, fn(name), None, time.monotonic() - t0)
            except LabError as exc:
                return NodeResult(name, False, None, exc, time.monotonic() - t0)
            except Exception as exc:
                err = LabError(f"{name}: unexpected error: {type(exc).__name__}: {exc}", "see the command log", code="error")
                return NodeResult(name, False, None, err, time.monotonic() - t0)

        workers = min(len(names), max_workers or self.max_workers)
        if workers == 1:
            return {n: one(n) for n in names}
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="labtui-ssh")
        futures = [pool.submit(one, n) for n in names]
        try:
            pending = set(futures)
            while pending:  # a wait with a timeout: the main thread takes ctrl+c at once
                _done, pending = wait(pending, timeout=0.2)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)  # the caller decides what the nodes still run
            raise
        pool.shutdown(wait=True)
        for future in futures:
            res = future.result()
            results[res.node] = res
        return {n: results[n] for n in names}

    def run_all(self, nodes: Iterable[str], command: str, **kw: Any) -> dict[str, NodeResult]:
        return self.fan_out(nodes, lambda n: self.run(n, command, **kw))

    def check_all(self, nodes: Iterable[str] | None = None) -> dict[str, NodeStatus]:
        res = self.fan_out(list(nodes) if nodes is not None else list(self.nodes), self.check)
        return {n: r.value for n, r in res.items()}

    # ------------------------------------------------------------------ files
    def sftp(self, node: str):
        """A fresh SFTP client on the node's connection (close it when done)."""
        import paramiko

        t = self.transport(node)
        try:
            client = paramiko.SFTPClient.from_transport(t)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise LabError(f"{node}: SFTP is not available: {exc}", "the server needs `Subsystem sftp` in sshd_config", code="sftp") from None
        client.get_channel().settimeout(self.command_timeout)
        return client

    def put(self, node: str, data: bytes | str | Path, remote_path: str, *, mode: int = 0o644, sudo: bool = False) -> None:
        """Upload bytes (or a local file) to remote_path. With sudo (non-root user), the file goes
        to a private temporary file first and is moved into place with `sudo install`."""
        payload = Path(data).read_bytes() if isinstance(data, Path) else (data.encode() if isinstance(data, str) else data)
        ep = self.resolve(node)
        target = remote_path
        if sudo and ep.user != "root":
            self.require_sudo(node)
            target = f"/tmp/.labtui-{os.urandom(6).hex()}"
        try:
            client = self.sftp(node)
            try:
                with client.open(target, "wb") as fh:
                    fh.set_pipelined(True)
                    fh.write(payload)
                client.chmod(target, 0o600 if target != remote_path else mode)
            finally:
                client.close()
        except OSError as exc:
            raise LabError(f"{node}: cannot write {target}: {exc.strerror or exc}",
                           "check the directory exists and the user may write there (or use sudo)", code="sftp") from None
        if target != remote_path:
            cmd = f"install -m {mode:o} -- {shlex.quote(target)} {shlex.quote(remote_path)}; rc=$?; rm -f -- {shlex.quote(target)}; exit $rc"
            self.run(node, cmd, sudo=True, stream=False).check(f"installing {remote_path}")

    def get(self, node: str, remote_path: str, *, sudo: bool = False, local_path: Path | None = None) -> bytes:
        """Download a file. Its content is never emitted (it may be a secret such as admin.conf);
        with local_path it is written 0600."""
        ep = self.resolve(node)
        if sudo and ep.user != "root":
            self.require_sudo(node)
            code, out, err = self._exec(node, ep, "sudo -n cat -- " + shlex.quote(remote_path), timeout=self.command_timeout,
                                        step=None, stream=False, input=None, cancel=None, raw_bytes=True)
            if code != 0:
                raise LabError(f"{node}: cannot read {remote_path}: {err.decode(errors='replace').strip() or f'exit {code}'}",
                               "check the path", code="sftp")
            data = out
        else:
            try:
                client = self.sftp(node)
                try:
                    with client.open(remote_path, "rb") as fh:
                        fh.prefetch()
                        data = fh.read()
                finally:
                    client.close()
            except OSError as exc:
                raise LabError(f"{node}: cannot read {remote_path}: {exc.strerror or exc}",
                               "check the path and the permissions (sudo=True reads root-only files)", code="sftp") from None
        if local_path is not None:
            write_private(Path(local_path), data)
        return data

    # ------------------------------------------------------------------ port forwarding
    def forward_local(self, node: str, remote_host: str, remote_port: int, *, local_port: int = 0,
                      bind: str = "127.0.0.1") -> tuple[int, Callable[[], None]]:
        """Listen on bind:local_port and forward every connection through `node` to
        remote_host:remote_port (like `ssh -L`). Returns (local port, closer)."""
        import paramiko

        self.transport(node)  # fail early with a clear message
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((bind, local_port))
        except OSError as exc:
            listener.close()
            raise LabError(f"cannot listen on {bind}:{local_port} for the tunnel to {node}: {exc.strerror}",
                           "pick another local port (0 lets the system choose)", code="forward") from None
        listener.listen(16)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        stop = threading.Event()
        conns: list[Any] = []

        def pump(client: socket.socket, chan) -> None:
            try:
                while not stop.is_set():
                    r, _, _ = select.select([client, chan], [], [], 0.5)
                    if client in r:
                        data = client.recv(65536)
                        if not data:
                            break
                        chan.sendall(data)
                    if chan in r:
                        data = chan.recv(65536)
                        if not data:
                            break
                        client.sendall(data)
            except (OSError, paramiko.SSHException, EOFError):
                pass
            finally:
                close_quietly(chan)
                close_quietly(client)

        def accept_loop() -> None:
            while not stop.is_set():
                try:
                    client, peer = listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    break
                try:
                    t = self.transport(node)
                    chan = t.open_channel("direct-tcpip", (remote_host, remote_port), peer, timeout=self.connect_timeout)
                except (LabError, paramiko.SSHException, OSError, EOFError) as exc:
                    self.emit(Event(ev.WARN, f"tunnel to {remote_host}:{remote_port} via {node} failed: {getattr(exc, 'message', exc)}", node=node))
                    close_quietly(client)
                    continue
                conns.append((client, chan))
                threading.Thread(target=pump, args=(client, chan), daemon=True, name=f"labtui-fwd-{port}").start()

        thread = threading.Thread(target=accept_loop, daemon=True, name=f"labtui-fwd-{port}")
        thread.start()
        self.emit(Event(ev.INFO, f"tunnel: localhost:{port} -> {remote_host}:{remote_port} via {node} "
                                 f"(ssh -L {port}:{remote_host}:{remote_port} {node})", node=node))

        def closer() -> None:
            if stop.is_set():
                return
            stop.set()
            close_quietly(listener)
            for client, chan in list(conns):
                close_quietly(chan)
                close_quietly(client)
            thread.join(timeout=2)

        with self._lock:
            self._forwards.append(closer)
        return port, closer

    # ------------------------------------------------------------------ system ssh
    def ssh_argv(self, node: str, command: str | None = None, *, tty: bool = True) -> list[str]:
        """The system `ssh` command line for the same connection (ProxyJump and labtui's
        known_hosts included), for "open a shell"."""
        ep = self.resolve(node)
        argv = ["ssh"] + self._ssh_options(ep)
        if tty and command is None:
            argv.append("-t")
        argv.append(ep.host)
        if command is not None:
            argv.append(command)
        return argv

    def _ssh_options(self, ep: Endpoint) -> list[str]:
        files = [self.known_hosts.own, *self.known_hosts.user_files]
        kh = " ".join(f'"{p}"' if " " in str(p) else str(p) for p in files)
        opts = ["-o", f"UserKnownHostsFile={kh}", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={int(self.connect_timeout)}"]
        if self.keepalive:
            opts += ["-o", f"ServerAliveInterval={self.keepalive}"]
        if self.ssh_config_path.exists():
            opts = ["-F", str(self.ssh_config_path)] + opts
        if ep.host_key_alias:
            opts += ["-o", f"HostKeyAlias={ep.host_key_alias}"]
        opts += ["-p", str(ep.port), "-l", ep.user]
        for k in ep.key_files:
            opts += ["-i", k]
        if ep.identities_only:
            opts += ["-o", "IdentitiesOnly=yes"]
        if ep.jump:
            last = ep.jump[-1]
            hop = replace(last, jump=ep.jump[:-1])
            inner = ["ssh"] + [
                "ProxyCommand=" + o.split("=", 1)[1].replace("%", "%%") if o.startswith("ProxyCommand=") else o
                for o in self._ssh_options(hop)
            ] + ["-W", "[%h]:%p", hop.host]
            opts += ["-o", "ProxyCommand=" + shlex.join(inner)]
        elif ep.proxy_command:
            opts += ["-o", f"ProxyCommand={ep.proxy_command}"]
        else:  # the system ssh looks the address up in the config again: keep it on labtui's path
            opts += ["-o", "ProxyJump=none"]
        return opts

    # ------------------------------------------------------------------ lifecycle
    def drop(self, node: str) -> None:
        """Forget the node's connection (the next use reconnects)."""
        try:
            ep = self.resolve(node)
        except LabError:
            return
        with self._lock:
            t = self._transports.pop(ep.key(), None)
            self._sudo.pop(node, None)
        if t is not None:
            t.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            forwards, self._forwards = self._forwards, []
            transports, self._transports = list(self._transports.values()), {}
            self._keys.clear()
        for closer in forwards:
            closer()
        for t in transports:
            try:
                t.close()
            except Exception:
                pass

    def __enter__(self) -> "NodeSSH":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Collector:
    """Splits a byte stream into lines, emits each complete line, keeps the text (capped)."""

    __slots__ = ("emit", "node", "stream", "step", "raw", "decoder", "partial", "parts", "size", "truncated", "in_key")

    def __init__(self, emit: Callable[[Event], None] | None, node: str, stream: str, step: str | None, raw: bool) -> None:
        self.emit = emit
        self.node = node
        self.stream = stream
        self.step = step
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.partial = ""
        self.parts: list[Any] = []
        self.size = 0
        self.truncated = False
        self.in_key = False

    def feed(self, data: bytes) -> None:
        if self.size + len(data) <= MAX_CAPTURE:
            self.parts.append(data)
            self.size += len(data)
        else:
            self.truncated = True
        if self.emit is None:
            return
        text = self.partial + self.decoder.decode(data)
        lines = text.split("\n")
        self.partial = lines.pop()
        if self.in_key or "PRIVATE KEY" in text:
            lines = self._hide_private_keys(lines)
        if not lines:
            return
        # One event per received chunk: complete lines only. Output that trickles in arrives one
        # line per event; bulk output (a 5 MB log) arrives in batches of lines, which keeps the
        # event channel, the store and the UI far ahead of the network.
        if len(lines) == 1:
            self.emit(Event(ev.ACTION_OUTPUT, lines[0].rstrip("\r"), step=self.step, node=self.node, stream=self.stream))
        else:
            text = "\n".join(ln.rstrip("\r") for ln in lines) if "\r" in text else "\n".join(lines)
            self.emit(Event(ev.ACTION_OUTPUT, text, step=self.step, node=self.node, stream=self.stream,
                            data={"lines": len(lines)}))

    def _hide_private_keys(self, lines: list[str]) -> list[str]:
        """A private key printed by a command never leaves the collector, even when its lines
        arrive in several chunks (the event redaction only sees one chunk at a time)."""
        out = []
        for line in lines:
            if self.in_key:
                if "-----END" in line and "PRIVATE KEY-----" in line:
                    self.in_key = False
                continue
            if "-----BEGIN" in line and "PRIVATE KEY-----" in line:
                out.append("<redacted private key>")
                self.in_key = "-----END" not in line.split("-----BEGIN", 1)[1]
                continue
            out.append(line)
        return out

    def finish(self):
        if self.emit is not None:
            tail = self.partial + self.decoder.decode(b"", final=True)
            if tail and (self.in_key or "PRIVATE KEY" in tail):
                tail = "\n".join(self._hide_private_keys([tail]))
            if tail:
                self.emit(Event(ev.ACTION_OUTPUT, tail.rstrip("\r"), step=self.step, node=self.node, stream=self.stream))
            if self.truncated:
                self.emit(Event(ev.WARN, f"{self.stream} was longer than {MAX_CAPTURE // (1024 * 1024)} MiB: "
                                         "only the first part is kept", node=self.node, step=self.step))
        data = b"".join(self.parts)
        return data if self.raw else data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- session glue


def session_ssh(ctx: LabContext, **options: Any) -> NodeSSH:
    """The session's shared NodeSSH (created on first use from the saved plan).

    The UI or a headless command configures it first with `configure_session_ssh` (host-key
    decider, passphrase callback, --accept-new-host-keys); steps just call this."""
    svc = ctx.adapters.ssh
    plan = ctx.session.plan or {}
    nodes = [NodeSpec.model_validate(n) for n in plan.get("nodes", [])]
    if svc is None:
        svc = configure_session_ssh(ctx, **options)
    else:
        svc.set_nodes(nodes)
    return svc


def configure_session_ssh(ctx: LabContext, **options: Any) -> NodeSSH:
    old = ctx.adapters.pop("ssh")
    if old is not None:
        old.close()
    plan = ctx.session.plan or {}
    nodes = [NodeSpec.model_validate(n) for n in plan.get("nodes", [])]
    options.setdefault("known_hosts", known_hosts_path(ctx.store.home))
    if not options.get("accept_new_host_keys"):
        prompts = ctx.prompts
        if prompts.host_key is not None:
            options.setdefault("host_key_decider", prompts.host_key)
        if prompts.passphrase is not None:
            options.setdefault("passphrase", prompts.passphrase)
        options.setdefault("headless", prompts.host_key is None)
    svc = NodeSSH(nodes, emit=ctx.emit, **options)
    ctx.adapters.ssh = svc
    return svc


class _NodeShell:
    """A `Shell` (labtui.adapters.interfaces) on one node through NodeSSH."""

    def __init__(self, ssh: NodeSSH, node: str) -> None:
        self.ssh = ssh
        self.node = node

    def run(self, command: str, *, timeout: float = 30.0, quiet: bool = False) -> tuple[int, str, str]:
        res = self.ssh.run(self.node, command, timeout=timeout, stream=not quiet)
        return res.exit_code, res.stdout, res.stderr


def kube_shell(ctx: LabContext, node: Any) -> _NodeShell:
    """A Shell on `node` (a NodeSpec or a name) for labtui.adapters.kubeconfig: run(command, timeout, quiet)."""
    return _NodeShell(session_ssh(ctx), getattr(node, "name", node))


def local_forward(ctx: LabContext, node: Any, remote_host: str, remote_port: int) -> tuple[int, Callable[[], None]]:
    """An SSH local port forward through `node` for labtui.adapters.kubeconfig: (local port, closer)."""
    return session_ssh(ctx).forward_local(getattr(node, "name", node), remote_host, remote_port)
