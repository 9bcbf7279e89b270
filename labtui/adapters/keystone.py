"""The early Keystone log-in: keystoneauth1 alone, begun before openstacksdk is imported.

`labtui doctor` starts it right after it knows the lab's cloud (before the session's own imports),
so Keystone's password check overlaps the imports; labtui.adapters.openstack.connect() hands the
token to the SDK (EarlyLogin.hand_over). Light on purpose: the standard library and clouds.yaml
(labtui.cloudconfig, which begin_login reads at once anyway) here, keystoneauth1 only in the log-in thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from labtui.cloudconfig import ENV_CLOUD, candidate_files, load_clouds
from labtui.errors import LabError


def quiet_loggers() -> None:
    """keystoneauth and openstacksdk log warnings to stderr (Python's last-resort handler) unless a
    handler exists; the command log already shows the calls, and a TUI must not be scribbled on."""
    for name in ("keystoneauth", "openstack", "stevedore", "urllib3"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
        logger.propagate = False


# auth types whose options keystoneauth1 loads from clouds.yaml's `auth:` as openstacksdk does
_EARLY_AUTH_TYPES = ("password", "v3password", "v3applicationcredential")


class EarlyLogin:
    """A Keystone log-in begun with keystoneauth1 alone, before openstacksdk is imported: Keystone's
    answer (its password check alone is about half a second) then overlaps the SDK's import and the
    caller's other work. connect() hands the token to the SDK's own auth plugin only when keystoneauth
    says both are the same identity (same cache id: auth_url, user, project, secret); then a refusal
    or an unreachable endpoint is reported from this try (a wrong password is not tried twice, an
    unreachable cloud not waited for twice). Otherwise the SDK logs in as usual. The token stays in
    memory, never in a file."""

    def __init__(self, name: str, entry: dict[str, Any], timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self.cache_id: str | None = None
        self.state: str | None = None
        self.failed: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._log_in, args=(entry, timeout), name="cloud-login", daemon=True).start()

    @staticmethod
    def usable(entry: dict[str, Any] | None) -> bool:
        """Only plain entries, read here exactly as openstacksdk reads them: a known auth type with its
        options under auth:, TLS settings as real booleans and a CA file path, no client certificate,
        no vendor profile, and no secure.yaml that could hold (or override) the secret."""
        if not entry or not isinstance(entry.get("auth"), dict):
            return False
        if (entry.get("auth_type") or "password") not in _EARLY_AUTH_TYPES:
            return False
        if any(entry.get(k) for k in ("cert", "key", "profile", "cloud")):
            return False
        if entry.get("verify") not in (None, True, False) or entry.get("insecure") not in (None, True, False):
            return False
        if entry.get("cacert") is not None and not isinstance(entry.get("cacert"), str):
            return False
        return not any(p.is_file() for p in candidate_files("secure.yaml", "OS_CLIENT_SECURE_FILE"))

    def _log_in(self, entry: dict[str, Any], timeout: float) -> None:
        try:
            quiet_loggers()
            import requests  # noqa: F401 - whole, before its submodules (see doctor.gather._preimport_http_stack)
            from keystoneauth1 import exceptions as ka
            from keystoneauth1 import loading, session

            plugin = loading.get_plugin_loader(entry.get("auth_type") or "password").load_from_options(**entry["auth"])
            verify: Any = not (entry.get("insecure") is True or entry.get("verify") is False)
            if verify and entry.get("cacert"):
                verify = entry["cacert"]
            sess = session.Session(auth=plugin, verify=verify, timeout=timeout)
            self.cache_id = plugin.get_cache_id()
            try:
                plugin.get_access(sess)
                self.state = plugin.get_auth_state()
            except ka.ClientException as exc:
                self.failed = exc
            finally:
                sess.session.close()
        except Exception:  # connect() logs in itself and reports what goes wrong
            self.cache_id = None
        finally:
            self._done.set()

    def hand_over(self, plugin: Any, timeout: float) -> bool:
        """Give the SDK's `plugin` this log-in's token when it is the same identity (True), or raise
        this log-in's failure; False: the SDK logs in itself."""
        if not self._done.wait(timeout + 5.0):
            return False
        try:
            same = self.cache_id is not None and plugin.get_cache_id() == self.cache_id
        except Exception:  # a plugin without a cache id logs in itself
            same = False
        if not same:
            return False
        if self.failed is not None:
            from keystoneauth1 import exceptions as ka

            if self.timeout < timeout and isinstance(self.failed, (ka.ConnectTimeout, ka.RequestTimeout)):
                return False  # the connection may wait longer than this try did: the SDK tries itself
            raise self.failed
        if self.state is None:
            return False
        plugin.set_auth_state(self.state)
        return True


def begin_login(name: str | None, timeout: float, clouds: Any = None) -> EarlyLogin | None:
    """Begin the log-in to cloud `name` now, when its clouds.yaml entry (from `clouds`, a
    labtui.cloudconfig.CloudsConfig the caller read already, else read here) is a plain one."""
    if not name or name == ENV_CLOUD:
        return None
    try:
        entry = (clouds or load_clouds()).clouds.get(name)
    except LabError:
        return None  # connect() says what is wrong with clouds.yaml
    return EarlyLogin(name, entry, timeout) if EarlyLogin.usable(entry) else None
