"""Connecting like a careful admin: ~/.ssh/config merge, keys, agent, passphrase, ProxyJump,
clear failures (wrong key, unreachable, refused), connection reuse."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from labtui.errors import LabError
from labtui.model import NodeSpec

pytestmark = pytest.mark.root


def test_three_nodes_facts_and_session_store(lab3, make_ssh, store):
    from labtui.nodes.facts import gather, load_facts, store_facts

    ssh = make_ssh(lab3)
    results = gather(ssh, [n.name for n in lab3.nodes])
    rec = store.create_session("three")
    for node in lab3.nodes:
        res = results[node.name]
        assert res.ok, res.message
        f = res.value
        assert f.hostname == node.name
        assert f.address == node.address and f.prefixlen == 24 and f.iface_cidr == f"{node.address}/24"
        assert f.subnet == str(lab3.subnet)
        assert f.interface == "eth0" and f.mac == node.mac
        assert f.os_id == "ubuntu" and f.os_version == "24.04"
        assert f.kernel == os.uname().release
        assert f.cpus >= 1 and f.memory_mb > 100
        assert set(f.modules) == {"overlay", "br_netfilter", "ipip"}
        assert f.sysctl("net.ipv4.ip_forward") == "0"
        store_facts(store, rec.id, f)
    stored = load_facts(store, rec.id)
    assert sorted(stored) == [n.name for n in lab3.nodes]
    assert store.facts(rec.id, "node:node2")["node:node2"]["iface_cidr"] == f"{lab3.nodes[1].address}/24"


def test_config_merge_alias_and_plan_values(lab3, make_ssh):
    ssh = make_ssh(lab3, specs=[
        {"name": "a", "address": "node1"},  # all from ~/.ssh/config: HostName, User root, IdentityFile
        {"name": "b", "address": "node2", "user": "labnopw"},  # the plan's explicit user wins
        {"name": "c", "address": lab3.nodes[2].address, "user": "root", "key_file": str(lab3.client_key)},
    ])
    a, b, c = ssh.resolve("a"), ssh.resolve("b"), ssh.resolve("c")
    assert (a.host, a.user, a.key_files, a.identities_only) == (lab3.nodes[0].address, "root", (str(lab3.client_key),), True)
    assert (b.host, b.user) == (lab3.nodes[1].address, "labnopw")
    assert c.host == lab3.nodes[2].address and c.jump == ()
    assert ssh.run("a", "hostname").stdout.strip() == "node1"
    assert ssh.run("b", "id -un").stdout.strip() == "labnopw"
    assert ssh.run("c", "hostname").stdout.strip() == "node3"


def test_connection_is_reused_and_rebuilt(fresh_lab, make_ssh):
    ssh = make_ssh(fresh_lab)
    ssh.run("node1", "true")
    first = ssh.transport("node1")
    ssh.run("node1", "true")
    assert ssh.transport("node1") is first
    fresh_lab.restart_node("node1")  # the old connection dies with the server
    deadline = time.monotonic() + 5
    while first.is_active() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ssh.run("node1", "hostname").stdout.strip() == "node1"
    assert ssh.transport("node1") is not first


def test_wrong_key_gives_an_authentication_message(lab3, make_ssh):
    wrong = lab3.add_client_key("not-authorized", authorize=False)
    node = lab3.nodes[0]
    ssh = make_ssh(lab3, specs=[{"name": "node1", "address": node.address, "user": "root", "key_file": str(wrong)}],
                   ssh_config=lab3.dir / "no-such-config")
    with pytest.raises(LabError) as err:
        ssh.run("node1", "true")
    assert err.value.code == "auth"
    assert err.value.message.startswith("node1: authentication failed for root@" + node.address)
    assert str(wrong) in err.value.message
    assert "authorized_keys" in err.value.hint


def test_no_key_at_all(lab3, make_ssh):
    node = lab3.nodes[0]
    ssh = make_ssh(lab3, specs=[{"name": "node1", "address": node.address, "user": "root"}],
                   ssh_config=lab3.dir / "no-such-config")
    with pytest.raises(LabError) as err:
        ssh.run("node1", "true")
    assert "no SSH key" in err.value.message and "ssh-add" in err.value.hint


def test_unreachable_address_fails_within_the_timeout(lab3, make_ssh):
    ssh = make_ssh(lab3, connect_timeout=1.5, specs=[
        {"name": "ghost", "address": lab3.unused_address(), "user": "root", "key_file": str(lab3.client_key)}])
    t0 = time.monotonic()
    status = ssh.check("ghost")
    elapsed = time.monotonic() - t0
    assert not status.reachable
    assert elapsed < 1.5 + 1.0, elapsed
    assert status.error.startswith("ghost: ") and lab3.unused_address() in status.error
    assert status.code in ("timeout", "unreachable")
    assert "security group" in status.hint or "address" in status.hint


def test_refused_port_is_named(lab3, make_ssh):
    ssh = make_ssh(lab3, specs=[{"name": "n1", "address": lab3.nodes[0].address, "port": 2222, "user": "root",
                                 "key_file": str(lab3.client_key)}], ssh_config=lab3.dir / "no-such-config")
    with pytest.raises(LabError) as err:
        ssh.run("n1", "true")
    assert err.value.code == "refused" and ":2222 refused" in err.value.message


def test_bastion_proxyjump_from_ssh_config(bastion_lab, make_ssh):
    ssh = make_ssh(bastion_lab)  # ProxyJump bastion comes from the ssh_config
    for node in bastion_lab.nodes:
        ep = ssh.resolve(node.name)
        assert [j.host for j in ep.jump] == [bastion_lab.bastion.address]
    res = ssh.run_all([n.name for n in bastion_lab.nodes], "hostname")
    assert {n: r.value.stdout.strip() for n, r in res.items()} == {n.name: n.name for n in bastion_lab.nodes}
    # one shared connection to the bastion
    jumps = [k for k in ssh._transports if k[0] == bastion_lab.bastion.address]
    assert len(jumps) == 1


def test_bastion_proxyjump_from_the_plan(bastion_lab, make_ssh):
    ssh = make_ssh(bastion_lab, via_config=False, ssh_config=bastion_lab.dir / "no-such-config")
    node = bastion_lab.nodes[1]
    assert ssh.resolve(node.name).jump[0].display == f"root@{bastion_lab.bastion.address}"
    assert ssh.run(node.name, "hostname").stdout.strip() == node.name
    # the system ssh command line for "open a shell" goes the same way, with labtui's known_hosts
    argv = ssh.ssh_argv(node.name, "hostname")
    assert "StrictHostKeyChecking=yes" in argv and any(a.startswith("ProxyCommand=ssh ") for a in argv)
    out = subprocess.run(argv[:1] + ["-o", "BatchMode=yes"] + argv[1:], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == node.name


def test_jump_host_cannot_reach_the_node(bastion_lab, make_ssh):
    ssh = make_ssh(bastion_lab, via_config=False, ssh_config=bastion_lab.dir / "no-such-config", specs=[
        {"name": "lost", "address": str(bastion_lab.inner_subnet.network_address + 99), "user": "root",
         "key_file": str(bastion_lab.client_key), "proxy_jump": f"root@{bastion_lab.bastion.address}"}])
    status = ssh.check("lost")
    assert not status.reachable
    assert status.error.startswith("lost: the jump host root@") and "could not reach" in status.error


def test_agent_key(lab3, make_ssh, tmp_path, monkeypatch):
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.02)
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        subprocess.run(["ssh-add", "-q", str(lab3.client_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        ssh = make_ssh(lab3, specs=[{"name": "n", "address": lab3.nodes[0].address, "user": "root"}],
                       ssh_config=lab3.dir / "no-such-config")
        assert ssh.run("n", "hostname").stdout.strip() == "node1"
    finally:
        agent.terminate()
        agent.wait(timeout=5)


def test_passphrase_is_asked_once_and_never_kept(lab3, make_ssh):
    key = lab3.add_client_key("with-passphrase", passphrase="correct horse battery")
    asked = []

    def ask(node, path):
        asked.append((node, path))
        return "wrong one" if len(asked) == 1 else "correct horse battery"

    specs = [{"name": n.name, "address": n.address, "user": "root", "key_file": str(key)} for n in lab3.nodes]
    ssh = make_ssh(lab3, specs=specs, ssh_config=lab3.dir / "no-such-config", passphrase=ask)
    res = ssh.run_all([n.name for n in lab3.nodes], "hostname")
    assert all(r.ok for r in res.values()), [r.message for r in res.values()]
    assert len(asked) == 2 and asked[1][1] == str(key)  # one wrong try, then once for all three nodes
    assert "correct horse battery" not in repr(ssh.__dict__)

    cancelled = make_ssh(lab3, specs=specs[:1], ssh_config=lab3.dir / "no-such-config", passphrase=lambda n, p: None)
    with pytest.raises(LabError) as err:
        cancelled.run(specs[0]["name"], "true")
    assert err.value.code == "auth"


def test_plan_node_as_jump_host(bastion_lab, make_ssh):
    b = bastion_lab.bastion
    specs = [{"name": "gw", "address": b.address, "user": "root", "key_file": str(bastion_lab.client_key)},
             {"name": "inner", "address": bastion_lab.nodes[0].address, "user": "root", "proxy_jump": "gw",
              "key_file": str(bastion_lab.client_key)}]
    ssh = make_ssh(bastion_lab, specs=specs, ssh_config=bastion_lab.dir / "no-such-config")
    assert ssh.resolve("inner").jump[0].label == "gw"
    assert ssh.run("inner", "hostname").stdout.strip() == bastion_lab.nodes[0].name


def test_unknown_node_name(lab3, make_ssh):
    ssh = make_ssh(lab3)
    with pytest.raises(LabError) as err:
        ssh.run("node9", "true")
    assert "no node named 'node9'" in err.value.message


def test_nodespec_roundtrip_for_harness_plan(lab3):
    from labtui.model import Plan

    plan = Plan.parse(lab3.plan_data("harness"))
    assert [n.name for n in plan.nodes] == ["node1", "node2", "node3"]
    assert isinstance(plan.nodes[0], NodeSpec) and plan.nodes[0].role.value == "control-plane"


def test_a_failing_jump_host_is_named_with_the_node(bastion_lab, make_ssh):
    wrong = bastion_lab.add_client_key("jump-wrong", authorize=False)
    ssh = make_ssh(bastion_lab, ssh_config=bastion_lab.dir / "none", specs=[
        {"name": "inner", "address": bastion_lab.nodes[0].address, "user": "root", "key_file": str(wrong),
         "proxy_jump": f"root@{bastion_lab.bastion.address}"}])
    status = ssh.check("inner")
    assert not status.reachable and status.code == "auth"
    assert status.error.startswith(f"inner: the jump host failed: root@{bastion_lab.bastion.address}: authentication failed")


def test_system_ssh_argv_matches_labtui(lab3, make_ssh):
    ssh = make_ssh(lab3, accept_new_host_keys=True, trusted=False)
    ssh.run("node3", "true")  # the key is now in labtui's own known_hosts only
    argv = ssh.ssh_argv("node3", "hostname")
    assert "ProxyJump=none" in argv and str(ssh.known_hosts.own) in " ".join(argv)
    out = subprocess.run(argv[:1] + ["-o", "BatchMode=yes"] + argv[1:], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "node3"
