"""Shared fixtures: every test gets its own LABTUI_HOME, so nothing touches the user's state."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "state"
    monkeypatch.setenv("LABTUI_HOME", str(home))
    # no clouds.yaml from the machine leaks into a test
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.delenv("OS_CLOUD", raising=False)
    monkeypatch.delenv("OS_AUTH_URL", raising=False)
    monkeypatch.delenv("OS_CLIENT_CONFIG_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def store(lab_home: Path):
    from labtui.store import Store

    s = Store()
    yield s
    s.close()


@pytest.fixture
def clouds_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lab_home: Path) -> Path:
    path = tmp_path / "clouds.yaml"
    path.write_text(
        "clouds:\n"
        "  study:\n"
        "    auth:\n"
        "      auth_url: http://127.0.0.1:5000/v3\n"
        "      username: alice\n"
        "      password: s3cret-Passw0rd\n"
        "      project_name: k8s-study\n"
        "    region_name: RegionOne\n"
        "  other:\n"
        "    auth:\n"
        "      auth_url: http://127.0.0.1:5001/v3\n"
    )
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    monkeypatch.setenv("OS_CLOUD", "study")
    return path


INCIDENT_NODES = [
    {"name": "cp1", "address": "10.100.200.4", "role": "control-plane"},
    {"name": "w1", "address": "10.100.200.21"},
    {"name": "w2", "address": "10.100.200.22"},
    {"name": "w3", "address": "10.100.200.23"},
]


@pytest.fixture
def incident_plan_data() -> dict:
    return {
        "name": "incident",
        "cloud": None,
        "nodes": [dict(n) for n in INCIDENT_NODES],
        "node_subnet": "10.100.200.0/24",
        "pod_cidr": "172.16.0.0/16",
        "service_cidr": "172.20.0.0/16",
        "kubernetes": "1.36",
        "calico": "3.32.2",
        "encapsulation": "IPIP",
    }


def pytest_configure(config):
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")


# --------------------------------------------------------------------------- no traffic leaves the machine
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _leaves_the_machine(address) -> str | None:
    """The route a connect to `address` would take, when it is not on this machine's own test
    networks (loopback, or a subnet of a test harness bridge): then the test is wrong."""
    if not isinstance(address, tuple) or not address:
        return None  # unix sockets
    host = address[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None  # names are resolved by the caller first; the resolved connect is checked
    if ip.is_loopback or ip.is_unspecified:
        return None
    try:
        route = subprocess.run(["ip", "route", "get", str(ip)], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    if not route or " via " not in route or route.startswith(("unreachable", "prohibit", "blackhole")):
        return None
    return route.strip()


def _guarded_connect(self, address):
    route = _leaves_the_machine(address)
    if route:
        raise AssertionError(f"a test tried to connect to {address!r}, which would leave this machine ({route})")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    route = _leaves_the_machine(address)
    if route:
        raise AssertionError(f"a test tried to connect to {address!r}, which would leave this machine ({route})")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _no_traffic_leaves_the_machine(monkeypatch: pytest.MonkeyPatch):
    """Tests talk only to servers they started on this machine (loopback or their own namespaces)."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
