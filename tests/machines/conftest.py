"""Fixtures for the real-machine tests: a project of their own on the test cloud, emptied before
and after each test (servers first, so the host's netns/veths/overlays go with them)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness import machines
from tests.harness.openstack.fixtures import openstack_stack  # noqa: F401

PROJECT = "machines-test"


def empty_project(conn) -> None:
    pid = conn.current_project_id
    for attempt in range(3):
        servers = list(conn.compute.servers())
        if not servers:
            break
        deleter = conn if attempt == 0 else machines.admin_conn()
        for s in servers:
            deleter.compute.delete_server(s.id, ignore_missing=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and list(conn.compute.servers()):
            time.sleep(0.5)
    assert not list(conn.compute.servers()), "servers of the machines test project would not delete"
    for ip in conn.network.ips(project_id=pid):
        conn.network.delete_ip(ip, ignore_missing=True)
    for r in conn.network.routers(project_id=pid):
        for p in conn.network.ports(device_id=r.id):
            if (p.device_owner or "").startswith("network:router_interface"):
                for f in p.fixed_ips:
                    conn.network.remove_interface_from_router(r, subnet_id=f["subnet_id"])
        conn.network.delete_router(r, ignore_missing=True)
    for p in conn.network.ports(project_id=pid):
        if not (p.device_owner or "").startswith("network:"):
            conn.network.delete_port(p, ignore_missing=True)
    for n in conn.network.networks(project_id=pid):
        conn.network.delete_network(n, ignore_missing=True)
    for k in conn.compute.keypairs():
        conn.compute.delete_keypair(k, ignore_missing=True)


@pytest.fixture(scope="session")
def machines_ready(openstack_stack):  # noqa: F811
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
