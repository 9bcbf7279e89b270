"""Changing a pool's encapsulation the supported way, asserting the exact requests sent."""

from __future__ import annotations

import json

import pytest

from labtui.errors import LabError
from labtui.adapters.calico import plan_change, read_cluster
from labtui.adapters.kube import KubeClient
from labtui.pool_change import revert_pool_change, set_pool_mode
from tests.harness.kube import incident_cluster, ippool, operator_cluster
from tests.kube.simulated_shell import SimulatedShell

POOL = "default-ipv4-ippool"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def _setup(make_lab, kubeconfig_for, cluster, **kw):
    lab, events = make_lab(kubeconfig=kubeconfig_for(cluster), **kw)
    from labtui.adapters.kube import kube_for

    kc = kube_for(lab.ctx)
    state = read_cluster(kc)
    cluster.clear_requests()
    return lab, events, kc, state


def test_manifest_v1_only_needs_the_warning_accepted_then_sends_one_merge_patch(incident, kubeconfig_for, make_lab):
    lab, events, kc, state = _setup(make_lab, kubeconfig_for, incident)
    change = plan_change(kc, state, POOL, "IPIP")
    assert change.method == "v1-crd" and change.warning and "never modify resources" in change.warning
    assert change.command == ("kubectl patch ippools.crd.projectcalico.org default-ipv4-ippool --type=merge "
                              "-p '{\"spec\":{\"ipipMode\":\"Always\",\"vxlanMode\":\"Never\"}}'")

    with pytest.raises(LabError) as err:
        set_pool_mode(lab.ctx, change, state=state)
    assert err.value.code == "needs-consent"
    assert incident.writes() == []  # nothing sent without the consent
    assert lab.store.changes(lab.record.id) == []

    seen = set_pool_mode(lab.ctx, change, state=state, accept_warning=True)
    assert (seen.ipip_mode, seen.vxlan_mode) == ("Always", "Never")
    [patch] = incident.patches()
    assert (patch.method, patch.path, patch.content_type) == (
        "PATCH", "/apis/crd.projectcalico.org/v1/ippools/default-ipv4-ippool", MERGE)
    assert patch.body == {"spec": {"ipipMode": "Always", "vxlanMode": "Never"}}
    assert patch.user == "kubernetes-admin" and patch.status == 200
    assert incident.pool(POOL)["spec"]["ipipMode"] == "Always"
    assert incident.pool(POOL)["spec"]["natOutgoing"] is True  # untouched

    [rec] = lab.store.changes(lab.record.id)
    assert rec.kind == "calico.pool-mode" and rec.target == "ippool/default-ipv4-ippool"
    assert rec.description == ("IP pool default-ipv4-ippool (172.16.0.0/16): IPIPCrossSubnet -> IPIP "
                               "(ipipMode Always, vxlanMode Never) via the raw crd.projectcalico.org/v1 CRD")
    assert rec.revert_command.endswith("-p '{\"spec\":{\"ipipMode\":\"CrossSubnet\",\"vxlanMode\":\"Never\"}}'")
    assert rec.revert_data["ipipMode"] == "CrossSubnet" and rec.revert_data["method"] == "v1-crd"
    assert any(e.kind == "change" for e in events)

    # revert: the same path, the old modes, one patch; marked reverted
    incident.clear_requests()
    back = revert_pool_change(lab.ctx, rec)
    assert (back.ipip_mode, back.vxlan_mode) == ("CrossSubnet", "Never")
    [patch] = incident.patches()
    assert patch.body == {"spec": {"ipipMode": "CrossSubnet", "vxlanMode": "Never"}} and patch.content_type == MERGE
    assert lab.store.changes(lab.record.id)[0].reverted is not None


def test_switch_ipip_to_vxlan_is_one_patch_setting_both(kubeconfig_for, make_lab):
    with incident_cluster(ipip="Always") as c:
        lab, _, kc, state = _setup(make_lab, kubeconfig_for, c)
        set_pool_mode(lab.ctx, plan_change(kc, state, POOL, "VXLAN"), state=state, accept_warning=True)
        [patch] = c.patches()
        assert patch.body == {"spec": {"ipipMode": "Never", "vxlanMode": "Always"}}
        # two separate patches would have been refused on the intermediate state (Calico 3.32's CEL rule)
        from kubernetes.client.exceptions import ApiException

        from kubernetes import client

        with pytest.raises(ApiException) as err:
            client.CustomObjectsApi(kc.api()).patch_cluster_custom_object(
                "crd.projectcalico.org", "v1", "ippools", POOL, {"spec": {"ipipMode": "Always"}},
                _content_type=MERGE)
        assert err.value.status == 422 and "cannot both be enabled" in err.value.body


def test_operator_change_goes_through_the_installation_and_waits_for_the_pool(operator, kubeconfig_for, make_lab):
    lab, events, kc, state = _setup(make_lab, kubeconfig_for, operator)
    change = plan_change(kc, state, POOL, "IPIP")
    assert change.method == "installation" and change.installation_index == 0 and change.warning is None
    body = [{"op": "test", "path": "/spec/calicoNetwork/ipPools/0/name", "value": POOL},
            {"op": "replace", "path": "/spec/calicoNetwork/ipPools/0/encapsulation", "value": "IPIP"}]
    assert change.command == "kubectl patch installation default --type=json -p '" + json.dumps(body, separators=(",", ":")) + "'"

    seen = set_pool_mode(lab.ctx, change, state=state, poll=0.05)
    assert (seen.ipip_mode, seen.vxlan_mode) == ("Always", "Never")
    [patch] = operator.patches()  # the pool itself is never patched by labtui
    assert (patch.path, patch.content_type, patch.body) == ("/apis/operator.tigera.io/v1/installations/default", JSON_PATCH, body)
    assert operator.installation()["spec"]["calicoNetwork"]["ipPools"][0]["encapsulation"] == "IPIP"
    # the wait read the pool through the v3 API until the operator had reconciled it
    reads = [r for r in operator.requests if r.path == f"/apis/projectcalico.org/v3/ippools/{POOL}"]
    assert len(reads) >= 2
    assert any("waiting for IP pool" in e.message for e in events)
    [rec] = lab.store.changes(lab.record.id)
    assert rec.revert_data["method"] == "installation"
    assert '"value":"VXLANCrossSubnet"' in rec.revert_command

    operator.clear_requests()
    lab.ctx.tuning.calico_poll = 0.05
    revert_pool_change(lab.ctx, rec)
    [patch] = operator.patches()
    assert patch.body[-1] == {"op": "replace", "path": "/spec/calicoNetwork/ipPools/0/encapsulation", "value": "VXLANCrossSubnet"}
    assert operator.pool(POOL)["spec"]["vxlanMode"] == "CrossSubnet"


def test_operator_that_does_not_reconcile_times_out_but_the_change_is_recorded(kubeconfig_for, make_lab):
    with operator_cluster(operator_running=False) as c:
        lab, _, kc, state = _setup(make_lab, kubeconfig_for, c)
        change = plan_change(kc, state, POOL, "VXLAN")
        with pytest.raises(LabError) as err:
            set_pool_mode(lab.ctx, change, state=state, wait_timeout=0.5, poll=0.1)
        assert err.value.code == "timeout"
        assert "tigera-operator did not apply the Installation change" in err.value.message
        assert "tigerastatus" in err.value.hint
        [rec] = lab.store.changes(lab.record.id)  # it reached the cluster: the revert must be known
        assert rec.revert_data["old"] == "VXLANCrossSubnet"


def test_operator_installation_changed_since_read_is_refused_by_the_test_op(operator, kubeconfig_for, make_lab):
    lab, _, kc, state = _setup(make_lab, kubeconfig_for, operator)
    change = plan_change(kc, state, POOL, "IPIP")
    # someone renamed the Installation's pool in between: the JSON patch's test op fails -> 422
    from kubernetes import client

    client.CustomObjectsApi(kc.api()).patch_cluster_custom_object(
        "operator.tigera.io", "v1", "installations", "default",
        [{"op": "replace", "path": "/spec/calicoNetwork/ipPools/0/name", "value": "renamed"}], _content_type=JSON_PATCH)
    with pytest.raises(LabError) as err:
        set_pool_mode(lab.ctx, change, state=state)
    assert err.value.code == "invalid" and "(422)" in err.value.message
    assert lab.store.changes(lab.record.id) == []


def test_v3_served_uses_the_calico_api(v3, kubeconfig_for, make_lab):
    lab, _, kc, state = _setup(make_lab, kubeconfig_for, v3)
    change = plan_change(kc, state, POOL, "IPIP")
    assert change.method == "v3" and change.warning is None
    set_pool_mode(lab.ctx, change, state=state)
    [patch] = v3.patches()
    assert (patch.path, patch.content_type, patch.body) == (
        "/apis/projectcalico.org/v3/ippools/default-ipv4-ippool", MERGE, {"spec": {"ipipMode": "Always", "vxlanMode": "Never"}})
    assert v3.pool(POOL)["spec"]["ipipMode"] == "Always"  # stored (v1) through the Calico API server


def test_calicoctl_over_ssh_when_present(incident, kubeconfig_for, make_lab):
    shell = SimulatedShell(node="cp1", cluster=incident, calicoctl=True)
    lab, _, kc, state = _setup(make_lab, kubeconfig_for, incident, shell=shell)
    from labtui.adapters.kubeconfig import control_plane_shell

    change = plan_change(kc, state, POOL, "IPIP", shell=control_plane_shell(lab.ctx))
    assert change.method == "calicoctl" and change.warning is None
    remote = ("sudo -n env DATASTORE_TYPE=kubernetes KUBECONFIG=/etc/kubernetes/admin.conf calicoctl patch ippool "
              "default-ipv4-ippool -p '{\"spec\":{\"ipipMode\":\"Always\",\"vxlanMode\":\"Never\"}}'")
    assert change.remote_command == remote and change.command.startswith("ssh cp1 ")
    set_pool_mode(lab.ctx, change, state=state, shell=shell)
    assert [c for c, _ in shell.commands] == ["command -v calicoctl", remote]
    assert incident.pool(POOL)["spec"]["ipipMode"] == "Always"
    [rec] = lab.store.changes(lab.record.id)
    assert rec.revert_data["revert_remote_command"].endswith("'{\"spec\":{\"ipipMode\":\"CrossSubnet\",\"vxlanMode\":\"Never\"}}'")


def test_no_calicoctl_falls_back_to_the_crd_warning(incident, kubeconfig_for, make_lab):
    shell = SimulatedShell(node="cp1", cluster=incident, calicoctl=False)
    lab, _, kc, state = _setup(make_lab, kubeconfig_for, incident, shell=shell)
    change = plan_change(kc, state, POOL, "IPIP", shell=shell)
    assert change.method == "v1-crd" and change.warning


def test_ipip_with_bgp_disabled_is_refused_with_the_reason(kubeconfig_for, make_lab):
    with incident_cluster(ipip="Never", vxlan="CrossSubnet", backend="vxlan") as c:
        lab, _, kc, state = _setup(make_lab, kubeconfig_for, c)
        with pytest.raises(LabError) as err:
            plan_change(kc, state, POOL, "IPIP")
        assert err.value.code == "refused"
        assert "IPIP needs BGP" in err.value.message and "calico_backend is vxlan" in err.value.message
        assert "VXLAN" in err.value.message
        plan_change(kc, state, POOL, "VXLAN")  # VXLAN is fine
    with operator_cluster(encapsulation="VXLANCrossSubnet", bgp="Disabled") as c:
        lab, _, kc, state = _setup(make_lab, kubeconfig_for, c)
        with pytest.raises(LabError) as err:
            plan_change(kc, state, POOL, "IPIPCrossSubnet")
        assert "calicoNetwork.bgp: Disabled" in err.value.message
        assert c.writes() == []


def test_ipip_on_ipv6_refused_noop_and_unknown_pool(kubeconfig_for, make_lab):
    with incident_cluster(extra_pools=[ippool("default-ipv6-ippool", "fd00:10:244::/48")]) as c:
        lab, _, kc, state = _setup(make_lab, kubeconfig_for, c)
        with pytest.raises(LabError) as err:
            plan_change(kc, state, "default-ipv6-ippool", "IPIP")
        assert "IPv6" in err.value.message
        assert plan_change(kc, state, "default-ipv6-ippool", "vxlan").new_modes == ("Never", "Always")
        noop = plan_change(kc, state, POOL, "ipipcrosssubnet")
        assert noop.noop
        set_pool_mode(lab.ctx, noop, state=state)
        assert c.writes() == [] and lab.store.changes(lab.record.id) == []
        with pytest.raises(LabError) as err:
            plan_change(kc, state, "nope", "IPIP")
        assert "default-ipv4-ippool, default-ipv6-ippool" in err.value.message
        with pytest.raises(LabError) as err:
            plan_change(kc, state, POOL, "ipip-sometimes")
        assert err.value.code == "invalid"


def test_the_client_content_type_trap_is_caught_by_the_harness(operator, kubeconfig_for):
    """The 37.x client sends a JSON-Patch list as merge-patch unless told: the harness answers 400
    as an apiserver does, so a regression in labtui would fail the tests above."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    kc = KubeClient(kubeconfig_for(operator))
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(kc.api()).patch_cluster_custom_object(
            "operator.tigera.io", "v1", "installations", "default",
            [{"op": "replace", "path": "/spec/calicoNetwork/ipPools/0/encapsulation", "value": "IPIP"}])
    assert err.value.status == 400
    assert operator.patches()[0].content_type == MERGE
    assert operator.installation()["spec"]["calicoNetwork"]["ipPools"][0]["encapsulation"] == "VXLANCrossSubnet"


def test_an_ssh_failure_while_looking_for_calicoctl_is_said_not_hidden(incident, kubeconfig_for, make_lab):
    class Unreachable:
        node = "cp1"

        def run(self, command, *, timeout=30.0, quiet=False):
            raise LabError("cp1: host key unknown (SHA256:abc)", "accept it in the Nodes screen")

    lab, _, kc, state = _setup(make_lab, kubeconfig_for, incident)
    change = plan_change(kc, state, POOL, "IPIP", shell=Unreachable())
    assert change.method == "v1-crd"
    assert change.notes[0] == "could not check for calicoctl on cp1: cp1: host key unknown (SHA256:abc)"
    assert "note: could not check for calicoctl on cp1" in change.render()
