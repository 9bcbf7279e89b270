"""Shared fixtures: every test gets its own LABTUI_HOME, so nothing touches the user's state."""

from __future__ import annotations

import os
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
