"""Where kubeadm, kubelet and kubectl come from: pkgs.k8s.io, one repository per minor."""

from __future__ import annotations

import re

KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
SOURCE_LIST = "/etc/apt/sources.list.d/kubernetes.list"
PACKAGES = ("kubelet", "kubeadm", "kubectl")

_MINOR = re.compile(r"^1\.\d{2}$")


def check_minor(minor: str) -> str:
    if not _MINOR.match(minor or ""):
        raise ValueError(f"{minor!r} is not a Kubernetes minor such as 1.36")
    return minor


def repo_url(minor: str) -> str:
    return f"https://pkgs.k8s.io/core:/stable:/v{check_minor(minor)}/deb/"


def key_url(minor: str) -> str:
    return repo_url(minor) + "Release.key"


def source_line(minor: str) -> str:
    return f"deb [signed-by={KEYRING}] {repo_url(minor)} /"


def install_script(minor: str) -> str:
    """The commands (run as root) that install the pinned packages of `minor` and hold them."""
    pkgs = " ".join(PACKAGES)
    return "\n".join([
        "set -e",
        "export DEBIAN_FRONTEND=noninteractive",
        "apt-get update -q",
        "apt-get install -y -q apt-transport-https ca-certificates curl gpg",
        "mkdir -p -m 755 /etc/apt/keyrings",
        f"curl -fsSL {key_url(minor)} | gpg --dearmor --yes -o {KEYRING}",
        f"echo '{source_line(minor)}' > {SOURCE_LIST}",
        "apt-get update -q",
        f"apt-get install -y -q {' '.join(f'{p}=' + repr_version(minor) for p in PACKAGES)}",
        f"apt-mark hold {pkgs}",
        "systemctl enable --now kubelet",
    ])


def repr_version(minor: str) -> str:
    """The apt version glob that pins the minor (`1.36.*`)."""
    return f"{check_minor(minor)}.*"


def installed_check(minor: str) -> str:
    """Exit 0 when the three tools of `minor` are installed and held, and the kubelet is enabled."""
    m = check_minor(minor)
    return " && ".join([
        f"kubeadm version -o short 2>/dev/null | grep -q '^v{m}\\.'",
        f"kubelet --version 2>/dev/null | grep -q ' v{m}\\.'",
        f"kubectl version --client 2>/dev/null | grep -q 'v{m}\\.'",
        "[ \"$(apt-mark showhold | grep -cE '^(kubelet|kubeadm|kubectl)$')\" = 3 ]",
        "systemctl is-enabled --quiet kubelet",
    ])


def remove_script() -> str:
    pkgs = " ".join(PACKAGES)
    return f"apt-mark unhold {pkgs} && apt-get remove -y {pkgs} && rm -f {SOURCE_LIST} {KEYRING}"


# --------------------------------------------------------------------------- containerd's source

DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc"
DOCKER_LIST = "/etc/apt/sources.list.d/docker.list"
# the containerd each distribution ships (major.minor), facts/domain.md 3.1
DISTRO_CONTAINERD = {("ubuntu", "22.04"): (1, 7), ("ubuntu", "24.04"): (2, 2), ("debian", "12"): (1, 6),
                     ("debian", "13"): (1, 7)}


def containerd_needed(minor: str) -> tuple[int, int]:
    """The oldest containerd for a Kubernetes minor: 2.0 from 1.36 on (1.x support ended with 1.35)."""
    return (2, 0) if tuple(int(x) for x in check_minor(minor).split(".")) >= (1, 36) else (1, 7)


def containerd_source(os_id: str, os_version: str, minor: str) -> str:
    """'distribution' when the distribution's containerd is new enough for `minor`, else 'docker'
    (containerd.io from Docker's repository)."""
    have = DISTRO_CONTAINERD.get((os_id, os_version))
    return "distribution" if have is not None and have >= containerd_needed(minor) else "docker"


def containerd_install_script(source: str, os_id: str) -> str:
    if source == "distribution":
        return "export DEBIAN_FRONTEND=noninteractive\napt-get update -q\napt-get install -y -q containerd"
    distro = "debian" if os_id == "debian" else "ubuntu"
    return "\n".join([
        "set -e",
        "export DEBIAN_FRONTEND=noninteractive",
        "apt-get update -q",
        "apt-get install -y -q ca-certificates curl",
        "mkdir -p -m 755 /etc/apt/keyrings",
        f"curl -fsSL https://download.docker.com/linux/{distro}/gpg -o {DOCKER_KEYRING}",
        f"chmod a+r {DOCKER_KEYRING}",
        f'echo "deb [signed-by={DOCKER_KEYRING}] https://download.docker.com/linux/{distro} '
        f'$(. /etc/os-release && echo $VERSION_CODENAME) stable" > {DOCKER_LIST}',
        "apt-get update -q",
        "apt-get install -y -q containerd.io",
    ])


def version_tuple(version: str) -> tuple[int, int]:
    m = re.match(r"v?(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
