"""Live proof for the doctor: the connectivity matrix and a short capture on a node.

The matrix runs `kubectl` on the control plane over SSH (the API server's exec needs a websocket
that not every path offers, and the control plane always has kubectl and admin.conf):

1. one step on the control plane: probe pods left by an earlier (killed) run are found by label
   and removed; the new probe pods are created (`kubectl apply -f -`); a watchdog is started on the
   control plane (detached, `setsid`) that deletes this run's pods after `ttl` seconds whatever
   happens to labtui (ctrl+c, a closed terminal, a lost SSH connection, a killed process); the pods
   also carry `activeDeadlineSeconds`, so the kubelet stops them by itself;
2. per node: a probe pod (`labtui-probe-NODE`) with a TCP listener (busybox `nc -ll -p 8080`), a
   second one on the same node (`...-peer`, for the same-node cells) and a hostNetwork one
   (`...-host`, for the host -> pod cells); pinned with `nodeName`, tolerating every taint;
3. `kubectl wait --for=condition=Ready`, then their IPs from `kubectl get -o json`;
4. every source runs all its cells at once, in one remote script: ICMP (`ping -c 2`), TCP (`nc` to
   the listener, which answers `labtui-probe-ok`) and a don't-fragment ping at the path MTU
   (`ping -s MTU-28`: busybox ping has no `-M do`, but Linux sends ICMP with DF set by default;
   the MTU is the one of the interface the source routes through: the pod's eth0, the host's
   tunl0/vxlan.calico/eth0);
5. the probe pods are deleted in every case (also after a failure, a timeout or an interrupt).

Cells: (check, scope, src, dst) with check icmp|tcp|mtu and scope cross (pod -> pod on another
node), same (pod -> pod on one node) or host (node -> pod). `facts.matrix` keeps what the
reasoning consumes (cross-node ICMP, as ProbeResults); every cell is a `Cell` in `LiveProof.cells`.

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
import secrets
import shlex
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Protocol

from labtui.doctor.reason import Capture, ProbeResult, Unchecked
from labtui.events import INFO, WARN, Event, null_emit

PROBE_LABEL = "labtui.io/probe"
PROBE_VALUE = "doctor"
RUN_LABEL = "labtui.io/probe-run"
PROBE_NAMESPACE = "default"
PROBE_IMAGE = "busybox:1.36"
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
TCP_PORT = 8080
TCP_ANSWER = "labtui-probe-ok"
PROBE_TTL = 300  # seconds: the watchdog and activeDeadlineSeconds

CHECKS = ("icmp", "tcp", "mtu")
SCOPES = ("cross", "same", "host")
CHECK_NAMES = {"icmp": "ICMP ping", "tcp": f"TCP {TCP_PORT}", "mtu": "ping at the path MTU, don't fragment"}
SCOPE_NAMES = {"cross": "pod -> pod, across nodes", "same": "pod -> pod, same node", "host": "host -> pod"}
ROLES = ("", "peer", "host")  # the probe pods per node: main, same-node peer, hostNetwork


class Shell(Protocol):
    node: str

    def run(self, command: str, *, timeout: float = 30.0, quiet: bool = False) -> tuple[int, str, str]: ...


@dataclass
class Cell:
    """One cell of the matrix."""

    check: str  # icmp | tcp | mtu
    scope: str  # cross | same | host
    src: str  # node name (host scope: the node's own network)
    dst: str  # node name of the destination pod
    ok: bool
    src_ip: str | None = None
    dst_ip: str | None = None
    detail: str = ""
    cause: str = ""  # from the reasoning, for a failing cell

    @property
    def id(self) -> str:
        return cell_id(self.check, self.scope, self.src, self.dst)

    @property
    def name(self) -> str:
        arrow = f"{self.src} (host) -> {self.dst}" if self.scope == "host" else f"{self.src} -> {self.dst}"
        return f"{CHECK_NAMES[self.check]}: {arrow}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"id": self.id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        return cls(**{k: data.get(k) for k in ("check", "scope", "src", "dst", "ok", "src_ip", "dst_ip")},
                   detail=data.get("detail") or "", cause=data.get("cause") or "")


def cell_id(check: str, scope: str, src: str, dst: str) -> str:
    return f"{check}:{scope}:{src}->{dst}"


def parse_cell_id(text: str) -> tuple[str, str, str, str]:
    check, scope, pair = text.split(":", 2)
    src, _, dst = pair.partition("->")
    if check not in CHECKS or scope not in SCOPES or not src or not dst:
        raise ValueError(text)
    return check, scope, src, dst


# --------------------------------------------------------------------------- manifests and commands


def probe_pod_name(node: str, role: str = "") -> str:
    suffix = f"-{role}" if role else ""
    name = f"labtui-probe-{node}{suffix}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha1(node.encode()).hexdigest()[:8]
    return f"labtui-probe-{node[:35].rstrip('-')}-{digest}{suffix}"


def _pod_command(role: str, ttl: int) -> list[str]:
    if role == "host":
        return ["sleep", str(ttl)]
    # the listener answers every connection with one line; `sleep` keeps the pod up when nc ends
    return ["sh", "-c", f"nc -ll -p {TCP_PORT} -e echo {TCP_ANSWER} & exec sleep {int(ttl)}"]


def probe_manifest(nodes: list[str], image: str = PROBE_IMAGE, namespace: str = PROBE_NAMESPACE, *,
                   roles: dict[str, Iterable[str]] | None = None, run_id: str = "", ttl: int = PROBE_TTL) -> dict[str, Any]:
    """The probe pods: per node the roles given ("" main, "peer", "host"; default: main only)."""
    items = []
    for node in nodes:
        for role in (roles or {}).get(node, ("",)):
            labels = {PROBE_LABEL: PROBE_VALUE, "app.kubernetes.io/managed-by": "labtui"}
            if run_id:
                labels[RUN_LABEL] = run_id
            spec: dict[str, Any] = {
                "nodeName": node,
                "tolerations": [{"operator": "Exists"}],
                "terminationGracePeriodSeconds": 0,
                "activeDeadlineSeconds": int(ttl),
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [{"name": "probe", "image": image, "command": _pod_command(role, ttl),
                                "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}],
            }
            if role == "host":
                spec["hostNetwork"] = True
            items.append({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": probe_pod_name(node, role), "namespace": namespace, "labels": labels},
                          "spec": spec})
    return {"apiVersion": "v1", "kind": "List", "items": items}


def ping_script(targets: list[str], count: int = 2, deadline: int = 2) -> str:
    """The shell script a probe pod runs: ping every target at once, one block of output each."""
    return probe_script([("icmp", t) for t in targets], count, deadline)


# the MTU of the interface the source routes through to $1 (busybox ip and sed)
_MTU_FN = ("mtu_to() { d=$(ip route get \"$1\" 2>/dev/null | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'); "
           "cat /sys/class/net/${d:-eth0}/mtu 2>/dev/null || echo 1500; }; ")


def probe_script(targets: list[tuple[str, str]], count: int = 2, deadline: int = 2) -> str:
    """One source's cells, all at once: `### CHECK IP rc=N` then the tool's output, per target."""
    parts = []
    for check, ip in targets:
        q = shlex.quote(ip)
        if check == "icmp":
            cmd = f"ping -c {count} -w {deadline} {q}"
        elif check == "tcp":
            cmd = f"nc -w {deadline} {q} {TCP_PORT} </dev/null"
        elif check == "mtu":
            cmd = f"ping -c {count} -w {deadline + 1} -s $(( $(mtu_to {q}) - 28 )) {q}"
        else:
            raise ValueError(check)
        label = "" if check == "icmp" else f"{check} "
        parts.append(f"(out=$({cmd} 2>&1); printf '### {label}%s rc=%s\\n%s\\n' {q} \"$?\" \"$out\") &")
    mtu = _MTU_FN if any(c == "mtu" for c, _ in targets) else ""
    return mtu + " ".join(parts) + " wait"


def matrix_script(kubectl: str, pods: dict[str, str], targets: dict[str, list[Any]], namespace: str,
                  count: int = 2, deadline: int = 2) -> str:
    """One remote script: every source pod runs its cells, all pods at once; output in blocks
    `@@@ <source key>`. `targets[key]` is a list of IPs (ICMP) or of (check, ip)."""
    lines = ["t=$(mktemp -d)"]
    for key, pod in pods.items():
        tl = [(t if isinstance(t, tuple) else ("icmp", t)) for t in targets[key]]
        inner = probe_script(tl, count, deadline)
        lines.append(f"({kubectl} exec -n {shlex.quote(namespace)} {shlex.quote(pod)} -- sh -c {shlex.quote(inner)} "
                     f"> \"$t\"/{shlex.quote(key)} 2>&1; echo \"### exec rc=$?\" >> \"$t\"/{shlex.quote(key)}) &")
    lines.append("wait")
    lines.append('for f in "$t"/*; do echo "@@@ ${f##*/}"; cat "$f"; done; rm -rf "$t"')
    return "\n".join(lines)


def setup_script(kubectl: str, manifest: dict[str, Any], namespace: str, run_id: str, ttl: int) -> str:
    """Remove leftovers of earlier runs, create the probe pods, start the watchdog (detached)."""
    ns = shlex.quote(namespace)
    sel = shlex.quote(f"{PROBE_LABEL}={PROBE_VALUE}")
    mine = shlex.quote(f"{RUN_LABEL}={run_id}")
    body = json.dumps(manifest, separators=(",", ":"))
    watchdog = f"sleep {int(ttl)}; {kubectl} delete pod -n {ns} -l {mine} --wait=false --grace-period=0 --ignore-not-found"
    return "\n".join([
        f"old=$({kubectl} get pods -n {ns} -l {sel} -o name 2>/dev/null)",
        'if [ -n "$old" ]; then for p in $old; do echo "leftover $p"; done; '
        f"{kubectl} delete pod -n {ns} -l {sel} --wait=false --grace-period=0 --ignore-not-found >/dev/null 2>&1; fi",
        f"printf '%s' {shlex.quote(body)} | {kubectl} apply -f - || exit $?",
        f"setsid sh -c {shlex.quote(watchdog)} </dev/null >/dev/null 2>&1 &",
        "echo watchdog $!",
    ])


def cleanup_command(kubectl: str, namespace: str, run_id: str | None = None) -> str:
    sel = f"{RUN_LABEL}={run_id}" if run_id else f"{PROBE_LABEL}={PROBE_VALUE}"
    return (f"{kubectl} delete pod -n {shlex.quote(namespace)} -l {shlex.quote(sel)} --wait=false --grace-period=0 "
            f"--ignore-not-found")


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


_BLOCK = re.compile(r"### (?:(tcp|mtu) )?(\S+) rc=(-?\d+)")
_DATA_BYTES = re.compile(r"(\d+) data bytes")


def parse_tcp(text: str, rc: int) -> tuple[bool, str]:
    """(the listener answered?, a short summary) from busybox nc's output."""
    if rc == 0 and TCP_ANSWER in text:
        return True, f"connected, the listener answered on {TCP_PORT}"
    err = next((ln.strip() for ln in text.splitlines() if ln.strip()), "") or f"nc exit {rc}"
    if err.startswith("nc: "):
        err = err[4:]
    if "timed out" in err:
        err = f"no answer to the TCP connect within the timeout ({err})"
    return False, err[:160]


def parse_df_ping(text: str) -> tuple[bool, str]:
    """A don't-fragment ping passes when every packet is answered; the summary names the size."""
    ok, summary = parse_ping(text)
    m = _PING_STATS.search(text)
    size = _DATA_BYTES.search(text)
    if size:
        summary = f"{int(size.group(1)) + 28}-byte packets: {summary}"
    if m and int(m.group(2)) < int(m.group(1)):
        ok = False
    return ok, summary


def source_key(node: str, role: str = "") -> str:
    """The name of a source's output block (a file name on the control plane)."""
    return f"host--{node}" if role == "host" else node


def parse_cells(text: str, owner_of_ip: dict[str, tuple[str, str]],
                source_ip: dict[str, str]) -> tuple[list[Cell], dict[str, str]]:
    """Cells from `matrix_script`'s output. `owner_of_ip`: target IP -> (node, role); `source_ip`:
    source key -> its IP. Returns (cells, {source key: why its exec failed})."""
    cells: list[Cell] = []
    exec_fail: dict[str, str] = {}
    src_key: str | None = None
    cur: tuple[str, str, int] | None = None
    buf: list[str] = []
    seen_src: set[str] = set()

    def flush() -> None:
        if not (src_key and cur):
            return
        check, ip, rc = cur
        out = "\n".join(buf)
        if check == "icmp":
            ok, detail = parse_ping(out)
        elif check == "tcp":
            ok, detail = parse_tcp(out, rc)
        else:
            ok, detail = parse_df_ping(out)
        host = src_key.startswith("host--")
        src = src_key[len("host--"):] if host else src_key
        dst, role = owner_of_ip.get(ip, (ip, ""))
        scope = "host" if host else ("same" if dst == src else "cross")
        cells.append(Cell(check, scope, src, dst, ok, source_ip.get(src_key), ip, detail))
        seen_src.add(src_key)

    for line in text.splitlines():
        if line.startswith("@@@ "):
            flush()
            src_key, cur, buf = line[4:].strip(), None, []
            continue
        m = _BLOCK.match(line)
        if m:
            flush()
            if m.group(2) == "exec" and m.group(1) is None:
                if m.group(3) != "0" and src_key and src_key not in seen_src:
                    exec_fail[src_key] = "\n".join(buf).strip()[-200:] or f"kubectl exec exit {m.group(3)}"
                cur, buf = None, []
            else:
                cur, buf = (m.group(1) or "icmp", m.group(2), int(m.group(3))), []
            continue
        buf.append(line)
    flush()
    return cells, exec_fail


def probe_results(cells: Iterable[Cell]) -> list[ProbeResult]:
    """The cross-node ICMP cells, as the reasoning's ProbeResults."""
    return [ProbeResult(c.src, c.dst, c.ok, c.src_ip, c.dst_ip, c.detail) for c in cells
            if c.check == "icmp" and c.scope == "cross"]


def plan_cells(nodes: list[str], checks: Iterable[str] = CHECKS, scopes: Iterable[str] = SCOPES,
               only: set[str] | None = None) -> list[tuple[str, str, str, str]]:
    """(check, scope, src, dst) for every cell asked for; `only`: cell ids (--failed)."""
    out = []
    for scope in scopes:
        for a in nodes:
            for b in nodes:
                if (scope == "cross") == (a == b) and scope != "host":
                    continue
                for check in checks:
                    if only is None or cell_id(check, scope, a, b) in only:
                        out.append((check, scope, a, b))
    return out


def render_cells(cells: list[Cell], nodes: list[str] | None = None) -> str:
    """The whole matrix as text: one table per check, rows = source, columns = destination pod
    (`host` rows: from the node itself), then each failing cell with its cause."""
    if not cells:
        return ""
    names = nodes or list(dict.fromkeys([c.src for c in cells] + [c.dst for c in cells]))
    width = max([len(n) for n in names] + [6])
    out = []
    by = {(c.check, c.scope if c.scope == "host" else "pod", c.src, c.dst): c for c in cells}
    for check in CHECKS:
        if not any(c.check == check for c in cells):
            continue
        out.append(f"  {CHECK_NAMES[check]} (row -> column):")
        out.append("    " + " " * (width + 7) + " ".join(n.ljust(width) for n in names))
        for kind in ("pod", "host"):
            for a in names:
                row = [by.get((check, kind, a, b)) for b in names]
                if not any(row):
                    continue
                out.append("    " + (a + (" (host)" if kind == "host" else " (pod) ")).ljust(width + 7)
                           + " ".join(("-" if c is None else "ok" if c.ok else "FAIL").ljust(width) for c in row))
    bad = [c for c in cells if not c.ok]
    if bad:
        out.append(f"  {len(bad)} of {len(cells)} cells fail:")
        for c in bad:
            out.append(f"    - {c.name}: {c.detail}" + (f"; cause: {c.cause}" if c.cause else ""))
    else:
        out.append(f"  all {len(cells)} cells pass")
    return "\n".join(out)


def junit_xml(cells: list[Cell], suite: str = "labtui doctor", *, unchecked: Iterable[Unchecked] = (),
              seconds: float = 0.0) -> str:
    """JUnit XML: one testsuite per scope, one testcase per cell; a failing cell is a <failure>
    whose message is the cause; what could not be checked is a skipped testcase."""
    from xml.etree import ElementTree as ET

    unchecked = list(unchecked)
    root = ET.Element("testsuites", name=suite, tests=str(len(cells) + len(unchecked)),
                      failures=str(sum(1 for c in cells if not c.ok)), errors="0", time=f"{seconds:.3f}")
    for scope in SCOPES:
        mine = [c for c in cells if c.scope == scope]
        if not mine:
            continue
        ts = ET.SubElement(root, "testsuite", name=f"{suite}: {SCOPE_NAMES[scope]}", tests=str(len(mine)),
                           failures=str(sum(1 for c in mine if not c.ok)), errors="0", skipped="0", time="0")
        for c in mine:
            tc = ET.SubElement(ts, "testcase", classname=f"matrix.{scope}.{c.check}", name=c.name, time="0")
            if not c.ok:
                fail = ET.SubElement(tc, "failure", message=c.cause or c.detail, type=f"{c.check}-failed")
                fail.text = f"{c.detail}\n" + (f"cause: {c.cause}\n" if c.cause else "") + f"cell: {c.id}"
            else:
                ET.SubElement(tc, "system-out").text = c.detail
    if unchecked:
        ts = ET.SubElement(root, "testsuite", name=f"{suite}: not checked", tests=str(len(unchecked)),
                           failures="0", errors="0", skipped=str(len(unchecked)), time="0")
        for u in unchecked:
            tc = ET.SubElement(ts, "testcase", classname=f"unchecked.{u.source}", name=u.what, time="0")
            ET.SubElement(tc, "skipped", message=u.line())
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


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
_PORT = r"(?:\.\d+)?"  # TCP/UDP packets: tcpdump writes ADDRESS.PORT
_IPIP_RE = re.compile(rf"(?:IP |length \d+: ){_IP} > {_IP}: (?:IP )?{_IP}{_PORT} > {_IP}{_PORT}: (.*)")
_VXLAN_RE = re.compile(rf"(?:IP |length \d+: ){_IP}\.\d+ > {_IP}\.4789: VXLAN")
_DIRECT_RE = re.compile(rf"(?:IP |length \d+: ){_IP}{_PORT} > {_IP}{_PORT}: (ICMP.*|.*)")
_INNER_RE = re.compile(rf"(?:IP |length \d+: ){_IP}{_PORT} > {_IP}{_PORT}: (.*)")


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
    """IPIP, VXLAN, and direct pod-to-pod packets (not the host -> pod cells' own packets, which
    carry the node's address and would use up the capture's count)."""
    parts = ["ip proto 4", "udp port 4789"]
    if pod_cidr:
        parts.append(f"src net {pod_cidr} and dst net {pod_cidr}")
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
    cells: list[Cell] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # probe pods of an earlier run, removed
    run_id: str = ""


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
    checks: Iterable[str] = CHECKS,
    scopes: Iterable[str] = SCOPES,
    only: set[str] | None = None,
    ttl: int = PROBE_TTL,
) -> LiveProof:
    """Probe pods, every cell of the matrix, a capture on one node, cleanup. Never raises for a
    cluster problem: what could not be done becomes an Unchecked. `only`: cell ids to re-run
    (`--failed`); the pods are then started where those cells need them only."""
    started = time.monotonic()
    run_id = secrets.token_hex(4)
    proof = LiveProof(run_id=run_id)
    where = f"kubectl on {shell.node}"
    label = f"{PROBE_LABEL}={PROBE_VALUE}"
    ns = shlex.quote(namespace)
    wanted = plan_cells(nodes, checks, scopes, only)
    if not wanted:
        proof.seconds = time.monotonic() - started
        return proof
    roles: dict[str, list[str]] = {}

    def need(node: str, role: str) -> None:
        if role not in roles.setdefault(node, []):
            roles[node].append(role)

    for _check, scope, a, b in wanted:
        if scope == "host":
            need(a, "host")
            need(b, "")
        else:
            need(a, "")
            need(b, "peer" if scope == "same" else "")
    pod_nodes = [n for n in nodes if n in roles]

    def run(cmd: str, timeout: float) -> tuple[int, str, str]:
        try:
            return shell.run(cmd, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - LabError or a transport error: reported, not raised
            return 255, "", str(exc)

    manifest = probe_manifest(pod_nodes, image, namespace, roles=roles, run_id=run_id, ttl=ttl)
    n_pods = len(manifest["items"])
    emit(Event(INFO, f"live proof: starting {n_pods} probe pods on {len(pod_nodes)} nodes for {len(wanted)} cells "
                     f"({where})"))
    created = False
    try:
        rc, out, err = run(setup_script(kubectl, manifest, namespace, run_id, ttl), 45)
        proof.leftovers = [ln.split(" ", 1)[1].strip() for ln in out.splitlines() if ln.startswith("leftover ")]
        if proof.leftovers:
            emit(Event(WARN, f"live proof: removed {len(proof.leftovers)} probe pod(s) left by an earlier run "
                             f"({', '.join(p.split('/')[-1] for p in proof.leftovers)})"))
        created = rc == 0 or "created" in out or "configured" in out
        apply_error = ""
        if rc != 0:
            apply_error = _short((err or out).strip(), 200)
            if not created:
                proof.unchecked.append(Unchecked("matrix", "pod-to-pod connectivity",
                                                 f"`kubectl apply` on {shell.node} failed: {apply_error}",
                                                 "is kubectl on the control plane, and may this user run it with sudo?"))
                return proof
            # some pods were refused (e.g. a Pod Security admission that forbids hostNetwork): go on
            # with the others; the cells that needed the refused ones say why below
        mine = shlex.quote(f"{RUN_LABEL}={run_id}")
        rc, out, err = run(f"{kubectl} wait -n {ns} --for=condition=Ready pod -l {mine} "
                           f"--timeout={int(ready_timeout)}s", ready_timeout + 15)
        rc2, out2, err2 = run(f"{kubectl} get pods -n {ns} -l {mine} -o json", 30)
        ips: dict[tuple[str, str], str] = {}
        if rc2 == 0:
            try:
                for item in json.loads(out2).get("items", []):
                    node = (item.get("spec") or {}).get("nodeName")
                    ip = (item.get("status") or {}).get("podIP")
                    name = (item.get("metadata") or {}).get("name", "")
                    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                                for c in (item.get("status") or {}).get("conditions") or [])
                    role = next((r for r in ("peer", "host") if name == probe_pod_name(node or "", r)), "")
                    if node and ip and ready:
                        ips[(node, role)] = ip
            except (ValueError, AttributeError):
                pass
        why = apply_error or (_short((err or out).strip(), 200) if rc != 0 else "not ready in time")
        missing = [n for n in pod_nodes if "" in roles[n] and (n, "") not in ips]
        if missing:
            proof.unchecked.append(Unchecked("matrix", f"pods on {', '.join(missing)}",
                                             f"the probe pod did not become ready ({why})",
                                             f"can the nodes pull {image}? `kubectl describe pod -l {label}`"))
        for role, what in (("peer", "same-node cells"), ("host", "host -> pod cells")):
            gone = [n for n in pod_nodes if role in roles[n] and (n, role) not in ips]
            if gone:
                proof.unchecked.append(Unchecked("matrix", f"the {what} on {', '.join(gone)}",
                                                 f"the probe pod {probe_pod_name(gone[0], role)} did not become ready "
                                                 f"({why})", f"`kubectl describe pod -l {label}`"))
        if not ips:
            return proof
        emit(Event(INFO, "live proof: probe pods " + ", ".join(
            f"{n}{'/' + r if r else ''}={ip}" for (n, r), ip in ips.items())))
        owner = {ip: key for key, ip in ips.items()}
        sources: dict[str, str] = {}
        targets: dict[str, list[tuple[str, str]]] = {}
        source_ip: dict[str, str] = {}
        for check, scope, a, b in wanted:
            src_role = "host" if scope == "host" else ""
            dst_key = (b, "peer" if scope == "same" else "")
            if (a, src_role) not in ips or dst_key not in ips:
                continue
            key = source_key(a, src_role)
            sources[key] = probe_pod_name(a, src_role)
            source_ip[key] = ips[(a, src_role)]
            targets.setdefault(key, []).append((check, ips[dst_key]))
        if not targets:
            return proof

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

        script = matrix_script(kubectl, sources, targets, namespace)
        rc, out, err = run(script, 60)
        cells, exec_fail = parse_cells(out, owner, source_ip)
        for key, why_exec in exec_fail.items():
            for check, ip in targets.get(key, []):
                dst, role = owner[ip]
                host = key.startswith("host--")
                src = key[len("host--"):] if host else key
                cells.append(Cell(check, "host" if host else ("same" if dst == src else "cross"), src, dst, False,
                                  source_ip.get(key), ip, f"kubectl exec failed: {why_exec}"))
        order = {n: i for i, n in enumerate(nodes)}
        cells.sort(key=lambda c: (SCOPES.index(c.scope), order.get(c.src, 99), order.get(c.dst, 99),
                                  CHECKS.index(c.check)))
        proof.cells = cells
        proof.matrix = probe_results(cells) or None
        if not cells:
            proof.unchecked.append(Unchecked("matrix", "pod-to-pod pings", f"no ping output ({(err or out).strip()[:200]})"))
        else:
            bad = sum(1 for c in cells if not c.ok)
            icmp = proof.matrix or []
            emit(Event(WARN if bad else INFO,
                       f"live proof: {len(icmp) - sum(1 for r in icmp if not r.ok)} of {len(icmp)} pod pairs answer; "
                       f"{len(cells) - bad} of {len(cells)} cells pass"))
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
        # also on KeyboardInterrupt / SystemExit (ctrl+c, SIGHUP/SIGTERM turned into SystemExit by the CLI):
        # delete this run's pods; if even that fails (SSH lost), the watchdog on the control plane does it
        rc, _out, err = run(cleanup_command(kubectl, namespace, run_id), 30)
        if rc != 0 and created:
            emit(Event(WARN, f"live proof: could not delete the probe pods now ({err.strip()[:120]}); the watchdog on "
                             f"{shell.node} deletes them within {ttl} s, and the next run removes any left"))
        proof.seconds = time.monotonic() - started


# --------------------------------------------------------------------------- causes from the reasoning


def _short(text: str, limit: int = 220) -> str:
    """At most `limit` characters, cut at a word boundary (never mid-word)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + " ..."


def attach_causes(diag: Any, cells: list[Cell]) -> list[Cell]:
    """Each failing cell gets its cause from the reasoning: the finding that names its node pair
    (and the port or rule that blocks it), the MTU finding for a failing don't-fragment cell whose
    small ping passes, and plain words for what the cloud cannot explain (same node, own node)."""
    verdicts: dict[str, list[Any]] = {}
    for v in getattr(diag, "verdicts", []) or []:
        verdicts.setdefault(f"{v.src}->{v.dst}", []).append(v)
    findings = [f for f in getattr(diag, "findings", []) or [] if f.severity in ("error", "warning")]
    by_pair: dict[str, Any] = {}
    for f in findings:
        for p in f.pairs or []:
            by_pair.setdefault(p, f)
    mtu_finding = next((f for f in findings if "mtu" in f.id.lower()), None)
    index = {(c.check, c.scope, c.src, c.dst): c for c in cells}

    def pair_cause(src: str, dst: str) -> str:
        pair = f"{src}->{dst}"
        blocks = [b for v in verdicts.get(pair, []) if v.ok is False for b in v.blocks]
        f = by_pair.get(pair)
        parts = []
        if f is not None:
            parts.append(f.title)
        if blocks:
            parts.append(f"blocked at {blocks[0].where}: {blocks[0].detail}")
        return _short(". ".join(parts)) if parts else ""

    for c in cells:
        if c.ok:
            c.cause = ""
            continue
        icmp = index.get(("icmp", c.scope, c.src, c.dst))
        cause = ""
        if c.check == "mtu" and icmp is not None and icmp.ok:
            cause = (mtu_finding.title if mtu_finding is not None else
                     "small packets pass but full-size ones with don't-fragment are dropped: the pod MTU is larger "
                     "than the path allows (the network's MTU minus the encapsulation's overhead: IPIP 20, VXLAN 50)")
        elif c.check == "tcp" and icmp is not None and icmp.ok:
            cause = (f"ping passes but TCP {TCP_PORT} does not: a security group, a network policy or a host firewall "
                     f"lets ICMP through but not this TCP port")
        elif c.scope == "same" or (c.scope == "host" and c.src == c.dst):
            cause = (f"traffic that never leaves {c.src} fails: not the cloud; look at calico-node on {c.src} "
                     f"(`kubectl -n kube-system logs -l k8s-app=calico-node`) and the pod's routes")
        else:
            cause = pair_cause(c.src, c.dst)
            if not cause and c.scope == "cross" and c.check in ("icmp", "tcp"):
                back = pair_cause(c.dst, c.src)  # a ping or a connect needs its answer to come back
                if back:
                    cause = f"the answers from {c.dst} to {c.src} are dropped: {back}"
            if c.scope == "host" and not cause:
                cause = ("the node itself cannot reach the pod: its tunnel or route to the pod CIDR is missing, or "
                         "the security group blocks the encapsulated traffic")
        c.cause = _short(cause) if cause else ("not explained by the configuration the doctor read: see the capture, "
                                               "calico-node's logs and host firewalls")
    return cells
