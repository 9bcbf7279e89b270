"""The OpenStack API answers an error in the middle of provisioning: HTTP 500 for one port create,
HTTP 409 for the floating IP. labtui says which resource failed and why (no traceback), what was
created before stays recorded, and the next run finishes with no duplicate.

FAULT INJECTED AT THE PROCESS BOUNDARY: a small HTTP proxy (tests/harness/faultproxy.py) stands in
front of the real Neutron of the test cloud (`network_endpoint_override` in this test's
clouds.yaml) and answers exactly one request with the error; every other request reaches Neutron.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.harness.faultproxy import FaultProxy
from tests.provision.conftest import NODES

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(600)]


@pytest.fixture
def proxied(empty, tmp_path, monkeypatch):
    """The module's cloud with its network API behind the fault proxy."""
    with FaultProxy("http://127.0.0.1:9696") as proxy:
        entry = yaml.safe_load(empty.clouds_yaml.read_text())["clouds"][empty.name]
        entry["network_endpoint_override"] = proxy.url
        path = tmp_path / "clouds-proxied.yaml"
        path.write_text(yaml.safe_dump({"clouds": {empty.name: entry}}))
        path.chmod(0o600)
        yield proxy, path


def _cloud_changes(store, lab):
    return [c for c in store.changes(store.get_session(lab).id) if c.kind.startswith("cloud.") and not c.reverted]


def _by_kind(changes):
    out: dict[str, int] = {}
    for c in changes:
        out[c.kind] = out.get(c.kind, 0) + 1
    return out


def test_http_500_on_a_port_mid_way_names_it_keeps_the_rest_and_a_rerun_finishes(make_lab, labtui, store, empty,
                                                                                 proxied, monkeypatch):
    proxy, clouds = proxied
    lab = make_lab("err500")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    proxy.fail("POST", r"^/v2\.0/ports$", nth=3, status=500,
               message="Request Failed: internal server error while processing your request.")
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 1
    assert "Traceback" not in err and "Traceback" not in out
    data = json.loads(out)
    failed = data["steps"][-1]
    assert failed["step"] == "machines" and failed["state"] == "failed"
    m = re.search(r"cloud prov: create port (labtui-err500-(cp1|w1|w2|w3)) failed \(HTTP 500: .*Request Failed: "
                  r"internal server error", failed["detail"])
    assert m, failed["detail"]
    broken = m.group(1)
    assert "run `labtui provision err500` again to finish" in data["next"]
    # what was created before (and beside) the failed port is recorded, and exists; nothing after it was made
    conn = empty.conn()
    recorded = _cloud_changes(store, lab)
    kinds = _by_kind(recorded)
    assert kinds["cloud.network"] == kinds["cloud.subnet"] == kinds["cloud.router"] == 1
    assert kinds["cloud.security-group"] == kinds["cloud.keypair"] == 1
    assert kinds["cloud.port"] == 3 and "cloud.server" not in kinds
    for c in recorded:
        if c.kind == "cloud.port":
            assert conn.network.get_port(c.revert_data["id"]).name != broken
    assert not list(conn.compute.servers())
    ports = [p.name for p in conn.network.ports(project_id=empty.project_id) if p.name.startswith("labtui-err500-")]
    assert sorted(ports) == sorted(set(ports)) and broken not in ports

    # the cloud answers again: the rerun finishes, creating only what is missing
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    assert "POST /v2.0/networks" not in err and "POST /v2.0/security-groups " not in err
    ports = [p.name for p in conn.network.ports(project_id=empty.project_id) if p.name.startswith("labtui-err500-")]
    assert sorted(ports) == sorted(f"labtui-err500-{n['name']}" for n in NODES)  # one each
    servers = [s.name for s in conn.compute.servers()]
    assert sorted(servers) == sorted(f"labtui-err500-{n['name']}" for n in NODES)
    kinds = _by_kind(_cloud_changes(store, lab))
    assert kinds["cloud.port"] == kinds["cloud.server"] == 4 and kinds["cloud.network"] == 1
    assert kinds["cloud.floating-ip"] == 1


def test_http_409_on_the_floating_ip_names_it_keeps_the_servers_and_a_rerun_finishes(make_lab, labtui, store, empty,
                                                                                    proxied, monkeypatch):
    proxy, clouds = proxied
    lab = make_lab("err409")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    proxy.fail("POST", r"^/v2\.0/floatingips$", status=409,
               message="Cannot associate floating IP with port: the port already has a floating IP.")
    code, out, err = labtui("provision", lab, "--yes")
    assert code == 1
    assert "Traceback" not in err and "Traceback" not in out
    assert ("create floating ip labtui-err409-cp1-fip failed (HTTP 409: Cannot associate floating IP with port"
            in out), out
    assert "run `labtui provision err409` again to finish" in out
    conn = empty.conn()
    kinds = _by_kind(_cloud_changes(store, lab))
    assert kinds["cloud.port"] == 4 and kinds["cloud.server"] == 4 and "cloud.floating-ip" not in kinds
    assert not list(conn.network.ips(project_id=empty.project_id))

    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    servers = [s.name for s in conn.compute.servers()]
    assert sorted(servers) == sorted(f"labtui-err409-{n['name']}" for n in NODES)  # no second server for a node
    fips = list(conn.network.ips(project_id=empty.project_id))
    assert len(fips) == 1
    kinds = _by_kind(_cloud_changes(store, lab))
    assert kinds["cloud.server"] == 4 and kinds["cloud.floating-ip"] == 1 and kinds["cloud.port"] == 4
    plan = store.get_session(lab).plan
    cp = next(n for n in plan["nodes"] if n["name"] == "cp1")
    assert cp["ssh_host"] == fips[0].floating_ip_address
