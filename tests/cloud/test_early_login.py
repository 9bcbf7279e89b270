"""The doctor's early Keystone log-in (labtui.adapters.keystone.EarlyLogin), on the real backend.

`labtui doctor` begins the log-in with keystoneauth1 alone right after opening the lab, so Keystone's
answer overlaps openstacksdk's import; the SDK's plugin takes the token only when keystoneauth says
both are the same identity. The tests reach the real Keystone through a counting proxy
(tests/harness/faultproxy.py, no fault set), so they see every log-in of theirs and only theirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labtui.adapters import keystone
from labtui.adapters import openstack as cloud
from labtui.errors import LabError
from labtui.session import LabSession
from tests.harness.faultproxy import FaultProxy


@pytest.fixture
def counted(cloud_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A clouds.yaml whose labtui-admin / -member / -badpass log in through a proxy in front of the
    real Keystone (v3password: no version discovery, so every log-in is one POST through it)."""
    from labtui.cloudconfig import load_clouds

    real = load_clouds()
    with FaultProxy("http://127.0.0.1:5000") as proxy:
        clouds = {}
        for name in ("labtui-admin", "labtui-member", "labtui-badpass"):
            entry = json.loads(json.dumps(real.require(name)))
            entry["auth"]["auth_url"] = proxy.url + "/v3"
            entry["auth_type"] = "v3password"
            clouds[name] = entry
        (tmp_path / "counted-clouds.yaml").write_text(json.dumps({"clouds": clouds}))
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "counted-clouds.yaml"))
        yield proxy


def logins(proxy: FaultProxy) -> list[int]:
    """The status of each POST /v3/auth/tokens that went through the proxy."""
    return [status for method, path, status in proxy.requests if (method, path) == ("POST", "/v3/auth/tokens")]


def _lab(store, name: str, cloud_name: str) -> LabSession:
    store.create_session(name, cloud=cloud_name, wizard="cloud")
    return LabSession(store, name)


def test_the_sdk_takes_the_early_token_and_does_not_log_in_again(store, counted):
    lab = _lab(store, "early", "labtui-admin")
    try:
        lab.ctx.adapters.cloud_login = keystone.begin_login("labtui-admin", 20.0)
        assert isinstance(lab.ctx.adapters.cloud_login, keystone.EarlyLogin)
        conn = cloud.session_cloud(lab.ctx)
        assert lab.ctx.adapters.cloud_login is None  # taken
        assert "allowed-address-pairs" in {e.alias for e in conn.conn.network.extensions()}
        assert conn.project_id
        assert logins(counted) == [201]  # the early one; the SDK did not log in again
    finally:
        lab.close()


def test_refused_credentials_are_said_once_and_not_tried_twice(store, counted):
    lab = _lab(store, "badpass", "labtui-badpass")
    try:
        lab.ctx.adapters.cloud_login = keystone.begin_login("labtui-badpass", 20.0)
        with pytest.raises(LabError) as err:
            cloud.session_cloud(lab.ctx)
        assert err.value.code == "cloud-unauthorized" and "not-the-password" not in err.value.render()
        assert logins(counted) == [401]  # a lock-out policy counts one failed try, not two
    finally:
        lab.close()


def test_another_identitys_token_is_never_handed_over(counted):
    """An early log-in as the member (another user and project) offered to the admin's connection:
    the cache ids differ, so the SDK logs in as the admin itself."""
    from labtui.cloudconfig import load_clouds

    clouds = load_clouds()
    other = keystone.EarlyLogin("labtui-admin", clouds.require("labtui-member"), 30.0)
    conn = cloud.connect("labtui-admin", timeout=30, early=other)
    try:
        member = cloud.connect("labtui-member", timeout=30)
        try:
            assert conn.project_id and conn.project_id != member.project_id
        finally:
            member.close()
    finally:
        conn.close()
    assert logins(counted) == [201, 201, 201]  # the early one as the member, then the SDK as admin and as member


def test_only_plain_entries_log_in_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    plain = {"auth": {"auth_url": "https://k:5000/v3", "username": "u", "password": "p", "project_name": "x"}}
    assert keystone.EarlyLogin.usable(plain)
    assert keystone.EarlyLogin.usable(plain | {"auth_type": "v3applicationcredential", "cacert": "/etc/ca.pem"})
    assert not keystone.EarlyLogin.usable(plain | {"auth_type": "v3oidcpassword"})
    assert not keystone.EarlyLogin.usable(plain | {"insecure": "false"})  # a string: openstacksdk may read it otherwise
    assert not keystone.EarlyLogin.usable(plain | {"profile": "vexxhost"})
    assert not keystone.EarlyLogin.usable(plain | {"cert": "/c.pem", "key": "/k.pem"})
    secure = tmp_path / "secure.yaml"
    secure.write_text("clouds: {}\n")
    monkeypatch.setenv("OS_CLIENT_SECURE_FILE", str(secure))
    assert not keystone.EarlyLogin.usable(plain)  # secure.yaml may hold or override the secret


def test_a_longer_timeout_than_the_early_tries_is_not_cut_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An early try that timed out within its own limit does not decide for a connection allowed to
    wait longer: that connection tries itself (a silent endpoint, 0.5 s early vs 1.5 s)."""
    import socket
    import time

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        url = f"http://127.0.0.1:{srv.getsockname()[1]}/v3"
        (tmp_path / "clouds.yaml").write_text(
            "clouds:\n  slow:\n    auth:\n      auth_url: " + url + "\n      username: u\n      password: p\n"
            "      project_name: x\n      user_domain_name: Default\n      project_domain_name: Default\n")
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "clouds.yaml"))
        monkeypatch.setenv("HOME", str(tmp_path))
        early = keystone.begin_login("slow", 0.5)
        assert early is not None
        started = time.monotonic()
        with pytest.raises(LabError) as err:
            cloud.connect("slow", timeout=1.5, early=early)
        assert err.value.code == "cloud-timeout" and "within 1.5 s" in err.value.message
        assert time.monotonic() - started >= 1.5  # the connection's own, longer wait happened
    finally:
        srv.close()
