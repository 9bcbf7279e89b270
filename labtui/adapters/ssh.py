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

import base64
import codecs
import errno
import hashlib
import os
import re
import select
import shlex
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from labtui import events as ev
from labtui.errors import LabError
from labtui.events import Event, null_emit
from labtui.paths import known_hosts_path, write_private
from labtui.redact import add_secret

if TYPE_CHECKING:  # pragma: no cover
    from labtui.model import NodeSpec
    from labtui.steps import StepContext

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_AUTH_TIMEOUT = 20.0
DEFAULT_COMMAND_TIMEOUT = 300.0
DEFAULT_KEEPALIVE = 15
DEFAULT_WORKERS = 16
MAX_CAPTURE = 32 * 1024 * 1024  # bytes kept per stream in a RunResult
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
SUDO_PASSWORD_MARKERS = ("a password is required", "a terminal is required", "no tty present")

HostKeyDecider = Callable[["HostKeyInfo"], bool]
PassphraseCallback = Callable[[str, str], "str | None"]  # (node label, key path) -> passphrase or None


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Endpoint:
    """One resolved SSH destination (a node or a jump host)."""

    label: str  # how messages name it: the node name, or the jump host as written
    host: str  # the address to connect to (HostName)
    port: int = 22
    user: str = "root"
    key_files: tuple[str, ...] = ()
    identities_only: bool = False
    jump: tuple["Endpoint", ...] = ()  # hops, the first is contacted first
    proxy_command: str | None = None
    host_key_alias: str | None = None

    @property
    def host_key_name(self) -> str:
        """The name under which known_hosts stores the key (as OpenSSH writes it)."""
        host = self.host_key_alias or self.host
        return host if self.port == 22 else f"[{host}]:{self.port}"

    @property
    def display(self) -> str:
        port = f":{self.port}" if self.port != 22 else ""
        return f"{self.user}@{self.host}{port}"

    @property
    def route(self) -> str:
        """How it is reached, e.g. `root@10.0.0.11 via root@203.0.113.5`."""
        via = " via " + " -> ".join(j.display for j in self.jump) if self.jump else ""
        return self.display + via

    def key(self) -> tuple:
        return (self.host, self.port, self.user, self.key_files, self.jump, self.proxy_command)


@dataclass
class HostKeyInfo:
    """What the UI shows when a host key must be decided on."""

    node: str
    host: str  # known_hosts name: "10.0.0.11" or "[10.0.0.11]:2222"
    key_type: str  # "ssh-ed25519"
    fingerprint: str  # "SHA256:..." exactly as OpenSSH prints it
    key_base64: str
    known_fingerprint: str | None = None  # the stored key, when it changed
    known_in: str | None = None  # the file that holds the stored key

    def known_hosts_line(self) -> str:
        return f"{self.host} {self.key_type} {self.key_base64}"

    def describe(self) -> str:
        return f"{self.key_type.replace('ssh-', '').upper()} key fingerprint is {self.fingerprint}"


class HostKeyUnknown(LabError):
    def __init__(self, info: HostKeyInfo, *, headless: bool = False) -> None:
        self.info = info
        hint = (
            "compare the fingerprint with the VM's console log (cloud-init prints it), then accept it: "
            f"labtui nodes trust LAB {info.node} (or --accept-new-host-keys)"
            if headless
            else "compare the fingerprint with the VM's console log (cloud-init prints it), then accept it "
            "in the Nodes screen (or headless: labtui nodes trust LAB NODE)"
        )
        super().__init__(
            f"{info.node}: the host key of {info.host} is not known yet ({info.describe()}); "
            "labtui does not accept unknown keys silently",
            hint,
            code="hostkey-unknown",
        )


class HostKeyChanged(LabError):
    def __init__(self, info: HostKeyInfo) -> None:
        self.info = info
        where = f" (stored in {info.known_in})" if info.known_in else ""
        super().__init__(
            f"{info.node}: the host key of {info.host} has CHANGED: stored {info.known_fingerprint}{where}, "
            f"the server now shows {info.fingerprint}. Was this VM rebuilt? If not, someone may be "
            "intercepting the connection",
            f"if you rebuilt the VM, replace the stored key: labtui nodes trust LAB {info.node} --replace "
            "(or the Nodes screen); otherwise do not connect",
            code="hostkey-changed",
        )


@dataclass
class RunResult:
    node: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    sudo: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self, what: str | None = None) -> "RunResult":
        """Raise a LabError naming the node, the exit code and the last stderr line on failure."""
        if self.exit_code != 0:
            last = next((ln for ln in reversed(self.stderr.splitlines()) if ln.strip()), "")
            detail = f": {last.strip()}" if last else ""
            raise LabError(
                f"{self.node}: {what or '`' + short(self.command) + '`'} failed with exit code {self.exit_code}{detail}",
                "the command's full output is in the command log",
                code="command-failed",
            )
        return self


@dataclass
class NodeResult:
    node: str
    ok: bool
    value: Any = None
    error: LabError | None = None
    duration: float = 0.0

    @property
    def message(self) -> str:
        return self.error.message if self.error else ""


@dataclass
class NodeStatus:
    """The result of a reachability check."""

    node: str
    reachable: bool
    latency_ms: float | None = None  # one round trip of `true` on the open connection
    connect_ms: float | None = None
    user: str = ""
    sudo: str = ""  # root | nopasswd | password | none
    error: str = ""
    hint: str = ""
    code: str = ""
    host_key: HostKeyInfo | None = None


def short(command: str, limit: int = 80) -> str:
    first = command.strip().splitlines()[0] if command.strip() else command
    text = first if len(first) <= limit else first[: limit - 1] + "…"
    return text + (" …" if "\n" in command.strip() and text == first else "")


def shown_command(node: str, command: str, sudo: bool = False) -> str:
    """The command as a user would type it at their own shell: `ssh node 'cmd'`, or a heredoc
    (`ssh node sudo sh -s <<'EOF'`) when quoting would make it unreadable."""
    compound = any(c in command for c in "&|;<>$`(")
    if "'" not in command and "\n" not in command.strip() and not (sudo and compound):
        return f"ssh {node} " + shlex.quote(("sudo " if sudo else "") + command)
    return f"ssh {node} {'sudo ' if sudo else ''}sh -s <<'EOF'\n{command.strip()}\nEOF"


def sha256_fingerprint(key_bytes: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_bytes).digest()).decode().rstrip("=")


# --------------------------------------------------------------------------- known_hosts


class KnownHosts:
    """labtui's own known_hosts (read-write) in front of the user's files (read-only)."""

    def __init__(self, own: Path, user_files: Sequence[Path]) -> None:
        self.own = Path(own)
        self.user_files = [Path(p) for p in user_files]
        self._lock = threading.RLock()
        self._cache: dict[Path, tuple[float, Any]] = {}

    def _load(self, path: Path):
        import paramiko

        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        with self._lock:
            cached = self._cache.get(path)
            if cached and cached[0] == mtime:
                return cached[1]
            hk = paramiko.HostKeys()
            try:
                hk.load(str(path))
            except (OSError, paramiko.SSHException):
                hk = paramiko.HostKeys()
            self._cache[path] = (mtime, hk)
            return hk

    def lookup(self, name: str) -> tuple[dict[str, Any] | None, Path | None]:
        """({key type: PKey}, file) from labtui's file first, else the user's files."""
        for path in [self.own, *self.user_files]:
            hk = self._load(path)
            if hk is None:
                continue
            found = hk.lookup(name)
            if found:
                return {t: found[t] for t in found.keys()}, path
        return None, None

    def stale_user_entries(self, name: str) -> list[Path]:
        out = []
        for path in self.user_files:
            hk = self._load(path)
            if hk is not None and hk.lookup(name):
                out.append(path)
        return out

    def store(self, info: HostKeyInfo, replace_existing: bool = False) -> Path:
        """Write the key into labtui's own file (0600). With replace_existing, drop the old line(s)."""
        with self._lock:
            lines: list[str] = []
            if self.own.exists():
                lines = self.own.read_text().splitlines()
            kept = []
            for line in lines:
                fields = line.split()
                if fields and not line.startswith("#") and info.host in fields[0].split(","):
                    if replace_existing or (len(fields) > 1 and fields[1] == info.key_type):
                        continue
                kept.append(line)
            kept.append(info.known_hosts_line())
            self.own.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private(self.own, "\n".join(kept) + "\n")
            self._cache.pop(self.own, None)
        return self.own


# --------------------------------------------------------------------------- keys


def _key_class(data: bytes):
    """The paramiko key class for a private key file's contents (without decrypting it)."""
    import paramiko

    text = data.decode("ascii", errors="replace")
    if "BEGIN OPENSSH PRIVATE KEY" in text:
        body = "".join(ln for ln in text.splitlines() if ln and not ln.startswith("-----"))
        try:
            raw = base64.b64decode(body)
            magic = b"openssh-key-v1\x00"
            pos = len(magic)

            def string(p: int) -> tuple[bytes, int]:
                n = int.from_bytes(raw[p : p + 4], "big")
                return raw[p + 4 : p + 4 + n], p + 4 + n

            _, pos = string(pos)  # cipher
            _, pos = string(pos)  # kdf
            _, pos = string(pos)  # kdf options
            pos += 4  # number of keys
            pub, _ = string(pos)
            name = pub[4 : 4 + int.from_bytes(pub[:4], "big")].decode()
        except Exception:  # noqa: BLE001 - a corrupt file
            return None
        if name == "ssh-ed25519":
            return paramiko.Ed25519Key
        if name.startswith("ecdsa-"):
            return paramiko.ECDSAKey
        if name == "ssh-rsa":
            return paramiko.RSAKey
        return None
    if "BEGIN RSA PRIVATE KEY" in text:
        return paramiko.RSAKey
    if "BEGIN EC PRIVATE KEY" in text:
        return paramiko.ECDSAKey
    return None


class _KeyNeedsPassphrase(Exception):
    pass


def load_private_key(path: str | Path, passphrase: str | None = None):
    """A paramiko key from a file. Raises _KeyNeedsPassphrase, or LabError for unusable files."""
    import paramiko

    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise LabError(f"cannot read the key file {p}: {exc.strerror or exc}", "check the key_file path in the plan", code="key") from exc
    cls = _key_class(data)
    if cls is None:
        raise LabError(f"{p} is not a private key labtui can use (ed25519, ECDSA or RSA)",
                       "point key_file at the private key (not the .pub file)", code="key")
    try:
        return cls.from_private_key_file(str(p), password=passphrase)
    except paramiko.PasswordRequiredException:
        raise _KeyNeedsPassphrase(str(p)) from None
    except paramiko.SSHException as exc:
        if passphrase is not None:
            raise _KeyNeedsPassphrase(str(p)) from None
        raise LabError(f"cannot load the key file {p}: {exc}", "check that it is an unencrypted or passphrase-protected private key", code="key") from None


# --------------------------------------------------------------------------- ssh config


def default_ssh_config_path() -> Path:
    return Path(os.environ.get("LABTUI_SSH_CONFIG") or "~/.ssh/config").expanduser()


def default_user_known_hosts() -> list[Path]:
    env = os.environ.get("LABTUI_SSH_KNOWN_HOSTS")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.ssh/known_hosts").expanduser()]


_HOP_RE = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:\s]+)(?::(?P<port>\d+))?$")


def parse_hop(text: str) -> tuple[str | None, str, int | None]:
    m = _HOP_RE.match(text.strip().removeprefix("ssh://"))
    if not m:
        raise LabError(f"{text!r} is not a jump host (write [user@]host[:port])", "fix proxy_jump in the plan or ~/.ssh/config", code="config")
    host = m.group("host").strip("[]")
    return m.group("user"), host, int(m.group("port")) if m.group("port") else None


# --------------------------------------------------------------------------- the adapter


class NodeSSH:
    """SSH access to a set of nodes; thread-safe; connections are reused per node."""

    def __init__(
        self,
        nodes: Iterable["NodeSpec"] = (),
        *,
        emit: Callable[[Event], None] = null_emit,
        known_hosts: Path | None = None,
        user_known_hosts: Sequence[Path] | None = None,
        ssh_config: Path | None = None,
        host_key_decider: HostKeyDecider | None = None,
        accept_new_host_keys: bool = False,
        passphrase: PassphraseCallback | None = None,
        allow_agent: bool = True,
        look_for_keys: bool = True,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        keepalive: int = DEFAULT_KEEPALIVE,
        max_workers: int = DEFAULT_WORKERS,
        headless: bool = True,
    ) -> None:
        self.nodes: dict[str, "NodeSpec"] = {}
        self.set_nodes(nodes)
        self.emit = emit
        self.ssh_config_path = Path(ssh_config) if ssh_config else default_ssh_config_path()
        user_files = list(user_known_hosts) if user_known_hosts is not None else default_user_known_hosts()
        self.known_hosts = KnownHosts(Path(known_hosts) if known_hosts else known_hosts_path(), user_files)
        self.host_key_decider = host_key_decider
        self.accept_new_host_keys = accept_new_host_keys
        self.passphrase = passphrase
        self.allow_agent = allow_agent
        self.look_for_keys = look_for_keys
        self.connect_timeout = connect_timeout
        self.auth_timeout = auth_timeout
        self.command_timeout = command_timeout
        self.keepalive = keepalive
        self.max_workers = max(1, max_workers)
        self.headless = headless
        self._lock = threading.RLock()
        self._decide_lock = threading.Lock()  # one host-key question at a time
        self._node_locks: dict[Any, threading.Lock] = {}
        self._transports: dict[Any, Any] = {}  # Endpoint.key() -> paramiko.Transport
        self._keys: dict[str, Any] = {}  # key path -> decrypted key, in memory only
        self._sudo: dict[str, str] = {}  # node -> root | nopasswd | password | none
        self._config = None
        self._config_mtime: int | None = None
        self._resolved: dict[str, tuple[Any, int | None, Endpoint]] = {}
        self._forwards: list[Callable[[], None]] = []
        self._closed = False

    # ------------------------------------------------------------------ nodes and config
    def set_nodes(self, nodes: Iterable["NodeSpec"]) -> None:
        self.nodes = {n.name: n for n in nodes}

    def _ssh_config(self):
        import paramiko

        path = self.ssh_config_path
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        with self._lock:
            if self._config is None or self._config_mtime != mtime:
                try:
                    self._config = paramiko.SSHConfig.from_path(str(path))
                except Exception as exc:  # noqa: BLE001 - a broken config is the user's to fix
                    raise LabError(f"cannot read the SSH client configuration {path}: {exc}",
                                   "fix the file (ssh -G HOST shows how OpenSSH reads it)", code="config") from None
                self._config_mtime = mtime
            return self._config

    def _lookup(self, alias: str) -> dict[str, Any]:
        cfg = self._ssh_config()
        if cfg is None:
            return {}
        try:
            return dict(cfg.lookup(alias))
        except Exception as exc:  # noqa: BLE001
            raise LabError(f"cannot apply {self.ssh_config_path} to {alias}: {exc}", "fix the Host/Match block for it", code="config") from None

    def resolve(self, node: str) -> Endpoint:
        """The node's endpoint: the plan's settings merged with the SSH client configuration
        (cached until the node's settings or the config file change)."""
        spec = self._spec(node)
        try:
            mtime = self.ssh_config_path.stat().st_mtime_ns
        except OSError:
            mtime = None
        cached = self._resolved.get(node)
        if cached is not None and cached[0] == spec and cached[1] == mtime:
            return cached[2]
        ep = self._resolve_alias(
            spec.address, label=spec.name, user=spec.user, user_is_default=spec.user == "ubuntu",
            port=spec.port, key_file=spec.key_file, proxy_jump=spec.proxy_jump, depth=0,
        )
        self._resolved[node] = (spec, mtime, ep)
        return ep

    def _spec(self, node: str) -> "NodeSpec":
        try:
            return self.nodes[node]
        except KeyError:
            raise LabError(f"no node named {node!r} in this lab", f"known nodes: {', '.join(self.nodes) or 'none'}", code="not-found") from None

    def _resolve_alias(self, alias: str, *, label: str, user: str | None, user_is_default: bool, port: int | None,
                       key_file: str | None, proxy_jump: str | None, depth: int,
                       fallback_keys: tuple[str, ...] = ()) -> Endpoint:
        if depth > 5:
            raise LabError(f"{label}: the ProxyJump chain is longer than 5 hops (a loop?)", "check ProxyJump in the plan and ~/.ssh/config", code="config")
        cfg = self._lookup(alias)
        host = cfg.get("hostname") or alias
        cfg_user = cfg.get("user")
        final_user = (cfg_user if (user is None or user_is_default) and cfg_user else user) or cfg_user or _local_user()
        cfg_port = int(cfg["port"]) if cfg.get("port") else None
        final_port = (cfg_port if (port in (None, 22) and cfg_port) else port) or 22
        keys: list[str] = []
        for k in ([key_file] if key_file else []) + list(cfg.get("identityfile") or []) + list(fallback_keys):
            k = str(Path(k).expanduser())
            if k not in keys:
                keys.append(k)
        identities_only = str(cfg.get("identitiesonly", "no")).lower() == "yes"
        jump_text = proxy_jump if proxy_jump else cfg.get("proxyjump")
        jumps: tuple[Endpoint, ...] = ()
        proxy_command = None
        if jump_text and jump_text.lower() != "none":
            chain: list[Endpoint] = []
            for hop_text in jump_text.split(","):
                chain.extend(self._resolve_hop(hop_text, label, depth, tuple(keys)))
            jumps = tuple(chain)
        elif cfg.get("proxycommand") and str(cfg["proxycommand"]).lower() != "none":
            proxy_command = str(cfg["proxycommand"])
        return Endpoint(
            label=label, host=host, port=final_port, user=final_user, key_files=tuple(keys),
            identities_only=identities_only, jump=jumps, proxy_command=proxy_command,
            host_key_alias=cfg.get("hostkeyalias"),
        )

    def _resolve_hop(self, text: str, label: str, depth: int, node_keys: tuple[str, ...]) -> list[Endpoint]:
        user, host, port = parse_hop(text)
        if host in self.nodes:  # a node of the plan used as a jump host
            spec = self.nodes[host]
            ep = self._resolve_alias(spec.address, label=spec.name, user=user or spec.user, user_is_default=user is None and spec.user == "ubuntu",
                                     port=port or spec.port, key_file=spec.key_file, proxy_jump=spec.proxy_jump, depth=depth + 1)
        else:
            ep = self._resolve_alias(host, label=text.strip(), user=user, user_is_default=user is None, port=port,
                                     key_file=None, proxy_jump=None, depth=depth + 1, fallback_keys=node_keys)
        return [*ep.jump, replace(ep, jump=())]

    # ------------------------------------------------------------------ connecting
    def _node_lock(self, key: Any) -> threading.Lock:
        with self._lock:
            lock = self._node_locks.get(key)
            if lock is None:
                lock = self._node_locks[key] = threading.Lock()
            return lock

    def transport(self, node: str):
        """The node's authenticated transport (reused; reconnects when it died)."""
        return self._transport_for(self.resolve(node))

    def connected(self, node: str) -> bool:
        try:
            ep = self.resolve(node)
        except LabError:
            return False
        t = self._transports.get(ep.key())
        return bool(t and t.is_active())

    def _transport_for(self, ep: Endpoint):
        if self._closed:
            raise LabError("the SSH connections of this lab were closed", "reopen the lab", code="closed")
        key = ep.key()
        t = self._transports.get(key)
        if t is not None and t.is_active():
            return t
        with self._node_lock(key):
            t = self._transports.get(key)
            if t is not None and t.is_active():
                return t
            if t is not None:
                t.close()
            t = self._connect(ep)
            with self._lock:
                self._transports[key] = t
            return t

    def _connect(self, ep: Endpoint):
        import paramiko

        sock: Any = None
        via = ""
        if ep.jump:
            last = ep.jump[-1]
            jump_ep = replace(last, jump=ep.jump[:-1])
            via = f" through the jump host {last.label} ({last.display})"
            try:
                jt = self._transport_for(jump_ep)
            except (HostKeyUnknown, HostKeyChanged):
                raise  # a decision about the jump host's own key: the caller shows it as such
            except LabError as exc:
                if exc.message.startswith(f"{ep.label}:"):
                    raise
                raise LabError(f"{ep.label}: the jump host failed: {exc.message}", exc.hint, code=exc.code) from None
            try:
                sock = jt.open_channel("direct-tcpip", (ep.host, ep.port), ("127.0.0.1", 0), timeout=self.connect_timeout)
            except paramiko.ChannelException as exc:
                raise LabError(
                    f"{ep.label}: the jump host {last.label} could not reach {ep.host}:{ep.port} ({exc.text or exc})",
                    f"check that {ep.host} is the node's address as seen from {last.label}, that the VM runs and that "
                    "the security group allows TCP 22 from the jump host",
                    code="unreachable",
                ) from None
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise LabError(f"{ep.label}: the jump host {last.label} did not open a channel to {ep.host}:{ep.port}: {exc or 'timeout'}",
                               "try again; if it persists, check the jump host (AllowTcpForwarding must be yes)",
                               code="unreachable") from None
        elif ep.proxy_command:
            try:
                sock = paramiko.ProxyCommand(ep.proxy_command)
            except Exception as exc:  # noqa: BLE001
                raise LabError(f"{ep.label}: the ProxyCommand from the SSH config failed to start: {exc}",
                               "fix ProxyCommand for this host in ~/.ssh/config", code="config") from None
            via = " through its ProxyCommand"
        else:
            sock = self._tcp_connect(ep)
        try:
            t = paramiko.Transport(sock)
        except Exception as exc:  # noqa: BLE001
            _close_quietly(sock)
            raise LabError(f"{ep.label}: cannot start SSH on {ep.display}{via}: {exc}", "try again", code="ssh") from None
        t.banner_timeout = self.connect_timeout
        t.handshake_timeout = self.connect_timeout
        t.auth_timeout = self.auth_timeout
        try:
            self._prefer_known_key_types(t, ep)
            try:
                t.start_client(timeout=self.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                text = str(exc) or type(exc).__name__
                if "banner" in text.lower() or isinstance(exc, EOFError) or "timeout" in text.lower():
                    raise LabError(
                        f"{ep.label}: {ep.host}:{ep.port}{via} accepted the connection but did not speak SSH within "
                        f"{self.connect_timeout:.0f} s ({text})",
                        "is sshd running there, and is this the right port? A VM that is still booting answers like this",
                        code="ssh",
                    ) from None
                raise LabError(f"{ep.label}: the SSH handshake with {ep.display}{via} failed: {text}",
                               "the server may only offer algorithms labtui does not support; check its sshd_config", code="ssh") from None
            self._verify_host_key(t, ep)
            self._authenticate(t, ep, via)
        except BaseException:
            t.close()
            raise
        if self.keepalive:
            t.set_keepalive(self.keepalive)
        return t

    def _tcp_connect(self, ep: Endpoint) -> socket.socket:
        where = f"{ep.host}:{ep.port}"
        try:
            return socket.create_connection((ep.host, ep.port), timeout=self.connect_timeout)
        except socket.timeout:
            raise LabError(
                f"{ep.label}: no answer from {where} within {self.connect_timeout:.0f} s",
                "is the VM running, is the address right, and does the security group allow TCP 22 from here? "
                "(nodes without a floating IP need a jump host: proxy_jump)",
                code="timeout",
            ) from None
        except socket.gaierror as exc:
            raise LabError(f"{ep.label}: cannot resolve the host name {ep.host!r} ({exc.strerror})",
                           "use the node's IP address, or add a Host entry with HostName to ~/.ssh/config", code="dns") from None
        except ConnectionRefusedError:
            raise LabError(f"{ep.label}: {where} refused the connection (nothing listens on port {ep.port})",
                           "is sshd running on the node, and is this the right port?", code="refused") from None
        except OSError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
                raise LabError(f"{ep.label}: {where} is unreachable from here ({exc.strerror})",
                               "check the address; a node on a private network needs a jump host (proxy_jump)",
                               code="unreachable") from None
            raise LabError(f"{ep.label}: cannot connect to {where}: {exc.strerror or exc}", "check the address and the network", code="connect") from None

    def _prefer_known_key_types(self, t, ep: Endpoint) -> None:
        known, _ = self.known_hosts.lookup(ep.host_key_name)
        if not known:
            return
        opts = t.get_security_options()
        available = list(opts.key_types)
        preferred = []
        for ktype in known:
            if ktype == "ssh-rsa":
                preferred += [k for k in ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa") if k in available]
            elif ktype in available:
                preferred.append(ktype)
        if preferred:
            opts.key_types = preferred + [k for k in available if k not in preferred]

    def _verify_host_key(self, t, ep: Endpoint) -> None:
        key = t.get_remote_server_key()
        ktype = key.get_name()
        if ktype.startswith("rsa-sha2-"):
            ktype = "ssh-rsa"
        info = HostKeyInfo(node=ep.label, host=ep.host_key_name, key_type=ktype,
                           fingerprint=sha256_fingerprint(key.asbytes()), key_base64=key.get_base64())
        known, where = self.known_hosts.lookup(ep.host_key_name)
        if known:
            stored = known.get(ktype)
            if stored is not None and stored.asbytes() == key.asbytes():
                return
            old = stored if stored is not None else next(iter(known.values()))
            info.known_fingerprint = sha256_fingerprint(old.asbytes())
            info.known_in = str(where)
            self.emit(Event(ev.WARN, f"host key of {ep.host_key_name} changed: refused", node=ep.label,
                            data={"fingerprint": info.fingerprint, "known": info.known_fingerprint}))
            raise HostKeyChanged(info)
        accepted = False
        if self.accept_new_host_keys:
            accepted = True
        elif self.host_key_decider is not None:
            with self._decide_lock:
                known, _ = self.known_hosts.lookup(ep.host_key_name)  # another thread may have stored it
                if known and ktype in known and known[ktype].asbytes() == key.asbytes():
                    return
                accepted = bool(self.host_key_decider(info))
        if not accepted:
            raise HostKeyUnknown(info, headless=self.headless)
        self.known_hosts.store(info)
        self.emit(Event(ev.INFO, f"accepted the host key of {ep.host_key_name}: {info.describe()}", node=ep.label,
                        data={"fingerprint": info.fingerprint, "known_hosts": str(self.known_hosts.own)}))

    def _candidate_keys(self, ep: Endpoint) -> Iterable[tuple[str, Any]]:
        """(label, key) in the order OpenSSH would offer them, loading lazily."""
        tried: set[bytes] = set()

        def fresh(k) -> bool:
            blob = k.asbytes()
            if blob in tried:
                return False
            tried.add(blob)
            return True

        for path in ep.key_files:
            k = self._load_key(ep, path, required=True)
            if k is not None and fresh(k):
                yield path, k
        if self.allow_agent and not ep.identities_only and os.environ.get("SSH_AUTH_SOCK"):
            import paramiko

            try:
                agent = paramiko.Agent()
                agent_keys = agent.get_keys()
            except Exception:  # noqa: BLE001 - an unusable agent is skipped, as OpenSSH does
                agent_keys = ()
            for k in agent_keys:
                if fresh(k):
                    yield f"agent key {getattr(k, 'comment', '') or k.get_name()}", k
        if self.look_for_keys and not ep.identities_only:
            for path in DEFAULT_IDENTITIES:
                p = Path(path).expanduser()
                if p.exists() and str(p) not in ep.key_files:
                    try:
                        k = self._load_key(ep, str(p), required=False)
                    except LabError:
                        continue
                    if k is not None and fresh(k):
                        yield str(p), k

    def _load_key(self, ep: Endpoint, path: str, required: bool):
        with self._lock:
            if path in self._keys:
                return self._keys[path]
        p = Path(path).expanduser()
        if not p.exists():
            if required:
                self.emit(Event(ev.WARN, f"key file {p} does not exist (skipped)", node=ep.label))
            return None
        with self._node_lock(("key", path)):
            with self._lock:
                if path in self._keys:
                    return self._keys[path]
            try:
                key = load_private_key(p)
            except _KeyNeedsPassphrase:
                key = None
                if self.passphrase is None:
                    self.emit(Event(ev.WARN, f"key {p} is protected by a passphrase and nobody can be asked for it "
                                             "(skipped; load it into ssh-agent with ssh-add)", node=ep.label))
                    return None
                for _attempt in range(3):
                    phrase = self.passphrase(ep.label, str(p))
                    if phrase is None:
                        return None
                    add_secret(phrase)
                    try:
                        key = load_private_key(p, phrase)
                        break
                    except _KeyNeedsPassphrase:
                        self.emit(Event(ev.WARN, f"wrong passphrase for {p}", node=ep.label))
                    finally:
                        phrase = None  # noqa: F841 - never kept
                if key is None:
                    return None
            with self._lock:
                self._keys[path] = key  # the decrypted key lives in memory only, like ssh-agent
            return key

    def _authenticate(self, t, ep: Endpoint, via: str) -> None:
        import paramiko

        tried: list[str] = []
        allowed: list[str] | None = None
        for label, key in self._candidate_keys(ep):
            tried.append(label)
            try:
                rest = t.auth_publickey(ep.user, key)
            except paramiko.BadAuthenticationType as exc:
                allowed = list(exc.allowed_types)
                break
            except paramiko.AuthenticationException:
                continue
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise LabError(f"{ep.label}: the connection broke during login to {ep.display}{via}: {exc or 'timeout'}",
                               f"try again; the server may limit logins (MaxStartups) or be overloaded", code="auth") from None
            if t.is_authenticated():
                return
            if rest:
                allowed = list(rest)
                break
        if allowed is not None and "publickey" not in allowed:
            raise LabError(
                f"{ep.label}: {ep.display} does not accept SSH keys for {ep.user} (it allows: {', '.join(allowed) or 'nothing'})",
                "labtui logs in with keys only: enable PubkeyAuthentication for this user, or use another user",
                code="auth",
            )
        if not tried:
            raise LabError(
                f"{ep.label}: no SSH key to log in to {ep.display} with (no key file, no ssh-agent key, no ~/.ssh/id_* key)",
                "set key_file for the node in the plan, or load your key into ssh-agent (ssh-add)",
                code="auth",
            )
        raise LabError(
            f"{ep.label}: authentication failed for {ep.display}{via}: the server refused "
            + ("the key " if len(tried) == 1 else f"all {len(tried)} keys ")
            + f"({', '.join(tried)})",
            f"put your public key into ~{ep.user}/.ssh/authorized_keys on the node (ssh-copy-id), or set the "
            "node's key_file / user in the plan to the ones the VM was created with",
            code="auth",
        )

    # ------------------------------------------------------------------ host keys (explicit)
    def scan_host_key(self, node: str) -> HostKeyInfo:
        """Fetch the node's host key without logging in (for a trust decision)."""
        import paramiko

        ep = self.resolve(node)
        if ep.jump:
            last = ep.jump[-1]
            jt = self._transport_for(replace(last, jump=ep.jump[:-1]))
            try:
                sock = jt.open_channel("direct-tcpip", (ep.host, ep.port), ("127.0.0.1", 0), timeout=self.connect_timeout)
            except (paramiko.SSHException, OSError) as exc:
                raise LabError(f"{node}: the jump host {last.label} could not reach {ep.host}:{ep.port} ({exc})",
                               "check the address and that the VM runs", code="unreachable") from None
        else:
            sock = self._tcp_connect(ep)
        t = paramiko.Transport(sock)
        t.banner_timeout = self.connect_timeout
        t.handshake_timeout = self.connect_timeout
        try:
            self._prefer_known_key_types(t, ep)
            t.start_client(timeout=self.connect_timeout)
            key = t.get_remote_server_key()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise LabError(f"{node}: could not read the host key of {ep.display}: {exc or 'timeout'}", "is sshd running there?", code="ssh") from None
        finally:
            t.close()
        ktype = "ssh-rsa" if key.get_name().startswith("rsa-sha2-") else key.get_name()
        info = HostKeyInfo(node=node, host=ep.host_key_name, key_type=ktype,
                           fingerprint=sha256_fingerprint(key.asbytes()), key_base64=key.get_base64())
        known, where = self.known_hosts.lookup(ep.host_key_name)
        if known:
            stored = known.get(ktype) or next(iter(known.values()))
            if stored.asbytes() != key.asbytes():
                info.known_fingerprint = sha256_fingerprint(stored.asbytes())
                info.known_in = str(where)
        return info

    def host_key_state(self, info: HostKeyInfo) -> str:
        """known | unknown | changed"""
        known, _ = self.known_hosts.lookup(info.host)
        if not known:
            return "unknown"
        stored = known.get(info.key_type)
        return "known" if stored is not None and stored.get_base64() == info.key_base64 else "changed"

    def trust_host_key(self, info: HostKeyInfo, *, replace_changed: bool = False) -> Path:
        """Store a host key the user accepted. A changed key needs replace_changed=True."""
        state = self.host_key_state(info)
        if state == "changed" and not replace_changed:
            raise HostKeyChanged(info)
        path = self.known_hosts.store(info, replace_existing=replace_changed)
        word = "replaced" if state == "changed" else "accepted"
        self.emit(Event(ev.INFO, f"{word} the host key of {info.host}: {info.describe()}", node=info.node,
                        data={"fingerprint": info.fingerprint, "known_hosts": str(path)}))
        stale = self.known_hosts.stale_user_entries(info.host) if state == "changed" else []
        for p in stale:
            self.emit(Event(ev.WARN, f"{p} still holds the old key of {info.host}; labtui's own file wins, "
                                     f"but the system ssh will refuse until you run: ssh-keygen -R {shlex.quote(info.host)} -f {shlex.quote(str(p))}",
                            node=info.node))
        self.drop(info.node)
        return path

    def replace_host_key(self, node: str) -> HostKeyInfo:
        """Explicitly replace a changed key of `node` with the one the server shows now."""
        info = self.scan_host_key(node)
        self.trust_host_key(info, replace_changed=True)
        return info

    # ------------------------------------------------------------------ commands
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
        except Exception as exc:  # noqa: BLE001 - never a traceback to the user
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
            except Exception as exc:  # noqa: BLE001
                err = LabError(f"{name}: unexpected error: {type(exc).__name__}: {exc}", "see the command log", code="error")
                return NodeResult(name, False, None, err, time.monotonic() - t0)

        workers = min(len(names), max_workers or self.max_workers)
        if workers == 1:
            return {n: one(n) for n in names}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="labtui-ssh") as pool:
            for res in pool.map(one, names):
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
                _close_quietly(chan)
                _close_quietly(client)

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
                    _close_quietly(client)
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
            _close_quietly(listener)
            for client, chan in list(conns):
                _close_quietly(chan)
                _close_quietly(client)
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
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> "NodeSSH":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _local_user() -> str:
    """OpenSSH's default login name: the local user."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (containers)
        return "root"


def _close_quietly(obj: Any) -> None:
    try:
        obj.close()
    except Exception:  # noqa: BLE001
        pass


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


def session_ssh(ctx: "StepContext", **options: Any) -> NodeSSH:
    """The session's shared NodeSSH (created on first use from the saved plan).

    The UI or a headless command configures it first with `configure_session_ssh` (host-key
    decider, passphrase callback, --accept-new-host-keys); steps just call this."""
    svc = ctx.adapters.ssh
    plan = ctx.session.plan or {}
    from labtui.model import NodeSpec

    nodes = [NodeSpec.model_validate(n) for n in plan.get("nodes", [])]
    if svc is None:
        svc = configure_session_ssh(ctx, **options)
    else:
        svc.set_nodes(nodes)
    return svc


def configure_session_ssh(ctx: "StepContext", **options: Any) -> NodeSSH:
    from labtui.model import NodeSpec

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
    """The `Shell` protocol of labtui.adapters.kube / labtui.doctor.probe on one node through NodeSSH."""

    def __init__(self, ssh: NodeSSH, node: str) -> None:
        self.ssh = ssh
        self.node = node

    def run(self, command: str, *, timeout: float = 30.0, quiet: bool = False) -> tuple[int, str, str]:
        res = self.ssh.run(self.node, command, timeout=timeout, stream=not quiet)
        return res.exit_code, res.stdout, res.stderr


def kube_shell(ctx: "StepContext", node: Any) -> _NodeShell:
    """A Shell on `node` (a NodeSpec or a name) for labtui.adapters.kube: run(command, timeout, quiet)."""
    return _NodeShell(session_ssh(ctx), getattr(node, "name", node))


def local_forward(ctx: "StepContext", node: Any, remote_host: str, remote_port: int) -> tuple[int, Callable[[], None]]:
    """An SSH local port forward through `node` for labtui.adapters.kube: (local port, closer)."""
    return session_ssh(ctx).forward_local(getattr(node, "name", node), remote_host, remote_port)
