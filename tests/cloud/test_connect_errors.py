"""Clear messages when the cloud cannot be reached: refused, silent (timeout), TLS not trusted.

Real local endpoints on 127.0.0.1 (a closed port, a socket that accepts and never answers, a TLS
server with a self-signed certificate); no OpenStack needed.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from labtui.adapters import openstack as cloud
from labtui.errors import LabError

pytestmark = pytest.mark.timeout(60)


def write_clouds(path: Path, url: str, **extra: str) -> Path:
    lines = ["clouds:", "  lab:", "    auth:", f"      auth_url: {url}", "      username: alice",
             "      password: s3cret-Passw0rd", "      project_name: k8s-study", "      user_domain_name: Default",
             "      project_domain_name: Default", "    region_name: RegionOne"]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def clouds(lab_home, tmp_path, monkeypatch):
    def make(url: str, **extra: str) -> str:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds(tmp_path / "clouds.yaml", url, **extra)))
        return "lab"

    return make


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def silent_server():
    """Accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    for c in conns:
        c.close()
    srv.close()


@pytest.fixture
def tls_server(tmp_path):
    """A TLS endpoint whose self-signed certificate nobody trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            try:
                c.settimeout(2)
                ctx.wrap_socket(c, server_side=True).close()
            except (OSError, ssl.SSLError):
                c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    srv.close()


def test_unreachable_endpoint(clouds):
    name = clouds(f"http://127.0.0.1:{closed_port()}/v3")
    with pytest.raises(LabError) as err:
        cloud.connect(name, timeout=5)
    assert err.value.code == "cloud-unreachable"
    assert err.value.message.startswith("cloud lab: cannot reach the endpoint while trying to log in")
    assert "auth_url" in err.value.hint and "s3cret" not in err.value.render()


def test_slow_endpoint_times_out_with_the_limit_named(clouds, silent_server):
    name = clouds(f"http://127.0.0.1:{silent_server}/v3")
    started = time.monotonic()
    with pytest.raises(LabError) as err:
        cloud.connect(name, timeout=1.5)
    assert time.monotonic() - started < 15
    assert err.value.code == "cloud-timeout"
    assert err.value.message == "cloud lab: no answer within 1.5 s while trying to log in (Keystone)"


def test_tls_failure(clouds, tls_server):
    name = clouds(f"https://127.0.0.1:{tls_server}/v3")
    with pytest.raises(LabError) as err:
        cloud.connect(name, timeout=5)
    assert err.value.code == "cloud-tls"
    assert "TLS verification failed" in err.value.message and "cacert:" in err.value.hint


def test_unknown_cloud_lists_the_known_ones(clouds):
    clouds("http://127.0.0.1:1/v3")
    with pytest.raises(LabError) as err:
        cloud.connect("prod")
    assert "cloud 'prod' is not defined" in err.value.message and "known clouds: lab" in err.value.message


def test_cli_prints_the_message_and_hint_without_traceback(clouds, store, capsys):
    from labtui.cli import main

    name = clouds(f"http://127.0.0.1:{closed_port()}/v3")
    store.create_session("x", cloud=name, plan={"name": "x", "cloud": name, "node_subnet": "10.0.0.0/24",
                                                 "nodes": [{"name": "cp1", "address": "10.0.0.4", "role": "control-plane"}]})
    code = main(["cloud", "check", "x", "--timeout", "3"])
    err = capsys.readouterr().err
    assert code == 2
    assert "labtui: cloud lab: cannot reach the endpoint" in err and "\n  -> check the auth_url" in err
    assert "Traceback" not in err and "s3cret-Passw0rd" not in err


def test_first_call_after_login_goes_alone(cloud_env):
    """After a log-in the first API call goes alone and calls made meanwhile wait for its answer, so
    Neutron asks Keystone about the new token once, not once per parallel first read (real backend)."""
    from concurrent.futures import ThreadPoolExecutor

    conn = cloud.connect("labtui-admin", timeout=30)
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def read() -> list[str]:
        began = time.monotonic()
        got = sorted(e.alias for e in conn.conn.network.extensions())
        with lock:
            spans.append((began, time.monotonic()))
        return got

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda _: conn.call("list the Neutron extensions", "GET /v2.0/extensions", read),
                                    range(4)))
        t0 = time.monotonic()
        conn.first_answered()  # the first call has answered: a reader waiting on it goes at once
        assert time.monotonic() - t0 < 0.05
    finally:
        conn.close()
    assert all(r == results[0] for r in results) and "allowed-address-pairs" in results[0]
    spans.sort()
    first_end = spans[0][1]
    assert all(began >= first_end for began, _ in spans[1:]), spans  # the others began after its answer


@pytest.mark.parametrize("server", ["silent", "closed", "tls"])
def test_an_early_login_that_fails_is_said_as_the_sdks_would_be_and_waited_for_once(clouds, server, request, capfd):
    """labtui doctor's early log-in (keystoneauth1 alone) failing: the same message as the SDK's own
    try, as long as the SDK alone takes (a silent endpoint is not waited for twice), and nothing
    written to the terminal by the libraries' loggers."""
    from labtui.cloudconfig import load_clouds

    url = {"silent": lambda: f"http://127.0.0.1:{request.getfixturevalue('silent_server')}/v3",
           "closed": lambda: f"http://127.0.0.1:{closed_port()}/v3",
           "tls": lambda: f"https://127.0.0.1:{request.getfixturevalue('tls_server')}/v3"}[server]()
    name = clouds(url)
    started = time.monotonic()
    with pytest.raises(LabError) as plain:
        cloud.connect(name, timeout=1.5)
    alone = time.monotonic() - started
    started = time.monotonic()
    from labtui.adapters.keystone import EarlyLogin

    early = EarlyLogin(name, load_clouds().require(name), 1.5)
    with pytest.raises(LabError) as err:
        cloud.connect(name, timeout=1.5, early=early)
    took = time.monotonic() - started
    assert (err.value.code, err.value.message.split(" (")[0]) == (plain.value.code, plain.value.message.split(" (")[0])
    assert err.value.code == {"silent": "cloud-timeout", "closed": "cloud-unreachable", "tls": "cloud-tls"}[server]
    assert "s3cret" not in err.value.render()
    assert capfd.readouterr() == ("", "")
    assert took < alone + 1.0, (took, alone)  # the early try's wait, not it and then the SDK's own
