"""The scenarios of issue 6 end to end on the real test backends: the OpenStack API (Neutron, Nova),
the test Kubernetes API (kmock) and, where a plan has nodes, the sshd nodes. The live proof is off
here (e2e_incident.py and e2e_live.py cover it)."""

from __future__ import annotations

import time

import pytest

from labtui.cli import main
from labtui.execute import Executor
from labtui.doctor.run import apply_fix, run_doctor
from tests.harness.kube import incident_cluster, operator_cluster, unreachable_server

pytestmark = [pytest.mark.root, pytest.mark.openstack, pytest.mark.slow]


def _ids(diag):
    return [f.id for f in diag.findings]


def _plan(sshlab, name):
    return sshlab.plan_data(name) | {"cloud": "labtui-admin"}


def test_option_3_sets_the_pairs_on_every_node_port(sshlab, kube_nodes, layout, open_lab, tmp_path):
    net = layout.conn.network
    keep = str(sshlab.subnet.network_address + 250)
    net.update_port(layout.node("dw2").port_id, allowed_address_pairs=[{"ip_address": keep}])
    with incident_cluster(nodes=kube_nodes) as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        lab, _ = open_lab("opt3", plan=_plan(sshlab, "opt3"), kubeconfig=kc, cloud="labtui-admin",
                          known_hosts=sshlab.known_hosts)
        diag = run_doctor(lab.ctx, live=False)
        assert diag.findings[0].id == "crosssubnet-antispoofing" and 3 in diag.findings[0].fixes
        acts, after = apply_fix(lab.ctx, diag, 3, confirm=lambda a: True, live=False)
        assert [a.change for a in acts] == ["openstack.sg-rule"] + ["openstack.port-pairs"] * 4  # the group, then the ports
        for node in layout.nodes:
            pairs = [p["ip_address"] for p in layout.port(node.name).allowed_address_pairs]
            assert "172.16.0.0/16" in pairs, node.name
        assert [p["ip_address"] for p in layout.port("dw2").allowed_address_pairs] == [keep, "172.16.0.0/16"]
        assert any(r.remote_ip_prefix == "172.16.0.0/16" and r.protocol is None for r in layout.rules())
        assert not cluster.patches()  # CrossSubnet on one subnet already routes directly: no Calico change
        assert after.exit_code == 0
        # revert removes exactly what was added
        changes = lab.store.changes(lab.record.id)
        Executor(lab.ctx).revert(changes, confirmed=True)  # newest first
        assert [p["ip_address"] for p in layout.port("dw2").allowed_address_pairs] == [keep]
        assert all(not layout.port(n.name).allowed_address_pairs for n in layout.nodes if n.name != "dw2")
        assert not any(r.remote_ip_prefix == "172.16.0.0/16" for r in layout.rules())


@pytest.fixture(scope="module")
def two_subnets(openstack_stack):
    """One node on each of two subnets (servers ts1 and ts2), one group `doctor2-k8s`."""
    from tests.harness.openstack import CLOUD_ADMIN, build_incident_layout, connect

    conn = connect(CLOUD_ADMIN)
    a = build_incident_layout(conn, name="doctor-sa", sg_name="doctor2-k8s", subnet_cidr="10.100.241.0/24",
                              nodes=(("ts1", "10.100.241.11", "control-plane"),))
    b = build_incident_layout(conn, name="doctor-sb", sg_name="doctor2-k8s", subnet_cidr="10.100.242.0/24",
                              nodes=(("ts2", "10.100.242.11", "worker"),))
    return a, b


def test_two_subnets_crosssubnet_with_protocol_4_is_healthy(two_subnets, cloud_env, open_lab, tmp_path):
    a, b = two_subnets
    a.reset()
    b.reset()
    nodes = [("ts1", "10.100.241.11", True), ("ts2", "10.100.242.11", False)]
    with incident_cluster(nodes=nodes) as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        # a cluster labtui did not build, known by its kubeconfig and cloud only (no SSH)
        lab, _ = open_lab("two", kubeconfig=kc, cloud="labtui-admin")
        diag = run_doctor(lab.ctx, live=False)
        assert _ids(diag)[0] == "ipip-blocked"  # no protocol 4 yet: the encapsulated packets are dropped
        assert all(v.path == "ipip" and v.same_subnet is False for v in diag.verdicts)
        a.conn.network.create_security_group_rule(security_group_id=a.security_group_id, direction="ingress",
                                                  ether_type="IPv4", protocol="4", remote_group_id=a.security_group_id)
        diag = run_doctor(lab.ctx, live=False)
        assert diag.exit_code == 0, [f.title for f in diag.findings]
        assert {n.port.subnet_cidr for n in diag.facts.nodes} == {"10.100.241.0/24", "10.100.242.0/24"}


def test_vxlan_without_udp_4789_is_found_and_fixed_by_the_rule(sshlab, kube_nodes, layout, open_lab, tmp_path):
    with incident_cluster(nodes=kube_nodes, ipip="Never", vxlan="Always") as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        lab, _ = open_lab("vx", plan=_plan(sshlab, "vx"), kubeconfig=kc, cloud="labtui-admin",
                          known_hosts=sshlab.known_hosts)
        diag = run_doctor(lab.ctx, live=False)
        top = diag.findings[0]
        assert top.id == "vxlan-blocked" and len(top.pairs) == 12
        assert "UDP 4789" in top.explanation and "doctor-k8s" in top.explanation
        best = diag.options[0]
        assert best.number == 2 and best.recommended and [a.kind for a in best.actions] == ["sg-rule"]
        _, after = apply_fix(lab.ctx, diag, best, confirm=lambda a: True, live=False)
        rule = [r for r in layout.rules() if r.protocol == "udp" and r.port_range_min == 4789]
        assert len(rule) == 1 and rule[0].remote_group_id == layout.security_group_id
        assert after.exit_code == 0 and not cluster.patches()


def test_port_security_off_direct_traffic_is_healthy(sshlab, kube_nodes, layout, open_lab, tmp_path):
    net = layout.conn.network
    for node in layout.nodes:
        net.update_port(node.port_id, port_security_enabled=False, security_groups=[], allowed_address_pairs=[])
    try:
        with incident_cluster(nodes=kube_nodes, ipip="Never") as cluster:
            kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
            lab, _ = open_lab("psoff", plan=_plan(sshlab, "psoff"), kubeconfig=kc, cloud="labtui-admin",
                              known_hosts=sshlab.known_hosts)
            diag = run_doctor(lab.ctx, live=False)
        assert diag.exit_code == 0, [f.title for f in diag.findings]
        assert all(v.path == "direct" and v.ok for v in diag.verdicts)
        assert all(n.port.port_security_enabled is False for n in diag.facts.nodes)
    finally:
        layout.reset()


def test_operator_managed_pool_is_fixed_through_the_installation(incident, cloud_env, open_lab, tmp_path):
    with operator_cluster(encapsulation="IPIPCrossSubnet") as cluster:
        kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        lab, _ = open_lab("op", kubeconfig=kc, cloud=incident.cloud)
        lab.ctx.tuning.calico_wait = 20.0
        diag = run_doctor(lab.ctx, live=False)
        assert diag.findings[0].id == "crosssubnet-antispoofing"
        assert diag.facts.calico.install_mode == "operator" and diag.facts.pools[0].operator_managed
        acts, after = apply_fix(lab.ctx, diag, 1, confirm=lambda a: True, live=False)
        calico = [a for a in acts if a.kind == "kube"]
        assert len(calico) == 1 and calico[0].command.startswith("kubectl patch installation default --type=json")
        patch = [r for r in cluster.patches() if "installations" in r.path]
        assert patch and patch[0].content_type == "application/json-patch+json"
        assert any(op.get("path") == "/spec/calicoNetwork/ipPools/0/encapsulation" and op.get("value") == "IPIP"
                   for op in patch[0].body)
        assert not [r for r in cluster.patches() if "ippools" in r.path]  # never the operator's pool directly
        pool = cluster.pool("default-ipv4-ippool")["spec"]
        assert (pool["ipipMode"], pool["vxlanMode"]) == ("Always", "Never")  # reconciled by the operator
        assert any(r.protocol == "4" and r.remote_group_id == incident.security_group_id for r in incident.rules())
        assert after.exit_code == 0
    incident.reset()


def test_nothing_reachable_exit_2_with_a_clear_message(sshlab, lab_home, tmp_path, monkeypatch, capsys):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  gone:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: u\n"
                      "      password: p\n      project_name: p\n    region_name: RegionOne\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    kc = tmp_path / "kubeconfig"
    from tests.harness.kube import kubeconfig_text

    kc.write_text(kubeconfig_text(unreachable_server()))
    a, b = sshlab.unused_address(), str(sshlab.subnet.network_address + 251)
    t0 = time.monotonic()
    code = main(["doctor", "ghost", "--adopt", "--nodes", f"g1={a},g2={b}", "--user", "root", "--key",
                 str(sshlab.client_key), "--cloud", "gone", "--kubeconfig", str(kc)])
    took = time.monotonic() - t0
    out = capsys.readouterr()
    assert code == 2, out.out + out.err
    assert "Doctor for ghost: could not check" in out.out
    assert "could not check the security groups and ports (OpenStack): cloud gone" in out.out
    assert "could not check the Calico pools and nodes (Kubernetes API)" in out.out
    assert "could not check the interface and modules of g1" in out.out
    assert "Traceback" not in out.out + out.err
    assert took < 30


def test_a_cloud_clouds_yaml_does_not_define_is_refused_and_not_remembered(lab_home, tmp_path, monkeypatch, capsys):
    """`labtui doctor LAB --cloud typo`: a clear error naming the known clouds, exit 2, and the lab
    keeps its cloud (it was saved before the run and every later run failed on the typo)."""
    from labtui.store import Store

    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  real:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: u\n"
                      "      password: p\n      project_name: p\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    store = Store()
    store.create_session("kept", cloud="real", wizard="doctor", inputs={"cloud": "real"})
    code = main(["doctor", "kept", "--no-live", "--cloud", "typo"])
    out = capsys.readouterr()
    assert code == 2, out.out + out.err
    assert "cloud 'typo' is not defined" in out.err and "known clouds: real" in out.err
    assert "Traceback" not in out.out + out.err
    rec = store.get_session("kept")
    assert (rec.cloud, rec.inputs.get("cloud")) == ("real", "real")
    code = main(["doctor", "new", "--adopt", "--kubeconfig", str(tmp_path / "none"), "--cloud", "typo"])
    assert code == 2 and not store.has_session("new")
    store.close()
