"""The SSH node harness itself: isolation, naming, cleanup, nothing leaves the machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.harness.sshnodes import RUN_ROOT, SSHNodes, cleanup_stale, fingerprint, root_ip_forward

pytestmark = pytest.mark.root


def _netns() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


def test_nodes_are_isolated_and_named(lab3):
    assert root_ip_forward() == "0"
    for node in lab3.nodes:
        assert lab3.node_exec(node, ["hostname"]).stdout.strip() == node.name
        routes = lab3.node_exec(node, ["ip", "-4", "route"]).stdout
        assert "default" not in routes, "a node must have no way out of the lab"
        assert lab3.node_exec(node, ["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"]).stdout.strip() == "1"
        # private /root and /tmp, own /usr/local/bin
        assert ".bashrc" not in lab3.node_exec(node, ["ls", "-A", "/root"]).stdout  # not the host's /root
        lab3.node_exec(node, ["touch", f"/root/.private-{node.name}", f"/tmp/.private-{node.name}"])
        assert not os.path.exists(f"/root/.private-{node.name}") and not os.path.exists(f"/tmp/.private-{node.name}")
        assert node.netns.startswith(lab3.prefix + "-")
    ids = {lab3.node_exec(n, ["cat", "/etc/machine-id"]).stdout for n in lab3.nodes}
    assert len(ids) == 3
    assert len({n.fingerprint for n in lab3.nodes}) == 3


def test_fingerprint_matches_ssh_keygen(lab3):
    node = lab3.nodes[0]
    out = subprocess.run(["ssh-keygen", "-lf", str(node.dir / "ssh_host_ed25519_key.pub")],
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[1] == node.fingerprint == fingerprint(node.host_public_key)


def test_install_script_is_private_to_the_node(lab3):
    a, b = lab3.nodes[0], lab3.nodes[1]
    lab3.install_script(a, "kubeadm-simulated", "#!/bin/sh\necho simulated on $(hostname)\n")
    try:
        assert lab3.node_exec(a, ["kubeadm-simulated"]).stdout.strip() == f"simulated on {a.name}"
        assert lab3.node_exec(b, ["sh", "-c", "command -v kubeadm-simulated || echo absent"]).stdout.strip() == "absent"
        assert not os.path.exists("/usr/local/bin/kubeadm-simulated")
    finally:
        lab3.remove_script(a, "kubeadm-simulated")


def test_system_ssh_reaches_every_node(lab3):
    for node in lab3.nodes:
        out = subprocess.run(["ssh", "-F", str(lab3.ssh_config), "-o", "BatchMode=yes", node.name, "hostname"],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == node.name


def test_bastion_topology_only_through_the_bastion(bastion_lab):
    assert bastion_lab.inner_subnet is not None and bastion_lab.subnet != bastion_lab.inner_subnet
    routes = subprocess.run(["ip", "-4", "route", "show", str(bastion_lab.inner_subnet)], capture_output=True, text=True).stdout
    assert routes.startswith("unreachable"), "the inner subnet must never go out through the default route"
    node = bastion_lab.nodes[0]
    direct = subprocess.run(["ssh", "-F", str(bastion_lab.ssh_config), "-o", "BatchMode=yes", "-o", "ProxyJump=none",
                             "-o", "ConnectTimeout=3", node.name, "true"], capture_output=True, text=True, timeout=20)
    assert direct.returncode != 0
    via = subprocess.run(["ssh", "-F", str(bastion_lab.ssh_config), "-o", "BatchMode=yes", node.name, "hostname"],
                         capture_output=True, text=True, timeout=20)
    assert via.stdout.strip() == node.name, via.stderr
    assert bastion_lab.node_exec(bastion_lab.bastion, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "0"


def test_parallel_labs_do_not_clash():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with SSHNodes(1) as a, SSHNodes(1) as b:
        assert a.prefix != b.prefix
        assert a.subnet != b.subnet
        for lab in (a, b):
            out = subprocess.run(["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", "node1", "hostname -I"],
                                 capture_output=True, text=True, timeout=20)
            assert out.stdout.split()[0] == lab.nodes[0].address
    assert not [ns for ns in _netns() if ns.startswith((a.prefix, b.prefix))]
    assert not (RUN_ROOT / a.prefix).exists()


def test_leftovers_of_a_killed_run_are_cleaned():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from tests.harness.sshnodes import SSHNodes\n"
        "lab = SSHNodes(2).start(); print(lab.prefix, flush=True); time.sleep(60)\n"
    ) % os.getcwd()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    prefix = proc.stdout.readline().strip()
    assert prefix and any(ns.startswith(prefix + "-") for ns in _netns())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    assert prefix in cleanup_stale()
    assert not [ns for ns in _netns() if ns.startswith(prefix + "-")]
    assert not (RUN_ROOT / prefix).exists()
    leftover = subprocess.run(["pgrep", "-f", f"/run/labtui-sshlab/{prefix}/"], capture_output=True, text=True).stdout
    assert leftover.strip() == ""
