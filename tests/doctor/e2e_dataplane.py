"""The doctor's live proof over a REAL data plane (tests/doctor/dataplane.py): real pod namespaces on
the sshd nodes, real busybox pings, the real tcpdump, and Neutron's anti-spoofing and security
groups as nftables rules generated from the real OpenStack API's ports and rules; Calico's routing
(direct or VXLAN) generated from the real (kmock) pool. After a fix the test re-syncs the data
plane from the backends (what Neutron's agent and Felix do on a real cloud): the network then
really behaves as the fix says, and the doctor's second live proof shows it.

IPIP cannot be reproduced (this kernel has no ipip module): the pool here is VXLANCrossSubnet,
the stock operator sample's mode, which on one subnet sends pod traffic direct, exactly like the
incident's IPIP CrossSubnet."""

from __future__ import annotations

import shutil

import pytest

from labtui.cli import main
from tests.doctor.dataplane import Dataplane
from tests.doctor.simulation import tools
from tests.harness.kube import v3_cluster

pytestmark = [pytest.mark.root, pytest.mark.openstack, pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("nft") and shutil.which("busybox")),
                                 reason="needs nftables and busybox (tests/setup.d/doctor.apt)")]


@pytest.fixture
def dataplane(sshlab):
    dp = Dataplane(sshlab).start()
    yield dp
    dp.stop()


def _doctor(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("option,wire", [("2", "VXLAN"), ("3", "direct (unencapsulated)")])
def test_real_packets_dropped_then_fixed(option, wire, sshlab, kube_nodes, layout, dataplane, store, tmp_path, capsys):
    tools.install_dataplane(sshlab, dataplane)
    with v3_cluster(nodes=kube_nodes, ipip="Never", vxlan="CrossSubnet") as cluster:
        mode, rules = dataplane.sync(layout, cluster)
        assert mode == "direct" and "ip saddr != {" in rules
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf")
        nodes = ",".join(f"{n.name}={n.address}" for n in sshlab.nodes)
        code, out, err = _doctor(capsys, "doctor", "dp", "--adopt", "--nodes", nodes, "--user", "root", "--key",
                                 str(sshlab.client_key), "--cloud", layout.cloud, "--kubeconfig", str(kc),
                                 "--accept-new-host-keys")
        assert code == 1, out + err
        assert "Pod traffic between nodes on one subnet leaves unencapsulated and OpenStack drops it" in out
        assert "vxlanMode CrossSubnet" in out
        diag = store.facts(store.get_session("dp").id, "doctor")["doctor"]["last"]
        # the real pings failed on every pair, and the real tcpdump saw bare pod packets leave
        assert diag["matrix"] and not any(m["ok"] for m in diag["matrix"])
        cap = diag["captures"][0]
        assert cap["seen"] == ["direct"] and not cap["simulated"]
        assert all("echo request" in line for line in cap["lines"])  # no reply ever came back
        assert dataplane.spoof_drops() > 0  # dropped by the anti-spoofing rule, as Neutron would

        code, out, err = _doctor(capsys, "doctor", "dp", "--fix", option, "--yes", "--no-live")
        assert code == 0, out + err
        dataplane.sync(layout, cluster)  # Neutron's agent and Felix apply what the APIs now say
        code, out, err = _doctor(capsys, "doctor", "dp")
        assert code == 0, out + err
        diag = store.facts(store.get_session("dp").id, "doctor")["doctor"]["last"]
        assert len(diag["matrix"]) == 12 and all(m["ok"] for m in diag["matrix"])
        cap = diag["captures"][0]
        assert cap["lines"] and cap["lines"][0].startswith(wire)
        assert any("echo reply" in line for line in cap["lines"])
