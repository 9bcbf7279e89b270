"""Pure logic of the Provision stage (no I/O): names and tags, image and flavor choice, quota
arithmetic, the security group's rules (from the requirements engine), cloud-init user-data and
the host-key fingerprints cloud-init prints on the console.

Everything here takes plain data and returns plain data, so it is unit-tested without a cloud.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

# ----------------------------------------------------------------------------- names and tags

TAG_PREFIX = "labtui-lab:"


def lab_tag(lab: str) -> str:
    """The tag every resource this lab creates carries (Nova allows 60 characters, no ',' or '/')."""
    return f"{TAG_PREFIX}{lab}"[:60]


def prefix(lab: str) -> str:
    return f"labtui-{lab}"


@dataclass(frozen=True)
class Names:
    lab: str

    @property
    def network(self) -> str:
        return f"{prefix(self.lab)}-net"

    @property
    def subnet(self) -> str:
        return f"{prefix(self.lab)}-subnet"

    @property
    def router(self) -> str:
        return f"{prefix(self.lab)}-router"

    @property
    def group(self) -> str:
        return prefix(self.lab)

    @property
    def keypair(self) -> str:
        return prefix(self.lab)

    def server(self, node: str) -> str:
        return f"{prefix(self.lab)}-{node}"

    def port(self, node: str) -> str:
        return f"{prefix(self.lab)}-{node}"

    def floating_ip(self, node: str) -> str:
        return f"{prefix(self.lab)}-{node}-fip"


DESCRIPTION = "created by labtui for lab {lab}"


# ----------------------------------------------------------------------------- images

PREFERRED = [("ubuntu", "24.04"), ("ubuntu", "22.04"), ("debian", "12")]
DEFAULT_USERS = {"ubuntu": "ubuntu", "debian": "debian", "centos": "centos", "rocky": "rocky",
                 "almalinux": "almalinux", "fedora": "fedora", "cirros": "cirros", "rhel": "cloud-user",
                 "opensuse": "opensuse", "sles": "sles", "flatcar": "core", "coreos": "core"}


@dataclass
class ImageInfo:
    id: str
    name: str
    status: str = "active"
    properties: dict[str, Any] = field(default_factory=dict)
    min_ram: int = 0
    min_disk: int = 0

    @property
    def distro(self) -> str | None:
        d = str(self.properties.get("os_distro") or "").lower()
        if d:
            return d
        low = self.name.lower()
        for known in DEFAULT_USERS:
            if known in low:
                return known
        return None

    @property
    def version(self) -> str | None:
        v = str(self.properties.get("os_version") or "").strip()
        if v:
            return v
        m = re.search(r"(\d{2}\.\d{2}|\b\d{1,2}\b)", self.name.replace("-", " ").replace("_", " "))
        if m:
            return m.group(1)
        codenames = {"noble": "24.04", "jammy": "22.04", "focal": "20.04", "bookworm": "12", "bullseye": "11"}
        for code, ver in codenames.items():
            if code in self.name.lower():
                return ver
        return None

    @property
    def label(self) -> str:
        what = " ".join(x for x in (self.distro, self.version) if x)
        return f"{self.name} ({what})" if what else self.name


def image_rank(img: ImageInfo) -> int:
    """0 = best. Ubuntu 24.04, 22.04, Debian 12, then other Ubuntu/Debian, then the rest."""
    for i, (d, v) in enumerate(PREFERRED):
        if img.distro == d and img.version == v:
            return i
    if img.distro in ("ubuntu", "debian"):
        return len(PREFERRED)
    return len(PREFERRED) + 1


def usable_images(images: Iterable[ImageInfo]) -> list[ImageInfo]:
    """Active images, best first (the others are still shown, after the preferred ones)."""
    return sorted((i for i in images if i.status == "active"), key=lambda i: (image_rank(i), i.name))


def guess_login_user(img: ImageInfo) -> str:
    """The image's default login: its metadata (os_admin_user, default_user) else by distribution."""
    for key in ("os_admin_user", "default_user", "ssh_user", "os_login_user"):
        value = img.properties.get(key)
        if value:
            return str(value)
    return DEFAULT_USERS.get(img.distro or "", "ubuntu")


def supports_packages(img: ImageInfo) -> bool:
    """cloud-init can install containerd and kubeadm with apt on Ubuntu and Debian images."""
    return img.distro in ("ubuntu", "debian")


# ----------------------------------------------------------------------------- flavors

# kubeadm's preflight checks (NumCPU, Mem) and what the issue asks for the labs
MINIMUM = {"control-plane": (2, 2048), "worker": (1, 1024)}


@dataclass
class FlavorInfo:
    id: str
    name: str
    vcpus: int
    ram: int  # MB
    disk: int = 0

    @property
    def label(self) -> str:
        return f"{self.name} ({self.vcpus} vCPU, {self.ram} MB RAM, {self.disk} GB disk)"


def flavor_problem(flavor: FlavorInfo, role: str) -> str | None:
    """Why `flavor` cannot run this role, in kubeadm's own words; None when it can."""
    cpus, ram = MINIMUM["control-plane" if role == "control-plane" else "worker"]
    if flavor.vcpus < cpus:
        return (f"flavor {flavor.name} has {flavor.vcpus} vCPU: kubeadm refuses it for a {role} "
                f"(\"the number of available CPUs {flavor.vcpus} is less than the required {cpus}\")")
    if flavor.ram < ram:
        return (f"flavor {flavor.name} has {flavor.ram} MB RAM: kubeadm refuses it for a {role} "
                f"(\"the system RAM ({flavor.ram} MB) is less than the minimum {ram} MB\")")
    return None


# The root disk a node needs. Nova refuses an image-backed server on a disk=0 flavor to non-admins: policy
# `os_compute_api:servers:create:zero_disk_flavor` defaults to admin only (nova/policies/servers.py;
# "Only volume-backed servers are allowed for flavors with zero disk"). And a node's disk holds the OS, the
# container images of kubeadm and Calico (about 2 GB) and the kubelet's image store, whose garbage
# collection starts at 85 % full and whose eviction at 15 % free (kubelet defaults): below about 20 GB a lab
# node soon evicts its own pods.
MIN_DISK_GB = 20
DISK_WHY = (f"a node needs a root disk of {MIN_DISK_GB} GB or more (the OS, the Kubernetes and Calico images, "
            "and room before the kubelet starts evicting pods)")
ZERO_DISK_WHY = ("its disk is 0 GB: Nova boots such a flavor only from a volume, and its default policy "
                 "(os_compute_api:servers:create:zero_disk_flavor) refuses that to non-admin users")


def flavor_disk_problem(flavor: FlavorInfo) -> tuple[str | None, str | None]:
    """(error, warning) about the flavor's root disk: 0 GB is refused, under MIN_DISK_GB is a warning
    (a flavor the user named is theirs to choose)."""
    if flavor.disk <= 0:
        return f"flavor {flavor.name}: {ZERO_DISK_WHY}", None
    if flavor.disk < MIN_DISK_GB:
        return None, f"flavor {flavor.name} has a {flavor.disk} GB disk: {DISK_WHY}"
    return None, None


def choose_flavor(flavors: Iterable[FlavorInfo], role: str) -> FlavorInfo | None:
    """The smallest flavor that is big enough for the role: kubeadm's CPU and RAM, and a root disk of
    at least MIN_DISK_GB (disk=0 flavors never: see ZERO_DISK_WHY)."""
    fit = [f for f in flavors if flavor_problem(f, role) is None and f.disk >= MIN_DISK_GB]
    return min(fit, key=lambda f: (f.vcpus, f.ram, f.disk, f.name)) if fit else None


def no_flavor_reason(flavors: Iterable[FlavorInfo], role: str) -> str:
    """Why choose_flavor found nothing: the flavors left out by CPU/RAM and by disk, counted."""
    flavors = list(flavors)
    big = [f for f in flavors if flavor_problem(f, role) is None]
    zero = [f.name for f in big if f.disk <= 0]
    small = [f"{f.name} ({f.disk} GB)" for f in big if 0 < f.disk < MIN_DISK_GB]
    cpus, ram = MINIMUM["control-plane" if role == "control-plane" else "worker"]
    parts = [f"{len(flavors) - len(big)} with fewer than {cpus} vCPU or {ram} MB RAM (kubeadm's minimum)"]
    if zero:
        parts.append(f"{', '.join(zero)} with a 0 GB disk (Nova boots those only from a volume, for admins)")
    if small:
        parts.append(f"{', '.join(small)} with less than {MIN_DISK_GB} GB disk")
    return "no flavor fits a " + role + ": " + "; ".join(parts)


# ----------------------------------------------------------------------------- quotas


@dataclass(frozen=True)
class Shortfall:
    quota: str  # the quota's name as the cloud calls it
    label: str
    need: int
    left: int

    def message(self) -> str:
        return f"quota {self.quota} ({self.label}): the plan needs {self.need} more, {self.left} left"


QUOTA_LABELS = {
    "instances": "servers", "cores": "vCPUs", "ram": "RAM in MB", "key_pairs": "keypairs",
    "networks": "networks", "subnets": "subnets", "routers": "routers", "ports": "ports",
    "floating_ips": "floating IPs", "security_groups": "security groups",
    "security_group_rules": "security-group rules", "volumes": "volumes", "gigabytes": "volume GB",
}


def quota_shortfalls(needs: dict[str, int], left: dict[str, int | None]) -> list[Shortfall]:
    """Each quota the plan needs more of than is left (None / negative limit = unlimited)."""
    out = []
    for name, need in needs.items():
        if need <= 0:
            continue
        have = left.get(name)
        if have is None:
            continue
        if need > have:
            out.append(Shortfall(name, QUOTA_LABELS.get(name, name), need, max(have, 0)))
    return out


def shortfall_hint(shortfalls: list[Shortfall]) -> str:
    names = {s.quota for s in shortfalls}
    tips = []
    if names & {"cores", "ram"}:
        tips.append("choose smaller flavors")
    if names & {"instances", "cores", "ram", "ports", "floating_ips"}:
        tips.append("plan fewer workers")
    if names & {"networks", "subnets", "routers"}:
        tips.append("use an existing network (provision.network in the plan)")
    if "floating_ips" in names:
        tips.append("provision without a floating IP (no external network)")
    tips.append("or ask the cloud admin to raise the quota")
    return "; ".join(tips)


# ----------------------------------------------------------------------------- security group rules


@dataclass(frozen=True)
class RuleSpec:
    """One ingress rule of the lab's own group, with the requirement it comes from (its command and API
    body are those of the one rule shape: labtui.net.fixes.lab_rule_fix)."""

    requirement: str
    reason: str
    protocol: str | None
    port_min: int | None = None
    port_max: int | None = None
    remote: str = "group"  # "group" (the group itself) | "cidr"
    cidr: str | None = None

    @property
    def key(self) -> str:
        ports = "" if self.port_min is None else f"-{self.port_min}-{self.port_max}"
        src = "group" if self.remote == "group" else (self.cidr or "")
        return f"{self.protocol or 'any'}{ports}-from-{src}"

    @property
    def what(self) -> str:
        p = {"4": "IP protocol 4", None: "any protocol"}.get(self.protocol, (self.protocol or "").upper())
        if self.port_min is not None:
            p += f" {self.port_min}" + (f"-{self.port_max}" if self.port_max not in (None, self.port_min) else "")
        return p


ANY = "0.0.0.0/0"


def rules_for(requirements: Iterable[Any], ssh_cidr: str, pod_cidr: str | None) -> list[RuleSpec]:
    """The group's rules for the requirements `labtui.net.requirements.derive_requirements` returned.

    Between nodes: from the group itself (the incident's `--protocol 4 --remote-group SG SG`;
    protocol "4" exactly as the requirement spells it, never "ipip"). From the pod CIDR: a CIDR rule.
    SSH: from `ssh_cidr`. Requirements no node pair needs (etcd with one control plane) get no rule."""
    out: list[RuleSpec] = []
    seen: set[str] = set()
    for req in requirements:
        if getattr(req, "kind", None) != "rule":
            continue
        if req.source == "anywhere":
            spec = RuleSpec(req.id, req.reason, req.protocol, req.port_min, req.port_max, "cidr", ssh_cidr)
        elif req.source == "pod-cidr":
            if not req.pairs or not pod_cidr:
                continue
            spec = RuleSpec(req.id, req.reason, req.protocol, req.port_min, req.port_max, "cidr", pod_cidr)
        else:
            if not req.pairs:
                continue
            spec = RuleSpec(req.id, req.reason, req.protocol, req.port_min, req.port_max, "group")
        if spec.key not in seen:
            seen.add(spec.key)
            out.append(spec)
    return out


def pairs_cidr(requirements: Iterable[Any]) -> str | None:
    """The CIDR the ports must allow as an allowed-address-pair (unencapsulated pod traffic), if any."""
    for req in requirements:
        if getattr(req, "kind", None) == "pairs" and req.nodes and req.cidr:
            return req.cidr
    return None


def ssh_cidr_problem(cidr: str) -> tuple[str | None, str | None]:
    """(error, warning) for the SSH source CIDR the user gave."""
    try:
        net = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return f"{cidr!r} is not a CIDR", None
    if net.version != 4:
        return f"{cidr} is IPv6; the lab's rules are IPv4", None
    if net.prefixlen == 0:
        return None, ("SSH from 0.0.0.0/0 opens port 22 of every node to the whole internet; "
                      "give your own address (e.g. 203.0.113.7/32) unless the cloud is private")
    return None, None


# RFC 1918 private ranges and RFC 6598 carrier-grade NAT: an address in them is translated on its way out
NAT_RANGES = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")]


def behind_nat(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == 4 and any(ip in n for n in NAT_RANGES)


def nat_warning(mine: str, external_cidrs: Iterable[str]) -> str | None:
    """The warning for the SSH source labtui guessed (`mine`, the local address toward the cloud) when it
    is private (RFC 1918 / CGNAT) and the cloud's external network is not: behind NAT the packets reach the
    cloud from the NAT's public address, and Neutron matches a rule's remote_ip_prefix against the source
    it sees, so port 22 opened only to `mine` lets nobody in. None when both sides are private (a private
    cloud reached without NAT) or the external network's range is unknown and `mine` is public."""
    if not behind_nat(mine):
        return None
    cidrs = [c for c in external_cidrs if c]
    if cidrs and all(any(ipaddress.ip_network(c, strict=False).subnet_of(n) for n in NAT_RANGES)
                     for c in cidrs if ipaddress.ip_network(c, strict=False).version == 4):
        return None
    where = f" (external network {', '.join(cidrs)})" if cidrs else ""
    return (f"SSH source: your address as labtui sees it is {mine}, a private address, and the cloud{where} is "
            f"not on a private network: behind NAT the cloud sees your public address instead, so port 22 would "
            f"open only to {mine}/32 and SSH to the floating IP would time out. Set provision.ssh_cidr to your "
            "public address (e.g. the address `curl -s https://ifconfig.me` prints, as a.b.c.d/32), in the plan "
            "file or the plan wizard's Machines step (SSH source)")


# ----------------------------------------------------------------------------- cloud-init


K8S_SYSCTL = ("net.bridge.bridge-nf-call-iptables = 1\n"
              "net.bridge.bridge-nf-call-ip6tables = 1\n"
              "net.ipv4.ip_forward = 1\n")


def render_user_data(lab: str, node: str, *, packages: bool = True, http_proxy: str | None = None) -> str:
    """cloud-config that prepares a node for kubeadm: swap off, overlay and br_netfilter, the sysctls,
    /etc/hosts managed (the node's name resolves to itself), apt through the plan's proxy, and the SSH
    host key fingerprints on the console (labtui pins them before its first connection).

    It installs no packages: labtui's Kubernetes stage installs containerd and kubeadm/kubelet/kubectl
    itself, from the plan's sources. A cloud-init apt-get in runcmd raced labtui's own apt for the dpkg
    lock, installed Debian 12's containerd 1.6 (whose conffile then stopped the containerd.io install at
    dpkg's question) and rewrote /etc/containerd/config.toml behind labtui's back (audit F4, F7, F18).

    `packages`: the image uses apt (Ubuntu, Debian): only then is the apt proxy written.
    `http_proxy`: the plan's sources.http_proxy, as cloud-init's `apt: {proxy: ...}` (cc_apt_configure;
    schema-cloud-config-v1.json at cloud-init 04eacd0: apt.proxy, "Alias for defining a http APT proxy"),
    so apt on the node goes through it from the first boot on."""
    lines = [
        "#cloud-config",
        f"# labtui: lab {lab}, node {node}: prepared for kubeadm (labtui installs the packages itself)",
        f"hostname: {node}",
        # cc_update_etc_hosts: /etc/hosts from cloud-init's template, so `hostname` resolves on the node
        # (kubeadm's preflight looks the node name up); schema: manage_etc_hosts true | "template" | "localhost"
        "manage_etc_hosts: true",
        "ssh_pwauth: false",
        "ssh:",
        "  emit_keys_to_console: true",
        "ssh_fp_console_blacklist: []",
        "ssh_key_console_blacklist: []",
    ]
    if http_proxy and packages:
        lines += ["apt:", "  proxy: " + _yaml_str(http_proxy)]
    lines += [
        "write_files:",
        "  - path: /etc/modules-load.d/k8s.conf",
        "    content: |",
        "      overlay",
        "      br_netfilter",
        "  - path: /etc/sysctl.d/99-kubernetes.conf",
        "    content: |",
    ]
    lines += [f"      {line}" for line in K8S_SYSCTL.strip().splitlines()]
    cmds = [
        "swapoff -a",
        "sed -i '/\\sswap\\s/ s/^/#/' /etc/fstab",
        # built into some kernels (no module to load, e.g. a container's host kernel): what the module
        # creates is then enough; a failed runcmd line would mark the whole cloud-init run as an error
        "modprobe overlay || grep -qw overlay /proc/filesystems",
        "modprobe br_netfilter || [ -d /proc/sys/net/bridge ]",
        "sysctl --system || true",
    ]
    lines.append("runcmd:")
    for c in cmds:
        lines.append("  - " + _yaml_str(c))
    return "\n".join(lines) + "\n"


def _yaml_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ----------------------------------------------------------------------------- console host keys

_FP_BLOCK = re.compile(r"-----BEGIN SSH HOST KEY FINGERPRINTS-----(.*?)-----END SSH HOST KEY FINGERPRINTS-----", re.S)
_KEY_BLOCK = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----", re.S)
_FP_LINE = re.compile(r"(\d+)\s+(SHA256:[A-Za-z0-9+/=]+)\s+.*?\((\w+)\)\s*$")
_KEY_LINE = re.compile(r"^\s*((?:ssh|ecdsa-sha2|sk-ssh|sk-ecdsa)[\w@.-]*)\s+([A-Za-z0-9+/=]+)")
_FP_TYPES = {"ED25519": "ssh-ed25519", "ECDSA": "ecdsa-sha2-nistp256", "RSA": "ssh-rsa", "DSA": "ssh-dss"}


_SYSLOG = re.compile(r"^<\d{1,3}>[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d\s+[\w.\[\]-]+:\s?")


def fingerprints_printed(text: str) -> bool:
    """Whether the console holds cloud-init's whole fingerprint block (BEGIN ... END, any line prefix).

    cloud-init prints it in `keys_to_console`, a final-stage module that runs after `scripts_user`
    (runcmd) and `ssh_authkey_fingerprints` (cloud-init config/cloud.cfg.tmpl at 04eacd0, lines
    210-212): on a real VM it appears only once the user-data's commands are done, minutes after ACTIVE."""
    return bool(_FP_BLOCK.search(_clean(text or "")))


def _clean(text: str) -> str:
    # cloud-init writes through the kernel console: strip "ci-info:"/"ec2:" prefixes and timestamps
    out = []
    for line in text.splitlines():
        line = _SYSLOG.sub("", line)  # "<14>Dec  5 22:47:21 cloud-init: " (cloud-init's syslog-style console lines)
        line = re.sub(r"^\[\s*\d+\.\d+\]\s*", "", line)
        line = re.sub(r"^(ec2|ci-info):\s?", "", line)
        out.append(line)
    return "\n".join(out)


@dataclass(frozen=True)
class ConsoleKey:
    key_type: str  # "ssh-ed25519"
    fingerprint: str  # "SHA256:..."
    key_base64: str | None = None  # when the console printed the whole key


def fingerprint_of(key_base64: str) -> str:
    raw = base64.b64decode(key_base64)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def console_host_keys(text: str) -> list[ConsoleKey]:
    """The host keys cloud-init printed (the last boot's blocks win): fingerprints, and the whole
    keys when the console has them too."""
    text = _clean(text or "")
    fps: dict[str, str] = {}
    blocks = _FP_BLOCK.findall(text)
    if blocks:
        for line in blocks[-1].splitlines():
            m = _FP_LINE.search(line.strip())
            if m:
                ktype = _FP_TYPES.get(m.group(3).upper(), m.group(3).lower())
                fps[ktype] = m.group(2).rstrip("=")
    keys: dict[str, str] = {}
    kblocks = _KEY_BLOCK.findall(text)
    if kblocks:
        for line in kblocks[-1].splitlines():
            m = _KEY_LINE.match(line)
            if m:
                try:
                    fp = fingerprint_of(m.group(2))
                except (ValueError, base64.binascii.Error):
                    continue
                keys[m.group(1)] = m.group(2)
                fps.setdefault(m.group(1), fp)
    out = []
    for ktype, fp in fps.items():
        b64 = keys.get(ktype)
        if b64 is not None and fingerprint_of(b64) != fp:
            b64 = None  # the key printed does not match the fingerprint printed: trust neither blindly
        out.append(ConsoleKey(ktype, fp, b64))
    return out
