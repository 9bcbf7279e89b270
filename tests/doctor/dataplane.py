"""A small REAL data plane for the sshd lab, so the doctor's live proof runs over real packets.

The test cloud stores security groups and ports but enforces nothing, and no kubelet or Felix can
run here. This module plays their data-plane parts from the real backends' state
(recipe: shared/recipes/ssh-nodes.md, "Packet-level reproduction"):

- **Neutron's port security and security groups**, as nftables rules (bridge family) on the lab's
  bridge in the "cloud" namespace, generated from the REAL Neutron ports and rules:
  anti-spoofing per port (a frame from port i must carry the port's MAC and, for IPv4 and ARP, a
  source that is its fixed IP or an allowed-address-pair; port security off: no check), and, per
  destination port, the security group's verdict on the three classes of pod traffic: IP protocol 4,
  UDP 4789, and packets from pod addresses. Stateless (the bridge family has no conntrack on this
  kernel), so the rules are evaluated both ways, and other traffic (SSH, ...) is left alone.
- **Felix's routing**, from the REAL (kmock) IP pool: one pod network namespace per node (a veth,
  the pod's /32, proxy ARP like calico's cali* devices) and, towards the other nodes' pods, either
  direct routes via the node address or the kernel's VXLAN device `vxlan.calico` (static FDB and
  neighbour entries, onlink routes, as Calico programs them). This kernel has no ipip module, so an
  IPIP pool is refused here (`Unsupported`).

`kubectl_simulated.py` (dataplane mode) then runs the probe's ping for real inside the source pod's
namespace (busybox ping), and the real tcpdump on the node sees the real packets.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field
from typing import Any

POD_OCTETS = [200, 110, 45, 7, 90, 130]


class Unsupported(RuntimeError):
    pass


def _run(argv: list[str], *, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _ip(ns: str, *args: str, check: bool = True) -> None:
    _run(["ip", "-n", ns, *args], check=check)


def _sysctl(ns: str, key: str, value: str) -> None:
    _run(["ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > /proc/sys/{key}"])


@dataclass
class PodNet:
    node: str
    netns: str  # the pod's namespace
    ip: str
    vxlan_ip: str
    vxlan_mac: str
    pid: int = 0  # a process in the pod's namespace (for nsenter from inside the node)
    proc: Any = field(default=None, repr=False)
    listener: Any = field(default=None, repr=False)  # busybox nc on TCP 8080, like the probe pod's


class Dataplane:
    def __init__(self, lab: Any, pod_net: str = "172.16", pool_cidr: str = "172.16.0.0/16") -> None:
        self.lab = lab
        self.pool_cidr = pool_cidr
        self.pods: dict[str, PodNet] = {}
        for i, n in enumerate(lab.nodes):
            octet = POD_OCTETS[i % len(POD_OCTETS)]
            self.pods[n.name] = PodNet(n.name, f"{lab.prefix}-pod-{n.name}", f"{pod_net}.{octet}.{10 + i}",
                                       f"{pod_net}.{octet}.1", f"66:8a:1c:3e:00:{i + 1:02x}")
        self.mode: str | None = None
        self.table = "labtui_doctor"

    # ------------------------------------------------------------------ pods
    def start(self) -> "Dataplane":
        for i, n in enumerate(self.lab.nodes, start=1):
            pod = self.pods[n.name]
            _run(["ip", "netns", "add", pod.netns])
            _sysctl(pod.netns, "net/ipv6/conf/all/disable_ipv6", "1")
            _ip(pod.netns, "link", "set", "lo", "up")
            _ip(pod.netns, "link", "add", "eth0", "type", "veth", "peer", "name", f"cali{i}", "netns", n.netns)
            _ip(pod.netns, "addr", "add", f"{pod.ip}/32", "dev", "eth0")
            _ip(pod.netns, "link", "set", "eth0", "up")
            # on-link default: the node's cali device answers ARP (proxy_arp) for every pod it routes to
            _ip(pod.netns, "route", "add", "default", "dev", "eth0", "scope", "link")
            _ip(n.netns, "link", "set", f"cali{i}", "up")
            _ip(n.netns, "route", "add", f"{pod.ip}/32", "dev", f"cali{i}", "scope", "link")
            for key, value in (("net/ipv4/ip_forward", "1"), (f"net/ipv4/conf/cali{i}/proxy_arp", "1"),
                               ("net/ipv4/conf/all/rp_filter", "0"), ("net/ipv4/conf/default/rp_filter", "0"),
                               ("net/ipv4/conf/eth0/rp_filter", "0"), (f"net/ipv4/conf/cali{i}/rp_filter", "0")):
                _sysctl(n.netns, key, value)
            pod.proc = subprocess.Popen(["ip", "netns", "exec", pod.netns, "sleep", "infinity"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pod.pid = pod.proc.pid
            # the probe pod's TCP listener (labtui.doctor.probe): the real busybox nc, answering one line
            pod.listener = subprocess.Popen(["ip", "netns", "exec", pod.netns, "busybox", "nc", "-ll", "-p", "8080",
                                             "-e", "echo", "labtui-probe-ok"], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        for pod in self.pods.values():
            for proc in (pod.proc, pod.listener):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=5)
            _run(["ip", "netns", "del", pod.netns], check=False)
        _run(["ip", "netns", "exec", self.lab.cloud_ns, "nft", "delete", "table", "bridge", self.table], check=False)
        for i, n in enumerate(self.lab.nodes, start=1):
            _ip(n.netns, "link", "del", "vxlan.calico", check=False)
            # the pod namespace goes away asynchronously: remove the node's end of the veth now
            _ip(n.netns, "link", "del", f"cali{i}", check=False)

    # ------------------------------------------------------------------ Felix's part
    def program_calico(self, ipip_mode: str, vxlan_mode: str) -> str:
        """Routes towards the other nodes' pods for this pool mode (all nodes share the lab's subnet,
        so CrossSubnet means direct)."""
        if ipip_mode == "Always":
            raise Unsupported("this kernel has no ipip module: an IPIP pool cannot be reproduced here")
        mode = "vxlan" if vxlan_mode == "Always" else "direct"
        nodes = self.lab.nodes
        for n in nodes:
            _ip(n.netns, "link", "del", "vxlan.calico", check=False)
            for m in nodes:
                if m is not n:
                    _ip(n.netns, "route", "del", f"{self.pods[m.name].ip}/32", check=False)
        for n in nodes:
            me = self.pods[n.name]
            if mode == "vxlan":
                _ip(n.netns, "link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "dstport", "4789",
                    "dev", "eth0", "local", n.address, "nolearning")
                _ip(n.netns, "link", "set", "vxlan.calico", "address", me.vxlan_mac, "mtu", "1450", "up")
                _ip(n.netns, "addr", "add", f"{me.vxlan_ip}/32", "dev", "vxlan.calico")
                _sysctl(n.netns, "net/ipv4/conf/vxlan.calico/rp_filter", "0")
            for m in nodes:
                if m is n:
                    continue
                other = self.pods[m.name]
                if mode == "vxlan":
                    _ip(n.netns, "neigh", "replace", other.vxlan_ip, "lladdr", other.vxlan_mac, "dev", "vxlan.calico",
                        "nud", "permanent")
                    _run(["ip", "netns", "exec", n.netns, "bridge", "fdb", "append", other.vxlan_mac, "dev",
                          "vxlan.calico", "dst", m.address])
                    _ip(n.netns, "route", "add", f"{other.ip}/32", "via", other.vxlan_ip, "dev", "vxlan.calico", "onlink")
                else:
                    _ip(n.netns, "route", "add", f"{other.ip}/32", "via", m.address, "dev", "eth0")
        self.mode = mode
        return mode

    # ------------------------------------------------------------------ Neutron's part
    def program_neutron(self, ports: dict[str, dict[str, Any]], allow: dict[str, dict[str, bool]]) -> str:
        """ports: node -> {port_security, fixed_ips, pairs, mac}; allow: node -> {"ipip", "vxlan", "pods"}
        (what the node port's security groups let in). Returns the ruleset (for the test's log)."""
        index = {n.name: i for i, n in enumerate(self.lab.nodes, start=1)}
        pre, fwd = [], []
        for name, p in ports.items():
            dev = f"p{index[name]}"
            if p["port_security"]:
                srcs = ", ".join(sorted(set(p["fixed_ips"]) | set(p["pairs"])))
                pre.append(f'iifname "{dev}" ether saddr != {p["mac"]} counter drop')
                pre.append(f'iifname "{dev}" ether type ip ip saddr != {{ {srcs} }} counter drop')
                pre.append(f'iifname "{dev}" ether type arp arp saddr ip != {{ {srcs} }} counter drop')
            a = allow.get(name, {})
            if p["port_security"]:
                if not a.get("ipip"):
                    fwd.append(f'oifname "{dev}" ether type ip ip protocol 4 counter drop')
                if not a.get("vxlan"):
                    fwd.append(f'oifname "{dev}" ether type ip udp dport 4789 counter drop')
                if not a.get("pods"):
                    fwd.append(f'oifname "{dev}" ether type ip ip saddr {self.pool_cidr} counter drop')
        ruleset = "\n".join([
            f"table bridge {self.table} {{",
            "  chain antispoof {", "    type filter hook prerouting priority -200; policy accept;",
            *[f"    {r}" for r in pre], "  }",
            "  chain secgroups {", "    type filter hook forward priority 0; policy accept;",
            *[f"    {r}" for r in fwd], "  }",
            "}",
        ])
        _run(["ip", "netns", "exec", self.lab.cloud_ns, "nft", "delete", "table", "bridge", self.table], check=False)
        _run(["ip", "netns", "exec", self.lab.cloud_ns, "nft", "-f", "-"], input=ruleset + "\n")
        return ruleset

    def counters(self) -> str:
        return _run(["ip", "netns", "exec", self.lab.cloud_ns, "nft", "list", "table", "bridge", self.table]).stdout

    def spoof_drops(self) -> int:
        """Packets dropped as spoofed (IPv4 source not the port's own) since the rules were loaded."""
        import re

        total = 0
        for line in self.counters().splitlines():
            if "iifname" in line and "ip saddr !=" in line:
                m = re.search(r"counter packets (\d+)", line)
                total += int(m.group(1)) if m else 0
        return total

    # ------------------------------------------------------------------ from the real backends
    def sync(self, layout: Any, cluster: Any, pool: str = "default-ipv4-ippool") -> tuple[str, str]:
        """Program both parts from the real state: Neutron's ports and rules, kmock's pool."""
        spec = cluster.pool(pool)["spec"]
        mode = self.program_calico(spec.get("ipipMode", "Never"), spec.get("vxlanMode", "Never"))
        groups = {}
        net = layout.conn.network
        ports, allow = {}, {}
        by_node = {n.name: n for n in self.lab.nodes}
        api_ports = {ln.name: net.get_port(ln.port_id) for ln in layout.nodes}
        for name, port in api_ports.items():
            ports[name] = {
                "port_security": port.is_port_security_enabled is not False,
                "fixed_ips": [f["ip_address"] for f in port.fixed_ips or []],
                "pairs": [a["ip_address"] for a in port.allowed_address_pairs or []],
                "mac": by_node[name].mac,
            }
        for name, port in api_ports.items():
            verdict = {"ipip": False, "vxlan": False, "pods": False}
            for gid in port.security_group_ids or []:
                if gid not in groups:
                    groups[gid] = list(net.security_group_rules(security_group_id=gid))
                members = [p for n, p in ports.items() if gid in (api_ports[n].security_group_ids or [])]
                for r in groups[gid]:
                    if r.direction != "ingress" or r.ether_type != "IPv4":
                        continue
                    # a remote group stands for its members' fixed IPs and allowed-address-pairs
                    from_group = r.remote_group_id == gid
                    covers_nodes = from_group or r.remote_group_id is None and (
                        r.remote_ip_prefix is None or _covers(r.remote_ip_prefix, layout.subnet_cidr))
                    covers_pods = (r.remote_group_id is None and (r.remote_ip_prefix is None or _covers(r.remote_ip_prefix, self.pool_cidr))) \
                        or (from_group and members and all(self.pool_cidr in p["pairs"] for p in members))
                    proto = (r.protocol or "").lower()
                    if proto in ("", "any") and covers_nodes:
                        verdict["ipip"] = verdict["vxlan"] = True
                    if proto in ("4", "ipip") and covers_nodes:
                        verdict["ipip"] = True
                    if proto == "udp" and covers_nodes and (r.port_range_min or 0) <= 4789 <= (r.port_range_max or 65535):
                        verdict["vxlan"] = True
                    if proto in ("", "any") and covers_pods:
                        verdict["pods"] = True
            allow[name] = verdict
        return mode, self.program_neutron(ports, allow)


def _covers(prefix: str | None, target: str) -> bool:
    if prefix is None:
        return False
    try:
        return ipaddress.ip_network(target, strict=False).subnet_of(ipaddress.ip_network(prefix, strict=False))
    except (ValueError, TypeError):
        return False
