"""The floating IP is the way in: a lab provisioned on the real OpenStack test backend whose node
subnet is not reachable from here. After provisioning, labtui reaches the control plane at its
floating IP and the workers through it (ProxyJump), pins every host key from the consoles that
way, and runs commands on every node.

SIMULATION at the process boundary (the fake virt driver has no VM and no NAT):
- the VMs are sshd nodes in network namespaces (tests/harness/sshnodes.py, bastion topology): the
  control plane is the bastion node (its inner address on the node subnet, its outer one reachable
  from here), the workers sit on the inner subnet, unreachable from here;
- the floating IP's NAT: the test's external network has a pool of two addresses (the router's
  gateway takes one, the floating IP the other); both are put on the bastion's outer interface with
  a DNAT to its own address (nftables in its namespace, as Neutron's router does), and an on-link
  route to them from here (the harness's bridge); whatever floating IP Neutron allocates, it reaches the
  control plane's sshd, as a real floating IP would;
- the console logs print each stand-in's real host key fingerprint, as cloud-init does
  (labtui_fake_virt.py serves <state>/consoles/<server>.log).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import pytest

from tests.provision.test_provision_host_keys import cloud_init_console

pytestmark = [pytest.mark.openstack, pytest.mark.root, pytest.mark.timeout(900),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (sshd nodes in network namespaces)")]

EXT = "labtui-prov-bastion-ext"
EXT_CIDR = "198.18.77.0/24"
POOL = ("198.18.77.10", "198.18.77.11")


@pytest.fixture(scope="module")
def bastion_nodes():
    from tests.harness.sshnodes import SSHNodes

    with SSHNodes(3, bastion=True, names=["w1", "w2", "w3"], trust_hosts=False) as lab:
        yield lab


@pytest.fixture
def floating_pool(bastion_nodes):
    """An external network whose two addresses land on the bastion (the NAT, simulated)."""
    from tests.provision.conftest import admin_conn

    adm = admin_conn()
    net = adm.network.find_network(EXT, ignore_missing=True)
    if net is None:
        net = adm.network.create_network(name=EXT, is_router_external=True, is_shared=False)
    if not list(adm.network.subnets(network_id=net.id)):
        adm.network.create_subnet(network_id=net.id, name=EXT + "-subnet", cidr=EXT_CIDR, ip_version=4,
                                  enable_dhcp=False, gateway_ip=None,
                                  allocation_pools=[{"start": POOL[0], "end": POOL[1]}])
    b = bastion_nodes.bastion
    for ip in POOL:
        subprocess.run(["ip", "netns", "exec", b.netns, "ip", "addr", "add", f"{ip}/32", "dev", "eth0"], check=True)
    # the floating IP's DNAT to the VM's own address, as Neutron's router does (the bastion's sshd listens there)
    nat = (f"table ip labtui_fip {{\n chain pre {{\n  type nat hook prerouting priority -100;\n"
           f"  ip daddr {{ {POOL[0]}, {POOL[1]} }} dnat to {b.address}\n }}\n}}\n")
    subprocess.run(["ip", "netns", "exec", b.netns, "nft", "-f", "-"], input=nat, text=True, check=True)
    # on the link to the harness's bridge (the bastion answers ARP for its addresses): no gateway, nothing leaves
    route = ["ip", "route", "replace", f"{POOL[0]}/31", "dev", bastion_nodes.uplink]
    subprocess.run(route, check=True)
    yield EXT
    subprocess.run(["ip", "route", "del", f"{POOL[0]}/31"], check=False)
    subprocess.run(["ip", "netns", "exec", b.netns, "nft", "delete", "table", "ip", "labtui_fip"], check=False)
    for ip in POOL:
        subprocess.run(["ip", "netns", "exec", b.netns, "ip", "addr", "del", f"{ip}/32", "dev", "eth0"], check=False)


def test_the_floating_ip_is_the_way_in_to_every_node(make_lab, bastion_nodes, floating_pool, consoles, labtui, store,
                                                     tmp_path, lab_home, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    lab_nodes = bastion_nodes
    b = lab_nodes.bastion
    pub = tmp_path / "client.pub"
    pub.write_text(lab_nodes.client_pubkey + "\n")
    key = str(lab_nodes.client_key)
    nodes = [{"name": "cp1", "address": b.inner_address, "role": "control-plane", "user": "root", "key_file": key}]
    nodes += [{"name": n.name, "address": n.address, "role": "worker", "user": "root", "key_file": key}
              for n in lab_nodes.nodes]
    lab = make_lab("way", nodes=nodes, node_subnet=str(lab_nodes.inner_subnet), login_user="root",
                   public_key_file=str(pub), external_network=floating_pool)
    # the workers cannot be reached from here: only through the control plane
    for n in lab_nodes.nodes:
        assert ipaddress.ip_address(n.address) in lab_nodes.inner_subnet
    consoles(f"labtui-{lab}-cp1", cloud_init_console(f"labtui-{lab}-cp1", [(b.fingerprint, "ED25519")]))
    for n in lab_nodes.nodes:
        consoles(f"labtui-{lab}-{n.name}", cloud_init_console(f"labtui-{lab}-{n.name}", [(n.fingerprint, "ED25519")]))

    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    steps = {s["step"]: s for s in json.loads(out)["steps"]}
    assert steps["host-keys"]["state"] == "done" and "pinned" in steps["host-keys"]["detail"]

    # the plan written after provisioning: the control plane at its floating IP, the others through it
    plan = store.get_session(lab).plan
    by = {n["name"]: n for n in plan["nodes"]}
    fip = by["cp1"]["ssh_host"]
    assert fip in POOL and by["cp1"]["address"] == b.inner_address
    for n in lab_nodes.nodes:
        assert by[n.name]["proxy_jump"] == f"root@{fip}" and by[n.name]["address"] == n.address
    # every key was pinned from the consoles: the control plane's under the floating IP it is reached at
    known = (lab_home / "known_hosts").read_text()
    assert f"{fip} {' '.join(b.host_public_key.split()[:2])}" in known
    for n in lab_nodes.nodes:
        assert n.known_hosts_line() in known

    # labtui's SSH (headless: an unknown key would be refused) reaches every node that way
    from labtui.adapters.ssh import session_ssh
    from labtui.session import LabSession

    with LabSession(store, lab) as s:
        ssh = session_ssh(s.ctx)
        assert ssh.run("cp1", "hostname", sudo=False, timeout=30).stdout.strip() == "bastion"
        for n in lab_nodes.nodes:
            assert ssh.run(n.name, "hostname", sudo=False, timeout=30).stdout.strip() == n.name
            assert [j.host for j in ssh.resolve(n.name).jump] == [fip]
