"""Live proof for the doctor: the probe pods that fill the connectivity matrix, and a short capture on a node.

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
node), same (pod -> pod on one node) or host (node -> pod). What a cell is, how the script's output
becomes cells, and how they are shown (text, JUnit XML) and explained is labtui.doctor.matrix's.
`facts.matrix` keeps what the reasoning consumes (cross-node ICMP, as ProbeResults); every cell is
a `Cell` in `LiveProof.cells`.

While the pings run, `tcpdump` on one node captures a few packets of pod traffic: IP-in-IP (IP
protocol 4), VXLAN (UDP 4789) or direct (the pod CIDR), and `parse_tcpdump` says which it saw.

Everything here goes through a `Shell` (`run(command, timeout=...) -> (rc, stdout, stderr)`); the
manifests, scripts and the tcpdump parser are pure.
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
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from labtui.doctor.matrix import (
    CHECKS,
    SCOPES,
    TCP_ANSWER,
    TCP_PORT,
    Cell,
    clip_words,
    parse_cells,
    plan_cells,
    probe_results,
    source_key,
)
from labtui.doctor.model import Capture, ProbeResult, Unchecked
from labtui.events import INFO, WARN, Event, null_emit

PROBE_LABEL = "labtui.io/probe"
PROBE_VALUE = "doctor"
RUN_LABEL = "labtui.io/probe-run"
PROBE_NAMESPACE = "default"
PROBE_IMAGE = "busybox:1.36"
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
PROBE_TTL = 300  # seconds: the watchdog and activeDeadlineSeconds

ROLES = ("", "peer", "host")  # the probe pods per node: main, same-node peer, hostNetwork


class Shell(Protocol):
    node: str

    def run(self, command: str, *, timeout: float = 30.0, quiet: bool = False) -> tuple[int, str, str]: ...


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


# --------------------------------------------------------------------------- the capture


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
        except Exception as exc:
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
            apply_error = clip_words((err or out).strip(), 200)
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
        why = apply_error or (clip_words((err or out).strip(), 200) if rc != 0 else "not ready in time")
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
                except Exception as exc:
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
