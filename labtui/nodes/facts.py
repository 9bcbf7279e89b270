"""Node facts: one read-only shell script per node, parsed into `NodeFacts`, stored per session.

The script only reads (files under /proc, /sys and /etc, `--version` of tools that exist); it
runs as the login user, no sudo. Its output is a series of `@@section` blocks that
`parse_facts` turns into a dataclass. Facts are stored as session facts under the scope
`node:<name>` (one key per field), so the doctor and the report can use them without SSH.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable

from labtui.adapters.interfaces import NodeCommands
from labtui.adapters.sshkeys import NodeResult
from labtui.store import Store

MODULES = ("overlay", "br_netfilter", "ipip")
SYSCTLS = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables")
SCOPE_PREFIX = "node:"
KUBE_PORTS = (6443, 10250, 10257, 10259, 2379, 2380)

# One line per section: "echo @@name; <commands>". The whole script is FACTS_SCRIPT; a reader that
# needs only some sections (the doctor) asks facts_script(sections) for those, from these same lines.
_FACTS_LINES = r"""echo @@hostname; hostname 2>/dev/null || cat /etc/hostname
echo @@os; cat /etc/os-release 2>/dev/null
echo @@uname; uname -srm
echo @@cpus; nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo
echo @@meminfo; grep -E '^(MemTotal|SwapTotal|SwapFree):' /proc/meminfo
echo @@swaps; tail -n +2 /proc/swaps 2>/dev/null
echo @@modules; cut -d' ' -f1 /proc/modules 2>/dev/null
echo @@sysmodule; for m in overlay br_netfilter ipip vxlan; do [ -d /sys/module/$m ] && echo $m; done
echo @@builtin; grep -E '/(overlay|br_netfilter|ipip)\.ko' /lib/modules/$(uname -r)/modules.builtin 2>/dev/null
echo @@available; for m in overlay br_netfilter ipip; do ls /lib/modules/$(uname -r)/kernel/*/*/$m.ko* /lib/modules/$(uname -r)/kernel/*/*/*/$m.ko* /lib/modules/$(uname -r)/kernel/*/$m.ko* >/dev/null 2>&1 && echo $m; done
echo @@filesystems; grep -w overlay /proc/filesystems 2>/dev/null
echo @@sysctl; for k in net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables; do printf '%s=%s\n' "$k" "$(cat /proc/sys/$k 2>/dev/null || echo absent)"; done
echo @@cgroup; stat -fc %T /sys/fs/cgroup 2>/dev/null || { [ -f /sys/fs/cgroup/cgroup.controllers ] && echo cgroup2fs; }
echo @@machine; cat /etc/machine-id 2>/dev/null; cat /sys/class/dmi/id/product_uuid 2>/dev/null
echo @@product_uuid; cat /sys/class/dmi/id/product_uuid 2>/dev/null || sudo -n cat /sys/class/dmi/id/product_uuid 2>/dev/null
echo @@systemd; command -v systemctl >/dev/null 2>&1 && systemctl is-system-running 2>&1 | head -n 1
echo @@listen; ss -Htln 2>/dev/null | awk '{print $4}'
echo @@containerd; command -v containerd >/dev/null 2>&1 && containerd --version 2>&1 | head -n 1
echo @@crio; command -v crio >/dev/null 2>&1 && crio --version 2>&1 | head -n 1
echo @@docker; command -v docker >/dev/null 2>&1 && docker --version 2>&1 | head -n 1
echo @@kubelet; command -v kubelet >/dev/null 2>&1 && kubelet --version 2>&1 | head -n 1
echo @@kubeadm; command -v kubeadm >/dev/null 2>&1 && kubeadm version -o short 2>&1 | head -n 1
echo @@kubectl; command -v kubectl >/dev/null 2>&1 && kubectl version --client 2>&1 | head -n 1
echo @@route; ip -o -4 route show default 2>/dev/null
echo @@addr; ip -o -4 addr show scope global 2>/dev/null
echo @@link; ip -o link show 2>/dev/null
echo @@tools; for t in tcpdump calicoctl kubectl; do command -v $t >/dev/null 2>&1 && echo $t; done
"""


def _section_of(line: str) -> str:
    return line.split(";", 1)[0].removeprefix("echo @@")


FACTS_SECTIONS = tuple(_section_of(line) for line in _FACTS_LINES.splitlines())


def facts_script(sections: Iterable[str] | None = None) -> str:
    """The node-facts script, whole (None) or only `sections` (names from FACTS_SECTIONS), in the
    script's own order, always ending with the "@@end" marker that proves the output complete."""
    wanted = None if sections is None else set(sections)
    if wanted is not None and (unknown := wanted - set(FACTS_SECTIONS)):
        raise ValueError(f"no such node-facts section: {', '.join(sorted(unknown))}")
    keep = [line for line in _FACTS_LINES.splitlines() if wanted is None or _section_of(line) in wanted]
    return "export LC_ALL=C\n" + "\n".join(keep) + "\necho @@end\n"


FACTS_SCRIPT = facts_script()


@dataclass
class NodeFacts:
    node: str
    hostname: str = ""
    os_id: str = ""
    os_version: str = ""
    os_pretty: str = ""
    kernel: str = ""
    arch: str = ""
    cpus: int = 0
    memory_mb: int = 0
    swap_total_mb: int = 0
    swap_active: bool = False  # any active swap area (kubelet refuses to start by default)
    modules: dict[str, str] = field(default_factory=dict)  # name -> loaded | builtin | available | missing
    # name -> what showed it: "/proc/modules", "/sys/module", "modules.builtin", "/proc/filesystems",
    # "/proc/sys/net/bridge", "tunl0 device", "/lib/modules" (available) or "" (no source showed it)
    module_sources: dict[str, str] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)  # "net.ipv4.ip_forward" -> "0" | "1" | "absent"
    cgroup: str = ""  # "v2" | "v1" | ""
    systemd: str = ""  # `systemctl is-system-running`: running | degraded | offline | ... ("" : no systemctl)
    ports_in_use: list[int] = field(default_factory=list)  # of the ports kubeadm needs (KUBE_PORTS), listening now
    machine_id: str = ""
    product_uuid: str = ""
    runtime: str = ""  # containerd | cri-o | docker | ""
    runtime_version: str = ""
    kubelet: str = ""  # versions, "" when absent
    kubeadm: str = ""
    kubectl: str = ""
    interface: str = ""  # primary interface (the default route's, else the first global IPv4)
    address: str = ""
    prefixlen: int = 0
    mac: str = ""
    gathered: float = field(default_factory=time.time)

    @property
    def iface_cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}" if self.address and self.prefixlen else ""

    @property
    def subnet(self) -> str:
        if not self.iface_cidr:
            return ""
        return str(ipaddress.ip_interface(self.iface_cidr).network)

    @property
    def os(self) -> str:
        return self.os_pretty or " ".join(x for x in (self.os_id, self.os_version) if x)

    @property
    def runtime_label(self) -> str:
        return f"{self.runtime} {self.runtime_version}".strip() if self.runtime else "none"

    def module_present(self, name: str) -> bool:
        return self.modules.get(name) in ("loaded", "builtin")

    @property
    def ipip_module(self) -> bool:
        return self.module_present("ipip")

    def sysctl(self, key: str) -> str:
        return self.sysctls.get(key, "absent")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["iface_cidr"] = self.iface_cidr
        data["subnet"] = self.subnet
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NodeFacts":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def summary(self) -> str:
        mods = ", ".join(f"{m} {self.modules.get(m, '?')}" + (f" ({self.module_sources[m]})" if self.module_sources.get(m)
                                                           and self.module_sources[m] != "/proc/modules" else "")
                         for m in MODULES)
        return (f"{self.os or '?'}, kernel {self.kernel or '?'}, {self.cpus} CPU, {self.memory_mb} MiB, "
                f"swap {'on' if self.swap_active else 'off'}, {mods}, ip_forward={self.sysctl('net.ipv4.ip_forward')}, "
                f"runtime {self.runtime_label}, {self.interface or '?'} {self.iface_cidr or '?'}")


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            out.setdefault(current, [])
        elif current is not None:
            out[current].append(line)
    return out


def _os_release(lines: list[str]) -> dict[str, str]:
    data = {}
    for line in lines:
        key, eq, value = line.partition("=")
        if eq:
            data[key.strip()] = value.strip().strip('"').strip("'")
    return data


_VERSION = re.compile(r"v?(\d+\.\d+(?:\.\d+)?(?:[-+][\w.]+)?)")


def _version(lines: list[str]) -> str:
    for line in lines:
        m = _VERSION.search(line)
        if m:
            return m.group(1)
    return ""


def parse_facts(node: str, text: str) -> NodeFacts:
    """Parse the output of FACTS_SCRIPT. Missing sections leave fields at their defaults."""
    s = _sections(text)
    f = NodeFacts(node=node)
    f.hostname = (s.get("hostname") or [""])[0].strip()
    osr = _os_release(s.get("os", []))
    f.os_id, f.os_version, f.os_pretty = osr.get("ID", ""), osr.get("VERSION_ID", ""), osr.get("PRETTY_NAME", "")
    uname = (s.get("uname") or [""])[0].split()
    if len(uname) >= 2:
        f.kernel = uname[1]
    if len(uname) >= 3:
        f.arch = uname[2]
    try:
        f.cpus = int((s.get("cpus") or ["0"])[0].strip() or 0)
    except ValueError:
        f.cpus = 0
    mem = {}
    for line in s.get("meminfo", []):
        key, _, rest = line.partition(":")
        try:
            mem[key.strip()] = int(rest.split()[0])
        except (ValueError, IndexError):
            continue
    f.memory_mb = mem.get("MemTotal", 0) // 1024
    f.swap_total_mb = mem.get("SwapTotal", 0) // 1024
    f.swap_active = any(line.strip() for line in s.get("swaps", [])) or f.swap_total_mb > 0
    # A module leaves several traces; machines without /lib/modules or /sys/module (containers, some
    # minimal images) still show what the kernel has in /proc. Every source is read, the first that
    # shows a module is named, and a module any source shows present is never reported missing.
    loaded = {ln.strip() for ln in s.get("modules", []) if ln.strip()}
    sysmod = {ln.strip() for ln in s.get("sysmodule", []) if ln.strip()}
    builtin = {m for m in MODULES for ln in s.get("builtin", []) if re.search(rf"/{m}\.ko", ln)}
    available = {ln.strip() for ln in s.get("available", []) if ln.strip()}
    inferred: dict[str, str] = {}  # built-in code leaves no /sys/module entry: what it creates shows it
    if any(re.search(r"\boverlay\b", ln) for ln in s.get("filesystems", [])):
        inferred["overlay"] = "/proc/filesystems"
    if any(ln.startswith("net/bridge/") and not ln.endswith("=absent") for ln in s.get("sysctl", [])):
        inferred["br_netfilter"] = "/proc/sys/net/bridge"
    if any(re.match(r"^\d+:\s+tunl0[@:]", ln) for ln in s.get("link", [])):
        inferred["ipip"] = "tunl0 device"
    for m in MODULES:
        if m in loaded:
            f.modules[m], f.module_sources[m] = "loaded", "/proc/modules"
        elif m in sysmod:
            f.modules[m], f.module_sources[m] = "builtin", "/sys/module"
        elif m in builtin:
            f.modules[m], f.module_sources[m] = "builtin", "modules.builtin"
        elif m in inferred:
            f.modules[m], f.module_sources[m] = "builtin", inferred[m]
        elif m in available:
            f.modules[m], f.module_sources[m] = "available", "/lib/modules"
        else:
            f.modules[m], f.module_sources[m] = "missing", ""
    for line in s.get("sysctl", []):
        key, eq, value = line.partition("=")
        if eq:
            f.sysctls[key.strip().replace("/", ".")] = value.strip() or "absent"
    cg = (s.get("cgroup") or [""])[0].strip()
    f.cgroup = "v2" if cg == "cgroup2fs" else ("v1" if cg in ("tmpfs", "cgroupfs") else "")
    machine = [ln.strip() for ln in s.get("machine", []) if ln.strip()]
    if machine:
        f.machine_id = machine[0]
    if len(machine) > 1:
        f.product_uuid = machine[1]
    uuid = [ln.strip() for ln in s.get("product_uuid", []) if ln.strip()]
    if uuid:
        f.product_uuid = uuid[0]
    f.systemd = next((ln.strip() for ln in s.get("systemd", []) if ln.strip()), "")
    ports = set()
    for line in s.get("listen", []):
        port = line.strip().rsplit(":", 1)[-1]
        if port.isdigit() and int(port) in KUBE_PORTS:
            ports.add(int(port))
    f.ports_in_use = sorted(ports)
    for name, key in (("containerd", "containerd"), ("cri-o", "crio"), ("docker", "docker")):
        lines = [ln for ln in s.get(key, []) if ln.strip()]
        if lines:
            f.runtime = name
            f.runtime_version = _version(lines)
            break
    f.kubelet = _version(s.get("kubelet", []))
    f.kubeadm = _version(s.get("kubeadm", []))
    f.kubectl = _version(s.get("kubectl", []))
    addrs = []
    for line in s.get("addr", []):
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "inet":
            addrs.append((parts[1], parts[3]))
    default_dev = ""
    for line in s.get("route", []):
        parts = line.split()
        if "dev" in parts:
            default_dev = parts[parts.index("dev") + 1]
            break
    chosen = next((a for a in addrs if a[0] == default_dev), addrs[0] if addrs else None)
    if chosen:
        iface = ipaddress.ip_interface(chosen[1])
        f.interface = chosen[0].split("@")[0]
        f.address, f.prefixlen = str(iface.ip), iface.network.prefixlen
    for line in s.get("link", []):
        m = re.match(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:.*link/ether\s+([0-9a-f:]{17})", line)
        if m and m.group(1) == f.interface:
            f.mac = m.group(2)
    return f


# --------------------------------------------------------------------------- gathering


def gather(ssh: NodeCommands, nodes: Iterable[str], *, step: str | None = None) -> dict[str, NodeResult]:
    """Run the facts script on every node in parallel; NodeResult.value is a NodeFacts."""

    def one(node: str) -> NodeFacts:
        res = ssh.run(node, FACTS_SCRIPT, step=step, stream=False, announce=True,
                      display=f"ssh {node} sh -s < labtui-facts.sh   # read-only: /proc, /sys, /etc/os-release, tool versions")
        if res.exit_code != 0 and "@@end" not in res.stdout:
            res.check("the facts script")
        return parse_facts(node, res.stdout)

    return ssh.fan_out(nodes, one)


def store_facts(store: Store, session_id: int, facts: NodeFacts) -> None:
    store.put_facts(session_id, SCOPE_PREFIX + facts.node, facts.to_dict())


def load_facts(store: Store, session_id: int, node: str | None = None) -> dict[str, NodeFacts]:
    """Stored facts by node name (all nodes, or one)."""
    scope = SCOPE_PREFIX + node if node else None
    out = {}
    for sc, values in store.facts(session_id, scope).items():
        if sc.startswith(SCOPE_PREFIX) and values.get("node"):
            out[sc[len(SCOPE_PREFIX):]] = NodeFacts.from_dict(values)
    return out
