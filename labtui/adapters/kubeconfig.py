"""Where the Kubernetes adapter's kubeconfig comes from, and the way to the control plane.

No `kubernetes` import here (only yaml, and `cryptography` lazily for a certificate's expiry).

Kubeconfig
    From a file the user names (`--kubeconfig FILE`, kept where it is), or fetched once over SSH
    from the control plane (`sudo cat /etc/kubernetes/admin.conf`) into `admin.conf` (0600) in the
    session directory. Never in the database, the event log or stdout. `resolve_kubeconfig(ctx)`
    picks which one a lab uses.

The control plane
    `control_plane_shell(ctx)` is a `Shell` on the plan's control-plane node and `ssh_forwarder(ctx)`
    a `Forwarder` (an SSH local port forward) through it, both from labtui.adapters.ssh; tests
    inject their own through the context's tuning. labtui.adapters.kube's client uses the forward
    when the API server's address cannot be reached directly.
"""

from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import yaml

from labtui import events as ev
from labtui.adapters.interfaces import Forwarder, LabContext, Shell
from labtui.adapters.ssh import kube_shell, local_forward
from labtui.errors import LabError
from labtui.events import Event, null_emit
from labtui.paths import session_dir, write_private

ADMIN_CONF = "admin.conf"

# --------------------------------------------------------------------------- kubeconfig


def session_kubeconfig(name: str, home: Path | None = None) -> Path:
    return session_dir(name, home) / ADMIN_CONF


def load_kubeconfig(path: str | Path) -> dict[str, Any]:
    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except OSError as exc:
        raise LabError(f"cannot read the kubeconfig {p}: {exc.strerror or exc}",
                       "check the path (on the control plane it is /etc/kubernetes/admin.conf)", code="kubeconfig") from exc
    return parse_kubeconfig(text, str(p))


def parse_kubeconfig(text: str, source: str = "kubeconfig") -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LabError(f"{source} is not valid YAML", "fetch a fresh copy of the kubeconfig", code="kubeconfig") from exc
    if not isinstance(data, dict) or not data.get("clusters") or not data.get("users"):
        raise LabError(f"{source} is not a kubeconfig (no clusters or users)",
                       "point at a kubeconfig such as the control plane's /etc/kubernetes/admin.conf", code="kubeconfig")
    return data


def _named(items: list[dict[str, Any]] | None, name: str | None, key: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return item.get(key) or {}
    return {}


@dataclass
class KubeconfigInfo:
    path: Path
    context: str | None
    server: str
    user: str | None
    cluster: str | None

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.server)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.hostname or "", port


def kubeconfig_info(path: str | Path, context: str | None = None) -> KubeconfigInfo:
    data = load_kubeconfig(path)
    ctx_name = context or data.get("current-context")
    if context and not any(c.get("name") == context for c in data.get("contexts") or []):
        names = ", ".join(c.get("name", "?") for c in data.get("contexts") or [])
        raise LabError(f"the kubeconfig {path} has no context {context!r} (contexts: {names})",
                       "pass one of its contexts with --context", code="kubeconfig")
    ctx = _named(data.get("contexts"), ctx_name, "context")
    if not ctx and data.get("contexts"):
        ctx = data["contexts"][0].get("context") or {}
        ctx_name = data["contexts"][0].get("name")
    cluster = _named(data.get("clusters"), ctx.get("cluster"), "cluster")
    server = cluster.get("server")
    if not server:
        raise LabError(f"the kubeconfig {path} names no API server for context {ctx_name!r}",
                       "fetch a fresh admin.conf from the control plane", code="kubeconfig")
    return KubeconfigInfo(Path(path), ctx_name, server, ctx.get("user"), ctx.get("cluster"))


def client_cert_expiry(path: str | Path, context: str | None = None) -> _dt.datetime | None:
    """notAfter of the client certificate in the kubeconfig (None when it uses a token)."""
    try:
        data = load_kubeconfig(path)
        info = kubeconfig_info(path, context)
        user = _named(data.get("users"), info.user, "user")
        pem = None
        if user.get("client-certificate-data"):
            pem = base64.b64decode(user["client-certificate-data"])
        elif user.get("client-certificate"):
            pem = Path(user["client-certificate"]).expanduser().read_bytes()
        if not pem:
            return None
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(pem)
        return cert.not_valid_after_utc
    except Exception:  # only used to sharpen an error message
        return None


def fetch_admin_conf(shell: Shell, dest: Path, emit: Callable[[Event], None] = null_emit) -> Path:
    """`sudo cat /etc/kubernetes/admin.conf` on the control plane into dest (0600). The content never
    reaches the event log: the command runs quiet and only its outcome is reported."""
    command = "sudo -n cat /etc/kubernetes/admin.conf"
    emit(Event(ev.ACTION_START, f"$ ssh {shell.node} '{command}'  (output kept in {dest}, not shown)", node=shell.node))
    rc, out, err = shell.run(command, timeout=30.0, quiet=True)
    if rc != 0:
        detail = (err or "").strip().splitlines()[-1:] or [f"exit code {rc}"]
        hint = "kubeadm init has not run there yet?" if "No such file" in (err or "") else (
            "the SSH user needs passwordless sudo to read it" if "password" in (err or "").lower() else
            "look at the command log")
        raise LabError(f"{shell.node}: cannot read /etc/kubernetes/admin.conf: {detail[0]}", hint, code="kubeconfig")
    parse_kubeconfig(out, f"{shell.node}:/etc/kubernetes/admin.conf")
    write_private(dest, out)
    emit(Event(ev.ACTION_DONE, f"saved the cluster's admin kubeconfig to {dest} (0600)", node=shell.node))
    return dest


# --------------------------------------------------------------------------- wiring to a session


def control_plane_shell(ctx: LabContext) -> Shell | None:
    """A Shell on the plan's control-plane node over SSH (labtui.adapters.ssh), or None without a plan."""
    factory = ctx.tuning.kube_shell_factory
    if factory is not None:  # tests inject one
        return factory(ctx)
    plan = ctx.plan
    if plan is None or not plan.nodes:
        return None
    return kube_shell(ctx, plan.control_plane)


def ssh_forwarder(ctx: LabContext) -> Forwarder | None:
    """An SSH local port forward via the control-plane node (labtui.adapters.ssh), or None."""
    factory = ctx.tuning.kube_forwarder_factory
    if factory is not None:
        return factory(ctx)
    plan = ctx.plan
    if plan is None or not plan.nodes:
        return None
    node = plan.control_plane
    return lambda host, port: local_forward(ctx, node, host, port)


def resolve_kubeconfig(ctx: LabContext, explicit: str | Path | None = None, *, refresh: bool = False, fetch: bool = True,
                       emit: Callable[[Event], None] | None = None) -> Path:
    """The kubeconfig for this lab: an explicit file, the one remembered in the session inputs, the
    session's admin.conf, or a fresh copy fetched over SSH from the control plane. An adapter writes
    no store: the command or step that got an explicit file remembers it
    (labtui.steps.StepContext.remember_kubeconfig)."""
    emit = emit or ctx.emit
    if explicit:
        p = Path(explicit).expanduser().resolve()
        kubeconfig_info(p)  # readable and usable, or a clear error
        return p
    remembered = ctx.inputs.get("kubeconfig")
    dest = session_kubeconfig(ctx.session.name, ctx.store.home)
    if remembered and Path(remembered) != dest:
        return Path(remembered)  # the user's own file: labtui does not replace it
    if dest.exists() and not refresh:
        return dest
    shell = control_plane_shell(ctx) if fetch else None
    if not fetch:
        raise LabError(f"the lab {ctx.session.name} has no kubeconfig yet",
                       "run the step 'Reach the Kubernetes API' (it fetches admin.conf from the control plane)",
                       code="kubeconfig")
    if shell is None:
        raise LabError(
            f"no kubeconfig for the lab {ctx.session.name}",
            "pass --kubeconfig FILE (e.g. a copy of the control plane's /etc/kubernetes/admin.conf), or save a plan "
            "with the control-plane node so labtui can fetch it over SSH", code="kubeconfig")
    return fetch_admin_conf(shell, dest, emit)

