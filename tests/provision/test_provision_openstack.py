"""`labtui provision` / `labtui teardown` against the real OpenStack API (Keystone, Neutron, Nova
with the fake virt driver, Glance, Placement), in a project of this module's own."""

from __future__ import annotations

import base64
import json

import pytest

from tests.provision.conftest import EXT_NET, NODE_SUBNET, NODES

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(600)]


def cloud_changes(store, lab):
    rec = store.get_session(lab)
    return [c for c in store.changes(rec.id) if c.kind.startswith("cloud.")]


def preexisting(conn):
    """A network, group and server of the same project that the lab did not create."""
    net = conn.network.create_network(name="keep-net")
    conn.network.create_subnet(network_id=net.id, cidr="10.70.0.0/24", ip_version=4, name="keep-subnet")
    group = conn.network.create_security_group(name="keep-group")
    image = conn.image.find_image("ubuntu-24.04-prov")
    flavor = conn.compute.find_flavor("prov.small")
    port = conn.network.create_port(network_id=net.id, name="keep-port", security_group_ids=[group.id])
    server = conn.compute.create_server(name="keep-server", image_id=image.id, flavor_id=flavor.id,
                                        networks=[{"port": port.id}])
    conn.compute.wait_for_server(server, wait=300)
    return net.id, group.id, server.id


def test_provision_from_an_empty_project_second_run_and_teardown(make_lab, labtui, store, empty, pubkey):
    conn = empty.conn()
    keep_net, keep_group, keep_server = preexisting(conn)
    lab = make_lab("lab1")
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    data = json.loads(out)
    assert [s["state"] for s in data["steps"]] == ["done"] * 7 or data["steps"][-1]["step"] == "host-keys"
    conn = empty.conn()
    pid = conn.current_project_id
    nets = [n for n in conn.network.networks(project_id=pid) if n.name == "labtui-lab1-net"]
    assert len(nets) == 1 and "labtui-lab:lab1" in nets[0].tags
    subnet = next(conn.network.subnets(network_id=nets[0].id))
    assert subnet.cidr == NODE_SUBNET
    router = next(r for r in conn.network.routers(project_id=pid) if r.name == "labtui-lab1-router")
    assert router.external_gateway_info["network_id"] == conn.network.find_network(EXT_NET).id
    assert any(f.get("subnet_id") == subnet.id for p in conn.network.ports(device_id=router.id) for f in p.fixed_ips)
    group = conn.network.find_security_group("labtui-lab1", project_id=pid)
    rules = [r for r in conn.network.security_group_rules(security_group_id=group.id) if r.direction == "ingress"]
    by_proto = {(r.protocol, r.port_range_min, r.port_range_max, r.remote_group_id, r.remote_ip_prefix) for r in rules}
    assert ("4", None, None, group.id, None) in by_proto  # IP protocol 4 from the group itself
    assert not any(r.protocol == "ipip" for r in rules)
    assert ("tcp", 179, 179, group.id, None) in by_proto  # BGP
    assert ("tcp", 6443, 6443, group.id, None) in by_proto
    assert ("tcp", 10250, 10250, group.id, None) in by_proto
    assert ("tcp", 30000, 32767, group.id, None) in by_proto
    assert ("tcp", 22, 22, None, "198.51.100.7/32") in by_proto
    kp = conn.compute.get_keypair("labtui-lab1")
    assert kp.public_key.split()[:2] == pubkey.read_text().split()[:2]  # the user's public key, imported
    servers = {s.name: s for s in conn.compute.servers(details=True) if s.name.startswith("labtui-")}
    assert sorted(servers) == sorted(f"labtui-lab1-{n['name']}" for n in NODES)
    adm = empty.admin()
    for n in NODES:
        s = servers[f"labtui-lab1-{n['name']}"]
        assert s.status == "ACTIVE"
        assert "labtui-lab:lab1" in s.tags
        ips = {a["addr"] for v in s.addresses.values() for a in v}
        assert n["address"] in ips
        full = adm.compute.get_server(s.id)
        user_data = base64.b64decode(full.user_data).decode()
        assert user_data.startswith("#cloud-config") and "br_netfilter" in user_data and "swapoff -a" in user_data
        assert f"hostname: {n['name']}" in user_data
    fips = [ip for ip in conn.network.ips(project_id=pid) if "labtui-lab:lab1" in (ip.tags or [])]
    cp_port = next(conn.network.ports(project_id=pid, name="labtui-lab1-cp1"))
    assert len(fips) == 1 and fips[0].port_id == cp_port.id
    # the plan's nodes: login user from the image metadata
    plan = store.get_session(lab).plan
    assert {n["user"] for n in plan["nodes"]} == {"ubuntu"}
    # the way in: the node subnet is not reachable from here, so SSH goes to the control plane's floating IP
    # (its address stays the fixed IP Kubernetes uses) and to the other nodes through it
    fip = fips[0].floating_ip_address
    by_name = {n["name"]: n for n in plan["nodes"]}
    assert by_name["cp1"]["ssh_host"] == fip and by_name["cp1"]["address"] == "10.60.0.10"
    assert not by_name["cp1"].get("proxy_jump")
    for w in ("w1", "w2", "w3"):
        assert by_name[w]["proxy_jump"] == f"ubuntu@{fip}" and not by_name[w].get("ssh_host")
    rec = store.get_session(lab)
    assert rec.inputs.get("api_floating_ip") == fip  # kubeadm's API certificate gets it as a SAN
    from labtui.adapters.ssh import session_ssh
    from labtui.session import LabSession

    with LabSession(store, lab) as s:
        ssh = session_ssh(s.ctx)
        assert (ssh.resolve("cp1").host, ssh.resolve("cp1").user) == (fip, "ubuntu")
        w1 = ssh.resolve("w1")
        assert w1.host == "10.60.0.11" and [(j.host, j.user) for j in w1.jump] == [(fip, "ubuntu")]
    # the cloud check finds nothing missing (the same requirements engine)
    code, out, err = labtui("cloud", "check", lab, "--json")
    report = json.loads(out)
    assert code == 0, [r for r in report["requirements"] if r["status"] != "satisfied"]
    # every created resource is recorded with its delete
    kinds = sorted({c.kind for c in cloud_changes(store, lab)})
    assert {"cloud.network", "cloud.subnet", "cloud.router", "cloud.router-interface", "cloud.security-group",
            "cloud.sg-rule", "cloud.keypair", "cloud.port", "cloud.server", "cloud.floating-ip"} <= set(kinds)

    # (2) a second run creates nothing and records nothing
    before = len(cloud_changes(store, lab))
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    assert len(cloud_changes(store, lab)) == before
    assert len(list(conn.compute.servers())) == 5  # 4 of the lab + the one it did not create
    assert "POST /v2.0/networks" not in err and "POST /compute/v2.1/servers " not in err

    # (3) teardown: a dry run lists, in order, exactly what the lab created; nothing is deleted
    code, out, err = labtui("teardown", lab, "--dry-run", "--json")
    assert code == 0, err
    listing = json.loads(out)["would_delete"]
    kinds = [x["kind"] for x in listing]
    assert kinds[0] == "cloud.floating-ip" and kinds[-1] == "cloud.network"
    assert kinds.index("cloud.server") < kinds.index("cloud.port") < kinds.index("cloud.security-group") \
        < kinds.index("cloud.router-interface") < kinds.index("cloud.router") < kinds.index("cloud.subnet")
    assert len(list(conn.compute.servers())) == 5
    # without --yes (no terminal) nothing is deleted
    code, out, err = labtui("teardown", lab)
    assert code == 1 and "--yes" in err
    assert len(list(conn.compute.servers())) == 5
    code, out, err = labtui("teardown", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    result = json.loads(out)
    assert result["failed"] == [] and len(result["deleted"]) == len(listing)
    # only the lab's resources are gone
    assert [s.id for s in conn.compute.servers()] == [keep_server]
    assert {n.id for n in conn.network.networks(project_id=pid)} == {keep_net}
    assert {g.id for g in conn.network.security_groups(project_id=pid) if g.name != "default"} == {keep_group}
    assert not list(conn.network.routers(project_id=pid))
    assert not list(conn.network.ips(project_id=pid))
    assert conn.compute.find_keypair("labtui-lab1", ignore_missing=True) is None
    assert all(c.reverted for c in cloud_changes(store, lab))
    assert store.get_session(lab).health == "torn down"
    # a second teardown has nothing to do
    code, out, err = labtui("teardown", lab, "--yes")
    assert code == 0 and "Nothing to tear down" in out
