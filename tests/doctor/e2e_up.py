"""`labtui up` on the incident lab, adopted on the real test backends (sshd nodes, the OpenStack API,
the test Kubernetes API with a CrossSubnet pool): --dry-run lists the actions and changes nothing;
--yes ends with every stage done and a healthy doctor; a second run applies and records nothing.

The probe pods' kubectl and tcpdump are SIMULATED at the process boundary (see e2e_incident.py)."""

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


SIM_MODULES = "/tmp/labtui-sim-modules"


def _simulate_kernel_modules(sshlab, on: bool) -> None:
    """SIMULATION at the node boundary: this machine's kernel has no ipip module (a real VM's has);
    inside each node's own mount namespace, /sys/module shows overlay, br_netfilter and ipip loaded."""
    for n in sshlab.nodes:
        if on:
            sshlab.node_exec(n, ["sh", "-c", f"mkdir -p {SIM_MODULES}/overlay {SIM_MODULES}/br_netfilter "
                                             f"{SIM_MODULES}/ipip && mount --bind {SIM_MODULES} /sys/module"])
        else:
            sshlab.node_exec(n, ["sh", "-c", "umount /sys/module; sysctl -q -w net.ipv4.ip_forward=0; "
                                             "rm -f /etc/sysctl.d/99-kubernetes.conf /etc/sysctl.d/99-labtui-kubernetes.conf"], check=False)


@pytest.fixture
def modules(sshlab):
    _simulate_kernel_modules(sshlab, True)
    yield
    _simulate_kernel_modules(sshlab, False)


def test_up_on_the_adopted_incident(sshlab, kube_nodes, layout, store, tmp_path, capsys, modules):
    tools.install(sshlab, tools.scenario(sshlab, reach="none", wire="direct-noreply"))
    with v3_cluster(nodes=kube_nodes) as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf")
        nodes = ",".join(f"{n.name}={n.address}" for n in sshlab.nodes)
        code, out, err = _run(capsys, "doctor", "incident", "--adopt", "--nodes", nodes, "--user", "root",
                              "--key", str(sshlab.client_key), "--cloud", layout.cloud, "--kubeconfig", str(kc),
                              "--accept-new-host-keys", "--no-live")
        assert code == 1, out + err
        rec = store.get_session("incident")
        before_changes = store.changes(rec.id)
        rules_before = sorted(str((r.protocol, r.remote_group_id, r.port_range_min)) for r in layout.rules())

        # --dry-run: every action it would run, nothing changed on the cloud or the pool
        cluster.clear_requests()
        code, out, err = _run(capsys, "up", "incident", "--dry-run", "--json")
        assert code in (0, 1), out + err
        data = json.loads(out)
        assert data["dry_run"] is True and data["done"] is False
        would = [a for s in data["stages"] for st in s["steps"] for a in st.get("actions", [])]
        commands = [a["command"] for a in would if a["status"] == "would run"]
        assert any("--protocol 4" in c and "security group rule create" in c for c in commands), commands
        assert any("ippool" in c.lower() for c in commands), commands
        assert sorted(str((r.protocol, r.remote_group_id, r.port_range_min)) for r in layout.rules()) == rules_before
        assert cluster.writes() == []
        pool = cluster.pool("default-ipv4-ippool")["spec"]
        assert (pool["ipipMode"], pool["vxlanMode"]) == ("CrossSubnet", "Never")
        assert store.changes(rec.id) == before_changes

        # --yes: every stage done, the doctor healthy. The adopted lab's plan carries the live pool mode
        # (IPIPCrossSubnet), so the cloud stage makes the network fit it: the pod CIDR as an
        # allowed-address-pair on every port and a rule accepting it (the simulation is told the wire then
        # carries the pods' packets directly)
        tools.set_scenario(sshlab, tools.scenario(sshlab, reach="all", wire="direct"))
        code, out, err = _run(capsys, "up", "incident", "--yes")
        assert code == 0, out + err
        assert "Every stage of incident is done." in out
        recorded = store.changes(rec.id)
        kinds = [c.kind for c in recorded[len(before_changes):]]
        assert kinds.count("openstack.port-pairs") == 4 and "openstack.sg-rule" in kinds, kinds
        assert all(c.revert_command for c in recorded)
        health = store.get_session("incident").health
        assert "healthy" in health, health

        # run again: nothing applied, nothing recorded
        cluster.clear_requests()
        code, out, err = _run(capsys, "up", "incident", "--yes")
        assert code == 0, out + err
        assert store.changes(rec.id) == recorded
        assert [w for w in cluster.writes() if "ippools" in w.path or "installations" in w.path] == []
        assert "already" in out or "nothing" in out or "done" in out

        # and revert all of it: nodes, cloud and Calico alike, newest first
        code, out, err = _run(capsys, "doctor", "incident", "--revert", "all", "--yes", "--no-live")
        assert code == 0, out + err
        assert all(c.reverted for c in store.changes(rec.id))
