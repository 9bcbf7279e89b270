"""The facts parser and the preflight rules (pure: no SSH)."""

from __future__ import annotations

from labtui.nodes.facts import NodeFacts, parse_facts
from labtui.model import Plan
from labtui.nodes.preflight import fix_for, fixes_needed, preflight

# Representative output of FACTS_SCRIPT on an Ubuntu 24.04 cloud VM with containerd and kubeadm
UBUNTU_CP = """@@hostname
k8s-cp1
@@os
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
ID=ubuntu
@@uname
Linux 6.8.0-45-generic x86_64
@@cpus
2
@@meminfo
MemTotal:        4009420 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
@@swaps
/swap.img                               file		2097148		0		-2
@@modules
overlay
br_netfilter
bridge
ip_tables
@@sysmodule
overlay
br_netfilter
@@builtin
@@available
overlay
br_netfilter
ipip
@@sysctl
net/ipv4/ip_forward=0
net/bridge/bridge-nf-call-iptables=1
@@cgroup
cgroup2fs
@@machine
6f1c0c4b7f2a4f4f9a6e1f7d0c2b1a99
8a2f3c1e-0d5b-4c7e-9f10-2b3c4d5e6f70
@@containerd
containerd containerd.io 1.7.22 7f7fdf5fed64eb6a7caf99b3e12efcf9d60e311c
@@crio
@@docker
@@kubelet
Kubernetes v1.36.2
@@kubeadm
v1.36.2
@@kubectl
Client Version: v1.36.2
@@route
default via 10.100.200.1 dev ens3 proto dhcp src 10.100.200.4 metric 100
@@addr
2: ens3    inet 10.100.200.4/24 metric 100 brd 10.100.200.255 scope global dynamic ens3\\       valid_lft 86061sec preferred_lft 86061sec
3: tunl0    inet 172.16.20.0/32 scope global tunl0\\       valid_lft forever preferred_lft forever
@@link
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
2: ens3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc fq_codel state UP mode DEFAULT group default qlen 1000\\    link/ether fa:16:3e:2b:11:04 brd ff:ff:ff:ff:ff:ff
3: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1430 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/ipip 0.0.0.0 brd 0.0.0.0
@@end
"""


def test_parse_a_real_looking_node():
    f = parse_facts("cp1", UBUNTU_CP)
    assert (f.hostname, f.os_id, f.os_version, f.kernel, f.arch) == ("k8s-cp1", "ubuntu", "24.04", "6.8.0-45-generic", "x86_64")
    assert (f.cpus, f.memory_mb, f.swap_total_mb, f.swap_active) == (2, 3915, 2047, True)
    assert f.modules == {"overlay": "loaded", "br_netfilter": "loaded", "ipip": "builtin"}  # tunl0 exists
    assert f.sysctls == {"net.ipv4.ip_forward": "0", "net.bridge.bridge-nf-call-iptables": "1"}
    assert (f.cgroup, f.runtime, f.runtime_version) == ("v2", "containerd", "1.7.22")
    assert (f.kubelet, f.kubeadm, f.kubectl) == ("1.36.2", "1.36.2", "1.36.2")
    assert (f.interface, f.iface_cidr, f.subnet, f.mac) == ("ens3", "10.100.200.4/24", "10.100.200.0/24", "fa:16:3e:2b:11:04")
    assert f.product_uuid.startswith("8a2f3c1e") and f.ipip_module
    assert NodeFacts.from_dict(f.to_dict()) == f


def test_parse_tolerates_missing_sections():
    f = parse_facts("x", "@@hostname\nx\n@@end\n")
    assert f.hostname == "x" and f.cpus == 0 and f.modules == {"overlay": "missing", "br_netfilter": "missing", "ipip": "missing"}
    assert f.iface_cidr == "" and f.subnet == "" and f.runtime_label == "none"


def _plan(enc="IPIP", nodes=None):
    return Plan.parse({"name": "lab", "cloud": None, "node_subnet": "10.100.200.0/24", "pod_cidr": "172.16.0.0/16",
                       "service_cidr": "172.20.0.0/16", "encapsulation": enc, "kubernetes": "1.36",
                       "nodes": nodes or [{"name": "cp1", "address": "10.100.200.4", "role": "control-plane"},
                                          {"name": "w1", "address": "10.100.200.21"}]})


def test_preflight_explains_and_offers_fixes():
    cp = parse_facts("cp1", UBUNTU_CP)
    w1 = parse_facts("w1", UBUNTU_CP.replace("k8s-cp1", "k8s-w1").replace("10.100.200.4/24", "10.100.200.21/24")
                     .replace("fa:16:3e:2b:11:04", "fa:16:3e:2b:11:21").replace("8a2f3c1e", "9b3f4d2f"))
    findings = preflight(_plan(), {"cp1": cp, "w1": w1})
    errors = {(f.node, f.check) for f in findings if f.severity == "error"}
    assert ("cp1", "swap") in errors and ("cp1", "ip-forward") in errors
    assert ("w1", "swap") in errors
    dup = [f for f in findings if f.check == "unique-machine_id"]
    assert dup and "cp1, w1" in dup[0].title and "machine-id" in dup[0].why
    assert any(f.check == "hostname" and f.node == "cp1" for f in findings)  # k8s-cp1 vs cp1
    assert {n: sorted(f) for n, f in fixes_needed(findings).items()} == {"cp1": ["swap", "sysctl"], "w1": ["swap", "sysctl"]}
    fix = fix_for("sysctl", cp)
    assert "net.ipv4.ip_forward = 1" in fix.command and fix.revert.endswith("net.ipv4.ip_forward=0")
    assert all(f.why for f in findings if f.severity == "error")


def test_preflight_names_the_incident():
    facts = {n: parse_facts(n, UBUNTU_CP.replace("k8s-cp1", n).replace("10.100.200.4/24", ip))
             for n, ip in (("cp1", "10.100.200.4/24"), ("w1", "10.100.200.21/24"))}
    findings = preflight(_plan("IPIPCrossSubnet"), facts)
    cross = [f for f in findings if f.check == "crosssubnet"]
    assert cross and "anti-spoofing" in cross[0].why and "incident" in cross[0].why


def test_preflight_small_control_plane_and_missing_ipip():
    tiny = UBUNTU_CP.replace("@@cpus\n2", "@@cpus\n1").replace("MemTotal:        4009420", "MemTotal:        1009420")
    tiny = tiny.replace("3: tunl0@NONE", "3: other@NONE").replace("ipip\n@@sysctl", "@@sysctl")
    f = parse_facts("cp1", tiny)
    checks = {(x.check, x.severity) for x in preflight(_plan(), {"cp1": f})}
    assert ("cpus", "error") in checks and ("memory", "error") in checks and ("ipip", "error") in checks
    assert ("ipip", "error") not in {(x.check, x.severity) for x in preflight(_plan("VXLAN"), {"cp1": f})}


def test_facts_script_sections_run_as_a_subset_of_the_one_script():
    """The doctor runs only the sections it reads, cut from the same lines as the whole script: run
    both here with a real shell and compare those sections' output."""
    import subprocess

    import pytest

    from labtui.doctor.gather import NODE_SECTIONS, parse_node_probe
    from labtui.nodes.facts import FACTS_SCRIPT, FACTS_SECTIONS, facts_script

    part = facts_script(NODE_SECTIONS)
    assert part.startswith("export LC_ALL=C\n") and part.rstrip().endswith("echo @@end")
    assert [s for s in FACTS_SECTIONS if f"echo @@{s};" in part] == [s for s in FACTS_SECTIONS if s in NODE_SECTIONS]
    assert facts_script() == FACTS_SCRIPT and "@@kubelet" in FACTS_SCRIPT and "@@kubelet" not in part
    with pytest.raises(ValueError, match="no such node-facts section: nope"):
        facts_script(["addr", "nope"])
    whole = subprocess.run(["sh", "-c", FACTS_SCRIPT], capture_output=True, text=True, timeout=30).stdout
    some = subprocess.run(["sh", "-c", part], capture_output=True, text=True, timeout=30).stdout
    got_whole, got_some = parse_node_probe(whole), parse_node_probe(some)
    assert got_some["complete"] and got_some == got_whole


# A machine without /lib/modules and /sys/module (a systemd-nspawn container, some minimal images):
# the kernel still lists overlay in /proc/filesystems and br_netfilter's sysctls exist (issue 20).
CONTAINER_LIKE = """@@hostname
mx1
@@modules
@@sysmodule
@@builtin
@@available
@@filesystems
nodev	overlay
@@sysctl
net/ipv4/ip_forward=1
net/bridge/bridge-nf-call-iptables=0
@@link
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
@@end
"""


def test_modules_on_a_machine_without_lib_modules_or_sys_module():
    f = parse_facts("mx1", CONTAINER_LIKE)
    assert f.modules == {"overlay": "builtin", "br_netfilter": "builtin", "ipip": "missing"}
    assert f.module_sources == {"overlay": "/proc/filesystems", "br_netfilter": "/proc/sys/net/bridge", "ipip": ""}
    assert "overlay builtin (/proc/filesystems)" in f.summary()
    # the preflight does not block the Kubernetes stage on modules the kernel has
    plan = Plan.parse({"name": "c", "node_subnet": "10.0.0.0/24", "encapsulation": "VXLAN",
                       "nodes": [{"name": "mx1", "address": "10.0.0.5", "role": "control-plane"}]})
    problems = [x for x in preflight(plan, {"mx1": f}) if x.check in ("overlay", "br-netfilter")]
    assert problems == [], problems  # before: "the overlay module is missing" (an ERROR that blocked the stage)


def test_every_source_is_read_and_named():
    """Each trace alone is enough, and the one that answered is named."""
    base = "@@modules\n@@sysmodule\n@@builtin\n@@available\n@@filesystems\n@@sysctl\n@@link\n"
    cases = {
        "@@modules\noverlay\n": ("loaded", "/proc/modules"),
        "@@sysmodule\noverlay\n": ("builtin", "/sys/module"),
        "@@builtin\nkernel/fs/overlayfs/overlay.ko\n": ("builtin", "modules.builtin"),
        "@@filesystems\nnodev\toverlay\n": ("builtin", "/proc/filesystems"),
        "@@available\noverlay\n": ("available", "/lib/modules"),
    }
    for section, want in cases.items():
        f = parse_facts("n", section + base)
        assert (f.modules["overlay"], f.module_sources["overlay"]) == want, section
