"""Many real OpenSSH nodes on one machine, for tests (needs root).

Each node is an OpenSSH `sshd` in its own network namespace, plugged into a Linux bridge that
lives in a per-run "cloud" namespace. The test runner reaches the bridge through one veth from
the root namespace (`<subnet>.1`). With `bastion=True` the nodes sit on a second bridge that only
the bastion (two interfaces) shares, so they are reachable only through the bastion (ProxyJump).

Every sshd runs under `unshare --uts --mount --propagation private`: `hostname` prints the node's
name, `/root` and `/tmp` are private tmpfs (the host's root `~/.bashrc` never runs), and the node
has its own `/usr/local/bin` (drop simulated tools in with `install_script`), `/etc/hosts`,
`/etc/hostname`, `/etc/sysctl.d`, `/etc/modules-load.d` and optionally `/etc/os-release`.

    with SSHNodes(3) as lab:
        lab.nodes[0].name, lab.nodes[0].address, lab.nodes[0].fingerprint
        lab.ssh_config, lab.client_key, lab.known_hosts
        lab.install_script(lab.nodes[0], "kubectl", "#!/bin/sh\necho simulated\n")
        lab.rebuild_host_key(lab.nodes[1])
        lab.stop_node(lab.nodes[2])

Names use a per-run prefix (`lt` + 4 hex digits) so parallel runs never clash; the node subnet
is allocated per run (10.100.200.0/24 first, the next free 10.100.X.0/24 otherwise). Leftovers
of runs whose process died are removed by `cleanup_stale()` (called on every start). The root
namespace's `ip_forward` is never touched (it stays 0), the lab namespaces have no default
route, and an inner (bastion-only) subnet gets an `unreachable` route in the root namespace, so
nothing ever leaves the machine.
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

RUN_ROOT = Path("/run/labtui-sshlab")
PREFIX_RE = re.compile(r"^lt[0-9a-f]{4}$")
NS_RE = re.compile(r"^(lt[0-9a-f]{4})-")
SSHD = "/usr/sbin/sshd"

ROOT_USER = "root"
NOPASSWD_USER = "labnopw"  # sudo without a password
PASSWORD_USER = "labpw"  # sudo that wants a password
SUDOERS_FILE = Path("/etc/sudoers.d/labtui-sshlab")

DEFAULT_OS_RELEASE = """PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
"""


class HarnessError(RuntimeError):
    pass


# --------------------------------------------------------------------------- small helpers


def _run(argv: list[str], *, input: str | None = None, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise HarnessError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _ip_batch(commands: Iterable[str], netns: str | None = None, force: bool = False) -> None:
    text = "\n".join(commands) + "\n"
    argv = ["ip"] + (["-n", netns] if netns else []) + (["-force"] if force else []) + ["-batch", "-"]
    _run(argv, input=text, check=not force)


def generate_ed25519(comment: str = "", passphrase: str | None = None) -> tuple[bytes, str]:
    """(private key in OpenSSH format, public key line) generated in-process (no ssh-keygen fork)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    enc = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, enc)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, (public + (" " + comment if comment else ""))


def fingerprint(public_line: str) -> str:
    """The SHA256 fingerprint exactly as OpenSSH prints it (`SHA256:` + unpadded base64)."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)
    os.chmod(path, mode)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_list() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _netns_pids(ns: str) -> list[int]:
    out = _run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class _Lock:
    """A cross-process lock (flock) around subnet allocation and user creation."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> "_Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        os.chmod(self.path.parent, 0o755)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def ensure_users() -> None:
    """Create the two non-root login users (shared with the host) once, idempotently."""
    with _Lock(RUN_ROOT / "users.lock"):
        for user in (NOPASSWD_USER, PASSWORD_USER):
            if _run(["getent", "passwd", user], check=False).returncode != 0:
                _run(["useradd", "--create-home", "--shell", "/bin/bash", user])
        # sshd without PAM refuses accounts whose password field starts with "!" (locked).
        _run(["usermod", "-p", "*", NOPASSWD_USER])
        pw = secrets.token_urlsafe(18)  # nobody knows it: sudo for labpw can never succeed
        _run(["chpasswd"], input=f"{PASSWORD_USER}:{pw}\n")
        text = (
            "# labtui test harness (tests/harness/sshnodes.py)\n"
            f"{NOPASSWD_USER} ALL=(ALL) NOPASSWD:ALL\n"
            f"{PASSWORD_USER} ALL=(ALL) ALL\n"
        )
        if not SUDOERS_FILE.exists() or SUDOERS_FILE.read_text() != text:
            tmp = SUDOERS_FILE.with_name(".labtui-sshlab.tmp")
            _write(tmp, text, 0o440)
            _run(["visudo", "-cf", str(tmp)])
            os.replace(tmp, SUDOERS_FILE)


def cleanup_stale() -> list[str]:
    """Remove the namespaces, veths, routes and directories of harness runs whose process died.
    Returns the prefixes cleaned up."""
    cleaned: list[str] = []
    RUN_ROOT.mkdir(parents=True, exist_ok=True, mode=0o755)
    live: set[str] = set()
    for d in RUN_ROOT.iterdir():
        if not (d.is_dir() and PREFIX_RE.match(d.name)):
            continue
        state = _read_state(d)
        owner = state.get("owner")
        if isinstance(owner, int) and _pid_alive(owner):
            live.add(d.name)
            continue
        _teardown_prefix(d.name, state)
        cleaned.append(d.name)
    # namespaces with a harness prefix but no live run directory are orphans
    for ns in _netns_list():
        m = NS_RE.match(ns)
        if m and m.group(1) not in live and not (RUN_ROOT / m.group(1)).exists():
            _teardown_prefix(m.group(1), {})
            cleaned.append(m.group(1))
    return sorted(set(cleaned))


def _read_state(d: Path) -> dict:
    try:
        return json.loads((d / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def _teardown_prefix(prefix: str, state: dict) -> None:
    namespaces = [ns for ns in _netns_list() if ns.startswith(prefix + "-")]
    for ns in namespaces:
        _kill_pids(_netns_pids(ns))
    cmds = [f"netns del {ns}" for ns in namespaces]
    cmds.append(f"link del {prefix}h")
    for route in state.get("unreachable", []):
        cmds.append(f"route del unreachable {route}")
    _ip_batch(cmds, force=True)
    shutil.rmtree(RUN_ROOT / prefix, ignore_errors=True)


# --------------------------------------------------------------------------- the lab


@dataclass
class LabNode:
    name: str
    index: int
    address: str  # where clients reach it (behind the bastion for nodes in the bastion topology)
    netns: str
    dir: Path
    mac: str
    host_public_key: str = ""  # "ssh-ed25519 AAAA..."
    fingerprint: str = ""  # "SHA256:..." as OpenSSH prints it
    inner_address: str | None = None  # the bastion's address on the inner network
    role: str = "worker"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def bin_dir(self) -> Path:
        return self.dir / "bin"

    @property
    def host_key_path(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def log_path(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def known_hosts_line(self, port: int = 22) -> str:
        host = self.address if port == 22 else f"[{self.address}]:{port}"
        return f"{host} {' '.join(self.host_public_key.split()[:2])}"


class SSHNodes:
    """Start `count` sshd nodes (optionally behind a bastion); a context manager."""

    def __init__(
        self,
        count: int = 3,
        *,
        bastion: bool = False,
        trust_hosts: bool = True,
        names: list[str] | None = None,
        os_release: str | None = DEFAULT_OS_RELEASE,
        users: bool = True,
        prefix: str | None = None,
        start_timeout: float = 20.0,
        nice: int = 0,
    ) -> None:
        if os.geteuid() != 0:
            raise HarnessError("SSHNodes needs root (network namespaces, sshd)")
        self.count = count
        self.with_bastion = bastion
        self.trust_hosts = trust_hosts
        self.names = names or [f"node{i}" for i in range(1, count + 1)]
        if len(self.names) != count:
            raise ValueError("names must have `count` entries")
        self.os_release = os_release
        self.with_users = users
        self.prefix = prefix or ("lt" + secrets.token_hex(2))
        if not PREFIX_RE.match(self.prefix):
            raise ValueError("prefix must be 'lt' + 4 hex digits")
        self.start_timeout = start_timeout
        self.nice = nice
        self.dir = RUN_ROOT / self.prefix
        self.cloud_ns = f"{self.prefix}-cloud"
        self.uplink = f"{self.prefix}h"  # root-namespace end of the runner's veth
        self.nodes: list[LabNode] = []
        self.bastion: LabNode | None = None
        self.subnet: ipaddress.IPv4Network | None = None  # the network the runner is on
        self.inner_subnet: ipaddress.IPv4Network | None = None  # bastion topology only
        self.setup_seconds = 0.0
        self._started = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public paths
    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def client_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def client_pubkey(self) -> str:
        return (self.dir / "id_ed25519.pub").read_text().strip()

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def authorized_keys(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def gateway(self) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    @property
    def all_nodes(self) -> list[LabNode]:
        return ([self.bastion] if self.bastion else []) + self.nodes

    def node(self, name: str) -> LabNode:
        for n in self.all_nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    __getitem__ = node

    def unused_address(self) -> str:
        """An address on the runner's subnet with nothing behind it (connects time out)."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 250)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "SSHNodes":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> "SSHNodes":
        started = time.monotonic()
        cleanup_stale()
        if self.with_users:
            ensure_users()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.dir.mkdir(parents=True, mode=0o755)
        self._save_state({"owner": os.getpid(), "unreachable": []})
        atexit.register(self.close)
        self._started = True
        try:
            self._allocate_and_wire()
            self._write_client_files()
            for node in self.all_nodes:
                self._write_node_files(node)
            self.write_ssh_config()
            for node in self.all_nodes:
                self._spawn(node)
            self._wait_ready(self.all_nodes)
        except BaseException:
            self.close()
            raise
        self.setup_seconds = time.monotonic() - started
        return self

    def close(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
        for node in self.all_nodes:
            if node.proc and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.all_nodes:
            if node.proc:
                try:
                    node.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(timeout=5)
        _teardown_prefix(self.prefix, _read_state(self.dir))
        try:
            atexit.unregister(self.close)
        except Exception:
            pass

    # ------------------------------------------------------------------ setup pieces
    def _save_state(self, state: dict) -> None:
        _write(self.dir / "state.json", json.dumps(state), 0o600)

    def _allocate_and_wire(self) -> None:
        with _Lock(RUN_ROOT / "alloc.lock"):
            taken = self._root_networks()
            self.subnet = self._free_subnet(taken)
            taken.append(self.subnet)
            if self.with_bastion:
                self.inner_subnet = self._free_subnet(taken)
            self._build_topology()

    @staticmethod
    def _root_networks() -> list[ipaddress.IPv4Network]:
        out = _run(["ip", "-4", "route", "show", "table", "all"]).stdout
        nets = []
        for line in out.splitlines():
            for tok in line.split()[:2]:
                try:
                    nets.append(ipaddress.ip_network(tok, strict=False))
                    break
                except ValueError:
                    continue
        return nets

    @staticmethod
    def _free_subnet(taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
        for third in list(range(200, 255)) + list(range(100, 200)):
            cand = ipaddress.ip_network(f"10.100.{third}.0/24")
            if not any(cand.overlaps(t) for t in taken if t.prefixlen > 0):
                return cand
        raise HarnessError("no free 10.100.X.0/24 subnet for the SSH lab")

    def _build_topology(self) -> None:
        assert self.subnet is not None
        outer = self.subnet
        inner = self.inner_subnet
        node_net = inner if self.with_bastion else outer
        assert node_net is not None
        self.nodes = []
        for i, name in enumerate(self.names, start=1):
            self.nodes.append(LabNode(
                name=name, index=i, address=str(node_net.network_address + 10 + i),
                netns=f"{self.prefix}-{name}", dir=self.dir / "nodes" / name,
                mac=f"fa:16:3e:00:{i // 256:02x}:{i % 256:02x}", role="control-plane" if i == 1 else "worker",
            ))
        if self.with_bastion:
            assert inner is not None
            self.bastion = LabNode(
                name="bastion", index=0, address=str(outer.network_address + 5), netns=f"{self.prefix}-bastion",
                dir=self.dir / "nodes" / "bastion", mac="fa:16:3e:00:ff:05", inner_address=str(inner.network_address + 5),
                role="bastion",
            )
        br_out, br_in = f"{self.prefix}br0", f"{self.prefix}br1"
        # 1. namespaces and veths, created straight into their namespaces (one `ip` process)
        cmds = [f"netns add {self.cloud_ns}"] + [f"netns add {n.netns}" for n in self.all_nodes]
        cmds.append(f"link add {self.uplink} type veth peer name uplink netns {self.cloud_ns}")
        cloud_cmds = [f"link add {br_out} type bridge", f"link set {br_out} up", f"link set uplink master {br_out} up"]
        if self.with_bastion:
            cloud_cmds += [f"link add {br_in} type bridge", f"link set {br_in} up"]
        if self.bastion:
            cmds.append(f"link add eth0 netns {self.bastion.netns} address {self.bastion.mac} type veth peer name pb0 netns {self.cloud_ns}")
            cmds.append(f"link add eth1 netns {self.bastion.netns} address fa:16:3e:01:ff:05 type veth peer name pb1 netns {self.cloud_ns}")
            cloud_cmds += [f"link set pb0 master {br_out} up", f"link set pb1 master {br_in} up"]
        bridge = br_in if self.with_bastion else br_out
        for n in self.nodes:
            cmds.append(f"link add eth0 netns {n.netns} address {n.mac} type veth peer name p{n.index} netns {self.cloud_ns}")
            cloud_cmds.append(f"link set p{n.index} master {bridge} up")
        _ip_batch(cmds)
        # 2. the cloud namespace: no IPv6 chatter, the bridge(s) (one process)
        script = (
            "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; "
            "exec ip -batch -"
        )
        _run(["ip", "netns", "exec", self.cloud_ns, "sh", "-c", script], input="\n".join(cloud_cmds) + "\n")
        # 3. the runner's end in the root namespace (ip_forward untouched: stays 0)
        try:
            Path(f"/proc/sys/net/ipv6/conf/{self.uplink}/disable_ipv6").write_text("1")
        except OSError:
            pass
        root_cmds = [f"addr add {self.gateway}/{outer.prefixlen} dev {self.uplink}", f"link set {self.uplink} up"]
        unreachable = []
        if inner is not None:
            root_cmds.append(f"route add unreachable {inner}")
            unreachable.append(str(inner))
        self._save_state({"owner": os.getpid(), "unreachable": unreachable})
        _ip_batch(root_cmds)

    def _write_client_files(self) -> None:
        private, public = generate_ed25519(f"labtui-harness@{self.prefix}")
        _write(self.client_key, private, 0o600)
        _write(self.dir / "id_ed25519.pub", public + "\n", 0o644)
        _write(self.authorized_keys, public + "\n", 0o644)

    def write_ssh_config(self, trust_hosts: bool | None = None) -> Path:
        """(Re)write ssh_config (Host <name> blocks) and known_hosts from the current host keys."""
        trust = self.trust_hosts if trust_hosts is None else trust_hosts
        lines = []
        for n in self.all_nodes:
            lines += [f"Host {n.name}", f"  HostName {n.address}", "  User root", "  Port 22",
                      f"  IdentityFile {self.client_key}", "  IdentitiesOnly yes", "  StrictHostKeyChecking yes"]
            if trust:
                lines.append(f"  UserKnownHostsFile {self.known_hosts}")
            if self.bastion and n is not self.bastion:
                lines.append(f"  ProxyJump {self.bastion.name}")
            lines.append("")
        _write(self.ssh_config, "\n".join(lines), 0o644)
        self.write_known_hosts()
        return self.ssh_config

    def write_known_hosts(self) -> Path:
        text = "".join(n.known_hosts_line() + "\n" for n in self.all_nodes if n.host_public_key)
        return _write(self.known_hosts, text, 0o644)

    def _new_host_key(self, node: LabNode) -> None:
        private, public = generate_ed25519(f"root@{node.name}")
        _write(node.host_key_path, private, 0o600)
        _write(node.dir / "ssh_host_ed25519_key.pub", public + "\n", 0o644)
        node.host_public_key = public
        node.fingerprint = fingerprint(public)

    def _write_node_files(self, node: LabNode) -> None:
        node.dir.mkdir(parents=True, mode=0o755)
        node.bin_dir.mkdir(mode=0o755)
        for sub in ("sysctl.d", "modules-load.d"):
            (node.dir / sub).mkdir(mode=0o755)
        self._new_host_key(node)
        listen = [node.address] + ([node.inner_address] if node.inner_address else [])
        cfg = [f"ListenAddress {a}:22" for a in listen] + [
            f"HostKey {node.host_key_path}",
            f"PidFile {node.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PermitRootLogin prohibit-password",
            "MaxStartups 200:30:400",
            "MaxSessions 50",
            "AllowTcpForwarding yes",
            "PrintMotd no",
            "PrintLastLog no",
            "LogLevel INFO",
            "Subsystem sftp internal-sftp",
        ]
        _write(node.dir / "sshd_config", "\n".join(cfg) + "\n", 0o644)
        _write(node.dir / "hosts", f"127.0.0.1 localhost\n127.0.1.1 {node.name}\n{node.address} {node.name}\n", 0o644)
        _write(node.dir / "hostname", node.name + "\n", 0o644)
        _write(node.dir / "machine-id", secrets.token_hex(16) + "\n", 0o444)
        if self.os_release is not None:
            _write(node.dir / "os-release", self.os_release, 0o644)

    def _node_script(self, node: LabNode) -> str:
        net = self.inner_subnet if (self.with_bastion and node is not self.bastion) else self.subnet
        assert net is not None and self.subnet is not None
        q = shlex.quote
        d = node.dir
        lines = [
            "set -e",
            "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
            "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
            "ip link set lo up",
        ]
        if node is self.bastion:
            assert self.inner_subnet is not None
            lines += [
                f"ip addr replace {node.address}/{self.subnet.prefixlen} dev eth0", "ip link set eth0 up",
                f"ip addr replace {node.inner_address}/{self.inner_subnet.prefixlen} dev eth1", "ip link set eth1 up",
            ]
        else:
            lines += [f"ip addr replace {node.address}/{net.prefixlen} dev eth0", "ip link set eth0 up"]
        lines += [
            f"hostname {q(node.name)}",
            "mount -t tmpfs -o mode=0700 labtui-root /root",
            "mount -t tmpfs -o mode=1777 labtui-tmp /tmp",
            f"mount --bind {q(str(node.bin_dir))} /usr/local/bin",
            f"mount --bind {q(str(d / 'hosts'))} /etc/hosts",
            f"mount --bind {q(str(d / 'hostname'))} /etc/hostname",
            f"mount --bind {q(str(d / 'machine-id'))} /etc/machine-id",
            f"mount --bind {q(str(d / 'sysctl.d'))} /etc/sysctl.d",
            f"mount --bind {q(str(d / 'modules-load.d'))} /etc/modules-load.d",
        ]
        if self.os_release is not None:
            lines.append(f"mount --bind {q(str(d / 'os-release'))} /etc/os-release")
        lines.append(f"exec {SSHD} -D -f {q(str(d / 'sshd_config'))} -E {q(str(node.log_path))}")
        return "\n".join(lines)

    def _spawn(self, node: LabNode) -> None:
        try:
            node.log_path.unlink()
        except FileNotFoundError:
            pass
        argv = ["ip", "netns", "exec", node.netns, "unshare", "--uts", "--mount", "--propagation", "private",
                "sh", "-c", self._node_script(node)]
        if self.nice:  # the nodes stand for other machines: their work must not starve the client under test
            argv = ["nice", "-n", str(self.nice)] + argv
        err = open(node.dir / "start.err", "wb")
        try:
            node.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
        finally:
            err.close()

    def _wait_ready(self, nodes: list[LabNode]) -> None:
        deadline = time.monotonic() + self.start_timeout
        pending = list(nodes)
        while pending:
            still = []
            for node in pending:
                if node.proc is not None and node.proc.poll() is not None:
                    err = (node.dir / "start.err").read_text(errors="replace")
                    log = node.log_path.read_text(errors="replace") if node.log_path.exists() else ""
                    raise HarnessError(f"sshd on {node.name} exited ({node.proc.returncode}): {err.strip()} {log.strip()}")
                try:
                    ready = "Server listening" in node.log_path.read_text(errors="replace")
                except FileNotFoundError:
                    ready = False
                if not ready:
                    still.append(node)
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    raise HarnessError(f"sshd did not start on {', '.join(n.name for n in pending)}")
                time.sleep(0.01)

    # ------------------------------------------------------------------ operations for tests
    def install_script(self, node: LabNode | str, name: str, text: str, mode: int = 0o755) -> Path:
        """Drop an executable into the node's own /usr/local/bin (visible at once, no restart)."""
        node = self._n(node)
        if "/" in name:
            raise ValueError("a script name, not a path")
        return _write(node.bin_dir / name, text, mode)

    def remove_script(self, node: LabNode | str, name: str) -> None:
        try:
            (self._n(node).bin_dir / name).unlink()
        except FileNotFoundError:
            pass

    def stop_node(self, node: LabNode | str) -> None:
        """Stop the node's sshd and every process in its namespace (its sessions)."""
        node = self._n(node)
        if node.proc and node.proc.poll() is None:
            node.proc.terminate()
            try:
                node.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(timeout=5)
        _kill_pids(_netns_pids(node.netns))

    def start_node(self, node: LabNode | str) -> None:
        node = self._n(node)
        if node.running:
            return
        self._spawn(node)
        self._wait_ready([node])

    def restart_node(self, node: LabNode | str) -> None:
        self.stop_node(node)
        self.start_node(node)

    def rebuild_host_key(self, node: LabNode | str) -> str:
        """Give the node a new host key (as if the VM was rebuilt) and restart its sshd. The
        harness's known_hosts is NOT updated. Returns the new fingerprint."""
        node = self._n(node)
        self.stop_node(node)
        self._new_host_key(node)
        self.start_node(node)
        return node.fingerprint

    def node_exec(self, node: LabNode | str, argv: list[str], *, input: str | None = None,
                  check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command inside the node (its network, mount and UTS namespaces), not over SSH."""
        node = self._n(node)
        if not node.pid:
            raise HarnessError(f"{node.name} is not running")
        return _run(["nsenter", "-t", str(node.pid), "-n", "-m", "-u", "--"] + argv, input=input, check=check, timeout=timeout)

    def add_client_key(self, name: str, *, passphrase: str | None = None, authorize: bool = True) -> Path:
        """Another client key pair (optionally passphrase-protected, optionally not authorized)."""
        private, public = generate_ed25519(f"{name}@{self.prefix}", passphrase)
        path = _write(self.dir / name, private, 0o600)
        _write(self.dir / (name + ".pub"), public + "\n", 0o644)
        if authorize:
            with open(self.authorized_keys, "a") as fh:
                fh.write(public + "\n")
        return path

    def node_specs(self, *, user: str = "root", via_config: bool = False) -> list[dict]:
        """Plan node entries (NodeSpec dicts) for these nodes: by address with the client key and
        (bastion topology) `proxy_jump: root@<bastion>`, or by ssh_config alias (`via_config`)."""
        specs = []
        for n in self.nodes:
            spec = {"name": n.name, "role": n.role, "user": user}
            if via_config:
                spec["address"] = n.name
            else:
                spec["address"] = n.address
                spec["key_file"] = str(self.client_key)
                if self.bastion:
                    spec["proxy_jump"] = f"root@{self.bastion.address}"
            specs.append(spec)
        return specs

    def plan_data(self, name: str = "lab", *, user: str = "root", via_config: bool = False) -> dict:
        """A dict for `Plan.parse` describing these nodes."""
        net = self.inner_subnet if self.with_bastion else self.subnet
        return {"name": name, "cloud": None, "nodes": self.node_specs(user=user, via_config=via_config),
                "node_subnet": str(net), "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16"}

    def _n(self, node: LabNode | str) -> LabNode:
        return self.node(node) if isinstance(node, str) else node


def root_ip_forward() -> str:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
