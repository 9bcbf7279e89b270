"""Locally served, signed stand-ins for pkgs.k8s.io and download.docker.com (TEST HARNESS).

Real Debian test machines (systemd, apt, dpkg, cloud-init) cannot reach pkgs.k8s.io or Docker's
repository. This module builds two apt repositories with the real upstream layouts, signs them with a
test key made at run time, and serves them over HTTP, so labtui's real install scripts work unchanged
when pointed at them by their base URL:

  <root>/kubernetes/core:/stable:/v1.35/deb/ ... v1.37/deb/   flat repositories (`deb [...] URL /`),
      Release, Release.gpg, InRelease, Packages(.gz), Release.key (ASCII-armored, as pkgs.k8s.io);
      kubeadm, kubelet, kubectl, cri-tools, kubernetes-cni under pkgs.k8s.io's names, version scheme
      (`1.36.4-1.1`), dependencies and files. Their binaries are the SIMULATED tools of
      tests/cluster/simulation/kube_tools_simulated.py (every invocation says SIMULATED on stderr).
  <root>/docker/linux/debian/dists/bookworm/...                Docker's layout, key at .../debian/gpg;
      containerd.io (Provides/Conflicts/Replaces: containerd, runc; /etc/containerd/config.toml as a
      conffile) carrying REAL binaries: containerd, containerd-shim-runc-v2 and ctr from Debian sid's
      containerd package, runc from Debian 12's runc package (sid's runc needs glibc 2.38).

Nothing here is pkgs.k8s.io's or Docker's: the key is generated (never committed), the packages are
built by dpkg-deb from the texts in tests/harness/standin/ and the simulation. Built once under
/var/lib/labtui-test/aptrepo (LABTUI_APTREPO_HOME), rebuilt only when an input changes.

    info = ensure_repos()                 # RepoInfo(root, kubernetes_base, docker_base, key_fingerprint)
    server = serve()                      # http.server in a thread, 0.0.0.0:8088 or a free port
    server.kubernetes_repo("192.0.2.1")   # http://192.0.2.1:8088/kubernetes/core:/stable:
    server.docker_repo("192.0.2.1")       # http://192.0.2.1:8088/docker/linux
    server.close()

`python -m tests.harness.aptrepo [build|serve [PORT]]` does the same from a shell.
"""

from __future__ import annotations

import dataclasses
import email.utils
import fcntl
import functools
import gzip
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "standin"
SIMULATION = HERE.parent / "cluster" / "simulation"
STATE = Path(os.environ.get("LABTUI_APTREPO_HOME", "/var/lib/labtui-test/aptrepo"))
DEFAULT_PORT = 8088
KEY_UID = "labtui test stand-in apt repositories (NOT pkgs.k8s.io, NOT Docker) <aptrepo@labtui.test>"

# --------------------------------------------------------------------------- what the repositories hold
#
# Dependencies, from kubernetes/release cmd/krel/templates/latest/metadata.yaml (commit f618b2a3,
# 2026-07) and the *.spec templates beside it (debbuild turns `Requires:` into `Depends:`):
#   - kubelet: iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0) [for kubelet >= 1.28.0], mount, util-linux
#     (kubelet.spec); ships /usr/bin/kubelet, %{_unitdir}/kubelet.service, /etc/default/kubelet
#     (conffile), /var/lib/kubelet and /etc/kubernetes/manifests (with .kubelet-keep files).
#   - kubeadm: ships /usr/bin/kubeadm and %{_unitdir}/kubelet.service.d/10-kubeadm.conf. Its Depends:
#       * since kubernetes/release commit ce9afc7d (2024-03-01, "remove kubeadm's deps on kubelet and
#         kubectl") kubeadm >= 1.30.0 no longer depends on kubelet, kubectl or kubernetes-cni;
#       * kubernetes/release PR #3626 (commit bc7e6ab5, 2024-05-29) meant kubeadm >= 1.32.0 to drop
#         cri-tools too, but krel took the first matching constraint (">= 1.30.0", with cri-tools), so
#         the packages kept `cri-tools (>= 1.30.0)`; fixed by PR #4387 (commit 0ffd6e1f, 2026-04-24,
#         merged after review on 2026-04-27: ">= 1.30.0 < 1.32.0"). Seen in the wild:
#         kubernetes-sigs/cri-tools issue #2057 (2026-04-23): "kubeadm:amd64=1.36.0-1.1 Depends
#         cri-tools (>= 1.30.0)" (and "kubelet : Depends: kubernetes-cni (>= 1.2.0)").
#       So packages built before the fix depend on cri-tools (>= 1.30.0), later ones on nothing. Which
#       patch release was the first built after 2026-04-27 is NOT verified here (the brief's "1.36.2"
#       could not be confirmed; 1.36.1 may already be without). We model: 1.35.3 and 1.36.0 with the
#       dependency (built before the fix), every other version below without.
#   - kubectl, cri-tools (/usr/bin/crictl), kubernetes-cni (/opt/cni/bin, /etc/cni/net.d): no Depends.
# Added for the simulation (not upstream): python3 (kubeadm, kubelet, kubectl, cri-tools run as Python;
# on the Debian test image cloud-init already pulls python3 in) and python3-yaml for kubectl.
K8S_MINORS = {
    "1.35": {"versions": ["1.35.3", "1.35.6"], "cri_tools": "1.35.0", "cni": "1.8.0"},
    "1.36": {"versions": ["1.36.0", "1.36.2", "1.36.4"], "cri_tools": "1.36.0", "cni": "1.8.0"},
    "1.37": {"versions": ["1.37.0", "1.37.1"], "cri_tools": "1.37.0", "cni": "1.8.0"},
}
KUBEADM_WITH_CRI_TOOLS = {"1.35.3", "1.36.0"}  # built before kubernetes/release PR #4387 (see above)
K8S_REVISION = "-1.1"  # pkgs.k8s.io (OBS) revision suffix: kubeadm 1.36.4-1.1
K8S_MAINTAINER = "Kubernetes Authors <dev@kubernetes.io>"  # Packager: of the krel spec templates
SIM_NOTE = ("SIMULATED labtui test stand-in: a Python replay of the real tool "
            "(tests/cluster/simulation/kube_tools_simulated.py), not Kubernetes.")

# containerd.io: docker/containerd-packaging debian/control (commit 2161c611, 2025-05):
#   Provides: containerd, runc / Conflicts: containerd, runc / Replaces: containerd, runc;
# debian/rules installs bin/* (containerd, containerd-shim-runc-v2, ctr, runc) to /usr/bin, the unit to
# /lib/systemd/system/containerd.service and common/containerd.toml (`disabled_plugins = ["cri"]`) to
# /etc/containerd/config.toml. Our binaries: Debian's. Docker's version scheme: 2.1.9-1~debian.12~bookworm.
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SOURCES = {"containerd": "sid", "runc": "bookworm"}
CONTAINERD_BINARIES = ("usr/bin/containerd", "usr/bin/containerd-shim-runc-v2", "usr/bin/ctr")
DOCKER_SUITE, DOCKER_COMPONENT = "bookworm", "stable"


@dataclasses.dataclass(frozen=True)
class RepoInfo:
    root: Path               # served as http://HOST:PORT/
    kubernetes_base: str     # path under root: "kubernetes/core:/stable:" (labtui appends /v1.36/deb/)
    docker_base: str         # path under root: "docker/linux" (labtui appends /debian)
    key_fingerprint: str

    def kubernetes_repo(self, url: str) -> str:
        return f"{url.rstrip('/')}/{self.kubernetes_base}"

    def docker_repo(self, url: str) -> str:
        return f"{url.rstrip('/')}/{self.docker_base}"

    def calico_manifests(self, url: str) -> str:
        return f"{url.rstrip('/')}/{CALICO_BASE}"


CALICO_BASE = "calico"  # labtui appends /v3.32.2/manifests/<file>, as on raw.githubusercontent.com/projectcalico/calico
# SIMULATED manifests: the recorded excerpts the simulated kubectl understands, under the names Calico's
# release serves (operator-crds.yaml and v1_crd_projectcalico_org.yaml are one blob at v3.32.1)
CALICO_FILES = {"calico.yaml": "calico-calico.yaml", "tigera-operator.yaml": "calico-tigera-operator.yaml",
                "operator-crds.yaml": "calico-v1_crd_projectcalico_org.yaml",
                "v1_crd_projectcalico_org.yaml": "calico-v1_crd_projectcalico_org.yaml"}


def _calico_manifests(root: Path) -> None:
    """<root>/calico/v<version>/manifests/<file> for every Calico version labtui offers (idempotent)."""
    from labtui.model import CALICO_VERSIONS

    recorded = HERE.parent / "cluster" / "simulation" / "recorded"
    for version in CALICO_VERSIONS:
        d = root / CALICO_BASE / f"v{version}" / "manifests"
        d.mkdir(parents=True, exist_ok=True)
        for name, src in CALICO_FILES.items():
            data = (recorded / src).read_bytes()
            if not (d / name).exists() or (d / name).read_bytes() != data:
                (d / name).write_bytes(data)


KUBERNETES_BASE = "kubernetes/core:/stable:"
DOCKER_BASE = "docker/linux"


# --------------------------------------------------------------------------- helpers


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({res.returncode}):\n{res.stdout}{res.stderr}")
    return res


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Lock:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# --------------------------------------------------------------------------- the signing key


def _gpg(*args, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, GNUPGHOME=str(STATE / "gnupg"))
    return _run(["gpg", "--batch", "--no-tty", *args], env=env, **kw)


def signing_key() -> str:
    """The test key's fingerprint, generated on first use in STATE/gnupg (never committed)."""
    home = STATE / "gnupg"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    fpr_file = STATE / "key-fingerprint"
    if fpr_file.exists():
        fpr = fpr_file.read_text().strip()
        res = subprocess.run(["gpg", "--batch", "--list-secret-keys", fpr],
                             env=dict(os.environ, GNUPGHOME=str(home)), capture_output=True)
        if res.returncode == 0:
            return fpr
    _gpg("--passphrase", "", "--quick-gen-key", KEY_UID, "ed25519", "sign", "never")
    out = _gpg("--list-secret-keys", "--with-colons", KEY_UID).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
    fpr_file.write_text(fpr + "\n")
    return fpr


def _stop_agent() -> None:
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=dict(os.environ, GNUPGHOME=str(STATE / "gnupg")),
                   capture_output=True)


# --------------------------------------------------------------------------- Debian's real binaries


def _debian_apt_options() -> list[str]:
    base = STATE / "debian-apt"
    return ["-o", f"Dir::State::Lists={base}/lists", "-o", f"Dir::State::status={base}/status",
            "-o", f"Dir::Cache={base}/cache", "-o", f"Dir::Etc::SourceList={base}/sources.list",
            "-o", "Dir::Etc::SourceParts=/nonexistent", "-o", "APT::Architectures=amd64",
            "-o", "Acquire::Languages=none", "-o", "APT::Sandbox::User=root",
            "-o", "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"]


def debian_debs() -> dict[str, Path]:
    """Debian's containerd (sid) and runc (bookworm) .debs, fetched once with apt (signatures checked
    against the host's debian-archive-keyring) and cached in STATE/debian-debs."""
    cache = STATE / "debian-debs"
    cache.mkdir(parents=True, exist_ok=True)
    found = {name: sorted(cache.glob(f"{name}_*.deb")) for name in DEBIAN_SOURCES}
    if all(found.values()):
        return {name: paths[-1] for name, paths in found.items()}
    base = STATE / "debian-apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "status").touch()
    (base / "sources.list").write_text("".join(
        f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {DEBIAN_MIRROR} {suite} main\n"
        for suite in sorted(set(DEBIAN_SOURCES.values()))))
    opts = _debian_apt_options()
    _run(["apt-get", *opts, "update"])
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        _run(["apt-get", *opts, "download", *(f"{n}/{s}" for n, s in DEBIAN_SOURCES.items())], cwd=tmp)
        for deb in Path(tmp).glob("*.deb"):
            shutil.move(str(deb), cache / deb.name)
    found = {name: sorted(cache.glob(f"{name}_*.deb")) for name in DEBIAN_SOURCES}
    return {name: paths[-1] for name, paths in found.items()}


def _deb_field(deb: Path, field: str) -> str:
    return _run(["dpkg-deb", "-f", str(deb), field]).stdout.strip()


# --------------------------------------------------------------------------- building one .deb


@dataclasses.dataclass
class Pkg:
    name: str
    version: str
    fields: dict                      # control fields after Package/Version/Architecture/Maintainer
    files: dict                       # path in the package -> (bytes | Path, mode)
    conffiles: tuple = ()
    scripts: dict = dataclasses.field(default_factory=dict)  # postinst/prerm/postrm -> text
    maintainer: str = K8S_MAINTAINER

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version}_amd64.deb"


def build_deb(pkg: Pkg, out_dir: Path) -> Path:
    """dpkg-deb --build of `pkg`: root-owned files, explicit modes, md5sums, conffiles."""
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        root = Path(tmp) / "root"
        (root / "DEBIAN").mkdir(parents=True)
        sums, size = [], 0
        for rel, (content, mode) in sorted(pkg.files.items()):
            dest = root / rel.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, dest)
            else:
                dest.write_bytes(content)
            os.chmod(dest, mode)
            data = dest.read_bytes()
            size += len(data)
            sums.append(f"{hashlib.md5(data).hexdigest()}  {rel.lstrip('/')}\n")
        for d in sorted({p for p in root.rglob("*") if p.is_dir()}):
            os.chmod(d, 0o755)
        control = {"Package": pkg.name, "Version": pkg.version, "Architecture": "amd64",
                   "Maintainer": pkg.maintainer, "Installed-Size": str(max(1, size // 1024))}
        control.update(pkg.fields)
        (root / "DEBIAN" / "control").write_text("".join(f"{k}: {v}\n" for k, v in control.items()))
        (root / "DEBIAN" / "md5sums").write_text("".join(sums))
        if pkg.conffiles:
            (root / "DEBIAN" / "conffiles").write_text("".join(f"{c}\n" for c in pkg.conffiles))
        for name, text in pkg.scripts.items():
            (root / "DEBIAN" / name).write_text(text)
            os.chmod(root / "DEBIAN" / name, 0o755)
        for f in ("control", "md5sums", "conffiles"):
            if (root / "DEBIAN" / f).exists():
                os.chmod(root / "DEBIAN" / f, 0o644)
        out = out_dir / pkg.filename
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)])
    return out


def _systemd_scripts(unit: str, *, start: bool) -> dict:
    """Our own maintainer scripts, doing what debhelper's (dh_installsystemd) do: enable the unit on
    install, start it when systemd runs, stop it on removal, forget it on purge."""
    post = f"""#!/bin/sh
set -e
if [ "$1" = configure ] || [ "$1" = abort-upgrade ]; then
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper unmask {unit} >/dev/null || true
        if deb-systemd-helper --quiet was-enabled {unit}; then deb-systemd-helper enable {unit} >/dev/null || true
        else deb-systemd-helper update-state {unit} >/dev/null || true; fi
        if [ -z "$2" ]; then deb-systemd-helper enable {unit} >/dev/null || true; fi
    fi
    if [ -d /run/systemd/system ] && [ {"1" if start else "0"} = 1 ]; then
        systemctl restart {unit} || true
    fi
fi
exit 0
"""
    prerm = f"""#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then systemctl stop {unit} || true; fi
exit 0
"""
    postrm = f"""#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
if [ "$1" = purge ] && command -v deb-systemd-helper >/dev/null 2>&1; then
    deb-systemd-helper purge {unit} >/dev/null || true
fi
exit 0
"""
    return {"postinst": post, "prerm": prerm, "postrm": postrm}


def _wrapper(tool: str, pkg: str) -> bytes:
    return (f"#!/usr/bin/python3 -S\n"
            f"# SIMULATED {tool} (labtui test stand-in, package {pkg}): not Kubernetes' {tool}.\n"
            f"# Runs the recorded simulation in /usr/lib/labtui-simulation/{pkg}/.\n"
            f"path = '/usr/lib/labtui-simulation/{pkg}/kube_tools_simulated.py'\n"
            f"exec(compile(open(path).read(), path, 'exec'), {{'__name__': '__main__', '__file__': path}})\n"
            ).encode()


def _sim_files(pkg: str, version: str, recorded: tuple = ()) -> dict:
    d = f"/usr/lib/labtui-simulation/{pkg}"
    files = {f"{d}/kube_tools_simulated.py": (SIMULATION / "kube_tools_simulated.py", 0o644),
             f"{d}/version": (version.encode() + b"\n", 0o644)}
    for name in recorded:
        files[f"{d}/{name}"] = (SIMULATION / "recorded" / name, 0o644)
    return files


def kubernetes_packages(minor: str) -> list[Pkg]:
    spec = K8S_MINORS[minor]
    pkgs = []
    for v in spec["versions"]:
        full = v + K8S_REVISION
        kubelet = {"/usr/bin/kubelet": (_wrapper("kubelet", "kubelet"), 0o755),
                   "/usr/lib/systemd/system/kubelet.service": (STANDIN / "kubelet.service", 0o644),
                   "/etc/default/kubelet": (STANDIN / "kubelet.default", 0o644),
                   "/var/lib/kubelet/.kubelet-keep": (b"", 0o644),
                   "/etc/kubernetes/manifests/.kubelet-keep": (b"", 0o644),
                   **_sim_files("kubelet", v)}
        pkgs.append(Pkg("kubelet", full, {
            "Depends": "iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), mount, util-linux, python3",
            "Section": "net", "Priority": "optional", "Homepage": "https://kubernetes.io",
            "Description": f"Node agent for Kubernetes clusters\n {SIM_NOTE}"},
            kubelet, conffiles=("/etc/default/kubelet",), scripts=_systemd_scripts("kubelet.service", start=True)))
        deps = (["cri-tools (>= 1.30.0)"] if v in KUBEADM_WITH_CRI_TOOLS else []) + ["python3"]
        kubeadm = {"/usr/bin/kubeadm": (_wrapper("kubeadm", "kubeadm"), 0o755),
                   "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (STANDIN / "10-kubeadm.conf", 0o644),
                   **_sim_files("kubeadm", v, ("kubeadm-init.txt", "kubeadm-join.txt", "kubeadm-reset.txt"))}
        reload = ("#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n"
                  "exit 0\n")
        pkgs.append(Pkg("kubeadm", full, {
            "Depends": ", ".join(deps), "Section": "admin", "Priority": "optional",
            "Homepage": "https://kubernetes.io",
            "Description": f"Command-line utility for administering a Kubernetes cluster\n {SIM_NOTE}"},
            kubeadm, scripts={"postinst": reload, "postrm": reload}))
        pkgs.append(Pkg("kubectl", full, {
            "Depends": "python3, python3-yaml", "Section": "utils", "Priority": "optional",
            "Homepage": "https://kubernetes.io",
            "Description": f"Command-line utility for interacting with a Kubernetes cluster\n {SIM_NOTE}"},
            {"/usr/bin/kubectl": (_wrapper("kubectl", "kubectl"), 0o755), **_sim_files("kubectl", v)}))
    ct = spec["cri_tools"]
    pkgs.append(Pkg("cri-tools", ct + K8S_REVISION, {
        "Depends": "python3", "Section": "utils", "Priority": "optional",
        "Homepage": "https://github.com/kubernetes-sigs/cri-tools",
        "Description": "Command-line utility for interacting with a container runtime\n "
                       "SIMULATED labtui test stand-in: crictl asks the node's real containerd (through ctr)."},
        {"/usr/bin/crictl": (_wrapper("crictl", "cri-tools"), 0o755), **_sim_files("cri-tools", ct)}))
    pkgs.append(Pkg("kubernetes-cni", spec["cni"] + K8S_REVISION, {
        "Section": "net", "Priority": "optional", "Homepage": "https://github.com/containernetworking/plugins",
        "Description": "Binaries required to provision kubernetes container networking\n "
                       "labtui test stand-in: the directories only, no CNI plugins (the simulated cluster runs no pods)."},
        {"/opt/cni/bin/.labtui-standin": (b"no CNI plugins: labtui test stand-in\n", 0o644),
         "/etc/cni/net.d/.labtui-standin": (b"", 0o644)}))
    return pkgs


def containerd_package(debs: dict[str, Path], work: Path) -> Pkg:
    extract = work / "debian-extract"
    for name, deb in debs.items():
        (extract / name).mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "-x", str(deb), str(extract / name)])
    upstream = _deb_field(debs["containerd"], "Version").split("+")[0].split("~")[0].split("-")[0]
    depends = []
    for deb in debs.values():
        for dep in _deb_field(deb, "Depends").split(","):
            dep = dep.strip()
            if dep and dep.split()[0] not in ("runc", "containerd") and dep not in depends:
                depends.append(dep)
    files = {f"/{b}": (extract / "containerd" / b, 0o755) for b in CONTAINERD_BINARIES}
    files["/usr/bin/runc"] = (extract / "runc" / "usr/sbin/runc", 0o755)
    files["/lib/systemd/system/containerd.service"] = (STANDIN / "containerd.service", 0o644)
    files["/etc/containerd/config.toml"] = (STANDIN / "containerd-config.toml", 0o644)
    carried = (f"containerd {_deb_field(debs['containerd'], 'Version')} (Debian sid) and "
               f"runc {_deb_field(debs['runc'], 'Version')} (Debian 12)")
    return Pkg("containerd.io", f"{upstream}-1~debian.12~bookworm", {
        "Depends": ", ".join(depends), "Provides": "containerd, runc", "Conflicts": "containerd, runc",
        "Replaces": "containerd, runc", "Section": "devel", "Priority": "optional",
        "Homepage": "https://containerd.io",
        "Description": "An open and reliable container runtime\n labtui test stand-in of Docker's "
                       f"containerd.io: repackages Debian's real binaries, {carried}."},
        files, conffiles=("/etc/containerd/config.toml",),
        scripts=_systemd_scripts("containerd.service", start=True),
        maintainer="labtui tests <aptrepo@labtui.test>")


# --------------------------------------------------------------------------- indexes and signatures


def _packages_entry(deb: Path, filename: str) -> str:
    control = _run(["dpkg-deb", "-f", str(deb)]).stdout.rstrip("\n")
    data = deb.read_bytes()
    return (f"{control}\nFilename: {filename}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA1: {hashlib.sha1(data).hexdigest()}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n")


def _write_index(directory: Path, rel: str, text: str) -> list[Path]:
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with open(str(path) + ".gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(text.encode())
    return [path, Path(str(path) + ".gz")]


def _release(directory: Path, indexes: list[Path], fields: dict) -> None:
    lines = [f"{k}: {v}" for k, v in fields.items()]
    lines.append("Date: " + email.utils.formatdate(usegmt=True))
    for title, algo in (("MD5Sum", hashlib.md5), ("SHA1", hashlib.sha1), ("SHA256", hashlib.sha256)):
        lines.append(f"{title}:")
        for p in indexes:
            data = p.read_bytes()
            lines.append(f" {algo(data).hexdigest()} {len(data):>16} {p.relative_to(directory)}")
    (directory / "Release").write_text("\n".join(lines) + "\n")


def _sign(directory: Path, fpr: str) -> None:
    release = directory / "Release"
    _gpg("--yes", "--local-user", fpr, "--digest-algo", "SHA512", "--clearsign",
         "-o", str(directory / "InRelease"), str(release))
    _gpg("--yes", "--local-user", fpr, "--digest-algo", "SHA512", "-abs",
         "-o", str(directory / "Release.gpg"), str(release))


# --------------------------------------------------------------------------- the whole tree


def _inputs_hash(fpr: str, debs: dict[str, Path]) -> str:
    h = hashlib.sha256(fpr.encode())
    sources = [Path(__file__).resolve(), SIMULATION / "kube_tools_simulated.py",
               *sorted((SIMULATION / "recorded").iterdir()), *sorted(STANDIN.iterdir())]
    for p in sources:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    for name, deb in sorted(debs.items()):
        h.update(f"{name}={deb.name}:{_sha256(deb)}".encode())
    return h.hexdigest()


def _build(root: Path, fpr: str, debs: dict[str, Path]) -> None:
    public = _gpg("--armor", "--export", fpr).stdout
    # pkgs.k8s.io: one flat repository per minor
    for minor in K8S_MINORS:
        repo = root / KUBERNETES_BASE / f"v{minor}" / "deb"
        repo.mkdir(parents=True)
        entries = []
        for pkg in kubernetes_packages(minor):
            deb = build_deb(pkg, repo)
            entries.append(_packages_entry(deb, f"./{deb.name}"))
        indexes = _write_index(repo, "Packages", "\n".join(entries))
        _release(repo, indexes, {"Origin": "labtui-test-standin:pkgs.k8s.io",
                                 "Label": f"labtui stand-in of isv:kubernetes:core:stable:v{minor}",
                                 "Architectures": "amd64", "Description": "labtui test stand-in, SIMULATED Kubernetes"})
        _sign(repo, fpr)
        (repo / "Release.key").write_text(public)
    # download.docker.com/linux/debian
    debian = root / DOCKER_BASE / "debian"
    dist = debian / "dists" / DOCKER_SUITE
    pool = dist / "pool" / DOCKER_COMPONENT / "amd64"  # Docker keeps its pool under dists/<suite>/
    pool.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=STATE) as work:
        deb = build_deb(containerd_package(debs, Path(work)), pool)
    entry = _packages_entry(deb, str(deb.relative_to(debian)))
    indexes = _write_index(dist, f"{DOCKER_COMPONENT}/binary-amd64/Packages", entry)
    _release(dist, indexes, {"Origin": "labtui-test-standin:download.docker.com",
                             "Label": "labtui stand-in of Docker CE", "Suite": DOCKER_SUITE,
                             "Codename": DOCKER_SUITE, "Architectures": "amd64",
                             "Components": DOCKER_COMPONENT,
                             "Description": "labtui test stand-in: containerd.io from Debian's binaries"})
    _sign(dist, fpr)
    (debian / "gpg").write_text(public)


def ensure_repos() -> RepoInfo:
    """Build (or reuse) both repositories under STATE/repo; returns where they are."""
    with _Lock(STATE / "build.lock"):
        fpr = signing_key()
        debs = debian_debs()
        digest = _inputs_hash(fpr, debs)
        root = STATE / "repo"
        stamp = STATE / "repo.inputs"
        if not (root.is_dir() and stamp.exists() and stamp.read_text().strip() == digest):
            tmp = STATE / "repo.new"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                _build(tmp, fpr, debs)
            finally:
                _stop_agent()
            old = STATE / "repo.old"
            shutil.rmtree(old, ignore_errors=True)
            if root.exists():
                root.rename(old)
            tmp.rename(root)
            shutil.rmtree(old, ignore_errors=True)
            stamp.write_text(digest + "\n")
        _calico_manifests(root)
        return RepoInfo(root=root, kubernetes_base=KUBERNETES_BASE, docker_base=DOCKER_BASE, key_fingerprint=fpr)


# --------------------------------------------------------------------------- serving


class _Handler(http.server.SimpleHTTPRequestHandler):
    log_file = None

    def log_message(self, fmt, *args):  # to STATE/http.log, not the test's stderr
        if self.log_file:
            with open(self.log_file, "a") as fh:
                fh.write("%s - %s\n" % (self.address_string(), fmt % args))


class RepoServer:
    """The repositories over HTTP (a ThreadingHTTPServer in a daemon thread)."""

    def __init__(self, info: RepoInfo, host: str, port: int):
        handler = functools.partial(_Handler, directory=str(info.root))
        _Handler.log_file = str(STATE / "http.log")
        try:
            self.httpd = http.server.ThreadingHTTPServer((host, port), handler)
        except OSError:
            self.httpd = http.server.ThreadingHTTPServer((host, 0), handler)  # port busy: any free one
        self.httpd.daemon_threads = True
        self.info, self.host, self.port = info, host, self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="aptrepo-http", daemon=True)
        self.thread.start()

    def url(self, address: str = "127.0.0.1") -> str:
        return f"http://{address}:{self.port}"

    def kubernetes_repo(self, address: str = "127.0.0.1") -> str:
        """The plan's kubernetes_repo for a machine reaching the host at `address` (the gateway)."""
        return self.info.kubernetes_repo(self.url(address))

    def docker_repo(self, address: str = "127.0.0.1") -> str:
        """The plan's docker_repo for a machine reaching the host at `address`."""
        return self.info.docker_repo(self.url(address))

    def calico_manifests(self, address: str = "127.0.0.1") -> str:
        """The plan's calico_manifests for a machine reaching the host at `address`."""
        return self.info.calico_manifests(self.url(address))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def serve(host: str = "0.0.0.0", port: int = DEFAULT_PORT, info: RepoInfo | None = None) -> RepoServer:
    return RepoServer(info or ensure_repos(), host, port)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "build"
    info = ensure_repos()
    print(json.dumps({**dataclasses.asdict(info), "root": str(info.root)}, indent=2))
    if cmd == "serve":
        srv = serve(port=int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_PORT, info=info)
        print(f"serving {info.root} at {srv.url('0.0.0.0')}: kubernetes_repo={srv.kubernetes_repo('<gateway>')} "
              f"docker_repo={srv.docker_repo('<gateway>')}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            srv.close()
