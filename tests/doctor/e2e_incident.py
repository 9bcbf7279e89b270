"""The incident end to end on the real test backends: sshd nodes (SSH), the real OpenStack API
(Neutron/Nova: the group without protocol 4, the ports with port security on), and the test
Kubernetes API (kmock: a CrossSubnet pool). Through the command line, as a user would.

The probe pods' kubectl and the node's tcpdump are SIMULATED at the process boundary (they replay
output recorded from the real busybox ping and tcpdump); the simulation is told what the network
does after the fix (the test cloud stores security groups, it does not enforce them)."""

from __future__ import annotations

import json

import pytest

from labtui.cli import main
from tests.doctor.simulation import tools
from tests.harness.kube import v3_cluster

pytestmark = [pytest.mark.root, pytest.mark.openstack, pytest.mark.slow]


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_incident_found_explained_fixed_by_option_1_and_reverted(sshlab, kube_nodes, layout, store, tmp_path, capsys):
    tools.install(sshlab, tools.scenario(sshlab, reach="none", wire="direct-noreply"))
    with v3_cluster(nodes=kube_nodes) as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf")
        base = ["doctor", "incident"]
        # adopt the cluster (labtui did not build it): the nodes, the cloud, the kubeconfig
        nodes = ",".join(f"{n.name}={n.address}" for n in sshlab.nodes)
        code, out, err = _run(capsys, *base, "--adopt", "--nodes", nodes, "--user", "root", "--key", str(sshlab.client_key),
                              "--cloud", layout.cloud, "--kubeconfig", str(kc), "--accept-new-host-keys")
        assert code == 1, err
        # the diagnosis names the real pool, mode, subnet, ports and group, and the mechanism
        assert "[ERROR] 1. Pod traffic between nodes on one subnet leaves unencapsulated and OpenStack drops it" in out
        for needle in ("default-ipv4-ippool", "ipipMode CrossSubnet", f"All 4 nodes are on {sshlab.subnet}",
                       "anti-spoofing", "allowed-address-pairs: none", "doctor-dcp", "security group doctor-k8s has no rule",
                       "would fail for the same reason"):
            assert needle in out, needle
        assert "connectivity (ping from the probe pod" in out and "FAIL" in out  # the live proof
        assert "1. IPIP Always + IP protocol 4 between the nodes [recommended]" in out

        # --json gives the same diagnosis to scripts
        code, out, err = _run(capsys, *base, "--json", "--no-live")
        assert out.startswith("{"), err
        data = json.loads(out)
        assert code == 1 and data["status"] == "findings" and data["findings"][0]["id"] == "crosssubnet-antispoofing"
        assert len(data["findings"][0]["pairs"]) == 12

        # without --yes (no terminal): shown, not applied
        code, out, err = _run(capsys, *base, "--fix", "1", "--no-live")
        assert code == 1 and "not applied" in err
        assert not [r for r in layout.rules() if r.protocol == "4"]

        # fix option 1: protocol 4 from the group first, then the pool (one patch, both modes)
        code, out, err = _run(capsys, *base, "--fix", "1", "--yes", "--no-live")
        assert code == 0, out + err
        assert err.index("security group rule create") < err.index("ippools.projectcalico.org")
        ipip = [r for r in layout.rules() if r.protocol == "4"]
        assert len(ipip) == 1 and ipip[0].remote_group_id == layout.security_group_id and ipip[0].direction == "ingress"
        pool = cluster.pool("default-ipv4-ippool")["spec"]
        assert (pool["ipipMode"], pool["vxlanMode"]) == ("Always", "Never")
        patch = [r for r in cluster.patches() if "ippools" in r.path][-1]
        assert patch.body == {"spec": {"ipipMode": "Always", "vxlanMode": "Never"}}
        assert "After fix option 1:" in err and "healthy" in out

        # the network now carries IPIP between the nodes (what the simulation is told): the live proof agrees
        tools.set_scenario(sshlab, tools.scenario(sshlab, reach="all", wire="ipip"))
        code, out, err = _run(capsys, *base)
        assert code == 0, out
        assert "FAIL" not in out and "pod paths: 12 of 12 pass" in out

        # everything is recorded with its revert; the report tells the story
        rec = store.get_session("incident")
        changes = store.changes(rec.id)
        assert [c.kind for c in changes] == ["openstack.sg-rule", "calico.pool-mode"]
        assert all(c.revert_command for c in changes)
        code, out, _ = _run(capsys, "report", "incident")
        assert code == 0
        for needle in ("# Lab report: incident", "## Symptom", "## The cause", "## The change", "### Before (",
                       ", findings)", "### After (", ", healthy)", "openstack security group rule delete",
                       "| dcp | ok | **FAIL** | **FAIL** | **FAIL** |", "| dcp | ok | ok | ok | ok |"):
            assert needle in out, needle

        # revert all: the Calico switch first, then the rule
        code, out, err = _run(capsys, *base, "--revert", "all", "--yes")
        assert code == 0, err
        assert not [r for r in layout.rules() if r.protocol == "4"]
        pool = cluster.pool("default-ipv4-ippool")["spec"]
        assert (pool["ipipMode"], pool["vxlanMode"]) == ("CrossSubnet", "Never")
        assert all(c.reverted for c in store.changes(rec.id))
