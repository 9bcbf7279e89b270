"""End to end through a real OpenSSH control plane (sshd in a network namespace, labtui.adapters.ssh):
the API reached through a real SSH local forward, admin.conf fetched over SSH, and calicoctl run
over SSH. Needs root (tests/harness/sshnodes.py).

SIMULATED at the process boundary on the node (there is no real control plane here): `sudo` for
the one command `sudo -n cat /etc/kubernetes/admin.conf` (prints a kubeadm-style admin.conf;
every other command goes to the real sudo), and `calicoctl` (does what calicoctl does with
DATASTORE_TYPE=kubernetes: a merge PATCH of the pool through the API, and prints calicoctl's own
success line)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from labtui.adapters.calico import plan_change, read_cluster
from labtui.adapters.kube import kube_for
from labtui.adapters.kubeconfig import control_plane_shell
from labtui.pool_change import set_pool_mode
from tests.harness.kube import TLSFront, incident_cluster, kubeconfig_text, make_certs

pytestmark = pytest.mark.root

RELAY = r"""
import socket, sys, threading
lhost, lport, rhost, rport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((lhost, lport)); srv.listen(16); print("ready", flush=True)
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    finally:
        a.close(); b.close()
while True:
    c, _ = srv.accept()
    u = socket.create_connection((rhost, rport))
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
"""

SIMULATED_CALICOCTL = """#!/usr/bin/env python3
# SIMULATED calicoctl (datastore: kubernetes): patch ippool NAME -p JSON -> one merge PATCH
import json, sys, urllib.request
args = sys.argv[1:]
assert args[:2] == ["patch", "ippool"], args
name, body = args[2], args[args.index("-p") + 1]
req = urllib.request.Request("{api}/apis/crd.projectcalico.org/v1/ippools/" + name, data=body.encode(), method="PATCH",
                             headers={{"Content-Type": "application/merge-patch+json", "Authorization": "Bearer admin-token"}})
urllib.request.urlopen(req, timeout=10).read()
print("Successfully patched 1 'IPPool' resource(s)")
"""

SIMULATED_SUDO = """#!/bin/sh
# SIMULATED for one command only: the control plane's admin.conf; everything else is the real sudo
if [ "$*" = "-n cat /etc/kubernetes/admin.conf" ]; then exec cat {admin_conf}; fi
exec /usr/bin/sudo "$@"
"""


@pytest.fixture(scope="module")
def cplab():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, sshd)")
    from tests.harness.sshnodes import SSHNodes

    with SSHNodes(1, names=["cp1"]) as lab:
        yield lab


def _free_local_port() -> int:
    """A port for the node's private API that this host does not answer on either, below the ephemeral
    range: labtui first tries the API directly, and a port from the ephemeral range could be bound on
    the host meanwhile by another server of the suite (or self-connect on loopback), which made the
    direct try "succeed" and the test flaky (seen once in CI: a TLS server with another certificate)."""
    import random

    for _ in range(200):
        port = random.randint(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 30000")


def test_private_api_through_a_real_ssh_forward_then_calicoctl_over_ssh(cplab, tmp_path, make_lab):
    from labtui.adapters.ssh import configure_session_ssh

    cp = cplab.nodes[0]
    gw = cplab.gateway
    with incident_cluster(host=gw) as cluster:
        certs = make_certs(tmp_path / "pki", san_ips=["127.0.0.1"])
        front = TLSFront(cluster.port, certs["server_cert"], certs["server_key"], host=gw, backend_host=gw)
        # the API answers on the control plane's own 127.0.0.1:<port>, nowhere else (like a private address)
        port = _free_local_port()
        relay = subprocess.Popen(["ip", "netns", "exec", cp.netns, sys.executable, "-c", RELAY,
                                  "127.0.0.1", str(port), gw, str(front.port)], stdout=subprocess.PIPE, text=True)
        try:
            assert relay.stdout.readline().strip() == "ready"
            admin = cp.dir / "admin.conf"
            admin.write_text(kubeconfig_text(f"https://127.0.0.1:{port}", ca_data=certs["ca_data"]))
            os.chmod(admin, 0o600)
            cplab.install_script(cp, "sudo", SIMULATED_SUDO.format(admin_conf=admin))
            cplab.install_script(cp, "calicoctl", SIMULATED_CALICOCTL.format(api=cluster.url))

            lab, events = make_lab("e2e", plan=cplab.plan_data("e2e"))
            configure_session_ssh(lab.ctx, user_known_hosts=[cplab.known_hosts], headless=True, connect_timeout=5.0)
            kc = kube_for(lab.ctx)  # fetches admin.conf over SSH, then finds its server unreachable here
            assert kc.kubeconfig == lab.dir / "admin.conf"
            state = read_cluster(kc)
            assert kc.via.startswith("ssh forward 127.0.0.1:") and kc.via.endswith(f"-> 127.0.0.1:{port}")
            assert state.install.mode == "manifest" and [n.name for n in state.nodes] == ["cp1", "w1", "w2", "w3"]
            assert front.connections >= 1

            shell = control_plane_shell(lab.ctx)
            assert shell is not None and shell.node == "cp1"
            change = plan_change(kc, state, "default-ipv4-ippool", "IPIP", shell=shell)
            assert change.method == "calicoctl" and change.command.startswith("ssh cp1 ")
            cluster.clear_requests()
            seen = set_pool_mode(lab.ctx, change, state=state, shell=shell, poll=0.1)
            assert (seen.ipip_mode, seen.vxlan_mode) == ("Always", "Never")
            [patch] = cluster.patches()
            assert patch.content_type == "application/merge-patch+json"
            assert patch.body == {"spec": {"ipipMode": "Always", "vxlanMode": "Never"}}
            assert any("Successfully patched 1 'IPPool' resource(s)" in e.message for e in events)
            lab.recorder.flush()
            assert not any("admin-token" in e.message for e in events)
            lab.close()
        finally:
            relay.kill()
            relay.wait(5)
            front.close()
