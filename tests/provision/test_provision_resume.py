"""Provision is resumable: a run killed with SIGKILL mid-way continues without duplicates, and a
server that ends in ERROR is reported with its fault and recreated alone on the next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.provision.conftest import NODES, admin_conn

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(900)]

NOHOST = "prov.cp-nohost"
TRAIT = "trait:CUSTOM_LABTUI_NO_SUCH_HOST"


def servers_by_name(conn) -> dict:
    return {s.name: s for s in conn.compute.servers(details=True)}


def test_killed_mid_provision_then_resumed_without_duplicates(make_lab, labtui, store, empty, lab_home):
    lab = make_lab("lab1")
    env = dict(os.environ, LABTUI_HOME=str(lab_home), OS_CLIENT_CONFIG_FILE=str(empty.clouds_yaml))
    proc = subprocess.Popen([sys.executable, "-m", "labtui", "provision", lab, "--yes"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rec = store.get_session(lab)
    conn = empty.conn()
    deadline = time.monotonic() + 400
    try:
        # kill once the first server is recorded AND the cloud has it (a server is recorded just before its
        # create call, so the record alone can come first): the others are mid-way
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if any(c.kind == "cloud.server" for c in store.changes(rec.id)) and servers_by_name(conn):
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    conn = empty.conn()
    before = servers_by_name(conn)
    assert 1 <= len(before) < 4 or len(before) == 4
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    after = servers_by_name(conn)
    names = Counter(s.name for s in conn.compute.servers())
    assert sorted(names) == sorted(f"labtui-lab1-{n['name']}" for n in NODES)
    assert set(names.values()) == {1}  # never a second server for a node
    for name, s in before.items():  # what existed was kept, not recreated
        assert after[name].id == s.id
    assert all(s.status == "ACTIVE" for s in after.values())
    pid = conn.current_project_id
    assert Counter(p.name for p in conn.network.ports(project_id=pid) if p.name.startswith("labtui-")) == \
        Counter(f"labtui-lab1-{n['name']}" for n in NODES)
    assert len([n for n in conn.network.networks(project_id=pid) if n.name == "labtui-lab1-net"]) == 1
    # the record holds each server once (found ones recorded on resume), so teardown finds all
    live = [c for c in store.changes(rec.id) if c.kind == "cloud.server" and not c.reverted]
    assert sorted(c.revert_data["name"] for c in live) == sorted(after)
    for c in live:
        assert c.revert_data.get("id") in (None, after[c.revert_data["name"]].id)
    code, out, err = labtui("teardown", lab, "--yes", "--json")
    assert code == 0, err[-2000:]
    assert not list(conn.compute.servers())


@pytest.fixture
def nohost_flavor():
    """A control-plane flavor no host can take (it requires a trait no resource provider has)."""
    adm = admin_conn()
    fl = adm.compute.find_flavor(NOHOST, ignore_missing=True) or adm.compute.create_flavor(
        name=NOHOST, vcpus=2, ram=2048, disk=1)
    adm.compute.create_flavor_extra_specs(fl, {TRAIT: "required"})
    yield fl
    try:
        adm.compute.delete_flavor_extra_specs_property(fl, TRAIT)
    except Exception:  # the test removed it already
        pass


def test_a_server_in_error_is_reported_and_recreated_alone(make_lab, labtui, store, empty, nohost_flavor):
    lab = make_lab("lab1", nodes=NODES[:2], flavor_control_plane=NOHOST)
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 1
    step = next(s for s in json.loads(out)["steps"] if s["state"] == "failed")
    assert step["step"] == "machines"
    assert "labtui-lab1-cp1: ERROR" in step["detail"] and "No valid host" in step["detail"]
    assert "1 of 2 servers did not become ACTIVE" in step["detail"]
    assert "recreate only the failed servers" in step["detail"]
    conn = empty.conn()
    first = servers_by_name(conn)
    assert first["labtui-lab1-w1"].status == "ACTIVE"  # the others continued
    assert first["labtui-lab1-cp1"].status == "ERROR"
    # the cloud admin fixes the flavor; the retry recreates only the failed server
    admin_conn().compute.delete_flavor_extra_specs_property(nohost_flavor, TRAIT)
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    second = servers_by_name(conn)
    assert sorted(second) == ["labtui-lab1-cp1", "labtui-lab1-w1"]
    assert second["labtui-lab1-w1"].id == first["labtui-lab1-w1"].id
    assert second["labtui-lab1-cp1"].id != first["labtui-lab1-cp1"].id
    assert second["labtui-lab1-cp1"].status == "ACTIVE"
    servers = [c for c in store.changes(store.get_session(lab).id) if c.kind == "cloud.server"]
    assert len(servers) == 3 and [c.revert_data["name"] for c in servers if c.reverted] == ["labtui-lab1-cp1"]
    assert sorted(c.revert_data["name"] for c in servers if not c.reverted) == ["labtui-lab1-cp1", "labtui-lab1-w1"]
