"""SSH basics shared by labtui.adapters.ssh: the data it returns (endpoints, host-key info, run
results), known_hosts files, private keys, ~/.ssh/config and a few helpers. No connection here."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from labtui.errors import LabError
from labtui.paths import write_private

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
        except Exception:  # a corrupt file
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


class KeyNeedsPassphrase(Exception):
    pass


def load_private_key(path: str | Path, passphrase: str | None = None):
    """A paramiko key from a file. Raises KeyNeedsPassphrase, or LabError for unusable files."""
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
        raise KeyNeedsPassphrase(str(p)) from None
    except paramiko.SSHException as exc:
        if passphrase is not None:
            raise KeyNeedsPassphrase(str(p)) from None
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


def local_user() -> str:
    """OpenSSH's default login name: the local user."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return "root"


def close_quietly(obj: Any) -> None:
    try:
        obj.close()
    except Exception:
        pass


