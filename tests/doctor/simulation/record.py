"""Record the real output of busybox `ping` and `tcpdump` that the doctor's simulations replay.

Run as root on Debian with busybox and tcpdump installed:  python -m tests.doctor.simulation.record

Two network namespaces joined by a veth stand for two nodes (10.100.200.4 and 10.100.200.21, the
incident's addresses), each with a "pod" address (172.16.200.0 and 172.16.110.23, the incident's).
Three ways a pod packet crosses, each captured with the real tcpdump on node A:
- ipip: this kernel has no ipip module, so the IP-in-IP packets are sent through a raw socket of
  IP protocol 4 (the kernel adds the outer header exactly as tunl0 would);
- vxlan: the kernel's own VXLAN device, set up the way Calico sets up vxlan.calico (static FDB
  and neighbour entries, onlink routes), pinged with busybox ping;
- direct: unencapsulated routing of the pod addresses via the node address, busybox ping.
Plus busybox ping's output for a pod that answers and for one that does not, and (record_matrix) the
other cells of the doctor's matrix: busybox `nc` to a listener (`nc -ll -p 8080 -e echo ...`), to a
closed port and to a dropped one; busybox `ping -s SIZE` at the path MTU (busybox has no `-M do`, but
Linux sends its ICMP with DF set by default: IP_PMTUDISC_WANT), through a link whose far end takes
1400-byte frames only (silently dropped, as an underlay with a smaller MTU does).

The addresses are then replaced by placeholders ({SRC_NODE} {DST_NODE} {SRC_POD} {DST_POD}
{SRC_MAC} {DST_MAC}) so the replay can fill in the test nodes' own values.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "recorded"
A, B = "ltrec-a", "ltrec-b"
A_IP, B_IP = "10.100.200.4", "10.100.200.21"
A_POD, B_POD = "172.16.200.0", "172.16.110.23"
A_MAC, B_MAC = "fa:16:3e:00:00:04", "fa:16:3e:00:00:21"
A_VX_MAC, B_VX_MAC = "66:8a:1c:3e:00:04", "66:8a:1c:3e:00:21"


def sh(*argv: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


def setup() -> None:
    teardown()
    sh("ip", "netns", "add", A)
    sh("ip", "netns", "add", B)
    sh("ip", "link", "add", "eth0", "netns", A, "type", "veth", "peer", "name", "eth0", "netns", B)
    for ns, ip, mac in ((A, A_IP, A_MAC), (B, B_IP, B_MAC)):
        sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "link", "set", "eth0", "address", mac, ns=ns)
        sh("ip", "addr", "add", f"{ip}/24", "dev", "eth0", ns=ns)
        sh("ip", "link", "set", "eth0", "up", ns=ns)
        sh("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", ns=ns)
        sh("sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0", ns=ns)


def teardown() -> None:
    for ns in (A, B):
        sh("ip", "netns", "del", ns, check=False)


def capture(filter_: str, action, count: int = 4) -> str:
    proc = subprocess.Popen(["ip", "netns", "exec", A, "tcpdump", "-i", "eth0", "-nn", "-e", "-l", "-c", str(count), filter_],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    action()
    try:
        out, err = proc.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return err.strip().splitlines()[0] + "\n" + out if err.strip() else out


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _inner(src: str, dst: str, icmp_type: int, seq: int) -> bytes:
    payload = bytes(range(56))
    icmp = struct.pack("!BBHHH", icmp_type, 0, 0, 0x1d, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", _csum(icmp)) + icmp[4:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0x4d2 + seq, 0x4000, 63, 1, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + icmp


def send_ipip() -> None:
    code = (
        "import socket,sys,binascii;s=socket.socket(socket.AF_INET,socket.SOCK_RAW,4);"
        "s.sendto(binascii.unhexlify(sys.argv[1]),(sys.argv[2],0))"
    )
    for seq in (0, 1):
        sh(sys.executable, "-c", code, _inner(A_POD, B_POD, 8, seq).hex(), B_IP, ns=A)
        sh(sys.executable, "-c", code, _inner(B_POD, A_POD, 0, seq).hex(), A_IP, ns=B)


def setup_vxlan() -> None:
    for ns, local, pod, mac, peer_ip, peer_pod, peer_mac in (
        (A, A_IP, A_POD, A_VX_MAC, B_IP, B_POD, B_VX_MAC),
        (B, B_IP, B_POD, B_VX_MAC, A_IP, A_POD, A_VX_MAC),
    ):
        sh("ip", "link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "dstport", "4789", "dev", "eth0",
           "local", local, "nolearning", ns=ns)
        sh("ip", "link", "set", "vxlan.calico", "address", mac, "up", ns=ns)
        sh("ip", "addr", "add", f"{pod}/32", "dev", "vxlan.calico", ns=ns)
        sh("sysctl", "-qw", "net/ipv4/conf/vxlan.calico/rp_filter=0", ns=ns)
        sh("ip", "neigh", "add", peer_pod, "lladdr", peer_mac, "dev", "vxlan.calico", "nud", "permanent", ns=ns)
        sh("bridge", "fdb", "add", peer_mac, "dev", "vxlan.calico", "dst", peer_ip, ns=ns)
        sh("ip", "route", "add", f"{peer_pod}/32", "via", peer_pod, "dev", "vxlan.calico", "onlink", ns=ns)


def teardown_vxlan() -> None:
    for ns in (A, B):
        sh("ip", "link", "del", "vxlan.calico", ns=ns, check=False)


def ping(dst: str, src: str, ns: str = A) -> str:
    return sh("busybox", "ping", "-c", "2", "-w", "3", "-I", src, dst, ns=ns, check=False).stdout


def placeholders(text: str) -> str:
    for value, key in ((A_POD, "{SRC_POD}"), (B_POD, "{DST_POD}"), (A_IP, "{SRC_NODE}"), (B_IP, "{DST_NODE}"),
                       (A_MAC, "{SRC_MAC}"), (B_MAC, "{DST_MAC}")):
        text = text.replace(value, key)
    return text


def main() -> None:
    OUT.mkdir(exist_ok=True)
    setup()
    try:
        (OUT / "tcpdump-ipip.txt").write_text(placeholders(capture("ip proto 4", send_ipip)))
        setup_vxlan()
        out: dict[str, str] = {}
        (OUT / "tcpdump-vxlan.txt").write_text(placeholders(capture("udp port 4789", lambda: out.setdefault("ok", ping(B_POD, A_POD)))))
        (OUT / "ping-ok.txt").write_text(placeholders(out["ok"]))
        teardown_vxlan()
        # direct: pod addresses routed via the node address, no encapsulation
        sh("ip", "addr", "add", f"{A_POD}/32", "dev", "lo", ns=A)
        sh("ip", "addr", "add", f"{B_POD}/32", "dev", "lo", ns=B)
        sh("ip", "route", "add", f"{B_POD}/32", "via", B_IP, ns=A)
        sh("ip", "route", "add", f"{A_POD}/32", "via", A_IP, ns=B)
        (OUT / "tcpdump-direct.txt").write_text(placeholders(capture("net 172.16.0.0/16", lambda: ping(B_POD, A_POD))))
        # no answer: B drops pod traffic (what anti-spoofing does to it)
        sh("ip", "route", "add", "blackhole", f"{A_POD}/32", ns=B, check=False)
        sh("ip", "route", "del", f"{A_POD}/32", "via", A_IP, ns=B, check=False)
        (OUT / "ping-fail.txt").write_text(placeholders(ping(B_POD, A_POD)))
        record_matrix()
    finally:
        teardown()
    for f in sorted(OUT.iterdir()):
        print(f"--- {f.name}\n{f.read_text()}")


def nc(dst: str, port: int, ns: str = A) -> str:
    res = sh("busybox", "nc", "-w", "2", dst, str(port), ns=ns, check=False)
    return res.stdout + res.stderr


def record_matrix() -> None:
    """TCP and DF cells, from the pod address of A to the one of B (the direct routes above)."""
    sh("ip", "route", "del", "blackhole", f"{A_POD}/32", ns=B, check=False)
    sh("ip", "route", "add", f"{A_POD}/32", "via", A_IP, ns=B, check=False)
    listener = subprocess.Popen(["ip", "netns", "exec", B, "busybox", "nc", "-ll", "-p", "8080", "-e", "echo",
                                 "labtui-probe-ok"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        (OUT / "tcp-ok.txt").write_text(placeholders(nc(B_POD, 8080)))
        (OUT / "tcp-refused.txt").write_text(placeholders(nc(B_POD, 8081)))
        # ping -s 1452: 1480-byte packets (a 1480 pod MTU) with DF
        (OUT / "ping-df-ok.txt").write_text(placeholders(
            sh("busybox", "ping", "-c", "2", "-w", "3", "-s", "1452", "-I", A_POD, B_POD, ns=A, check=False).stdout))
        sh("ip", "link", "set", "eth0", "mtu", "1400", ns=B)
        (OUT / "ping-df-fail.txt").write_text(placeholders(
            sh("busybox", "ping", "-c", "2", "-w", "3", "-s", "1452", "-I", A_POD, B_POD, ns=A, check=False).stdout))
        sh("ip", "link", "set", "eth0", "mtu", "1500", ns=B)
        # B drops what it sends back to A (busybox nc has no source address option: A's node address)
        sh("ip", "route", "add", "blackhole", f"{A_IP}/32", ns=B, check=False)
        (OUT / "tcp-timeout.txt").write_text(placeholders(nc(B_POD, 8080)))
        sh("ip", "route", "del", "blackhole", f"{A_IP}/32", ns=B, check=False)
    finally:
        listener.kill()
        listener.wait()


if __name__ == "__main__":
    main()
