"""Preflight: what the node facts mean for kubeadm and Calico, explained, with the exact fix.

Pure logic (no SSH): `preflight(plan, facts)` turns the plan and the gathered `NodeFacts` into
`Finding`s. A finding has a plain-language `why` and, when labtui can fix it, a `fix` id whose
commands (`FIXES`) are shown exactly before anything runs, each with its revert.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from labtui.cluster.apt import containerd_needed, version_tuple
from labtui.model import Plan
from labtui.nodes.facts import NodeFacts

ERROR, WARNING, INFO, OK = "error", "warning", "info", "ok"
SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2, OK: 3}

# labtui's own files: cloud-init's user-data writes /etc/sysctl.d/99-kubernetes.conf and
# /etc/modules-load.d/k8s.conf (labtui/provision_plan.py); the fixes never overwrite nor delete those
K8S_SYSCTL_FILE = "/etc/sysctl.d/99-labtui-kubernetes.conf"
K8S_MODULES_FILE = "/etc/modules-load.d/labtui-kubernetes.conf"


@dataclass
class Finding:
    check: str  # stable id, e.g. "ip-forward"
    severity: str  # error | warning | info | ok
    node: str | None  # None: about the whole lab
    title: str
    why: str = ""
    fix: str | None = None  # a key of FIXES

    def line(self) -> str:
        where = f"{self.node}: " if self.node else ""
        return f"{self.severity:7} {where}{self.title}"


@dataclass(frozen=True)
class Fix:
    id: str
    title: str
    command: str  # run with sudo on the node
    revert: str


def _all_or_nothing(steps: list[str], undo: list[str]) -> str:
    """`steps` joined with &&, and on the first failure `undo` runs (each best effort) and the
    command exits with the failing step's code: a fix that fails leaves the node as it found it."""
    return (" && ".join(steps) + " || { rc=$?; " + "; ".join(f"{u} 2>/dev/null" for u in undo)
            + "; exit $rc; }")


def fix_for(fix_id: str, facts: NodeFacts) -> Fix:
    """The exact commands for a fix on one node (the revert restores what the facts saw).

    Each fix is all or nothing: a file is written to a temporary name and moved into place last,
    and a failure undoes the steps before it (a runtime setting goes back to what the facts saw),
    so a refused `sysctl -w` leaves neither labtui's file nor a changed setting behind.
    `fix_state(fix_id)` reads what a fix touches, so a failure can be checked against it."""
    if fix_id == "sysctl":
        old_fwd = facts.sysctl("net.ipv4.ip_forward")
        old_fwd = old_fwd if old_fwd in ("0", "1") else "0"
        old_bridge = facts.sysctl("net.bridge.bridge-nf-call-iptables")
        bridge_set = "sysctl -q -w net.bridge.bridge-nf-call-iptables"
        undo = [f"rm -f {K8S_SYSCTL_FILE}.labtui-new", f"sysctl -q -w net.ipv4.ip_forward={old_fwd}"]
        if old_bridge in ("0", "1"):
            undo.append(f"{{ [ ! -e {BRIDGE_NF} ] || {bridge_set}={old_bridge}; }}")
        return Fix(
            "sysctl", "enable IPv4 forwarding (and bridged traffic through iptables) persistently",
            _all_or_nothing([
                f"printf 'net.ipv4.ip_forward = 1\\nnet.bridge.bridge-nf-call-iptables = 1\\n' > {K8S_SYSCTL_FILE}.labtui-new",
                "sysctl -q -w net.ipv4.ip_forward=1",
                f"{{ [ ! -e {BRIDGE_NF} ] || {bridge_set}=1; }}",
                f"mv -f {K8S_SYSCTL_FILE}.labtui-new {K8S_SYSCTL_FILE}",
            ], undo),
            f"rm -f {K8S_SYSCTL_FILE} && sysctl -q -w net.ipv4.ip_forward={old_fwd}",
        )
    if fix_id == "modules":
        wanted = [m for m in ("overlay", "br_netfilter") if facts.modules.get(m) == "available"]
        if facts.modules.get("ipip") == "available":
            wanted.append("ipip")
        mods = " ".join(wanted) or "overlay br_netfilter"
        lines = "\\n".join(wanted or ["overlay", "br_netfilter"])
        return Fix(
            "modules", f"load the kernel modules {mods} now and at every boot",
            _all_or_nothing([f"modprobe -a {mods}", f"printf '{lines}\\n' > {K8S_MODULES_FILE}.labtui-new",
                             f"mv -f {K8S_MODULES_FILE}.labtui-new {K8S_MODULES_FILE}"],
                            [f"rm -f {K8S_MODULES_FILE}.labtui-new"]),
            f"rm -f {K8S_MODULES_FILE}   (the modules stay loaded until the next reboot)",
        )
    if fix_id == "swap":
        return Fix(
            "swap", "turn swap off now and at every boot (comment it out in /etc/fstab)",
            _all_or_nothing(["swapoff -a", "sed -i.labtui-bak -E 's@^([^#].*[[:space:]]swap[[:space:]].*)$@#\\1@' /etc/fstab"],
                            ["swapon -a"]),
            "mv /etc/fstab.labtui-bak /etc/fstab && swapon -a",
        )
    raise KeyError(fix_id)


BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def _files_state(*paths: str) -> str:
    return "; ".join(f"[ ! -e {p} ] || {{ echo {p}: $(md5sum < {p}); }}" for p in paths)


def fix_state(fix_id: str) -> str | None:
    """A read-only command printing what a fix touches (its files and settings): the same output
    before and after a failed fix means the fix left nothing behind."""
    if fix_id == "sysctl":
        return (_files_state(K8S_SYSCTL_FILE, K8S_SYSCTL_FILE + ".labtui-new")
                + f"; echo net.ipv4.ip_forward = $(cat /proc/sys/net/ipv4/ip_forward); "
                f"[ ! -e {BRIDGE_NF} ] || echo net.bridge.bridge-nf-call-iptables = $(cat {BRIDGE_NF})")
    if fix_id == "modules":
        return _files_state(K8S_MODULES_FILE, K8S_MODULES_FILE + ".labtui-new")
    if fix_id == "swap":
        return _files_state("/etc/fstab", "/etc/fstab.labtui-bak") + "; echo swaps: $(tail -n +2 /proc/swaps | wc -l)"
    return None


def _minor(version: str) -> str:
    parts = version.lstrip("v").split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else version


def preflight(plan: Plan | None, facts: dict[str, NodeFacts]) -> list[Finding]:
    out: list[Finding] = []
    roles = {n.name: n.role.value for n in plan.nodes} if plan else {}
    k8s = plan.kubernetes if plan else None
    enc = plan.encapsulation.value if plan else None
    for name, f in facts.items():
        cp = roles.get(name) == "control-plane"
        if f.swap_active:
            out.append(Finding("swap", ERROR, name, f"swap is on ({f.swap_total_mb} MiB)",
                               "The kubelet refuses to start while swap is on (unless configured otherwise), "
                               "so kubeadm's preflight stops with [ERROR Swap].", "swap"))
        else:
            out.append(Finding("swap", OK, name, "swap is off"))
        fwd = f.sysctl("net.ipv4.ip_forward")
        if fwd != "1":
            out.append(Finding("ip-forward", ERROR, name, f"net.ipv4.ip_forward is {fwd}",
                               "A node must forward packets between pods and the network. kubeadm's preflight "
                               "fails with [ERROR FileContent--proc-sys-net-ipv4-ip_forward] until it is 1.", "sysctl"))
        else:
            out.append(Finding("ip-forward", OK, name, "net.ipv4.ip_forward is 1"))
        bridge = f.sysctl("net.bridge.bridge-nf-call-iptables")
        if f.modules.get("br_netfilter") not in ("loaded", "builtin"):
            sev = WARNING if f.modules.get("br_netfilter") == "available" else ERROR
            out.append(Finding("br-netfilter", sev, name, f"br_netfilter is {f.modules.get('br_netfilter', 'missing')}",
                               "Without br_netfilter, traffic between pods on the same bridge bypasses iptables, "
                               "so Services (kube-proxy) break in odd ways.", "modules" if sev == WARNING else None))
        elif bridge not in ("1", "absent"):
            out.append(Finding("bridge-nf", WARNING, name, f"net.bridge.bridge-nf-call-iptables is {bridge}",
                               "Bridged pod traffic must pass iptables for Services to work.", "sysctl"))
        if f.modules.get("overlay") not in ("loaded", "builtin"):
            sev = WARNING if f.modules.get("overlay") == "available" else ERROR
            out.append(Finding("overlay", sev, name, f"the overlay module is {f.modules.get('overlay', 'missing')}",
                               "containerd stores image layers with overlayfs.", "modules" if sev == WARNING else None))
        if enc in ("IPIP", "IPIPCrossSubnet"):
            state = f.modules.get("ipip", "missing")
            if state == "missing":
                out.append(Finding("ipip", ERROR, name, "the ipip kernel module is missing",
                                   f"The plan uses {enc}: Calico wraps pod traffic in IP-in-IP and needs the ipip "
                                   "module (it loads it itself when the module exists). Install the kernel's extra "
                                   "modules package or choose VXLAN."))
            else:
                out.append(Finding("ipip", OK, name, f"ipip module {state} (Calico loads it when needed)"))
        if cp and f.cpus and f.cpus < 2:
            out.append(Finding("cpus", ERROR, name, f"{f.cpus} CPU on the control plane",
                               "kubeadm init needs at least 2 CPUs ([ERROR NumCPU]). Pick a bigger flavor."))
        if cp and f.memory_mb and f.memory_mb < 1700:
            out.append(Finding("memory", ERROR, name, f"{f.memory_mb} MiB memory on the control plane",
                               "kubeadm init needs at least 1700 MiB ([ERROR Mem]). Pick a bigger flavor."))
        elif f.memory_mb and f.memory_mb < 1000:
            out.append(Finding("memory", WARNING, name, f"only {f.memory_mb} MiB memory",
                               "A worker with under 1 GiB runs few pods; calico-node alone needs ~150 MiB."))
        if f.cgroup == "v1":
            out.append(Finding("cgroup", WARNING, name, "cgroup v1",
                               "Kubernetes 1.35 and later refuse cgroup v1 by default. Use an image with cgroup v2 "
                               "(Ubuntu 22.04+, Debian 12+)."))
        if f.runtime:
            out.append(Finding("runtime", OK, name, f"container runtime {f.runtime_label}"))
        else:
            out.append(Finding("runtime", INFO, name, "no container runtime yet",
                               "kubeadm needs a CRI runtime; the Kubernetes stage installs containerd."))
        for tool in ("kubeadm", "kubelet"):
            version = getattr(f, tool)
            if version and k8s and _minor(version) != k8s:
                out.append(Finding(f"{tool}-version", WARNING, name, f"{tool} {version} but the plan says Kubernetes {k8s}",
                                   "Mixed minors confuse kubeadm; install the planned version or change the plan."))
        if f.hostname and f.hostname != name:
            out.append(Finding("hostname", WARNING, name, f"the hostname is {f.hostname!r}, the plan calls it {name!r}",
                               "kubeadm registers the node under its hostname unless told --node-name; labtui passes "
                               "the plan's name, but tools on the node will show the hostname."))
        if plan and f.iface_cidr:
            try:
                pod = ipaddress.ip_network(plan.pod_cidr)
                svc = ipaddress.ip_network(plan.service_cidr)
                subnet = ipaddress.ip_network(f.subnet)
            except ValueError:
                pod = svc = subnet = None  # type: ignore[assignment]
            if subnet is not None and pod is not None and subnet.overlaps(pod):
                out.append(Finding("pod-cidr", ERROR, name, f"the node subnet {subnet} overlaps the pod CIDR {pod}",
                                   "Pods would get addresses of real machines. Change the pod CIDR in the plan."))
            if subnet is not None and svc is not None and subnet.overlaps(svc):
                out.append(Finding("service-cidr", ERROR, name, f"the node subnet {subnet} overlaps the service CIDR {svc}",
                                   "Service addresses would shadow real machines. Change the service CIDR in the plan."))
    out += _lab_findings(plan, facts, enc)
    out.sort(key=lambda x: (SEVERITY_ORDER.get(x.severity, 9), x.node or "", x.check))
    return out


def _lab_findings(plan: Plan | None, facts: dict[str, NodeFacts], enc: str | None) -> list[Finding]:
    out: list[Finding] = []
    for attr, label, why in (
        ("hostname", "hostname", "Kubernetes node names must be unique; a second node with the same name replaces the first."),
        ("machine_id", "machine-id", "Cloned VMs with the same /etc/machine-id confuse kubelet and systemd; regenerate it "
                                     "(rm /etc/machine-id && systemd-machine-id-setup)."),
        ("product_uuid", "product_uuid", "kubeadm needs a unique product_uuid per node."),
        ("mac", "MAC address", "kubeadm needs a unique MAC per node."),
    ):
        seen: dict[str, list[str]] = defaultdict(list)
        for name, f in facts.items():
            value = getattr(f, attr)
            if value:
                seen[value].append(name)
        for value, names in seen.items():
            if len(names) > 1:
                out.append(Finding(f"unique-{attr}", ERROR, None, f"{', '.join(sorted(names))} share the {label} {value}", why))
    subnets = {f.subnet for f in facts.values() if f.subnet}
    if len(subnets) == 1 and facts:
        subnet = next(iter(subnets))
        if plan and str(plan.node_subnet) != subnet:
            out.append(Finding("node-subnet", WARNING, None, f"the nodes sit on {subnet}, the plan says {plan.node_subnet}",
                               "Fix the plan's node subnet so the checks and the doctor reason about the real network."))
        if enc in ("IPIPCrossSubnet", "VXLANCrossSubnet"):
            out.append(Finding("crosssubnet", WARNING, None, f"all nodes share {subnet} and the plan uses {enc}",
                               "CrossSubnet only encapsulates between subnets: here every pod packet leaves "
                               "unencapsulated with a pod source address, and OpenStack's anti-spoofing drops it "
                               "unless every port allows the pod CIDR. This is exactly the incident. Use IPIP or "
                               "VXLAN Always, or add the pod CIDR as an allowed-address-pair."))
        else:
            out.append(Finding("node-subnet", OK, None, f"all nodes share the subnet {subnet}"))
    elif len(subnets) > 1:
        out.append(Finding("node-subnet", INFO, None, f"the nodes sit on {len(subnets)} subnets: {', '.join(sorted(subnets))}",
                           "With CrossSubnet, Calico encapsulates only between those subnets."))
    return out


def fixes_needed(findings: list[Finding]) -> dict[str, list[str]]:
    """{node: [fix id, ...]} for the fixable errors and warnings."""
    out: dict[str, list[str]] = defaultdict(list)
    for f in findings:
        if f.fix and f.node and f.severity in (ERROR, WARNING) and f.fix not in out[f.node]:
            out[f.node].append(f.fix)
    return dict(out)


# --------------------------------------------------------------------------- runtime preflight (Kubernetes stage)

SUPPORTED_OS = {("ubuntu", "22.04"), ("ubuntu", "24.04"), ("debian", "12"), ("debian", "13")}
SYSTEMD_UP = ("running", "degraded", "starting", "initializing", "maintenance")
PORT_USERS = {6443: "the Kubernetes API server", 10250: "the kubelet", 10257: "kube-controller-manager",
              10259: "kube-scheduler", 2379: "etcd", 2380: "etcd (peers)"}


def _minor_tuple(minor: str | None) -> tuple[int, int]:
    try:
        a, b = (minor or "0.0").split(".")[:2]
        return int(a), int(b)
    except ValueError:
        return (0, 0)


def runtime_preflight(plan: Plan | None, facts: dict[str, NodeFacts]) -> list[Finding]:
    """What must hold before the container runtime and kubeadm go on the nodes: a supported OS,
    systemd, cgroup v2 (the kubelet of 1.35+ refuses v1), kubeadm's ports free, a containerd the
    plan's minor supports, enough CPU and memory for the role, unique product_uuid and MAC."""
    out: list[Finding] = []
    roles = {n.name: n.role.value for n in plan.nodes} if plan else {}
    minor = plan.kubernetes if plan else None
    for name, f in facts.items():
        cp = roles.get(name) == "control-plane"
        if (f.os_id, f.os_version) not in SUPPORTED_OS:
            out.append(Finding("os", ERROR, name, f"{f.os or 'an unknown OS'} is not supported",
                               "labtui builds clusters on Ubuntu 22.04 / 24.04 and Debian 12 / 13 (pkgs.k8s.io's "
                               "Debian packages, containerd from the distribution or Docker). Use one of those images."))
        if f.systemd not in SYSTEMD_UP:
            out.append(Finding("systemd", ERROR, name,
                               "systemd is not running" + (f" ({f.systemd})" if f.systemd else " (no systemctl)"),
                               "containerd and the kubelet run as systemd services and kubeadm manages the kubelet "
                               "through systemctl. Use a VM image that boots with systemd."))
        if f.cgroup == "v1":
            sev = ERROR if minor and _minor_tuple(minor) >= (1, 35) else WARNING
            out.append(Finding("cgroup-v1", sev, name, "the node runs cgroup v1",
                               f"The kubelet of Kubernetes 1.35 and later refuses cgroup v1 by default (the plan says "
                               f"{minor}); kubeadm stops with [ERROR SystemVerification]. Use an image with cgroup v2 "
                               "(Ubuntu 22.04+, Debian 12+) or boot with systemd.unified_cgroup_hierarchy=1."))
        elif not f.cgroup:
            out.append(Finding("cgroup", WARNING, name, "the cgroup version could not be read",
                               "kubeadm checks it itself; cgroup v2 is needed from Kubernetes 1.35."))
        wanted = [6443, 10257, 10259, 2379, 2380, 10250] if cp else [10250]
        busy = [p for p in f.ports_in_use if p in wanted]
        if busy and (f.kubelet or f.kubeadm):
            out.append(Finding("ports", INFO, name, "ports " + ", ".join(map(str, busy)) + " in use (a cluster runs here?)",
                               "The kubeadm steps check whether this node is already part of the cluster."))
        elif busy:
            out.append(Finding("ports", ERROR, name, "ports in use: " + ", ".join(f"{p} ({PORT_USERS[p]})" for p in busy),
                               "kubeadm needs these ports free ([ERROR Port-NNNN]). Find the listener with "
                               "`sudo ss -ltnp` and stop it."))
        if minor and f.runtime == "containerd" and version_tuple(f.runtime_version) < containerd_needed(minor):
            out.append(Finding("containerd-version", WARNING, name,
                               f"containerd {f.runtime_version} is too old for Kubernetes {minor}",
                               "Kubernetes 1.36 and later need containerd 2.x (kubeadm warns today and is planned to "
                               "refuse 1.x at 1.38). The runtime step installs the distribution's containerd when "
                               "apt's candidate on the node is new enough, else containerd.io 2.x from Docker's "
                               "repository."))
        elif f.runtime and f.runtime != "containerd":
            out.append(Finding("runtime", WARNING, name, f"the node runs {f.runtime_label}",
                               "labtui configures containerd; another runtime is left alone and may conflict."))
        if cp and f.cpus and f.cpus < 2:
            out.append(Finding("cpus", ERROR, name, f"{f.cpus} CPU on the control plane",
                               "kubeadm init needs at least 2 CPUs ([ERROR NumCPU]). Pick a bigger flavor."))
        if cp and f.memory_mb and f.memory_mb < 1700:
            out.append(Finding("memory", ERROR, name, f"{f.memory_mb} MiB memory on the control plane",
                               "kubeadm init needs at least 1700 MiB ([ERROR Mem]). Pick a bigger flavor."))
        elif not cp and f.memory_mb and f.memory_mb < 1000:
            out.append(Finding("memory", WARNING, name, f"only {f.memory_mb} MiB memory on a worker",
                               "The kubelet, kube-proxy and calico-node take ~400 MiB together; 2 GiB is comfortable."))
    out += [x for x in _lab_findings(plan, facts, None) if x.check in ("unique-product_uuid", "unique-mac")]
    if plan and _minor_tuple(minor) >= (1, 37) and _minor_tuple(plan.calico) <= (3, 32):
        out.append(Finding("calico-kubernetes", WARNING, None,
                           f"Calico {plan.calico} is not tested with Kubernetes {minor}",
                           "Calico 3.32's system requirements list Kubernetes 1.34 to 1.36 (facts/domain.md 1.5, "
                           "tigera/docs _system-requirements.mdx). It may work; Kubernetes 1.36 is the safe choice."))
    out.sort(key=lambda x: (SEVERITY_ORDER.get(x.severity, 9), x.node or "", x.check))
    return out
