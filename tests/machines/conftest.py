"""Fixtures for the real-machine tests: a project of their own on the test cloud, emptied before
and after each test (servers first, so the host's netns/veths/overlays go with them)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.harness import machines
from tests.harness.openstack.fixtures import openstack_stack  # noqa: F401
from tests.provision.conftest import empty_project  # one way to empty a project (security groups too)

PROJECT = "machines-test"


@pytest.fixture(scope="session")
def machines_ready(openstack_stack):
    if os.geteuid() != 0:
        pytest.fail("real machines need root (netns, overlayfs, systemd-nspawn)", pytrace=False)
    adm = machines.admin_conn()
    machines.ensure_ready(adm)
    machines.ensure_external_network(adm)
    return adm


@pytest.fixture
def machine_cloud(machines_ready):
    """(member connection, clouds.yaml entry) of the project, empty before and after."""
    cloud = machines.ensure_project(PROJECT)
    conn = machines.project_conn(cloud)
    empty_project(conn)
    yield conn, cloud
    empty_project(conn)


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "labtui-machines", "-f", str(key)], check=True)
    return key
