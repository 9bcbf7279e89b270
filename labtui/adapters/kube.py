"""The Kubernetes adapter: kubeconfig, a client with timeouts and clear errors, Calico read and change.

The `kubernetes` package is imported lazily (inside functions), so importing this module is cheap.

Kubeconfig
    From a file the user names (`--kubeconfig FILE`, kept where it is), or fetched once over SSH
    from the control plane (`sudo cat /etc/kubernetes/admin.conf`) into `admin.conf` (0600) in the
    session directory. Never in the database, the event log or stdout.

Reaching the API
    If the kubeconfig's server cannot be reached directly (a private OpenStack address), the
    client goes through an SSH local port forward via the control-plane node to the same
    host:port, and keeps the TLS server name of the original address, so the API server's
    certificate is still verified against it. The forward comes from a `Forwarder` callable:
    `ssh_forwarder(ctx)` builds one from labtui.adapters.ssh; tests pass their own.

Errors
    401 -> credentials expired or invalid; 403 -> RBAC forbids this verb on this resource;
    connect/read timeouts and refused connections -> the API is unreachable; TLS failures ->
    certificate mismatch. Each is a `LabError` naming the API server and what to do.

Calico
    `read_cluster(kc)` reads install mode, API flavour, backend, BGP, Typha, version, pools, nodes
    and calico-node pods (in parallel) into `labtui.net.calico.ClusterState`.
    `plan_change(...)` picks the supported way (Installation JSON patch / v3 / calicoctl / v1 CRD);
    `apply_change(...)` runs it (one request setting ipipMode and vxlanMode together) and, for the
    operator, waits until the pool shows the new mode. The Action and its record are the change
    catalogue's (labtui.changes.calico); this adapter only talks to the API.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

import yaml

from labtui import events as ev
from labtui.net.calico import (
    OPERATOR_API,
    V1,
    V3,
    ClusterState,
    IPPoolInfo,
    ModeChange,
    attach_pods,
    detect_install,
    parse_node,
    parse_pod,
    parse_pool,
    plan_mode_change,
)
from labtui.errors import LabError
from labtui.events import Event, null_emit
from labtui.paths import session_dir, write_private

ADMIN_CONF = "admin.conf"
DEFAULT_TIMEOUT = (5.0, 20.0)  # (connect, read) seconds for every API request
REACH_TIMEOUT = 3.0

Forwarder = Callable[[str, int], "tuple[int, Callable[[], None]]"]
"""forwarder(remote_host, remote_port) -> (local_port, close): an SSH local port forward."""


class Shell(Protocol):
    """A command runner on the control-plane node (labtui.adapters.ssh in real use, a simulation in tests).

    `run` must not stream stdout into the event log when `quiet` is set (admin.conf is a secret)."""

    node: str

    def run(self, command: str, *, timeout: float = 30.0, quiet: bool = False) -> tuple[int, str, str]: ...


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
    except Exception:  # noqa: BLE001 - only used to sharpen an error message
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


# --------------------------------------------------------------------------- errors


def _status_message(body: Any) -> str:
    if not body:
        return ""
    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
        return str(data.get("message") or "")
    except (ValueError, AttributeError):
        return str(body)[:200]


class KubeClient:
    """One cluster's API. Build with a kubeconfig path; `close()` ends any SSH forward."""

    def __init__(
        self,
        kubeconfig: str | Path,
        *,
        context: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        forwarder: Forwarder | None = None,
        temp_dir: Path | None = None,
        reach_timeout: float = REACH_TIMEOUT,
    ) -> None:
        self.kubeconfig = Path(kubeconfig).expanduser()
        self.info = kubeconfig_info(self.kubeconfig, context)
        self.context = self.info.context
        self.timeout = timeout
        self.forwarder = forwarder
        self.temp_dir = temp_dir
        self.reach_timeout = reach_timeout
        self._api = None
        self._close_forward: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self.via: str | None = None  # "direct" or "ssh forward 127.0.0.1:PORT"

    # ---------------------------------------------------------------- connection
    @property
    def server(self) -> str:
        return self.info.server

    def _reachable(self, host: str, port: int) -> bool:
        try:
            with socket.create_connection((host, port), timeout=self.reach_timeout):
                return True
        except OSError:
            return False

    def api(self):
        """The kubernetes ApiClient (built on first use; picks direct or the SSH forward)."""
        with self._lock:
            if self._api is None:
                self._api = self._build()
            return self._api

    def _build(self):
        from kubernetes import client
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.kube_config import KubeConfigLoader

        data = load_kubeconfig(self.kubeconfig)
        host, port = self.info.host_port
        if self._reachable(host, port):
            self.via = "direct"
        elif self.forwarder is not None:
            try:
                local_port, close = self.forwarder(host, port)
            except LabError:
                raise
            except Exception as exc:  # noqa: BLE001 - any SSH failure becomes a user message
                raise LabError(f"the Kubernetes API {self.server} is not reachable from here, and the SSH "
                               f"forward through the control plane failed: {exc}",
                               "check that the control-plane node answers over SSH", code="unreachable") from exc
            self._close_forward = close
            scheme = urlsplit(self.server).scheme or "https"
            # The forward goes into the kubeconfig itself (server + tls-server-name), not into the client
            # configuration afterwards: with a token, the loader's refresh hook copies the kubeconfig's
            # server back into the configuration before every request.
            data = copy.deepcopy(data)
            for entry in data.get("clusters") or []:
                if entry.get("name") == self.info.cluster:
                    entry["cluster"]["server"] = f"{scheme}://127.0.0.1:{local_port}"
                    if scheme == "https" and not entry["cluster"].get("tls-server-name"):
                        entry["cluster"]["tls-server-name"] = host  # verify the certificate against the original address
            self.via = f"ssh forward 127.0.0.1:{local_port} -> {host}:{port}"
        else:
            raise LabError(
                f"the Kubernetes API {self.server} is not reachable from here (no answer on {host}:{port} "
                f"within {self.reach_timeout:g}s)",
                "check the address and the security group (TCP 6443), or let labtui reach it through an SSH "
                "forward via the control plane (a lab with a saved plan does this by itself)", code="unreachable")
        cfg = client.Configuration()
        try:
            # What new_client_from_config(..., persist_config=False) does, with two differences: the client
            # key it extracts goes to temp_dir (the 0700 session directory) instead of /tmp, and the
            # kubeconfig may carry the SSH forward above.
            KubeConfigLoader(config_dict=data, active_context=self.context,
                             config_base_path=str(self.kubeconfig.parent),
                             temp_file_path=str(self.temp_dir) if self.temp_dir else None).load_and_set(cfg)
        except ConfigException as exc:
            raise LabError(f"the kubeconfig {self.kubeconfig} cannot be used: {exc}",
                           "fetch a fresh admin.conf from the control plane", code="kubeconfig") from exc
        cfg.retries = False  # one attempt: a dead API must fail within the timeout, not 4 x it
        cfg.connection_pool_maxsize = 8
        return client.ApiClient(configuration=cfg)

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                try:
                    self._api.close()
                except Exception:  # noqa: BLE001
                    pass
                self._api = None
            if self._close_forward is not None:
                try:
                    self._close_forward()
                finally:
                    self._close_forward = None

    # ---------------------------------------------------------------- errors
    def error(self, exc: BaseException, what: str) -> LabError:
        """Translate a client or network exception into a LabError naming the API and what to do."""
        from kubernetes.client.exceptions import ApiException

        api = f"the Kubernetes API at {self.server}"
        if isinstance(exc, LabError):
            return exc
        if isinstance(exc, ApiException):
            err = self._api_error(exc, what, api)
            err.status = exc.status  # type: ignore[attr-defined]
            return err
        return self._network_error(exc, what, api)

    def _api_error(self, exc: Any, what: str, api: str) -> LabError:
        status = exc.status or 0
        msg = _status_message(exc.body)
        if status == 0:  # the REST client wraps urllib3's SSLError as ApiException(status=0)
            reason = str(exc.reason or "").replace("\n", ": ")
            if "SSL" in reason or "CERTIFICATE" in reason:
                return LabError(f"{api}: TLS verification failed while trying to {what}: {reason}",
                                "the kubeconfig's certificate authority or server address does not match the "
                                "cluster; fetch a fresh admin.conf", code="tls")
            return LabError(f"{api}: {what} failed: {reason}", "retry; look at the command log", code="api")
        if status == 401:
            expiry = client_cert_expiry(self.kubeconfig, self.context)
            now = _dt.datetime.now(_dt.timezone.utc)
            why = (f"the client certificate expired on {expiry:%Y-%m-%d %H:%M} UTC" if expiry and expiry < now
                   else "the token or client certificate is expired or invalid")
            return LabError(
                f"{api} refused the credentials of {self.info.user or 'the kubeconfig user'} in {self.kubeconfig} "
                f"(401 Unauthorized) while trying to {what}: {why}",
                "fetch a fresh admin.conf from the control plane (labtui calico show NAME --refresh-kubeconfig), "
                "or renew the certificates there with `kubeadm certs renew all`", code="unauthorized")
        if status == 403:
            return LabError(
                f"{api} forbids {self.info.user or 'this user'} to {what} (403 Forbidden by RBAC)"
                + (f": {msg}" if msg else ""),
                "use a kubeconfig with cluster-admin rights (the control plane's /etc/kubernetes/admin.conf), "
                "or have an admin grant this verb on this resource", code="forbidden")
        if status == 404:
            return LabError(f"{api}: not found while trying to {what}" + (f": {msg}" if msg else ""),
                            "the resource does not exist (any more); refresh the view", code="not-found")
        if status == 409:
            return LabError(f"{api}: conflict while trying to {what}: {msg}", "refresh and try again", code="conflict")
        if status in (400, 422):
            return LabError(f"{api} rejected the request to {what} ({status}): {msg}",
                            "the object changed since it was read, or the value is not allowed; refresh and retry",
                            code="invalid")
        if status == 503:
            return LabError(f"{api} is unavailable for {what} (503): {msg or exc.reason}",
                            "an aggregated API server (e.g. the Calico API server) may be down; retry later",
                            code="unavailable")
        return LabError(f"{api} answered {status} {exc.reason or ''} while trying to {what}" + (f": {msg}" if msg else ""),
                        "look at the API server's state; retry", code="api")

    def _network_error(self, exc: BaseException, what: str, api: str) -> LabError:
        import urllib3.exceptions as ue

        reason = exc.reason if isinstance(exc, ue.MaxRetryError) else exc
        if isinstance(reason, ue.SSLError) or isinstance(exc, ue.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
            return LabError(f"{api}: TLS verification failed while trying to {what}: {reason}",
                            "the kubeconfig's certificate authority or server address does not match the cluster; "
                            "fetch a fresh admin.conf", code="tls")
        if isinstance(reason, (ue.ConnectTimeoutError, ue.NewConnectionError, ConnectionError, ue.ProtocolError)):
            return LabError(f"{api} is unreachable (while trying to {what}): {_short(reason)}",
                            "check that the control plane is up and TCP 6443 is open; labtui retries through an "
                            "SSH forward via the control plane when the address is private", code="unreachable")
        if isinstance(reason, (ue.ReadTimeoutError, TimeoutError, socket.timeout)):
            return LabError(f"{api} did not answer within {self.timeout[1]:g}s (while trying to {what})",
                            "the API server is overloaded or half down; retry, or look at the control plane",
                            code="timeout")
        if isinstance(exc, ue.HTTPError):
            return LabError(f"{api}: {what} failed: {_short(reason)}", "retry; look at the control plane", code="api")
        return LabError(f"{api}: {what} failed: {type(exc).__name__}: {exc}", "retry; look at the command log", code="api")

    def _get(self, what: str, path: str, query: dict[str, str] | None = None, *, missing_ok: bool = False) -> Any:
        """GET one API path; JSON back (None for 404 when missing_ok).

        Reads go through the ApiClient (auth, TLS, token refresh from the kubeconfig) but not through
        the generated CoreV1Api/AppsV1Api classes: building those costs about 1.5 s on first use in
        the 37.x client, more than the whole read of a 4-node lab."""
        from kubernetes.client.exceptions import ApiException

        try:
            api = self.api()
            params = api.param_serialize("GET", path, query_params=list((query or {}).items()) or None,
                                         header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
            resp = api.call_api(*params, _request_timeout=self.timeout)
            resp.read()
            if not 200 <= resp.status <= 299:
                raise ApiException(http_resp=resp)
            return json.loads(resp.data) if resp.data else {}
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise self.error(exc, what) from None
        except LabError:
            raise
        except Exception as exc:  # noqa: BLE001 - urllib3 / socket errors become LabErrors
            raise self.error(exc, what) from None

    # ---------------------------------------------------------------- API surface (raw JSON)
    def version(self) -> dict[str, Any]:
        return self._get("read the server version", "/version/")

    def list_nodes(self) -> list[dict[str, Any]]:
        return self._get("list nodes", "/api/v1/nodes").get("items") or []

    def list_pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        data = self._get(f"list pods in {namespace}", f"/api/v1/namespaces/{namespace}/pods", query)
        return (data or {}).get("items") or []

    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(f"read configmap {namespace}/{name}", f"/api/v1/namespaces/{namespace}/configmaps/{name}",
                         missing_ok=True)

    def list_daemonsets(self) -> list[dict[str, Any]]:
        return self._get("list daemonsets", "/apis/apps/v1/daemonsets").get("items") or []

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(f"read deployment {namespace}/{name}", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
                         missing_ok=True)

    def get_custom(self, group: str, version: str, plural: str, name: str) -> dict[str, Any] | None:
        return self._get(f"read {plural}.{group}/{name}", f"/apis/{group}/{version}/{plural}/{name}", missing_ok=True)

    def list_custom(self, group: str, version: str, plural: str) -> list[dict[str, Any]] | None:
        data = self._get(f"list {plural}.{group}", f"/apis/{group}/{version}/{plural}", missing_ok=True)
        return None if data is None else data.get("items") or []

    def served(self, group: str, version: str) -> tuple[bool, str | None]:
        """Discovery GET /apis/{group}/{version}: (served, why not when registered but failing)."""
        try:
            data = self._get(f"discover {group}/{version}", f"/apis/{group}/{version}", missing_ok=True)
        except LabError as exc:
            status = getattr(exc, "status", None)
            if status is not None and status >= 500:
                return False, f"{status} {exc.message.rsplit(': ', 1)[-1]}"
            raise
        return bool(data and data.get("resources")), None

    def patch_custom(self, group: str, version: str, plural: str, name: str, body: Any, content_type: str) -> dict[str, Any]:
        """PATCH a cluster-scoped custom object with an EXPLICIT content type: the 37.x client sends
        merge-patch by default even for a JSON-Patch list (facts 7.1), which an apiserver rejects."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        what = f"patch {plural}.{group}/{name}"
        try:
            resp = client.CustomObjectsApi(self.api()).patch_cluster_custom_object(
                group, version, plural, name, body, _content_type=content_type,
                _request_timeout=self.timeout, _preload_content=False)
            return json.loads(resp.data) if resp.data else {}
        except ApiException as exc:
            raise self.error(exc, what) from None
        except LabError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc, what) from None


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "Errno" in text or "timed out" in text or "refused" in text:
        for key in ("Connection refused", "timed out", "No route to host", "Name or service not known",
                    "Network is unreachable", "Temporary failure in name resolution"):
            if key in text:
                return key
    return text[:200]


# --------------------------------------------------------------------------- Calico read


def read_cluster(kc: KubeClient) -> ClusterState:
    """Everything the Calico screen, CLI and doctor need, read in two parallel waves."""
    started = time.monotonic()
    kc.api()  # connect (or forward) once, before the threads
    warnings: list[str] = []

    def optional(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            try:
                return fn()
            except LabError as exc:
                if exc.code == "forbidden":
                    warnings.append(exc.message)
                    return None
                raise
        return run

    wave1 = {
        "version": kc.version,
        "nodes": kc.list_nodes,
        "daemonsets": optional(kc.list_daemonsets),
        "installation": optional(lambda: kc.get_custom(*OPERATOR_API, "installations", "default")),
        "operator": optional(lambda: kc.read_deployment("tigera-operator", "tigera-operator")),
        "typha_ks": optional(lambda: kc.read_deployment("kube-system", "calico-typha")),
        "typha_cs": optional(lambda: kc.read_deployment("calico-system", "calico-typha")),
        "calico_config": optional(lambda: kc.read_configmap("kube-system", "calico-config")),
        "v3": lambda: kc.served(*V3),
        "v1": lambda: kc.served(*V1),
        "pods_ks": optional(lambda: kc.list_pods("kube-system", "k8s-app=calico-node")),
        "pods_cs": optional(lambda: kc.list_pods("calico-system", "k8s-app=calico-node")),
    }
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="kube-read") as pool:
        futures = {k: pool.submit(fn) for k, fn in wave1.items()}
        r = {k: f.result() for k, f in futures.items()}
    v3_served, v3_error = r["v3"]
    v1_served, _ = r["v1"]
    install = detect_install(
        daemonsets=r["daemonsets"] or [],
        installation=r["installation"],
        operator_deployment=r["operator"],
        typha_deployment=r["typha_cs"] or r["typha_ks"],
        calico_config=r["calico_config"],
        v3_served=v3_served,
        v3_error=v3_error,
        v1_crds=v1_served,
    )
    if v3_error:
        warnings.append(f"projectcalico.org/v3 is registered but failing ({v3_error}): the Calico API server is down")
    pools: list[IPPoolInfo] = []
    if v3_served:
        items = optional(lambda: kc.list_custom(*V3, "ippools"))()
        pools = [parse_pool(o, "projectcalico.org/v3") for o in items or []]
    elif v1_served:
        items = optional(lambda: kc.list_custom(*V1, "ippools"))()
        pools = [parse_pool(o, "crd.projectcalico.org/v1") for o in items or []]
    pools.sort(key=lambda p: (p.version, p.name))
    nodes = [parse_node(o) for o in r["nodes"]]
    nodes.sort(key=lambda n: ("control-plane" not in n.roles, n.name))
    pod_items = (r["pods_cs"] or []) if install.namespace == "calico-system" else (r["pods_ks"] or [])
    pods = [parse_pod(o) for o in pod_items if ((o.get("metadata") or {}).get("labels") or {}).get("k8s-app") == "calico-node"]
    attach_pods(nodes, pods)
    if install.version is None:
        install.version = next((v for v in (_image_version(p.image) for p in pods) if v), None)
    version = r["version"] or {}
    return ClusterState(
        server=kc.server,
        kubernetes_version=version.get("gitVersion"),
        install=install,
        pools=pools,
        nodes=nodes,
        warnings=warnings,
        read_seconds=round(time.monotonic() - started, 3),
    )


def _image_version(image: str | None) -> str | None:
    from labtui.net.calico import image_version

    return image_version(image)


def read_pool(kc: KubeClient, state: ClusterState, name: str) -> IPPoolInfo | None:
    group, version = V3 if state.install.v3_served else V1
    obj = kc.get_custom(group, version, "ippools", name)
    return parse_pool(obj, f"{group}/{version}") if obj else None


# --------------------------------------------------------------------------- Calico change


def has_calicoctl(shell: Shell | None) -> tuple[bool, str | None]:
    """(present, why it could not be checked) for calicoctl on the control plane."""
    if shell is None:
        return False, None
    try:
        rc, _out, _err = shell.run("command -v calicoctl", timeout=15.0)
    except LabError as exc:
        return False, f"could not check for calicoctl on {shell.node}: {exc.message}"
    return rc == 0, None


def plan_change(kc: KubeClient, state: ClusterState, pool: str, target: Any, *,
                shell: Shell | None = None) -> ModeChange:
    """The supported change for this cluster; probes calicoctl on the control plane only when the
    operator and the v3 API are both out of the picture."""
    calicoctl, why = False, None
    if state.install.mode != "operator" and not state.install.v3_served:
        calicoctl, why = has_calicoctl(shell)
    change = plan_mode_change(state, pool, target, calicoctl=calicoctl)
    if why:
        change.notes.insert(0, why)
    if change.method == "calicoctl" and shell is not None:
        change.command = change.command.replace("CONTROL_PLANE", shell.node)
        change.revert_command = change.revert_command.replace("CONTROL_PLANE", shell.node)
    return change


def apply_change(
    kc: KubeClient,
    state: ClusterState,
    change: ModeChange,
    *,
    shell: Shell | None = None,
    accept_warning: bool = False,
    emit: Callable[[Event], None] = null_emit,
    wait_timeout: float = 90.0,
    poll: float = 1.0,
    revert: bool = False,
) -> IPPoolInfo:
    """Send the one request (or calicoctl command) and wait until the pool shows the modes."""
    if change.warning and not accept_warning:
        raise LabError(f"not applied: {change.warning}",
                       "accept the warning explicitly (UI: confirm the red dialog; headless: --accept-crd-warning)",
                       code="needs-consent")
    api = change.revert_api if revert else change.api
    remote = change.revert_remote_command if revert else change.remote_command
    command = change.revert_command if revert else change.command
    want = change.old_modes if revert else change.new_modes
    emit(Event(ev.ACTION_START, f"$ {command}", node=shell.node if remote and shell else None,
               data={"pool": change.pool, "method": change.method}))
    if change.method == "calicoctl":
        if shell is None:
            raise LabError("calicoctl needs SSH to the control plane, which is not available here",
                           "open the lab that built this cluster, or pass a kubeconfig for the v3/CRD path")
        rc, out, err = shell.run(remote or "", timeout=60.0)
        if rc != 0:
            raise LabError(f"{shell.node}: calicoctl patch ippool {change.pool} failed (exit {rc}): "
                           f"{(err or out).strip()[:300]}", "look at the command log", code="calicoctl")
    else:
        assert api is not None
        _, group, version, plural, name = _split_path(api.path)
        kc.patch_custom(group, version, plural, name, api.body, api.content_type)
    change.sent = True
    limit = wait_timeout if change.method == "installation" else min(wait_timeout, 15.0)
    deadline = time.monotonic() + limit
    seen = None
    while True:
        seen = read_pool(kc, state, change.pool)
        if seen is not None and (seen.ipip_mode, seen.vxlan_mode) == want:
            break
        if time.monotonic() >= deadline:
            got = f"ipipMode {seen.ipip_mode}, vxlanMode {seen.vxlan_mode}" if seen else "the pool is gone"
            who = "the tigera-operator did not apply the Installation change" if change.method == "installation" \
                else "the pool does not show the new mode"
            raise LabError(
                f"{who} to IP pool {change.pool} within {limit:g}s ({got})",
                "look at `kubectl get tigerastatus` and the Installation's status; the request itself was accepted",
                code="timeout")
        emit(Event(ev.INFO, f"waiting for IP pool {change.pool} to show ipipMode {want[0]}, vxlanMode {want[1]}"))
        time.sleep(poll)
    emit(Event(ev.ACTION_DONE, f"IP pool {change.pool}: ipipMode {seen.ipip_mode}, vxlanMode {seen.vxlan_mode}"))
    return seen


def _split_path(path: str) -> tuple[str, str, str, str, str]:
    # /apis/{group}/{version}/{plural}/{name}
    parts = path.strip("/").split("/")
    if len(parts) != 5 or parts[0] != "apis":
        raise ValueError(path)
    return parts[0], parts[1], parts[2], parts[3], parts[4]


# --------------------------------------------------------------------------- wiring to a session


def _plan_of(ctx: Any):
    from labtui.model import Plan

    data = ctx.session.plan
    return Plan.model_validate(data) if data else None


def control_plane_shell(ctx: Any) -> Shell | None:
    """A Shell on the plan's control-plane node over SSH (labtui.adapters.ssh), or None without a plan."""
    factory = ctx.tuning.kube_shell_factory
    if factory is not None:  # tests inject one
        return factory(ctx)
    plan = _plan_of(ctx)
    if plan is None or not plan.nodes:
        return None
    from labtui.adapters.ssh import kube_shell

    return kube_shell(ctx, plan.control_plane)


def ssh_forwarder(ctx: Any) -> Forwarder | None:
    """An SSH local port forward via the control-plane node (labtui.adapters.ssh), or None."""
    factory = ctx.tuning.kube_forwarder_factory
    if factory is not None:
        return factory(ctx)
    plan = _plan_of(ctx)
    if plan is None or not plan.nodes:
        return None
    from labtui.adapters.ssh import local_forward

    node = plan.control_plane
    return lambda host, port: local_forward(ctx, node, host, port)


def resolve_kubeconfig(ctx: Any, explicit: str | Path | None = None, *, refresh: bool = False, fetch: bool = True,
                       emit: Callable[[Event], None] | None = None) -> Path:
    """The kubeconfig for this lab: an explicit file, the one remembered in the session inputs, the
    session's admin.conf, or a fresh copy fetched over SSH from the control plane. An adapter writes
    no store: the command or step that got an explicit file remembers it
    (labtui.stages.calico.remember_kubeconfig)."""
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


def kube_for(ctx: Any, kubeconfig: str | Path | None = None, *, refresh: bool = False, fetch: bool = True) -> KubeClient:
    """The session's KubeClient (cached in ctx.adapters.kube)."""
    cached = ctx.adapters.kube
    if cached is not None and not refresh and (
            kubeconfig is None or Path(kubeconfig).expanduser().resolve() == cached.kubeconfig.resolve()):
        return cached
    if cached is not None:
        cached.close()
    path = resolve_kubeconfig(ctx, kubeconfig, refresh=refresh, fetch=fetch)
    kc = KubeClient(path, forwarder=ssh_forwarder(ctx), temp_dir=session_dir(ctx.session.name, ctx.store.home),
                    context=ctx.inputs.get("kube_context"))
    ctx.adapters.kube = kc
    return kc
