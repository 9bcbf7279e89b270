"""The stand-in apt repositories (tests/harness/aptrepo.py), checked with the host's REAL apt, gpg and
curl under a private apt state (Dir::State, Dir::Etc, Dir::Cache in a tmp dir; nothing on the host
changes): the signatures verify with the keys fetched and stored exactly as labtui does, the
dependencies resolve, containerd.io swaps out Debian's containerd and runc, and the packaged
simulation and binaries run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import aptrepo

pytestmark = pytest.mark.root

if os.geteuid() != 0 or not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
    pytest.skip("needs root, apt-get and dpkg-deb (a Debian host)", allow_module_level=True)


@pytest.fixture(scope="module")
def server():
    info = aptrepo.ensure_repos()
    with aptrepo.serve(host="127.0.0.1", port=0, info=info) as srv:
        yield srv


class PrivateApt:
    """apt-get / apt-cache of the host, with every state, config and cache directory in `base`."""

    def __init__(self, base: Path, status: Path | None = None):
        self.base = base
        for d in ("lists/partial", "cache/archives/partial", "sources.list.d", "trusted.gpg.d", "keyrings",
                  "preferences.d", "apt.conf.d", "gnupg"):
            (base / d).mkdir(parents=True, exist_ok=True)
        os.chmod(base / "gnupg", 0o700)
        self.status = base / "status"
        if status:
            shutil.copyfile(status, self.status)
        else:
            self.status.touch()

    def options(self) -> list[str]:
        b = self.base
        return ["-o", f"Dir::State::Lists={b}/lists", "-o", f"Dir::State::status={self.status}",
                "-o", f"Dir::Cache={b}/cache", "-o", f"Dir::Etc::SourceList={b}/sources.list",
                "-o", f"Dir::Etc::SourceParts={b}/sources.list.d", "-o", f"Dir::Etc::Trusted={b}/trusted.gpg",
                "-o", f"Dir::Etc::TrustedParts={b}/trusted.gpg.d", "-o", f"Dir::Etc::Preferences={b}/preferences",
                "-o", f"Dir::Etc::PreferencesParts={b}/preferences.d", "-o", f"Dir::Etc::Parts={b}/apt.conf.d",
                "-o", "APT::Architectures=amd64", "-o", "Acquire::Languages=none", "-o", "APT::Sandbox::User=root",
                "-o", "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"]

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([tool, *self.options(), *args], capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if check:
            assert res.returncode == 0, f"{tool} {' '.join(args)}:\n{res.stdout}\n{res.stderr}"
        return res

    def sh(self, script: str) -> subprocess.CompletedProcess:
        res = subprocess.run(["sh", "-ec", script], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, GNUPGHOME=str(self.base / "gnupg")))
        assert res.returncode == 0, f"{script}\n{res.stdout}\n{res.stderr}"
        return res


def _labtui_sources(apt: PrivateApt, srv, minor: str = "1.36", debian: bool = False) -> None:
    """The keys and sources as labtui's install scripts write them (labtui/cluster/apt.py), under the
    private apt's directory instead of /etc/apt."""
    k8s = f"{srv.kubernetes_repo()}/v{minor}/deb/"
    docker = f"{srv.docker_repo()}/debian"
    kring, dring = apt.base / "keyrings/kubernetes-apt-keyring.gpg", apt.base / "keyrings/docker.asc"
    apt.sh(f"curl -fsSL '{k8s}Release.key' | gpg --dearmor --yes -o {kring}\n"
           f"curl -fsSL '{docker}/gpg' -o {dring}\nchmod a+r {dring}")
    lines = [f"deb [signed-by={kring}] {k8s} /", f"deb [signed-by={dring}] {docker} bookworm stable"]
    if debian:  # for the Debian packages kubelet depends on that the host lacks (iptables)
        lines.append("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                     "http://deb.debian.org/debian bookworm main")
    (apt.base / "sources.list").write_text("\n".join(lines) + "\n")


def test_apt_update_accepts_the_signatures_with_the_keys_fetched_as_labtui_does(server, tmp_path):
    apt = PrivateApt(tmp_path / "apt")
    _labtui_sources(apt, server)
    res = apt.run("apt-get", "update")
    assert "W:" not in res.stderr and "E:" not in res.stderr, res.stderr
    assert (apt.base / "keyrings/kubernetes-apt-keyring.gpg").read_bytes()[:1] != b"-"  # dearmored
    policy = apt.run("apt-cache", "policy", "kubeadm", "containerd.io").stdout
    assert "1.36.4-1.1" in policy and "1.36.0-1.1" in policy and "2.1.9-1~debian.12~bookworm" in policy, policy
    assert "1.35." not in policy and "1.37." not in policy  # one repository per minor


def test_apt_update_refuses_a_repository_signed_by_another_key(server, tmp_path):
    apt = PrivateApt(tmp_path / "apt")
    _labtui_sources(apt, server)
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    apt.sh(f"GNUPGHOME={other} gpg --batch --passphrase '' --quick-gen-key 'other <o@x>' ed25519 sign never\n"
           f"GNUPGHOME={other} gpg --batch --export > {apt.base}/keyrings/kubernetes-apt-keyring.gpg\n"
           f"GNUPGHOME={other} gpgconf --kill gpg-agent")
    res = apt.run("apt-get", "update", check=False)
    assert res.returncode != 0 or "NO_PUBKEY" in res.stderr or "not signed" in res.stderr, res.stderr
    assert "NO_PUBKEY" in res.stderr or "EXPKEYSIG" in res.stderr or "is not signed" in res.stderr, res.stderr


def test_dependencies_have_the_upstream_shapes(server, tmp_path):
    apt = PrivateApt(tmp_path / "apt")
    _labtui_sources(apt, server)
    apt.run("apt-get", "update")

    def depends(spec):
        text = apt.run("apt-cache", "show", spec).stdout
        return next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Depends:")), "")

    # kubeadm built before kubernetes/release PR #4387 depends on cri-tools; later ones on nothing
    # upstream (python3 is ours: the simulation is Python)
    assert depends("kubeadm=1.36.0-1.1") == "cri-tools (>= 1.30.0), python3"
    assert depends("kubeadm=1.36.4-1.1") == "python3"
    assert "kubelet" not in depends("kubeadm=1.36.4-1.1")  # dropped for >= 1.30 (kubernetes/release ce9afc7d)
    assert depends("kubelet=1.36.4-1.1").startswith("iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), mount, util-linux")
    deps = apt.run("apt-cache", "depends", "kubeadm=1.36.0-1.1").stdout
    assert "Depends: cri-tools" in deps, deps
    ctd = apt.run("apt-cache", "show", "containerd.io").stdout
    for field in ("Provides: containerd, runc", "Conflicts: containerd, runc", "Replaces: containerd, runc"):
        assert field in ctd, ctd
    assert "labtui test stand-in" in ctd and "Debian" in ctd


def test_pinned_minor_resolves_and_downloads(server, tmp_path):
    # the host's installed packages, less any Kubernetes tool it has (as on a fresh machine)
    paragraphs = Path("/var/lib/dpkg/status").read_text().split("\n\n")
    status = tmp_path / "status"
    status.write_text("\n\n".join(p for p in paragraphs if not any(
        p.startswith(f"Package: {n}\n") for n in ("kubelet", "kubeadm", "kubectl", "cri-tools", "kubernetes-cni"))))
    apt = PrivateApt(tmp_path / "apt", status=status)
    _labtui_sources(apt, server, debian=True)
    apt.run("apt-get", "update")
    res = apt.run("apt-get", "install", "-y", "--download-only",
                  "kubelet=1.36.*", "kubeadm=1.36.*", "kubectl=1.36.*", "cri-tools")
    debs = sorted(p.name for p in (apt.base / "cache/archives").glob("*.deb"))
    for name in ("kubelet_1.36.4-1.1_amd64.deb", "kubeadm_1.36.4-1.1_amd64.deb", "kubectl_1.36.4-1.1_amd64.deb",
                 "cri-tools_1.36.0-1.1_amd64.deb", "kubernetes-cni_1.8.0-1.1_amd64.deb"):
        assert name in debs, (debs, res.stdout)
    # a pin to an older patch picks it, and with it kubeadm's old cri-tools dependency
    sim = apt.run("apt-get", "install", "-s", "kubeadm=1.36.0-1.1").stdout
    assert "Inst kubeadm (1.36.0-1.1" in sim and "Inst cri-tools" in sim, sim


def test_containerd_io_replaces_debians_containerd_and_runc(server, tmp_path):
    status = tmp_path / "status"
    host = Path("/var/lib/dpkg/status").read_text()
    if "\nPackage: containerd\n" not in "\n" + host:  # a status where Debian's containerd is installed
        pytest.skip("the host has no Debian containerd installed (tests/setup.d/cluster.apt installs it)")
    status.write_text(host)
    apt = PrivateApt(tmp_path / "apt", status=status)
    _labtui_sources(apt, server)
    apt.run("apt-get", "update")
    sim = apt.run("apt-get", "install", "-s", "-y", "containerd.io").stdout
    assert "Remv containerd " in sim and "Remv runc " in sim, sim
    assert "Inst containerd.io (2.1.9-1~debian.12~bookworm" in sim, sim


def test_containerd_io_carries_real_binaries_and_its_conffile(server, tmp_path):
    deb = next((server.info.root / aptrepo.DOCKER_BASE / "debian/dists/bookworm/pool/stable/amd64").glob("containerd.io_*.deb"))
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tmp_path / "x")], check=True)
    x = tmp_path / "x"
    assert (x / "DEBIAN/conffiles").read_text().split() == ["/etc/containerd/config.toml"]
    assert 'disabled_plugins = ["cri"]' in (x / "etc/containerd/config.toml").read_text()
    assert (x / "lib/systemd/system/containerd.service").exists()
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True).stdout
    assert "root/root" in listing and "-rwxr-xr-x root/root" in listing
    version = subprocess.run([str(x / "usr/bin/containerd"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "2.1.9" in version.stdout, version  # runs on Debian 12's glibc
    runc = subprocess.run([str(x / "usr/bin/runc"), "--version"], capture_output=True, text=True)
    assert runc.returncode == 0 and "runc version 1.1" in runc.stdout, runc


def _unpack(server, tmp_path, name, minor="1.36") -> Path:
    repo = server.info.root / aptrepo.KUBERNETES_BASE / f"v{minor}" / "deb"
    deb = sorted(repo.glob(f"{name}_*.deb"))[-1]
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def _run_tool(root: Path, tool: str, pkg: str, *args, cluster: Path):
    """The package's /usr/bin wrapper, pointed at the unpacked payload (outside a machine)."""
    wrapper = (root / "usr/bin" / tool).read_text().replace("/usr/lib/labtui-simulation", str(root / "usr/lib/labtui-simulation"))
    path = root / "wrapped" / tool
    path.parent.mkdir(exist_ok=True)
    path.write_text(wrapper)
    path.chmod(0o755)
    env = dict(os.environ, LABTUI_SIMULATION_PACKAGES=str(root / "usr/lib/labtui-simulation"),
               LABTUI_SIMULATION_DIR=str(cluster))
    return subprocess.run([str(path), *args], capture_output=True, text=True, env=env, timeout=30)


def test_packaged_simulation_says_it_is_one(server, tmp_path):
    root = _unpack(server, tmp_path, "kubeadm")
    assert (root / "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf").exists()
    res = _run_tool(root, "kubeadm", "kubeadm", "version", "-o", "short", cluster=tmp_path / "cluster")
    assert res.returncode == 0 and res.stdout == "v1.36.4\n", res
    assert "SIMULATED kubeadm" in res.stderr
    root = _unpack(server, tmp_path, "kubelet")
    assert (root / "usr/lib/systemd/system/kubelet.service").exists()
    res = _run_tool(root, "kubelet", "kubelet", cluster=tmp_path / "cluster")  # as systemd starts it, before kubeadm
    assert res.returncode == 1 and "/var/lib/kubelet/config.yaml" in res.stderr and "SIMULATED kubelet" in res.stderr


def test_packaged_crictl_asks_the_real_containerd(server, tmp_path):
    root = _unpack(server, tmp_path, "cri-tools")
    res = _run_tool(root, "crictl", "cri-tools", "--runtime-endpoint", f"unix://{tmp_path}/none.sock", "info",
                    cluster=tmp_path / "cluster")
    assert res.returncode == 1 and "code = Unavailable" in res.stderr and "SIMULATED crictl" in res.stderr, res
