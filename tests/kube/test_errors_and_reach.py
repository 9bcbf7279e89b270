"""Clear messages for 401 / 403 / unreachable / hanging APIs / bad kubeconfigs, and the SSH-forward
path that keeps the TLS server name (a real TLS server in front of the test API server)."""

from __future__ import annotations

import time

import pytest

from labtui.errors import LabError
from labtui.adapters.calico import plan_change, read_cluster
from labtui.adapters.kube import KubeClient
from labtui.pool_change import set_pool_mode
from tests.harness.kube import (
    EXPIRED,
    NOBODY,
    VIEWER,
    SilentServer,
    TLSFront,
    kubeconfig_text,
    make_certs,
    unreachable_server,
)


PRIVATE_API = "10.100.200.4"


@pytest.fixture
def private_api_unroutable():
    """The tests below need an API address that is NOT reachable from the runner. Without this, a
    connect to 10.100.200.4 would follow the machine's default route and leave it. An `unreachable`
    host route makes the kernel refuse it at once; nothing is ever sent. Needs root (CI is root)."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root to pin the private API address to an unreachable route")
    route = ["ip", "route", "replace", "unreachable", f"{PRIVATE_API}/32"]
    subprocess.run(route, check=True)
    try:
        yield PRIVATE_API
    finally:
        subprocess.run(["ip", "route", "del", "unreachable", f"{PRIVATE_API}/32"], check=False)


def test_expired_token_gives_a_clear_401(incident, kubeconfig_for):
    kc = KubeClient(kubeconfig_for(incident, EXPIRED))
    with pytest.raises(LabError) as err:
        read_cluster(kc)
    e = err.value
    assert e.code == "unauthorized"
    assert e.message.startswith(f"the Kubernetes API at {incident.url} refused the credentials of kubernetes-admin")
    assert "(401 Unauthorized)" in e.message and "expired or invalid" in e.message
    assert "admin.conf" in e.hint and "kubeadm certs renew" in e.hint
    assert EXPIRED not in e.render()


def test_expired_client_certificate_is_named_with_its_date(incident, tmp_path):
    certs = make_certs(tmp_path / "pki", san_ips=["127.0.0.1"], expired_client=True)
    front = TLSFront(incident.port, certs["server_cert"], certs["server_key"])
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text(f"https://127.0.0.1:{front.port}", EXPIRED, ca_data=certs["ca_data"], extra_user={
        "client-certificate-data": certs["client_cert_data"], "client-key-data": certs["client_key_data"]}))
    try:
        with pytest.raises(LabError) as err:
            KubeClient(path, temp_dir=tmp_path / "session").version()
    finally:
        front.close()
    assert f"the client certificate expired on {certs['client_not_after']} UTC" in err.value.message
    # the client key the kubernetes client extracts went to the session directory, 0600
    keys = list((tmp_path / "session").iterdir())
    assert keys and all(k.stat().st_mode & 0o077 == 0 for k in keys)


def test_forbidden_read_names_user_verb_and_resource(incident, kubeconfig_for):
    kc = KubeClient(kubeconfig_for(incident, NOBODY, user="nobody"))
    with pytest.raises(LabError) as err:
        read_cluster(kc)
    e = err.value
    assert e.code == "forbidden"
    assert "forbids nobody to list nodes (403 Forbidden by RBAC)" in e.message
    assert 'User "nobody" cannot list resource "nodes"' in e.message
    assert "cluster-admin" in e.hint


def test_forbidden_patch_is_clear_and_nothing_is_recorded(v3, kubeconfig_for, make_lab):
    lab, _ = make_lab(kubeconfig=kubeconfig_for(v3, VIEWER, user="viewer"))
    from labtui.adapters.kube import kube_for

    kc = kube_for(lab.ctx)
    state = read_cluster(kc)  # a viewer can read
    change = plan_change(kc, state, "default-ipv4-ippool", "IPIP")
    with pytest.raises(LabError) as err:
        set_pool_mode(lab.ctx, change, state=state)
    e = err.value
    assert e.code == "forbidden"
    assert "forbids viewer to patch ippools.projectcalico.org/default-ipv4-ippool (403 Forbidden by RBAC)" in e.message
    assert ('ippools.projectcalico.org "default-ipv4-ippool" is forbidden: User "viewer" cannot patch resource '
            '"ippools" in API group "projectcalico.org" at the cluster scope') in e.message
    assert lab.store.changes(lab.record.id) == []
    assert v3.pool("default-ipv4-ippool")["spec"]["ipipMode"] == "CrossSubnet"


def test_unreachable_api_without_a_forward(tmp_path):
    path = tmp_path / "kc"
    server = unreachable_server()
    path.write_text(kubeconfig_text(server))
    started = time.monotonic()
    with pytest.raises(LabError) as err:
        read_cluster(KubeClient(path, reach_timeout=0.5))
    assert time.monotonic() - started < 3
    e = err.value
    assert e.code == "unreachable" and f"the Kubernetes API {server} is not reachable from here" in e.message
    assert "6443" in e.hint and "SSH forward" in e.hint


def test_api_that_goes_away_and_api_that_hangs(incident, kubeconfig_for, tmp_path):
    kc = KubeClient(kubeconfig_for(incident), timeout=(1.0, 1.0))
    read_cluster(kc)
    incident.stop()
    with pytest.raises(LabError) as err:
        read_cluster(kc)
    assert err.value.code == "unreachable" and "is unreachable (while trying to" in err.value.message

    silent = SilentServer()
    try:
        path = tmp_path / "silent"
        path.write_text(kubeconfig_text(f"http://127.0.0.1:{silent.port}"))
        started = time.monotonic()
        with pytest.raises(LabError) as err:
            KubeClient(path, timeout=(1.0, 0.5)).list_nodes()
        assert time.monotonic() - started < 3
        assert err.value.code == "timeout" and "did not answer within 0.5s (while trying to list nodes)" in err.value.message
    finally:
        silent.close()


def test_bad_kubeconfigs(tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("clusters: [\n")
    with pytest.raises(LabError) as err:
        KubeClient(bad)
    assert "is not valid YAML" in err.value.message
    bad.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(LabError) as err:
        KubeClient(bad)
    assert "is not a kubeconfig" in err.value.message
    with pytest.raises(LabError) as err:
        KubeClient(tmp_path / "missing")
    assert "cannot read the kubeconfig" in err.value.message
    good = tmp_path / "good"
    good.write_text(kubeconfig_text("https://10.100.200.4:6443"))
    with pytest.raises(LabError) as err:
        KubeClient(good, context="prod")
    assert "no context 'prod'" in err.value.message and "kubernetes-admin@kubernetes" in err.value.message


def test_private_api_address_goes_through_the_forward_and_keeps_the_tls_name(incident, tmp_path, private_api_unroutable):
    """admin.conf names https://10.100.200.4:6443 (a private address, not reachable from here). The
    forwarder (labtui.adapters.ssh's local forward in real use) lands on a real TLS server whose certificate
    is for 10.100.200.4 only: the client must verify it against that name, not 127.0.0.1."""
    certs = make_certs(tmp_path / "pki", san_ips=["10.100.200.4"])
    front = TLSFront(incident.port, certs["server_cert"], certs["server_key"])
    asked, closed = [], []

    def forwarder(host, port):
        asked.append((host, port))
        return front.port, lambda: closed.append(True)

    path = tmp_path / "admin.conf"
    path.write_text(kubeconfig_text("https://10.100.200.4:6443", ca_data=certs["ca_data"]))
    try:
        kc = KubeClient(path, forwarder=forwarder, reach_timeout=0.3)
        state = read_cluster(kc)
        assert asked == [("10.100.200.4", 6443)]
        assert kc.via == f"ssh forward 127.0.0.1:{front.port} -> 10.100.200.4:6443"
        assert kc.api().configuration.tls_server_name == "10.100.200.4"
        assert state.install.mode == "manifest" and front.connections >= 1
        kc.close()
        assert closed == [True]

        # a certificate for another address is refused: TLS verification is really on
        other = make_certs(tmp_path / "pki2", san_ips=["10.9.9.9"], san_dns=[])
        front2 = TLSFront(incident.port, other["server_cert"], other["server_key"])
        path.write_text(kubeconfig_text("https://10.100.200.4:6443", ca_data=other["ca_data"]))
        kc2 = KubeClient(path, forwarder=lambda h, p: (front2.port, lambda: None), reach_timeout=0.3)
        with pytest.raises(LabError) as err:
            kc2.version()
        assert err.value.code == "tls" and "TLS verification failed" in err.value.message
        front2.close()
    finally:
        front.close()


def test_forward_failure_is_a_clear_message(tmp_path, private_api_unroutable):
    path = tmp_path / "kc"
    path.write_text(kubeconfig_text("https://10.100.200.4:6443"))

    def broken(host, port):
        raise OSError("ssh: connect to host 10.100.200.4 port 22: No route to host")

    with pytest.raises(LabError) as err:
        KubeClient(path, forwarder=broken, reach_timeout=0.3).version()
    assert err.value.code == "unreachable"
    assert "SSH forward through the control plane failed: ssh: connect to host" in err.value.message
