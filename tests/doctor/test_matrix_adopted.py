"""An adopted cluster gets live values (issue 12, "Why" 3): the pod CIDR from the pools, the service
CIDR from kubeadm-config, the encapsulation, the node subnets, the Kubernetes and Calico versions.
The cloud check of that lab then asks for the LIVE pod CIDR as allowed-address-pairs. On the real
test backends: sshd nodes, the real OpenStack API, the test Kubernetes API (kmock)."""

from __future__ import annotations

import json

import pytest

from labtui.cli import main
from tests.harness.kube import incident_cluster, ippool, kubeadm_config

pytestmark = [pytest.mark.root]


@pytest.mark.openstack
@pytest.mark.slow
def test_adopted_cluster_takes_the_live_values_and_the_cloud_check_asks_for_the_live_cidr(
        sshlab, kube_nodes, layout, store, tmp_path, capsys):
    with incident_cluster(nodes=kube_nodes) as cluster:
        # not the defaults: pool 10.244.0.0/16 (CrossSubnet), services 10.32.0.0/16
        cluster.add_pool(ippool("default-ipv4-ippool", "10.244.0.0/16", ipip="CrossSubnet"))
        cluster.add("v1/configmaps", kubeadm_config(pod_subnet="10.244.0.0/16", service_subnet="10.32.0.0/16"))
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf")
        nodes = ",".join(f"{n.name}={n.address}" for n in sshlab.nodes)
        code = main(["doctor", "adopted", "--adopt", "--nodes", nodes, "--user", "root", "--key", str(sshlab.client_key),
                     "--cloud", layout.cloud, "--kubeconfig", str(kc), "--accept-new-host-keys", "--no-live"])
        out = capsys.readouterr()
        assert code == 1, out.err
        assert ("live cluster: pod CIDR: 10.244.0.0/16 (read from IP pool default-ipv4-ippool; the adopted plan had "
                "the default 172.16.0.0/16)") in out.err
        plan = store.get_session("adopted").plan
        assert plan["pod_cidr"] == "10.244.0.0/16", out.err
        assert plan["service_cidr"] == "10.32.0.0/16"
        assert plan["encapsulation"] == "IPIPCrossSubnet" and plan["kubernetes"] == "1.36"
        assert plan["calico"] == "3.32.2" and plan["node_subnet"] == str(sshlab.subnet)
        # the doctor's own diagnosis uses the live pool, not the default
        assert "10.244.0.0/16" in out.out and "172.16.0.0/16" not in out.out
        # --json carries the live values and where they came from
        assert main(["doctor", "adopted", "--no-live", "--json"]) == 1
        live = json.loads(capsys.readouterr().out)["live"]
        assert live["values"]["service_cidr"] == "10.32.0.0/16" and live["plan_updated"] is False  # already taken
        assert live["sources"]["pod_cidr"] == "IP pool default-ipv4-ippool"

    # the cloud check asks for the live pod CIDR as allowed-address-pairs (no cluster needed now)
    code = main(["cloud", "check", "adopted", "--json"])
    out = capsys.readouterr()
    data = json.loads(out.out)
    text = json.dumps(data)
    assert "10.244.0.0/16" in text and "172.16.0.0/16" not in text, text[:2000]

    # the report says where each value came from
    assert main(["report", "adopted"]) == 0
    report = capsys.readouterr().out
    assert "- pod CIDR: 10.244.0.0/16 (read from IP pool default-ipv4-ippool)" in report
    assert "- service CIDR: 10.32.0.0/16 (read from ConfigMap kube-system/kubeadm-config (networking.serviceSubnet))" \
        in report
    assert "- pod CIDR: the plan's default was 172.16.0.0/16, the live cluster says 10.244.0.0/16" in report


def test_a_built_lab_keeps_its_plan_and_hears_the_disagreement(sshlab, kube_nodes, open_lab, tmp_path):
    from labtui.doctor.run import run_doctor

    with incident_cluster(nodes=kube_nodes) as cluster:
        cluster.add_pool(ippool("default-ipv4-ippool", "10.244.0.0/16", ipip="CrossSubnet"))
        kc = cluster.write_kubeconfig(tmp_path / "admin.conf")
        lab, events = open_lab("built", plan=sshlab.plan_data("built"), kubeconfig=kc, known_hosts=sshlab.known_hosts)
        run_doctor(lab.ctx, live=False)
    assert lab.ctx.session.plan["pod_cidr"] == "172.16.0.0/16"  # labtui built it: the plan is not rewritten
    said = [e.message for e in events if e.message.startswith("live cluster:")]
    assert ("live cluster: the plan says pod CIDR 172.16.0.0/16, the live cluster 10.244.0.0/16 (from IP pool "
            "default-ipv4-ippool)") in said


def test_cloud_networking_of_an_adopted_lab_prefers_the_live_values(store):
    """Even when the live values could not go into the plan (an invalid plan), the cloud check of an
    adopted lab asks for the live pod CIDR and encapsulation the doctor stored."""
    from labtui.session import LabSession
    from labtui.stages.cloud import networking

    store.create_session("ad", wizard="doctor", plan={"pod_cidr": "172.16.0.0/16", "encapsulation": "IPIP"},
                         inputs={"adopted": True})
    store.put_facts(store.get_session("ad").id, "live",
                    {"live": {"values": {"pod_cidr": "10.244.0.0/16", "encapsulation": "VXLANCrossSubnet"}}})
    lab = LabSession(store, "ad")
    try:
        net = networking(lab.ctx)
        assert net.pod_cidr == "10.244.0.0/16" and net.encapsulation.value == "VXLANCrossSubnet"
        store.save_inputs("ad", {"adopted": False})
        lab.ctx.reload()
        assert networking(lab.ctx).pod_cidr == "172.16.0.0/16"  # a lab labtui built keeps its plan
    finally:
        lab.close()
