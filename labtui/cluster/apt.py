"""What runs apt on a node, and where the packages come from: pkgs.k8s.io (one repository per
minor) for kubeadm, kubelet, kubectl and cri-tools; containerd from the distribution or Docker.

Every script a node runs here starts with `node_prelude`:
- it waits for cloud-init (`cloud-init status --wait`; exit 2 is "done with recoverable errors",
  cloud-init doc/rtd/reference/cli.rst, and counts as done; no cloud-init: nothing to wait for), so
  labtui's apt never races cloud-init's runcmd apt nor its `containerd config default > config.toml`;
- it writes (or removes) apt's proxy file and exports the proxy for curl;
and every apt-get (`apt_get`) waits up to 10 minutes for the dpkg lock (`-o DPkg::Lock::Timeout=600`,
apt >= 1.9; unattended-upgrades holds it on first boot) and answers dpkg's conffile question
explicitly (stdin is closed over SSH, so dpkg would stop with "end of file on stdin at conffile
prompt"): `--force-confdef --force-confold` (keep the admin's file) unless the install says otherwise.

User-typed values (repository URLs, the proxy) reach the shell only through shlex.quote.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

# the upstream locations: one definition, the plan's sources defaults (labtui.model)
from labtui.model import DEFAULT_DOCKER_REPO, DEFAULT_KUBERNETES_REPO

KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
SOURCE_LIST = "/etc/apt/sources.list.d/kubernetes.list"
# cri-tools (crictl) with the kube packages: kubeadm's package stopped depending on it
# (kubernetes/kubeadm#3064: "1.32 decouple the kubeadm package from the cri-tools package in
# k/release", kubernetes/release#3626; release note of kubernetes/kubernetes#124685: "installing
# `kubeadm` will no longer automatically ensure installation of `crictl`")
PACKAGES = ("kubelet", "kubeadm", "kubectl")
HELD = PACKAGES + ("cri-tools",)
APT_PROXY_FILE = "/etc/apt/apt.conf.d/95labtui-proxy"
LOCK_TIMEOUT = 600

_MINOR = re.compile(r"^1\.\d{2}$")

# dpkg's answer to a changed conffile (dpkg(1) --force-confdef/--force-confold/--force-confnew)
CONF_KEEP = "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
CONF_NEW = "-o Dpkg::Options::=--force-confnew"


def check_minor(minor: str) -> str:
    if not _MINOR.match(minor or ""):
        raise ValueError(f"{minor!r} is not a Kubernetes minor such as 1.36")
    return minor


def apt_get(args: str, *, conffiles: str = CONF_KEEP) -> str:
    """One apt-get command line: the dpkg lock waited for, conffile questions answered."""
    dpkg = conffiles if args.split()[0] in ("install", "remove", "purge", "upgrade", "dist-upgrade") else ""
    return " ".join(x for x in ("apt-get", f"-o DPkg::Lock::Timeout={LOCK_TIMEOUT}", dpkg, args) if x)


# --------------------------------------------------------------------------- cloud-init, proxy

# cloud-init status --wait: 0 done, 2 done with recoverable errors (deprecated keys, a module
# warning), 1 an error (cloud-init doc/rtd/reference/cli.rst, "status"). The wait is there so that
# apt does not race cloud-init's own apt and writes: once it returns, cloud-init is finished either
# way. An error is told (with where to read it) and the build goes on; what the build needs from the
# node is checked by its own steps (the preflight reads modules, sysctls and swap itself).
CLOUD_INIT_WAIT = (
    "if command -v cloud-init >/dev/null 2>&1; then "
    "rc=0; cloud-init status --wait >/dev/null 2>&1 || rc=$?; "
    "if [ $rc -ne 0 ] && [ $rc -ne 2 ]; then "
    "echo \"warning: cloud-init finished with errors (exit $rc; see /var/log/cloud-init-output.log); "
    "it is done, so the build goes on\" >&2; fi; fi"
)


def proxy_settings(plan: Any) -> dict[str, str] | None:
    """{"http_proxy", "no_proxy"} for the plan's nodes, or None without a proxy. NO_PROXY always
    holds localhost, the node subnet, the pod and service CIDRs and the cluster's DNS suffixes, so
    the kubelet, containerd and kubeadm talk to the cluster directly."""
    src = getattr(plan, "sources", None)
    url = (getattr(src, "http_proxy", None) or "").strip() if src is not None else ""
    if not url:
        return None
    hosts = ["localhost", "127.0.0.1", str(plan.node_subnet), str(plan.pod_cidr), str(plan.service_cidr),
             ".svc", ".cluster.local"]
    for h in (getattr(src, "no_proxy", None) or "").replace(" ", "").split(","):
        if h and h not in hosts:
            hosts.append(h)
    direct = []
    for repo in (getattr(src, "kubernetes_repo", None), getattr(src, "docker_repo", None)):
        host = urlsplit(repo or "").hostname
        if host and host not in direct and _bypassed(host, hosts):
            direct.append(host)
    return {"http_proxy": url, "no_proxy": ",".join(hosts), "direct": ",".join(direct)}


def _bypassed(host: str, no_proxy: list[str]) -> bool:
    """Whether curl's NO_PROXY rules send `host` direct: an exact name or address, a domain suffix
    (.example.org or example.org), or an address inside a CIDR."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    for entry in no_proxy:
        if addr is not None and "/" in entry:
            try:
                if addr in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        elif host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")):
            return True
    return False


def apt_proxy_conf(url: str, direct: str = "") -> str:
    """apt's proxy, and DIRECT for the repository hosts NO_PROXY covers: apt reads no NO_PROXY, but
    takes a per-host proxy, the keyword DIRECT meaning none (apt.conf(5), "http::Proxy::<host>").
    A mirror inside the lab network is then reached directly, as curl reaches it, instead of through a
    proxy that may refuse its port (apt-cacher-ng's AllowUserPorts is 80 by default)."""
    lines = [f'Acquire::http::Proxy "{url}";', f'Acquire::https::Proxy "{url}";']
    for host in filter(None, direct.split(",")):
        lines += [f'Acquire::http::Proxy::{host} "DIRECT";', f'Acquire::https::Proxy::{host} "DIRECT";']
    return "\n".join(lines) + "\n"


def node_prelude(proxy: dict[str, str] | None) -> list[str]:
    """The lines every apt-running script starts with (see the module's doc)."""
    lines = ["set -e", "export DEBIAN_FRONTEND=noninteractive", CLOUD_INIT_WAIT]
    if proxy:
        url, no = proxy["http_proxy"], proxy.get("no_proxy", "")
        lines.append(f"printf '%s' {shlex.quote(apt_proxy_conf(url, proxy.get('direct', '')))} > {APT_PROXY_FILE}")
        lines.append(f"export http_proxy={shlex.quote(url)} https_proxy={shlex.quote(url)} "
                     f"no_proxy={shlex.quote(no)} HTTPS_PROXY={shlex.quote(url)} NO_PROXY={shlex.quote(no)}")
    else:
        lines.append(f"rm -f {APT_PROXY_FILE}")
    return lines


# --------------------------------------------------------------------------- pkgs.k8s.io


def repo_url(minor: str, base: str = DEFAULT_KUBERNETES_REPO) -> str:
    return f"{base.rstrip('/')}/v{check_minor(minor)}/deb/"


def key_url(minor: str, base: str = DEFAULT_KUBERNETES_REPO) -> str:
    return repo_url(minor, base) + "Release.key"


def source_line(minor: str, base: str = DEFAULT_KUBERNETES_REPO) -> str:
    return f"deb [signed-by={KEYRING}] {repo_url(minor, base)} /"


def repr_version(minor: str) -> str:
    """The apt version glob that pins the minor (`1.36.*`)."""
    return f"{check_minor(minor)}.*"


def install_script(minor: str, *, repo: str = DEFAULT_KUBERNETES_REPO, proxy: dict[str, str] | None = None) -> str:
    """The commands (run as root) that install the pinned packages of `minor` with cri-tools and
    hold them. A held package of another minor (the plan changed after cloud-init installed one)
    is unheld first and changed with --allow-change-held-packages (apt refuses otherwise: "Held
    packages were changed and -y was used without --allow-change-held-packages")."""
    pins = " ".join(shlex.quote(f"{p}={repr_version(minor)}") for p in PACKAGES)
    held = " ".join(HELD)
    return "\n".join(node_prelude(proxy) + [
        apt_get("update -q"),
        apt_get("install -y -q apt-transport-https ca-certificates curl gpg"),
        "mkdir -p -m 755 /etc/apt/keyrings",
        f"curl -fsSL {shlex.quote(key_url(minor, repo))} | gpg --dearmor --yes -o {KEYRING}",
        f"echo {shlex.quote(source_line(minor, repo))} > {SOURCE_LIST}",
        apt_get("update -q"),
        f"apt-mark unhold {held} >/dev/null 2>&1 || true",
        apt_get(f"install -y -q --allow-change-held-packages {pins} cri-tools"),
        f"apt-mark hold {held}",
        "systemctl enable --now kubelet",
    ])


def installed_check(minor: str) -> str:
    """Exit 0 when the tools of `minor` and crictl are installed and held, and the kubelet is enabled."""
    m = check_minor(minor)
    return " && ".join([
        f"kubeadm version -o short 2>/dev/null | grep -q '^v{m}\\.'",
        f"kubelet --version 2>/dev/null | grep -q ' v{m}\\.'",
        f"kubectl version --client 2>/dev/null | grep -q 'v{m}\\.'",
        "command -v crictl >/dev/null",
        f"[ \"$(apt-mark showhold | grep -cE '^({'|'.join(HELD)})$')\" = {len(HELD)} ]",
        "systemctl is-enabled --quiet kubelet",
    ])


def packages_state() -> str:
    """A read-only command printing what `install_script` changes (labtui's apt source and key, the
    packages and their holds): the same before and after a failed install means it left nothing."""
    pkgs = " ".join(HELD)
    return (f"for f in {SOURCE_LIST} {KEYRING}; do [ ! -e $f ] || echo $f: $(md5sum < $f); done; "
            f"dpkg-query -W -f='${{db:Status-Abbrev}} ${{Package}} ${{Version}}\\n' {pkgs} 2>/dev/null "
            "| grep '^.i'; apt-mark showhold 2>/dev/null | sed 's/^/held /'")


def remove_script() -> str:
    pkgs = " ".join(HELD)
    return f"apt-mark unhold {pkgs} && {apt_get('remove -y ' + pkgs)} && rm -f {SOURCE_LIST} {KEYRING}"


# --------------------------------------------------------------------------- containerd's source

DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc"
DOCKER_LIST = "/etc/apt/sources.list.d/docker.list"


def containerd_policy_script(proxy: dict[str, str] | None = None) -> str:
    """What the node's apt would install as containerd (read after cloud-init and `apt-get update`)."""
    return "\n".join(node_prelude(proxy) + [f"{apt_get('update -q')} >/dev/null", "apt-cache policy containerd"])


def containerd_needed(minor: str) -> tuple[int, int]:
    """The oldest containerd for a Kubernetes minor: 2.0 from 1.36 on ("The last Kubernetes release
    to offer this support will be v1.35", facts/domain.md 3.1), 1.7 for 1.35 (the oldest containerd
    release still maintained, facts/domain.md 3.1 and research-2026-12.md 6)."""
    return (2, 0) if tuple(int(x) for x in check_minor(minor).split(".")) >= (1, 36) else (1, 7)


def policy_candidate(text: str) -> str | None:
    """The `Candidate:` of `apt-cache policy PKG` ((none) or missing: None)."""
    m = re.search(r"^\s*Candidate:\s*(\S+)", text or "", re.M)
    return m.group(1) if m and m.group(1) != "(none)" else None


def containerd_source(candidate: str | None, minor: str) -> str:
    """'distribution' when the node's apt candidate for containerd is new enough for `minor`,
    else 'docker' (containerd.io from Docker's repository)."""
    if not candidate:
        return "docker"
    return "distribution" if version_tuple(candidate.split(":", 1)[-1]) >= containerd_needed(minor) else "docker"


def containerd_install_script(source: str, os_id: str, *, docker_repo: str = DEFAULT_DOCKER_REPO,
                              proxy: dict[str, str] | None = None) -> str:
    """Install containerd. Docker's containerd.io Conflicts/Replaces Debian's containerd, whose
    package owns /etc/containerd/config.toml as a conffile that cloud-init rewrote: dpkg then asks
    (docker/containerd-packaging debian/control; kubermatic/operating-system-manager#406). labtui
    writes that file itself right after from `containerd config default`, so the package's version
    is taken (--force-confnew): nothing of the old file is needed, and the file stays a plain
    conffile of containerd.io."""
    if source == "distribution":
        return "\n".join(node_prelude(proxy) + [apt_get("update -q"), apt_get("install -y -q containerd")])
    distro = "debian" if os_id == "debian" else "ubuntu"
    base = f"{docker_repo.rstrip('/')}/{distro}"
    return "\n".join(node_prelude(proxy) + [
        apt_get("update -q"),
        apt_get("install -y -q ca-certificates curl"),
        "mkdir -p -m 755 /etc/apt/keyrings",
        f"curl -fsSL {shlex.quote(base + '/gpg')} -o {DOCKER_KEYRING}",
        f"chmod a+r {DOCKER_KEYRING}",
        f"echo {shlex.quote(f'deb [signed-by={DOCKER_KEYRING}] {base} ')}\"$(. /etc/os-release && echo "
        f"$VERSION_CODENAME)\"' stable' > {DOCKER_LIST}",
        apt_get("update -q"),
        apt_get("install -y -q containerd.io", conffiles=CONF_NEW),
    ])


def version_tuple(version: str) -> tuple[int, int]:
    m = re.match(r"v?(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
