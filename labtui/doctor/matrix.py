"""The doctor's connectivity matrix: its cells, read from the probe's output, shown and explained.

A cell is (check, scope, src, dst) with check icmp|tcp|mtu and scope cross (pod -> pod on another
node), same (pod -> pod on one node) or host (node -> pod); `Cell` holds its result.
labtui.doctor.probe runs the probe pods and hands their output here:

- `plan_cells` lists the cells asked for (all, or the failing ones again: `--failed`);
- `parse_cells` turns the probe script's output (`@@@ <source>` blocks, then `### CHECK IP rc=N`
  and the tool's output) into cells, with `parse_ping`, `parse_tcp` and `parse_df_ping`;
  `parse_matrix_output` reads the older ICMP-only output into ProbeResults;
- `probe_results` keeps what the reasoning consumes (cross-node ICMP, as ProbeResults);
- `render_cells` shows the matrix as text tables, `junit_xml` as JUnit XML;
- `attach_causes` gives each failing cell its cause from the reasoning's findings and verdicts.

All pure.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from labtui.doctor.model import ProbeResult, Unchecked

TCP_PORT = 8080
TCP_ANSWER = "labtui-probe-ok"

CHECKS = ("icmp", "tcp", "mtu")
SCOPES = ("cross", "same", "host")
CHECK_NAMES = {"icmp": "ICMP ping", "tcp": f"TCP {TCP_PORT}", "mtu": "ping at the path MTU, don't fragment"}
SCOPE_NAMES = {"cross": "pod -> pod, across nodes", "same": "pod -> pod, same node", "host": "host -> pod"}


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


# --------------------------------------------------------------------------- causes from the reasoning


def clip_words(text: str, limit: int = 220) -> str:
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
        return clip_words(". ".join(parts)) if parts else ""

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
        c.cause = clip_words(cause) if cause else ("not explained by the configuration the doctor read: see the capture, "
                                               "calico-node's logs and host firewalls")
    return cells
