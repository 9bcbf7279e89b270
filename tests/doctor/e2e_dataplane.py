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

import json
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
        # no answer ever came back (neither an echo reply nor a TCP SYN-ACK from the probe's listener)
        assert not any("echo reply" in line or "Flags [S.]" in line for line in cap["lines"]), cap["lines"]
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
        assert any("echo reply" in line or "Flags [S.]" in line for line in cap["lines"]), cap["lines"]


def test_single_port_lacking_the_pairs_fixed_on_that_port(sshlab, kube_nodes, layout, dataplane, store, tmp_path,
                                                          capsys):
    """No encapsulation; every node port but dw3's already has the pod CIDR as an allowed-address-pair
    and the group lets pod addresses in. Over the real data plane dw3's pod packets are dropped (its
    replies too, so pings towards dw3 fail as well); the doctor recommends the one change, the pair
    on dw3's port, and after it (and a re-sync) every pair passes for real."""
    net = layout.conn.network
    cidr = dataplane.pool_cidr
    for n in layout.nodes:
        if n.name != "dw3":
            net.update_port(n.port_id, allowed_address_pairs=[{"ip_address": cidr}])
    net.create_security_group_rule(security_group_id=layout.security_group_id, direction="ingress",
                                   ether_type="IPv4", remote_ip_prefix=cidr)
    tools.install_dataplane(sshlab, dataplane)
    with v3_cluster(nodes=kube_nodes, ipip="Never", vxlan="CrossSubnet") as cluster:
        mode, _rules = dataplane.sync(layout, cluster)
        assert mode == "direct"
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf")
        nodes = ",".join(f"{n.name}={n.address}" for n in sshlab.nodes)
        code, out, err = _doctor(capsys, "doctor", "dp1", "--adopt", "--nodes", nodes, "--user", "root", "--key",
                                 str(sshlab.client_key), "--cloud", layout.cloud, "--kubeconfig", str(kc),
                                 "--accept-new-host-keys", "--json")
        assert code == 1, err
        data = json.loads(out)
        cross = {(c["src"], c["dst"]): c for c in data["cells"] if c["scope"] == "cross" and c["check"] == "icmp"}
        assert len(cross) == 12
        assert all(not c["ok"] for (a, b), c in cross.items() if "dw3" in (a, b)), cross
        # each failing cell's cause names dw3's port; towards dw3, the answers are what is dropped
        for (a, b), c in cross.items():
            if a == "dw3":
                assert "dw3" in c["cause"], c
            elif b == "dw3":
                assert c["cause"].startswith("the answers from dw3 to"), c
        tcp = {(c["src"], c["dst"]): c for c in data["cells"] if c["scope"] == "cross" and c["check"] == "tcp"}
        assert all(c["ok"] == ("dw3" not in (a, b)) for (a, b), c in tcp.items()), tcp
        assert all(c["ok"] for (a, b), c in cross.items() if "dw3" not in (a, b)), cross
        assert dataplane.spoof_drops() > 0
        rec = next(o for o in data["options"] if o["recommended"])
        # the smallest fix: one change, the pair on dw3's port
        assert [a["kind"] for a in rec["actions"]] == ["port-pairs"], rec
        dw3_port = layout.node("dw3").port_id
        assert dw3_port in rec["actions"][0]["command"] or "dw3" in rec["actions"][0]["command"], rec

        code, out, err = _doctor(capsys, "doctor", "dp1", "--fix", str(rec["number"]), "--yes", "--no-live")
        assert code == 0, out + err
        pairs = [a["ip_address"] for a in net.get_port(dw3_port).allowed_address_pairs]
        assert pairs == [cidr]
        dataplane.sync(layout, cluster)  # Neutron's agent applies what the API now says
        code, out, err = _doctor(capsys, "doctor", "dp1", "--json")
        assert code == 0, out + err
        data = json.loads(out)
        assert all(c["ok"] for c in data["cells"] if c["scope"] == "cross" and c["check"] == "icmp")
        # the nodes themselves reach every pod over the same real data plane (hostNetwork probe pods)
        host = [c for c in data["cells"] if c["scope"] == "host"]
        assert len(host) == 16 * 3, host
        assert all(c["ok"] for c in host), [(c["id"], c["detail"]) for c in host if not c["ok"]]
        # TCP and the DF ping at the path MTU over the real data plane too
        assert all(c["ok"] for c in data["cells"] if c["scope"] == "cross"), \
            [(c["id"], c["detail"]) for c in data["cells"] if c["scope"] == "cross" and not c["ok"]]
        assert len(data["matrix"]) == 12 and all(m["ok"] for m in data["matrix"])
