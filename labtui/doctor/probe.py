"""Live proof for the doctor: a cross-node pod connectivity matrix and a short capture on a node.

The matrix runs `kubectl` on the control plane over SSH (the API server's exec needs a websocket
that not every path offers, and the control plane always has kubectl and admin.conf):

1. one probe pod per node, pinned with `nodeName` (so no scheduler is involved), tolerating every
   taint, `kubectl apply -f -`;
2. `kubectl wait --for=condition=Ready` with a timeout, then their pod IPs from `kubectl get -o json`;
3. every pod pings every other pod (`ping -c 2 -w 2`), all at once, in one remote script;
4. the probe pods are deleted in every case (also after a failure or a timeout).

While the pings run, `tcpdump` on one node captures a few packets of pod traffic: IP-in-IP (IP
protocol 4), VXLAN (UDP 4789) or direct (the pod CIDR), and `parse_tcpdump` says which it saw.

Everything here goes through a `Shell` (`run(command, timeout=...) -> (rc, stdout, stderr)`); the
parsers are pure.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from labtui.doctor.reason import Capture, ProbeResult, Unchecked
from labtui.events import INFO, WARN, Event, null_emit

PROBE_LABEL = "labtui.io/probe"
PROBE_VALUE = "doctor"
PROBE_NAMESPACE = "default"
PROBE_IMAGE = "busybox:1.36"
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"


class Shell(Protocol):
    node: str

    def run(self, command: str, *, timeout: float = 30.0, quiet: bool = False) -> tuple[int, str, str]: ...


# --------------------------------------------------------------------------- manifests and commands


def probe_pod_name(node: str) -> str:
    name = f"labtui-probe-{node}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha1(node.encode()).hexdigest()[:8]
    return f"labtui-probe-{node[:40].rstrip('-')}-{digest}"


def probe_manifest(nodes: list[str], image: str = PROBE_IMAGE, namespace: str = PROBE_NAMESPACE) -> dict[str, Any]:
    items = []
    for node in nodes:
        items.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": probe_pod_name(node), "namespace": namespace,
                         "labels": {PROBE_LABEL: PROBE_VALUE, "app.kubernetes.io/managed-by": "labtui"}},
            "spec": {
                "nodeName": node,
                "tolerations": [{"operator": "Exists"}],
                "terminationGracePeriodSeconds": 0,
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [{"name": "probe", "image": image, "command": ["sleep", "600"],
                                "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}],
            },
        })
    return {"apiVersion": "v1", "kind": "List", "items": items}


def ping_script(targets: list[str], count: int = 2, deadline: int = 2) -> str:
    """The shell script a probe pod runs: ping every target at once, one block of output each."""
    ips = " ".join(shlex.quote(t) for t in targets)
    return (f"for ip in {ips}; do (out=$(ping -c {count} -w {deadline} \"$ip\" 2>&1); "
            f"printf '### %s rc=%s\\n%s\\n' \"$ip\" \"$?\" \"$out\") & done; wait")


def matrix_script(kubectl: str, pods: dict[str, str], targets: dict[str, list[str]], namespace: str,
                  count: int = 2, deadline: int = 2) -> str:
    """One remote script: every probe pod pings its targets, all pods at once; output in blocks."""
    lines = ["t=$(mktemp -d)"]
    for node, pod in pods.items():
        inner = ping_script(targets[node], count, deadline)
        lines.append(f"({kubectl} exec -n {shlex.quote(namespace)} {shlex.quote(pod)} -- sh -c {shlex.quote(inner)} "
                     f"> \"$t\"/{shlex.quote(node)} 2>&1; echo \"### exec rc=$?\" >> \"$t\"/{shlex.quote(node)}) &")
    lines.append("wait")
    lines.append('for f in "$t"/*; do echo "@@@ ${f##*/}"; cat "$f"; done; rm -rf "$t"')
    return "\n".join(lines)


# --------------------------------------------------------------------------- parsers


_PING_STATS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received(?:, \+\d+ errors)?, ([\d.]+)% packet loss")
_RTT = re.compile(r"(?:round-trip|rtt) min/avg/max(?:/mdev)? = ([\d.]+)/([\d.]+)/([\d.]+)")


def parse_ping(text: str) -> tuple[bool, str]:
    """(any reply?, a short summary) from busybox or iputils ping output."""
    m = _PING_STATS.search(text)
    if not m:
        err = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("PING")), "no output")
        return False, err[:160]
    sent, got, loss = int(m.group(1)), int(m.group(2)), m.group(3)
    summary = f"{got}/{sent} replies, {loss}% packet loss"
    r = _RTT.search(text)
    if r:
        summary += f", rtt avg {r.group(2)} ms"
    return got > 0, summary


def parse_matrix_output(text: str, node_of_ip: dict[str, str], pod_ip: dict[str, str]) -> list[ProbeResult]:
    """Blocks `@@@ <src node>` then `### <ip> rc=<n>` + ping output, from `matrix_script`."""
    results: list[ProbeResult] = []
    src = None
    cur_ip = None
    buf: list[str] = []
    exec_fail: dict[str, str] = {}

    def flush() -> None:
        if src and cur_ip:
            ok, summary = parse_ping("\n".join(buf))
            dst = node_of_ip.get(cur_ip, cur_ip)
            results.append(ProbeResult(src, dst, ok, pod_ip.get(src), cur_ip, summary))

    for line in text.splitlines():
        if line.startswith("@@@ "):
            flush()
            src, cur_ip, buf = line[4:].strip(), None, []
            continue
        m = re.match(r"### (\S+) rc=(-?\d+)", line)
        if m:
            flush()
            if m.group(1) == "exec":
                if m.group(2) != "0" and src and not any(r.src == src for r in results):
                    exec_fail[src] = "\n".join(buf).strip()[-200:] or f"kubectl exec exit {m.group(2)}"
                cur_ip, buf = None, []
            else:
                cur_ip, buf = m.group(1), []
            continue
        buf.append(line)
    flush()
    for s, why in exec_fail.items():
        for ip, dst in node_of_ip.items():
            if dst != s:
                results.append(ProbeResult(s, dst, False, pod_ip.get(s), ip, f"kubectl exec failed: {why}"))
    return results


_IP = r"(\d{1,3}(?:\.\d{1,3}){3})"
_IPIP_RE = re.compile(rf"(?:IP |length \d+: ){_IP} > {_IP}: (?:IP )?{_IP} > {_IP}: (.*)")
_VXLAN_RE = re.compile(rf"(?:IP |length \d+: ){_IP}\.\d+ > {_IP}\.4789: VXLAN")
_DIRECT_RE = re.compile(rf"(?:IP |length \d+: ){_IP} > {_IP}: (ICMP.*|.*)")
_INNER_RE = re.compile(rf"(?:IP |length \d+: ){_IP} > {_IP}: (.*)")


def parse_tcpdump(text: str, pod_cidr: str | None = None) -> tuple[list[str], list[str]]:
    """(kinds seen in order: "ipip", "vxlan", "direct"; one plain line per packet)."""
    pod_net = None
    if pod_cidr:
        try:
            pod_net = ipaddress.ip_network(pod_cidr, strict=False)
        except ValueError:
            pod_net = None
    seen: list[str] = []
    summary: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _IPIP_RE.search(line)
        if m:
            o1, o2, i1, i2, what = m.groups()
            seen.append("ipip")
            summary.append(f"IPIP {o1} > {o2} carrying {i1} > {i2}: {what.split(',')[0]}")
            i += 1
            continue
        m = _VXLAN_RE.search(line)
        if m:
            o1, o2 = m.groups()
            inner = _INNER_RE.search(lines[i + 1]) if i + 1 < len(lines) else None
            seen.append("vxlan")
            carried = f" carrying {inner.group(1)} > {inner.group(2)}: {inner.group(3).split(',')[0]}" if inner else ""
            summary.append(f"VXLAN {o1} > {o2}{carried}")
            i += 2 if inner else 1
            continue
        m = _DIRECT_RE.search(line)
        if m:
            s, d, what = m.groups()
            is_pod = pod_net is None or (ipaddress.ip_address(s) in pod_net and ipaddress.ip_address(d) in pod_net)
            if is_pod:
                seen.append("direct")
                summary.append(f"direct (unencapsulated) {s} > {d}: {what.split(',')[0]}")
        i += 1
    kinds = list(dict.fromkeys(seen))
    return kinds, summary


def capture_filter(pod_cidr: str | None) -> str:
    parts = ["ip proto 4", "udp port 4789"]
    if pod_cidr:
        parts.append(f"net {pod_cidr}")
    return " or ".join(f"({p})" for p in parts)


def tcpdump_command(iface: str, pod_cidr: str | None, count: int = 8, seconds: int = 6) -> str:
    return (f"timeout {int(seconds)} tcpdump -i {shlex.quote(iface)} -nn -e -l -c {int(count)} "
            f"{shlex.quote(capture_filter(pod_cidr))}")


# --------------------------------------------------------------------------- running it


@dataclass
class LiveProof:
    matrix: list[ProbeResult] | None = None
    capture: Capture | None = None
    unchecked: list[Unchecked] = field(default_factory=list)
    seconds: float = 0.0


def kubectl_prefix(sudo: bool, kubeconfig: str | None = ADMIN_KUBECONFIG) -> str:
    base = "kubectl" + (f" --kubeconfig {shlex.quote(kubeconfig)}" if kubeconfig else "")
    return ("sudo -n " if sudo else "") + base


def run_live_proof(
    shell: Shell,
    nodes: list[str],
    *,
    kubectl: str = "kubectl --kubeconfig /etc/kubernetes/admin.conf",
    capture_shell: Shell | None = None,
    capture_iface: str = "any",
    capture_sudo: bool = False,
    pod_cidr: str | None = None,
    namespace: str = PROBE_NAMESPACE,
    image: str = PROBE_IMAGE,
    ready_timeout: int = 60,
    emit: Callable[[Event], None] = null_emit,
    simulated: bool = False,
) -> LiveProof:
    """Probe pods on every node, pairwise ping, a capture on one node, cleanup. Never raises for
    a cluster problem: what could not be done becomes an Unchecked."""
    started = time.monotonic()
    proof = LiveProof()
    where = f"kubectl on {shell.node}"
    label = f"{PROBE_LABEL}={PROBE_VALUE}"
    ns = shlex.quote(namespace)

    def run(cmd: str, timeout: float) -> tuple[int, str, str]:
        try:
            return shell.run(cmd, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - LabError or a transport error: reported, not raised
            return 255, "", str(exc)

    manifest = json.dumps(probe_manifest(nodes, image, namespace), separators=(",", ":"))
    emit(Event(INFO, f"live proof: starting a probe pod on each of {len(nodes)} nodes ({where})"))
    rc, out, err = run(f"printf '%s' {shlex.quote(manifest)} | {kubectl} apply -f -", 30)
    try:
        if rc != 0:
            proof.unchecked.append(Unchecked("matrix", "pod-to-pod connectivity", f"`kubectl apply` on {shell.node} "
                                             f"failed: {(err or out).strip()[:200]}",
                                             "is kubectl on the control plane, and may this user run it with sudo?"))
            return proof
        rc, out, err = run(f"{kubectl} wait -n {ns} --for=condition=Ready pod -l {shlex.quote(label)} "
                           f"--timeout={int(ready_timeout)}s", ready_timeout + 15)
        rc2, out2, err2 = run(f"{kubectl} get pods -n {ns} -l {shlex.quote(label)} -o json", 30)
        pod_ip: dict[str, str] = {}
        if rc2 == 0:
            try:
                for item in json.loads(out2).get("items", []):
                    node = (item.get("spec") or {}).get("nodeName")
                    ip = (item.get("status") or {}).get("podIP")
                    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                                for c in (item.get("status") or {}).get("conditions") or [])
                    if node and ip and ready:
                        pod_ip[node] = ip
            except (ValueError, AttributeError):
                pass
        missing = [n for n in nodes if n not in pod_ip]
        if missing:
            why = (err or out).strip()[:200] if rc != 0 else "not ready in time"
            proof.unchecked.append(Unchecked("matrix", f"pods on {', '.join(missing)}",
                                             f"the probe pod did not become ready ({why})",
                                             f"can the nodes pull {image}? `kubectl describe pod -l {label}`"))
        if len(pod_ip) < 2:
            return proof
        emit(Event(INFO, "live proof: probe pods " + ", ".join(f"{n}={ip}" for n, ip in pod_ip.items())))
        node_of_ip = {ip: n for n, ip in pod_ip.items()}
        pods = {n: probe_pod_name(n) for n in pod_ip}
        targets = {n: [ip for m, ip in pod_ip.items() if m != n] for n in pod_ip}

        capture_box: dict[str, Any] = {}
        cap_thread = None
        if capture_shell is not None:
            cmd = tcpdump_command(capture_iface, pod_cidr)
            full = ("sudo -n " if capture_sudo else "") + cmd

            def do_capture() -> None:
                try:
                    capture_box["res"] = capture_shell.run(full, timeout=15)
                except Exception as exc:  # noqa: BLE001
                    capture_box["res"] = (255, "", str(exc))

            cap_thread = threading.Thread(target=do_capture, name="doctor-capture", daemon=True)
            cap_thread.start()
            time.sleep(0.3)  # let tcpdump open the interface before the first ping

        script = matrix_script(kubectl, pods, targets, namespace)
        rc, out, err = run(script, 60)
        proof.matrix = parse_matrix_output(out, node_of_ip, pod_ip)
        if not proof.matrix:
            proof.unchecked.append(Unchecked("matrix", "pod-to-pod pings", f"no ping output ({(err or out).strip()[:200]})"))
            proof.matrix = None
        else:
            bad = sum(1 for r in proof.matrix if not r.ok)
            emit(Event(WARN if bad else INFO, f"live proof: {len(proof.matrix) - bad} of {len(proof.matrix)} pod pairs answer"))
        if cap_thread is not None:
            cap_thread.join(timeout=20)
            crc, cout, cerr = capture_box.get("res", (255, "", "capture did not finish"))
            kinds, summary = parse_tcpdump(cout, pod_cidr)
            cmd_shown = tcpdump_command(capture_iface, pod_cidr)
            if crc not in (0, 124) and not cout.strip():
                proof.unchecked.append(Unchecked("capture", f"the wire on {capture_shell.node}",
                                                 f"tcpdump failed: {(cerr or '').strip()[:200]}",
                                                 "is tcpdump installed on the node, with sudo for this user?"))
            else:
                proof.capture = Capture(capture_shell.node, capture_iface, capture_filter(pod_cidr), cmd_shown,
                                        summary, kinds, simulated=simulated)
        return proof
    finally:
        run(f"{kubectl} delete pod -n {ns} -l {shlex.quote(label)} --wait=false --grace-period=0 --ignore-not-found", 30)
        proof.seconds = time.monotonic() - started
