"""How labtui.adapters.ssh reaches a node: where to connect (the plan merged with ~/.ssh/config,
ProxyJump hops as direct-tcpip channels), host-key verification against labtui's known_hosts and the
user's (an unknown key goes to the decider, a changed one is refused), and logging in (key files,
passphrases asked never stored, the agent, the default keys). `NodeSSH` builds on this class."""

from __future__ import annotations

import errno
import os
import shlex
import socket
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from labtui import events as ev
from labtui.adapters.sshkeys import (
    DEFAULT_AUTH_TIMEOUT,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_IDENTITIES,
    DEFAULT_KEEPALIVE,
    DEFAULT_WORKERS,
    Endpoint,
    HostKeyChanged,
    HostKeyDecider,
    HostKeyInfo,
    HostKeyUnknown,
    KeyNeedsPassphrase,
    KnownHosts,
    PassphraseCallback,
    close_quietly,
    default_ssh_config_path,
    default_user_known_hosts,
    load_private_key,
    local_user,
    parse_hop,
    sha256_fingerprint,
)
from labtui.errors import LabError
from labtui.events import Event, null_emit
from labtui.model import NodeSpec
from labtui.paths import known_hosts_path
from labtui.redact import add_secret


class SSHConnections:
    """Connections to a session's nodes (one transport per node and per jump host), with host-key
    checks and authentication. Subclassed by NodeSSH, which runs commands over them."""

    def __init__(
        self,
        nodes: Iterable[NodeSpec] = (),
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
        self.nodes: dict[str, NodeSpec] = {}
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
    def set_nodes(self, nodes: Iterable[NodeSpec]) -> None:
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
                except Exception as exc:  # a broken config is the user's to fix
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
        except Exception as exc:
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
            spec.ssh_host or spec.address, label=spec.name, user=spec.user, user_is_default=spec.user == "ubuntu",
            port=spec.port, key_file=spec.key_file, proxy_jump=spec.proxy_jump, depth=0,
        )
        self._resolved[node] = (spec, mtime, ep)
        return ep

    def _spec(self, node: str) -> NodeSpec:
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
        final_user = (cfg_user if (user is None or user_is_default) and cfg_user else user) or cfg_user or local_user()
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
            ep = self._resolve_alias(spec.ssh_host or spec.address, label=spec.name, user=user or spec.user, user_is_default=user is None and spec.user == "ubuntu",
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
            except Exception as exc:
                raise LabError(f"{ep.label}: the ProxyCommand from the SSH config failed to start: {exc}",
                               "fix ProxyCommand for this host in ~/.ssh/config", code="config") from None
            via = " through its ProxyCommand"
        else:
            sock = self._tcp_connect(ep)
        try:
            t = paramiko.Transport(sock)
        except Exception as exc:
            close_quietly(sock)
            raise LabError(f"{ep.label}: cannot start SSH on {ep.display}{via}: {exc}", "try again", code="ssh") from None
        t.banner_timeout = self.connect_timeout
        t.handshake_timeout = self.connect_timeout
        t.auth_timeout = self.auth_timeout
        try:
            self._prefer_known_key_types(t, ep)
            try:
                t.start_client(timeout=self.connect_timeout)
                # start_client returns silently when its timeout passes before the key exchange ends (the
                # banner never came): without a server key, later calls fail with "No existing session"
                if not t.is_active() or t.host_key is None:
                    raise EOFError("no SSH banner")
            except (paramiko.SSHException, EOFError, OSError) as exc:
                text = str(exc) or type(exc).__name__
                if ("banner" in text.lower() or isinstance(exc, EOFError) or "timeout" in text.lower()
                        or "timed out" in text.lower()):
                    raise LabError(
                        f"{ep.label}: {ep.host}:{ep.port}{via} accepted the connection but did not speak SSH within "
                        f"{self.connect_timeout:.0f} s ({text})",
                        "a VM that is still booting answers like this: wait a minute and run it again; if it "
                        f"persists, check that sshd runs on the machine and listens on port {ep.port} "
                        "(ss -tlnp on its console), and that the plan's SSH port is right",
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
            except Exception:  # an unusable agent is skipped, as OpenSSH does
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
            except KeyNeedsPassphrase:
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
                    except KeyNeedsPassphrase:
                        self.emit(Event(ev.WARN, f"wrong passphrase for {p}", node=ep.label))
                    finally:
                        phrase = None  # never kept
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
                               "try again; the server may limit logins (MaxStartups) or be overloaded", code="auth") from None
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
