"""The Kubernetes adapter: a client with timeouts and clear errors over one cluster's API.

The `kubernetes` package is imported lazily (inside functions), so importing this module is cheap.
Where the kubeconfig comes from (a user's file, or admin.conf fetched over SSH) and the way to the
control plane are labtui.adapters.kubeconfig's; Calico's reads and changes over this client are
labtui.adapters.calico's.

Reaching the API
    If the kubeconfig's server cannot be reached directly (a private OpenStack address), the
    client goes through an SSH local port forward via the control-plane node to the same
    host:port, and keeps the TLS server name of the original address, so the API server's
    certificate is still verified against it. The forward comes from a `Forwarder` callable:
    `labtui.adapters.kubeconfig.ssh_forwarder(ctx)` builds one from labtui.adapters.ssh; tests
    pass their own.

Errors
    401 -> credentials expired or invalid; 403 -> RBAC forbids this verb on this resource;
    connect/read timeouts and refused connections -> the API is unreachable; TLS failures ->
    certificate mismatch. Each is a `LabError` naming the API server and what to do.

`kube_for(ctx)` is the session's client (cached in ctx.adapters.kube).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import socket
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from labtui.adapters.interfaces import Forwarder, LabContext
from labtui.adapters.kubeconfig import (
    client_cert_expiry,
    kubeconfig_info,
    load_kubeconfig,
    resolve_kubeconfig,
    ssh_forwarder,
)
from labtui.errors import LabError
from labtui.paths import session_dir

DEFAULT_TIMEOUT = (5.0, 20.0)  # (connect, read) seconds for every API request
REACH_TIMEOUT = 3.0


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

    def connect(self) -> None:
        """Connect now (directly or through the SSH forward), e.g. once before reading in parallel."""
        self.api()

    def api(self) -> Any:
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
            except Exception as exc:  # any SSH failure becomes a user message
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
                except Exception:
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
        except Exception as exc:  # urllib3 / socket errors become LabErrors
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
        except Exception as exc:
            raise self.error(exc, what) from None


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "Errno" in text or "timed out" in text or "refused" in text:
        for key in ("Connection refused", "timed out", "No route to host", "Name or service not known",
                    "Network is unreachable", "Temporary failure in name resolution"):
            if key in text:
                return key
    return text[:200]


# --------------------------------------------------------------------------- the session's client


def kube_for(ctx: LabContext, kubeconfig: str | Path | None = None, *, refresh: bool = False, fetch: bool = True) -> KubeClient:
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
