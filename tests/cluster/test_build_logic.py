"""The cluster build's pure logic: containerd config edit (on Debian's real `containerd config
default` and a containerd 2.x config-version-3 sample), the kubeadm config field by field, kubeadm
output parsing, pkgs.k8s.io lines, Calico's Installation and manifest."""

from __future__ import annotations

import copy
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from labtui.cluster import apt, calico, containerd, kubeadm
from labtui.errors import LabError
from labtui.redact import redact

DATA = Path(__file__).parent / "data"
PAUSE = "registry.k8s.io/pause:3.10.1"


def _set(d: dict, path: tuple, value) -> None:
    for p in path[:-1]:
        d = d.setdefault(p, {})
    d[path[-1]] = value


def _assert_only_changes(before: str, after: str, expected: dict) -> None:
    """Parsed after == parsed before with exactly `expected` ({path: value}) applied; and every line
    that is not one of the edited keys is byte-identical, in order."""
    want = copy.deepcopy(tomllib.loads(before))
    for path, value in expected.items():
        _set(want, path, value)
    assert tomllib.loads(after) == want
    keys = {path[-1] for path in expected}
    strip = lambda text: [ln for ln in text.splitlines() if ln.split("=")[0].strip() not in keys]  # noqa: E731
    assert strip(before) == strip(after)


def _real_default_config() -> str:
    exe = shutil.which("containerd", path="/usr/bin:/usr/sbin")
    if exe is None:
        pytest.skip("Debian's containerd package is not installed (tests/setup.d/cluster.apt)")
    return subprocess.run([exe, "config", "default"], capture_output=True, text=True, check=True).stdout


def test_containerd_v2_real_debian_default():
    text = _real_default_config()
    assert containerd.config_version(text) == 2
    assert containerd.problems(text, PAUSE)  # the default is not fit for kubeadm
    out = containerd.edit_config(text, PAUSE)
    _assert_only_changes(text, out, {
        containerd.V2_RUNC_OPTIONS + ("SystemdCgroup",): True,
        containerd.V2_CRI + ("sandbox_image",): PAUSE,
    })
    assert containerd.problems(out, PAUSE) == []
    # the line moved in place, with its indentation
    line = next(ln for ln in out.splitlines() if "SystemdCgroup" in ln)
    assert line == "            SystemdCgroup = true"
    assert containerd.edit_config(out, PAUSE) == out  # idempotent


def test_containerd_v2_recorded_sample_matches():
    text = (DATA / "containerd1.6-debian12-config-default.toml").read_text()
    out = containerd.edit_config(text, PAUSE)
    assert out.count("SystemdCgroup = true") == 1 and "SystemdCgroup = false" not in out


def test_containerd_v3_inserts_the_missing_key():
    text = (DATA / "containerd2-config-default.toml").read_text()
    assert "SystemdCgroup" not in text  # containerd 2.x prints no SystemdCgroup: sed would do nothing
    assert containerd.config_version(text) == 3
    out = containerd.edit_config(text, PAUSE)
    _assert_only_changes(text, out, {
        containerd.V3_RUNC_OPTIONS + ("SystemdCgroup",): True,
        containerd.V3_PINNED + ("sandbox",): PAUSE,
    })
    lines = out.splitlines()
    i = lines.index("          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]")
    assert "            SystemdCgroup = true" in lines[i + 1:i + 10]
    assert "      sandbox = 'registry.k8s.io/pause:3.10.1'" in lines
    assert containerd.problems(out, PAUSE) == []
    assert containerd.edit_config(out, PAUSE) == out


def test_containerd_unsupported_versions():
    with pytest.raises(LabError, match="version 1 is not supported"):
        containerd.edit_config("[plugins]\n")
    with pytest.raises(LabError, match="not valid TOML"):
        containerd.edit_config("version = = 2")


def test_kubeadm_config_field_by_field():
    text = kubeadm.kubeadm_config(node_name="cp1", advertise_address="10.100.200.11", kubernetes_version="1.36.2",
                                  pod_subnet="172.16.0.0/16", service_subnet="10.96.0.0/12",
                                  cert_sans=["203.0.113.7"])
    init, cluster, kubelet = kubeadm.parse_yaml_docs(text)
    assert init["apiVersion"] == cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert (init["kind"], cluster["kind"], kubelet["kind"]) == ("InitConfiguration", "ClusterConfiguration",
                                                               "KubeletConfiguration")
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.100.200.11", "bindPort": 6443}
    assert init["nodeRegistration"] == {"name": "cp1", "criSocket": "unix:///run/containerd/containerd.sock"}
    assert cluster["kubernetesVersion"] == "v1.36.2"
    assert cluster["controlPlaneEndpoint"] == "10.100.200.11:6443"
    assert cluster["networking"] == {"podSubnet": "172.16.0.0/16", "serviceSubnet": "10.96.0.0/12"}
    assert cluster["apiServer"]["certSANs"] == ["10.100.200.11", "cp1", "203.0.113.7"]
    assert kubelet["apiVersion"] == "kubelet.config.k8s.io/v1beta1" and kubelet["cgroupDriver"] == "systemd"
    assert "token" not in text.lower()


INIT_TAIL = """Your Kubernetes control-plane has initialized successfully!

You can now join any number of the control-plane node running the following command on each as root:

  kubeadm join 10.100.200.11:6443 --token abcdef.0123456789abcdef \\
	--discovery-token-ca-cert-hash sha256:{h} \\
	--control-plane --certificate-key {k}

Then you can join any number of worker nodes by running the following on each as root:

kubeadm join 10.100.200.11:6443 --token abcdef.0123456789abcdef \\
	--discovery-token-ca-cert-hash sha256:{h} 
""".format(h="a" * 64, k="b" * 64)


def test_join_parsed_whitespace_agnostic():
    joins = kubeadm.parse_join(INIT_TAIL)
    assert [j.control_plane for j in joins] == [True, False]
    assert joins[0].certificate_key == "b" * 64
    w = kubeadm.worker_join(INIT_TAIL)
    assert (w.endpoint, w.token, w.ca_hash) == ("10.100.200.11:6443", "abcdef.0123456789abcdef", "sha256:" + "a" * 64)
    single = kubeadm.worker_join("kubeadm join 10.0.0.1:6443 --token zzzzzz.yyyyyyyyyyyyyyyy "
                                 "--discovery-token-ca-cert-hash sha256:" + "c" * 64 + " \n")
    assert single.endpoint == "10.0.0.1:6443"
    assert "<token>" in w.shown() and w.token not in w.shown() and w.ca_hash in w.shown()
    # the redaction masks what kubeadm prints: tokens and the certificate key, the hash stays
    masked = redact(INIT_TAIL)
    assert "abcdef.0123456789abcdef" not in masked and "b" * 64 not in masked and "a" * 64 in masked


def test_preflight_errors_each_explained():
    text = """[preflight] Running pre-flight checks
\t[WARNING SystemVerification]: missing optional cgroups: hugetlb
error execution phase preflight: [preflight] Some fatal errors occurred:
\t[ERROR Port-6443]: Port 6443 is in use
\t[ERROR Swap]: running with swap on is not supported. Please disable swap
\t[ERROR SystemVerification]: cgroups v1 support is unsupported and will be removed in a future release
\t[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists
[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`
"""
    errs = kubeadm.preflight_errors(text)
    assert [e.check for e in errs] == ["Port-6443", "Swap", "SystemVerification",
                                       "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml"]
    by = {e.check: e for e in errs}
    assert "ss -ltnp" in by["Port-6443"].fix and "API server" in by["Port-6443"].why
    assert "swapoff -a" in by["Swap"].fix
    assert "cgroup v2" in by["SystemVerification"].fix
    assert "kubeadm reset -f" in by["FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml"].fix
    assert len(kubeadm.preflight_errors(text, warnings=True)) == 5


def test_pkgs_k8s_io_lines():
    assert apt.source_line("1.36") == ("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
                                       "https://pkgs.k8s.io/core:/stable:/v1.36/deb/ /")
    assert apt.key_url("1.36") == "https://pkgs.k8s.io/core:/stable:/v1.36/deb/Release.key"
    script = apt.install_script("1.36")
    assert "kubeadm=1.36.*" in script and "apt-mark hold kubelet kubeadm kubectl" in script
    assert "gpg --dearmor" in script and "systemctl enable --now kubelet" in script
    with pytest.raises(ValueError):
        apt.source_line("1.36; rm -rf /")


def test_calico_installation_and_urls():
    inst, api = kubeadm.parse_yaml_docs(calico.installation("172.16.0.0/16", "IPIP"))
    pool = inst["spec"]["calicoNetwork"]["ipPools"][0]
    assert inst["kind"] == "Installation" and inst["metadata"]["name"] == "default" and api["kind"] == "APIServer"
    assert pool == {"name": "default-ipv4-ippool", "blockSize": 26, "cidr": "172.16.0.0/16", "encapsulation": "IPIP",
                    "natOutgoing": "Enabled", "nodeSelector": "all()"}
    assert inst["spec"]["calicoNetwork"]["bgp"] == "Enabled"
    vx = kubeadm.parse_yaml_docs(calico.installation("10.244.0.0/16", "VXLAN"))[0]
    assert vx["spec"]["calicoNetwork"]["bgp"] == "Disabled"
    assert calico.operator_manifests("3.32.2") == [
        "https://raw.githubusercontent.com/projectcalico/calico/v3.32.2/manifests/operator-crds.yaml",
        "https://raw.githubusercontent.com/projectcalico/calico/v3.32.2/manifests/tigera-operator.yaml"]
    with pytest.raises(LabError):
        calico.installation("172.16.0.0/16", "ipip")


@pytest.mark.parametrize("enc,ipip,vxlan,backend", [
    ("IPIP", "Always", "Never", "bird"), ("VXLAN", "Never", "Always", "vxlan"),
    ("IPIPCrossSubnet", "CrossSubnet", "Never", "bird"), ("None", "Never", "Never", "bird")])
def test_calico_manifest_edit(enc, ipip, vxlan, backend):
    text = (DATA / "calico-excerpt.yaml").read_text()
    out = calico.edit_manifest(text, "172.16.0.0/16", enc)
    assert calico.manifest_settings(out) == {"CALICO_IPV4POOL_CIDR": "172.16.0.0/16", "CALICO_IPV4POOL_IPIP": ipip,
                                             "CALICO_IPV4POOL_VXLAN": vxlan, "calico_backend": backend}
    docs = list(yaml.safe_load_all(out))
    env = docs[1]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": "172.16.0.0/16"} in env
    assert {"name": "CALICO_IPV6POOL_VXLAN", "value": "Never"} in env  # untouched
    assert calico.edit_manifest(out, "172.16.0.0/16", enc) == out
    with pytest.raises(LabError, match="not Calico's calico.yaml"):
        calico.edit_manifest("kind: ConfigMap\n", "172.16.0.0/16", enc)


def test_stage_skips_an_adopted_cluster(store):
    """A lab that names its own kubeconfig (a cluster the user already has): every step of the
    Kubernetes stage is skipped with the reason, nothing is read over SSH, Calico's install too."""
    from labtui.session import LabSession
    from labtui.stages import wizard_for
    from labtui.steps import StepState

    plan = {"name": "adopted", "nodes": [{"name": "cp1", "address": "10.100.200.4", "role": "control-plane"}],
            "node_subnet": "10.100.200.0/24", "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16"}
    store.create_session("adopted", cloud=None, wizard="kubernetes", plan=plan)
    store.save_inputs("adopted", {"kubeconfig": "/somewhere/admin.conf"})
    with LabSession(store, "adopted") as lab:
        for wid in ("kubernetes", "calico"):
            wizard = wizard_for(wid)
            runner = lab.runner(wizard)
            step = wizard.steps[0]
            out = runner.run_step(step)
            assert out.state == StepState.SKIPPED and ("already have" in out.detail or "not built by" in out.detail)
        runner = lab.runner(wizard_for("kubernetes"))
        assert all(runner.run_step(s).state == StepState.SKIPPED for s in wizard_for("kubernetes").steps)
        assert runner.stage_done()


FACTS_OUT = """@@hostname
cp1
@@os
ID=ubuntu
VERSION_ID="24.04"
PRETTY_NAME="Ubuntu 24.04.1 LTS"
@@cgroup
cgroup2fs
@@machine
0123456789abcdef0123456789abcdef
@@product_uuid
4c4c4544-0042-3510-8051-b3c04f4e4d32
@@systemd
degraded
@@listen
0.0.0.0:22
127.0.0.1:10248
[::]:10250
*:6443
@@containerd
containerd containerd.io 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da
@@link
2: ens3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc fq_codel state UP mode DEFAULT group default qlen 1000\\    link/ether fa:16:3e:12:34:56 brd ff:ff:ff:ff:ff:ff
@@addr
2: ens3    inet 10.100.200.4/24 metric 100 brd 10.100.200.255 scope global dynamic ens3
@@end
"""


def test_facts_fill_the_runtime_fields():
    from labtui.nodes.facts import parse_facts

    f = parse_facts("cp1", FACTS_OUT)
    assert (f.cgroup, f.systemd, f.product_uuid) == ("v2", "degraded", "4c4c4544-0042-3510-8051-b3c04f4e4d32")
    assert f.ports_in_use == [6443, 10250]  # 10248 (kubelet healthz, loopback) is not one kubeadm checks
    assert (f.runtime, f.runtime_version) == ("containerd", "1.7.27")
    assert f.mac == "fa:16:3e:12:34:56"


def _facts(name, **kw):
    from labtui.nodes.facts import NodeFacts

    base = dict(node=name, os_id="ubuntu", os_version="24.04", os_pretty="Ubuntu 24.04.1 LTS", cgroup="v2",
                systemd="running", cpus=2, memory_mb=3900, mac=f"fa:16:3e:00:00:{len(name):02x}{name[-1]}")
    base.update(kw)
    return NodeFacts(**base)


def _plan(minor="1.36"):
    from labtui.model import Plan

    return Plan.model_validate({
        "name": "p", "kubernetes": minor, "node_subnet": "10.100.200.0/24", "pod_cidr": "172.16.0.0/16",
        "service_cidr": "172.20.0.0/16",
        "nodes": [{"name": "cp1", "address": "10.100.200.4", "role": "control-plane"},
                  {"name": "w1", "address": "10.100.200.5"}, {"name": "w2", "address": "10.100.200.6"}]})


def test_runtime_preflight_findings():
    from labtui.nodes.preflight import runtime_preflight

    facts = {
        "cp1": _facts("cp1", ports_in_use=[6443], cpus=1),
        "w1": _facts("w1", os_id="centos", os_version="9", os_pretty="CentOS Stream 9", systemd="offline",
                     cgroup="v1", runtime="containerd", runtime_version="1.7.24"),
        "w2": _facts("w2", os_id="debian", os_version="12", runtime="containerd", runtime_version="1.6.20",
                     mac="fa:16:3e:00:00:99", memory_mb=900),
    }
    facts["w1"].mac = "fa:16:3e:00:00:99"
    found = {(f.node, f.check): f for f in runtime_preflight(_plan(), facts)}
    errors = sorted((k[0] or "", k[1]) for k, f in found.items() if f.severity == "error")
    assert errors == [("", "unique-mac"), ("cp1", "cpus"), ("cp1", "ports"), ("w1", "cgroup-v1"), ("w1", "os"),
                      ("w1", "systemd")]
    assert "6443 (the Kubernetes API server)" in found["cp1", "ports"].title
    assert "refuses cgroup v1" in found["w1", "cgroup-v1"].why
    assert found["w2", "containerd-version"].severity == "warning"
    assert "Docker's repository" in found["w2", "containerd-version"].why  # Debian 12's containerd is 1.6
    assert found["w2", "memory"].severity == "warning"
    # the same ports on a node that already runs a kubelet: a cluster is there, the kubeadm steps decide
    facts = {"cp1": _facts("cp1", ports_in_use=[6443, 10250], kubelet="1.36.2", kubeadm="1.36.2")}
    [ports] = [f for f in runtime_preflight(_plan(), facts) if f.check == "ports"]
    assert ports.severity == "info"
    # cgroup v1 with Kubernetes 1.35+: an error (the plan's minors are all >= 1.35)
    assert [f.severity for f in runtime_preflight(_plan("1.35"), {"w1": _facts("w1", cgroup="v1")})
            if f.check == "cgroup-v1"] == ["error"]


# --------------------------------------------------------------------------- the audit's findings (build-audit-2026-12)


def _all_scripts(proxy=None):
    return [apt.install_script("1.36", proxy=proxy), apt.remove_script(), apt.containerd_policy_script(proxy),
            apt.containerd_install_script("docker", "debian", proxy=proxy),
            apt.containerd_install_script("distribution", "ubuntu", proxy=proxy)]


def test_f3_containerd_config_version4_uses_the_v3_tables():
    text = (DATA / "containerd2.3-config-version4.toml").read_text()
    assert containerd.config_version(text) == 4
    assert containerd.layout_for(text).cgroup_table == containerd.V3_RUNC_OPTIONS
    out = containerd.edit_config(text, PAUSE)
    _assert_only_changes(text, out, {
        containerd.V3_RUNC_OPTIONS + ("SystemdCgroup",): True,
        containerd.V3_PINNED + ("sandbox",): PAUSE,
    })
    assert "            SystemdCgroup = true" in out.splitlines()  # the table's own indentation
    assert containerd.problems(out, PAUSE) == [] and containerd.edit_config(out, PAUSE) == out
    # a later version is read with the newest row (the restart's CRI check proves it)
    assert containerd.layout_for(text.replace("version = 4", "version = 5")).version == 4


@pytest.mark.parametrize("fixture,table", [
    ("containerd1.6-debian12-config-default.toml", containerd.V2_REGISTRY),
    ("containerd2-config-default.toml", containerd.V3_REGISTRY),
    ("containerd2.3-config-version4.toml", containerd.V3_REGISTRY)])
def test_registry_mirror_config_path_per_version(fixture, table):
    text = (DATA / fixture).read_text()
    assert containerd.problems(text, registry_config_path=containerd.CERTS_DIR)
    out = containerd.edit_config(text, PAUSE, registry_config_path=containerd.CERTS_DIR)
    _assert_only_changes(text, out, {
        containerd.layout_for(text).cgroup_table + ("SystemdCgroup",): True,
        containerd.layout_for(text).sandbox_table + (containerd.layout_for(text).sandbox_key,): PAUSE,
        table + ("config_path",): "/etc/containerd/certs.d",
    })
    assert containerd.problems(out, PAUSE, registry_config_path=containerd.CERTS_DIR) == []


def test_registry_mirror_hosts_files():
    files = containerd.hosts_files("mirror.lab.example:5000")
    assert sorted(files) == [f"/etc/containerd/certs.d/{r}/hosts.toml" for r in ("docker.io", "quay.io", "registry.k8s.io")]
    docker = tomllib.loads(files["/etc/containerd/certs.d/docker.io/hosts.toml"])
    assert docker == {"server": "https://registry-1.docker.io",
                      "host": {"https://mirror.lab.example:5000": {"capabilities": ["pull", "resolve"]}}}
    assert tomllib.loads(files["/etc/containerd/certs.d/quay.io/hosts.toml"])["server"] == "https://quay.io"
    assert containerd.hosts_files(None) == {}


def _plan_with(**sources):
    from labtui.model import Plan

    return Plan.model_validate({
        "name": "p", "node_subnet": "10.100.200.0/24", "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16",
        "nodes": [{"name": "cp1", "address": "10.100.200.4", "role": "control-plane"}], "sources": sources})


def test_proxy_for_apt_containerd_and_curl():
    assert apt.proxy_settings(_plan_with()) is None
    proxy = apt.proxy_settings(_plan_with(http_proxy="http://10.0.0.1:3128", no_proxy=".corp.example, 10.9.0.0/16"))
    assert proxy["http_proxy"] == "http://10.0.0.1:3128"
    assert proxy["no_proxy"].split(",") == ["localhost", "127.0.0.1", "10.100.200.0/24", "172.16.0.0/16",
                                            "172.20.0.0/16", ".svc", ".cluster.local", ".corp.example", "10.9.0.0/16"]
    dropin = containerd.proxy_dropin(proxy)
    assert dropin.startswith("# labtui") and "[Service]" in dropin
    assert f'Environment="NO_PROXY={proxy["no_proxy"]}"' in dropin and 'Environment="HTTPS_PROXY=http://10.0.0.1:3128"' in dropin
    assert containerd.proxy_dropin(None) is None
    for script in _all_scripts(proxy)[:1] + _all_scripts(proxy)[2:]:
        assert f"> {apt.APT_PROXY_FILE}" in script and "Acquire::https::Proxy" in script
        assert "export http_proxy=http://10.0.0.1:3128 https_proxy=http://10.0.0.1:3128" in script  # curl reads these
    assert f"rm -f {apt.APT_PROXY_FILE}" in apt.install_script("1.36")  # no proxy in the plan: none left behind
    # a value reaches the shell only quoted
    odd = {"http_proxy": "http://p:3128/a&b", "no_proxy": "x"}
    assert "https_proxy='http://p:3128/a&b'" in apt.install_script("1.36", proxy=odd)
    script = apt.install_script("1.36", repo="https://mirror.example/k8s;x", proxy=odd)
    assert "'https://mirror.example/k8s;x/v1.36/deb/Release.key'" in script
    subprocess.run(["sh", "-n", "-c", script], check=True)


def test_apt_goes_direct_to_a_repository_no_proxy_covers():
    """apt reads no NO_PROXY: a mirror inside the lab network (or a no_proxy domain) gets a per-host
    DIRECT, as curl goes direct to it; seen on real machines, where apt-cacher-ng refused the mirror's port."""
    proxy = apt.proxy_settings(_plan_with(http_proxy="http://10.100.200.1:3142", no_proxy=".corp.example",
                                          kubernetes_repo="http://10.100.200.1:8088/k8s",
                                          docker_repo="https://mirror.corp.example/docker"))
    assert proxy["direct"] == "10.100.200.1,mirror.corp.example"
    conf = apt.apt_proxy_conf(proxy["http_proxy"], proxy["direct"])
    assert 'Acquire::http::Proxy::10.100.200.1 "DIRECT";' in conf
    assert 'Acquire::https::Proxy::mirror.corp.example "DIRECT";' in conf
    upstream = apt.proxy_settings(_plan_with(http_proxy="http://10.0.0.1:3128"))
    assert upstream["direct"] == ""  # pkgs.k8s.io and download.docker.com go through the proxy
    assert "DIRECT" not in apt.apt_proxy_conf(upstream["http_proxy"], upstream["direct"])
    assert "Acquire::http::Proxy::10.100.200.1" in apt.install_script("1.36", proxy=proxy)


def test_repositories_from_the_sources_block():
    script = apt.install_script("1.36", repo="https://mirror.example/k8s")
    assert "https://mirror.example/k8s/v1.36/deb/Release.key" in script
    assert "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://mirror.example/k8s/v1.36/deb/ /" in script
    docker = apt.containerd_install_script("docker", "ubuntu", docker_repo="https://mirror.example/docker")
    assert "https://mirror.example/docker/ubuntu/gpg" in docker and "https://mirror.example/docker/ubuntu '" in docker
    assert calico.manifest_url("3.32.2", "calico.yaml", "https://mirror.example/calico") == \
        "https://mirror.example/calico/v3.32.2/manifests/calico.yaml"


def test_f4_f7_every_apt_get_waits_for_the_lock_and_answers_conffiles():
    for script in _all_scripts():
        for line in script.splitlines():
            if "apt-get" not in line:
                continue
            assert "-o DPkg::Lock::Timeout=600" in line, line
            if any(f" {op} " in line for op in ("install", "remove")):
                assert "--force-conf" in line, line
    docker = apt.containerd_install_script("docker", "debian")
    # containerd.io replaces Debian's containerd whose config.toml cloud-init rewrote: take the new one
    assert "apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confnew install -y -q containerd.io" in docker
    assert "--force-confdef -o Dpkg::Options::=--force-confold install -y -q ca-certificates curl" in docker
    for script in _all_scripts()[:1] + _all_scripts()[2:]:
        assert script.splitlines()[2] == apt.CLOUD_INIT_WAIT  # before any apt


@pytest.mark.parametrize("exit_code,ok", [(0, True), (2, True), (1, True), (None, True)])
def test_f7_cloud_init_wait(tmp_path, exit_code, ok):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    if exit_code is not None:
        (bin_dir / "cloud-init").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit {exit_code}\n")
        (bin_dir / "cloud-init").chmod(0o755)
    # under set -e, as in every apt script: an error status is told, never ends the script
    res = subprocess.run(["/bin/sh", "-ec", apt.CLOUD_INIT_WAIT + "; echo after"], capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert (res.returncode == 0 and "after" in res.stdout) is ok
    if exit_code is not None:
        assert calls.read_text().split() == ["status", "--wait"]
    if exit_code == 1:  # finished with errors: told, with where to look, and the build goes on
        assert "cloud-init finished with errors (exit 1; see /var/log/cloud-init-output.log)" in res.stderr


def test_f11_containerd_source_from_the_apt_candidate():
    policy = "containerd:\n  Installed: (none)\n  Candidate: 2.2.1-0ubuntu1~24.04.3\n  Version table:\n"
    assert apt.policy_candidate(policy) == "2.2.1-0ubuntu1~24.04.3"
    assert apt.policy_candidate("containerd:\n  Installed: (none)\n  Candidate: (none)\n") is None
    assert apt.containerd_source("2.2.1-0ubuntu1~24.04.3", "1.36") == "distribution"
    assert apt.containerd_source("1.7.28-0ubuntu1~22.04.1", "1.36") == "docker"
    assert apt.containerd_source("1.7.28-0ubuntu1~22.04.1", "1.35") == "distribution"
    assert apt.containerd_source("1.6.20~ds1-1+deb12u3", "1.35") == "docker"
    assert apt.containerd_source("1:2.1.0-1", "1.37") == "distribution"  # an epoch
    assert apt.containerd_source(None, "1.35") == "docker"
    script = apt.containerd_install_script("docker", "debian")
    assert "https://download.docker.com/linux/debian" in script and "containerd.io" in script
    assert "$(. /etc/os-release && echo $VERSION_CODENAME)" in script
    assert not hasattr(apt, "DISTRO_CONTAINERD")


def test_f14_pins_quoted_and_a_held_minor_changed():
    script = apt.install_script("1.37")
    lines = script.splitlines()
    install = next(ln for ln in lines if "install -y -q --allow-change-held-packages" in ln)
    assert "'kubelet=1.37.*' 'kubeadm=1.37.*' 'kubectl=1.37.*' cri-tools" in install
    unhold = next(i for i, ln in enumerate(lines) if ln.startswith("apt-mark unhold"))
    hold = next(i for i, ln in enumerate(lines) if ln.startswith("apt-mark hold"))
    assert unhold < lines.index(install) < hold
    # in sh, the quoted glob reaches apt unexpanded even when a file matches it
    assert "kubelet=1.37.*" in subprocess.run(["sh", "-c", "echo 'kubelet=1.37.*'"], capture_output=True,
                                              text=True).stdout


def test_f2_cri_tools_installed_held_and_the_cri_checked_without_crictl(tmp_path):
    from labtui.changes.kube import CRI_ANSWERS

    script = apt.install_script("1.36")
    assert "apt-mark hold kubelet kubeadm kubectl cri-tools" in script
    assert "command -v crictl" in apt.installed_check("1.36") and "cri-tools" in apt.installed_check("1.36")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    table = ("TYPE                  ID     PLATFORMS  STATUS\\n"
             "io.containerd.grpc.v1 cri    -          {status}\\n")
    for status, ok in (("ok", True), ("error", False)):
        (bin_dir / "ctr").write_text(f"#!/bin/sh\n[ \"$1 $2 $3 $4\" = '--address /run/containerd/containerd.sock "
                                     f"plugins ls' ] || exit 9\nprintf '{table.format(status=status)}'\n")
        (bin_dir / "ctr").chmod(0o755)
        res = subprocess.run(["/bin/sh", "-c", CRI_ANSWERS + " && echo ok"], capture_output=True, text=True,
                             env={"PATH": f"{bin_dir}:/usr/bin:/bin"})  # no crictl on this PATH
        assert (res.stdout.strip() == "ok") is ok


def test_f16_join_token_only_in_a_0600_file(monkeypatch):
    from types import SimpleNamespace

    from labtui.changes import kube

    join = kubeadm.JoinCommand("10.0.0.1:6443", "abcdef.0123456789abcdef", "sha256:" + "c" * 64)
    cfg = yaml.safe_load(kubeadm.join_config(join, "w1"))
    assert cfg["apiVersion"] == "kubeadm.k8s.io/v1beta4" and cfg["kind"] == "JoinConfiguration"
    assert cfg["discovery"]["bootstrapToken"] == {"apiServerEndpoint": "10.0.0.1:6443", "token": join.token,
                                                  "caCertHashes": [join.ca_hash]}
    assert cfg["nodeRegistration"]["name"] == "w1"

    runs, puts = [], []

    class FakeSSH:
        def run(self, node, command, **kw):
            runs.append(command)
            return SimpleNamespace(exit_code=0, stdout="", stderr="", check=lambda *a: None)

        def put(self, node, data, path, *, mode, sudo):
            puts.append((path, mode, data))

    monkeypatch.setattr(kube, "_ssh", lambda ctx: FakeSSH())
    monkeypatch.setattr(kube, "join_command", lambda ctx, cp, fresh=False: join)
    ctx = SimpleNamespace(info=lambda *a, **k: None, warn=lambda *a, **k: None)
    kube.Join().node_run(ctx, "w1", SimpleNamespace(data={"control_plane": "cp1", "step": "join"}))
    assert not any(join.token in c for c in runs)
    assert puts == [(kubeadm.JOIN_CONFIG_PATH, 0o600, kubeadm.join_config(join, "w1"))]
    assert any(c.startswith(f"kubeadm join --config {kubeadm.JOIN_CONFIG_PATH}; rc=$?; rm -f {kubeadm.JOIN_CONFIG_PATH}")
               for c in runs)


def test_f17_sysctl_fix_leaves_cloud_inits_file_alone():
    from labtui.nodes.preflight import fix_for

    fix = fix_for("sysctl", _facts("cp1"))
    for text in (fix.command, fix.revert, fix_for("modules", _facts("cp1")).command):
        assert "/etc/sysctl.d/99-kubernetes.conf" not in text and "/etc/modules-load.d/k8s.conf" not in text
    assert "/etc/sysctl.d/99-labtui-kubernetes.conf" in fix.command and "rm -f /etc/sysctl.d/99-labtui-kubernetes.conf" in fix.revert


def test_f5_vxlan_manifest_drops_the_bird_probes():
    text = (DATA / "calico-excerpt.yaml").read_text()
    assert calico.probe_args(text) == ["/bin/calico-node", "-felix-live", "-bird-live",
                                       "/bin/calico-node", "-felix-ready", "-bird-ready"]
    for enc in ("VXLAN", "VXLANCrossSubnet"):
        out = calico.edit_manifest(text, "172.16.0.0/16", enc)
        assert calico.probe_args(out) == ["/bin/calico-node", "-felix-live", "/bin/calico-node", "-felix-ready"]
    assert calico.probe_args(calico.edit_manifest(text, "172.16.0.0/16", "IPIP")) == calico.probe_args(text)
    # structural: the comments stay
    out = calico.edit_manifest(text, "172.16.0.0/16", "VXLAN")
    assert "# Enable or Disable VXLAN on the default IP pool." in out and out.count("\n---\n") == text.count("\n---\n")


def test_f6_operator_crds_from_3_30_on():
    assert [u.rsplit("/", 1)[-1] for u in calico.operator_manifests("3.31.7")] == ["operator-crds.yaml", "tigera-operator.yaml"]
    assert [u.rsplit("/", 1)[-1] for u in calico.operator_manifests("3.30.7")] == ["operator-crds.yaml", "tigera-operator.yaml"]
    assert [u.rsplit("/", 1)[-1] for u in calico.operator_manifests("3.29.7")] == ["tigera-operator.yaml"]


def test_f15_pause_tag_per_minor():
    assert kubeadm.pause_image("1.35") == "registry.k8s.io/pause:3.10.1"
    assert kubeadm.pause_image("1.36") == "registry.k8s.io/pause:3.10.2"


def test_f19_kubernetes_137_with_calico_332_warns():
    from labtui.model import Plan
    from labtui.nodes.preflight import runtime_preflight

    plan = Plan.model_validate({
        "name": "p", "kubernetes": "1.37", "calico": "3.32.2", "node_subnet": "10.100.200.0/24",
        "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16",
        "nodes": [{"name": "cp1", "address": "10.100.200.4", "role": "control-plane"}]})
    found = [f for f in runtime_preflight(plan, {"cp1": _facts("cp1")}) if f.check == "calico-kubernetes"]
    assert [f.severity for f in found] == ["warning"]
    assert not [f for f in runtime_preflight(_plan("1.36"), {"cp1": _facts("cp1")}) if f.check == "calico-kubernetes"]
