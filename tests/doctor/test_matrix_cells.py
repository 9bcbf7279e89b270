"""The matrix's cells (ICMP, TCP, don't-fragment ping; cross-node, same-node, host -> pod), parsed from
output recorded from the real busybox ping and nc; causes from the reasoning; JUnit XML read back with
a real XML parser."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace
from xml.etree import ElementTree as ET

import pytest

from labtui.doctor.matrix import (
    Cell,
    attach_causes,
    junit_xml,
    parse_cell_id,
    parse_cells,
    parse_df_ping,
    parse_tcp,
    plan_cells,
    render_cells,
)
from labtui.doctor.probe import matrix_script, probe_manifest, probe_pod_name, probe_script, setup_script
from labtui.doctor.findings import Finding
from labtui.doctor.model import Unchecked
from labtui.doctor.paths import Block, PathVerdict
from tests.doctor.simulation.replay import recorded

A, B = "172.16.200.10", "172.16.110.11"
A_PEER, HOST_A = "172.16.200.100", "10.100.200.4"


def rec(name: str, src: str, dst: str) -> str:
    return recorded(name, SRC_POD=src, DST_POD=dst)


def test_tcp_and_df_ping_parsers():
    assert parse_tcp(rec("tcp-ok.txt", A, B), 0) == (True, "connected, the listener answered on 8080")
    ok, detail = parse_tcp(rec("tcp-timeout.txt", A, B), 1)
    assert not ok and "no answer to the TCP connect" in detail and "timed out" in detail
    ok, detail = parse_tcp(rec("tcp-refused.txt", A, B), 1)
    assert not ok and detail == f"can't connect to remote host ({B}): Connection refused"
    ok, detail = parse_df_ping(rec("ping-df-ok.txt", A, B))
    assert ok and detail.startswith("1480-byte packets: 2/2 replies")
    ok, detail = parse_df_ping(rec("ping-df-fail.txt", A, B))
    assert not ok and detail == "1480-byte packets: 0/2 replies, 100% packet loss"
    # one of two full-size packets answered is still a failing DF cell (the first was dropped)
    half = rec("ping-df-ok.txt", A, B).replace("2 packets received, 0%", "1 packets received, 50%")
    assert parse_df_ping(half)[0] is False


def test_cells_from_blocks_every_scope():
    text = (f"@@@ a\n### {B} rc=0\n{rec('ping-ok.txt', A, B)}\n### tcp {B} rc=1\n{rec('tcp-timeout.txt', A, B)}\n"
            f"### mtu {B} rc=1\n{rec('ping-df-fail.txt', A, B)}\n### {A_PEER} rc=0\n{rec('ping-ok.txt', A, A_PEER)}\n"
            f"### exec rc=0\n"
            f"@@@ host--a\n### tcp {B} rc=0\n{rec('tcp-ok.txt', HOST_A, B)}\n### exec rc=0\n"
            f"@@@ b\nerror: unable to upgrade connection: container not found\n### exec rc=1\n")
    owner = {B: ("b", ""), A: ("a", ""), A_PEER: ("a", "peer")}
    cells, failed = parse_cells(text, owner, {"a": A, "host--a": HOST_A, "b": B})
    by = {c.id: c for c in cells}
    assert by["icmp:cross:a->b"].ok and not by["tcp:cross:a->b"].ok and not by["mtu:cross:a->b"].ok
    assert by["icmp:same:a->a"].ok and by["icmp:same:a->a"].dst_ip == A_PEER
    assert by["tcp:host:a->b"].ok and by["tcp:host:a->b"].src_ip == HOST_A
    assert failed == {"b": "error: unable to upgrade connection: container not found"}
    assert parse_cell_id("tcp:host:a->b") == ("tcp", "host", "a", "b")
    with pytest.raises(ValueError):
        parse_cell_id("udp:cross:a->b")


def test_plan_cells_and_only_failed():
    all_cells = plan_cells(["a", "b", "c"])
    # cross: 6 pairs, same: 3, host: 9 (every node to every pod, its own included); 3 checks each
    assert len(all_cells) == (6 + 3 + 9) * 3
    only = {"tcp:cross:a->b", "mtu:host:c->a"}
    assert plan_cells(["a", "b", "c"], only=only) == [("tcp", "cross", "a", "b"), ("mtu", "host", "c", "a")]


def test_manifest_roles_run_label_and_deadline():
    m = probe_manifest(["cp", "w1"], roles={"cp": ["", "peer"], "w1": ["", "host"]}, run_id="r1", ttl=120)
    names = [i["metadata"]["name"] for i in m["items"]]
    assert names == ["labtui-probe-cp", "labtui-probe-cp-peer", "labtui-probe-w1", "labtui-probe-w1-host"]
    host = m["items"][3]["spec"]
    assert host["hostNetwork"] is True and host["activeDeadlineSeconds"] == 120
    main = m["items"][0]
    assert main["metadata"]["labels"]["labtui.io/probe-run"] == "r1"
    assert "nc -ll -p 8080 -e echo labtui-probe-ok" in main["spec"]["containers"][0]["command"][2]
    assert len(probe_pod_name("n" * 80, "peer")) <= 63 and probe_pod_name("n" * 80, "peer").endswith("-peer")


def test_scripts_are_valid_shell():
    script = probe_script([("icmp", A), ("tcp", B), ("mtu", B)])
    assert "nc -w 2 172.16.110.11 8080 </dev/null" in script and "-s $(( $(mtu_to 172.16.110.11) - 28 ))" in script
    setup = setup_script("kubectl", probe_manifest(["a"], run_id="r1"), "default", "r1", 60)
    full = matrix_script("kubectl", {"a": "labtui-probe-a"}, {"a": [("tcp", B)]}, "default")
    for text in (script, setup, full):
        assert subprocess.run(["sh", "-n", "-c", text], capture_output=True).returncode == 0, text
    assert "setsid sh -c 'sleep 60; kubectl delete pod -n default -l labtui.io/probe-run=r1" in setup


def _diag():
    blk = Block("antispoof-src", "the port of a (port-a)", "source 172.16.200.10 is not the port's address")
    v = PathVerdict("a", "b", "default", "direct", True, False, [blk])
    f = Finding("antispoof:default", "error", "Pod traffic leaves unencapsulated and OpenStack drops it", "...",
                pairs=["a->b"])
    return SimpleNamespace(verdicts=[v], findings=[f])


def test_causes_from_the_reasoning():
    cells = [Cell("icmp", "cross", "a", "b", False, A, B, "0/2 replies"),
             Cell("mtu", "cross", "b", "a", False, B, A, "1480-byte packets: 0/2 replies"),
             Cell("icmp", "cross", "b", "a", True, B, A, "2/2 replies"),
             Cell("tcp", "same", "a", "a", False, A, A_PEER, "timed out"),
             Cell("icmp", "same", "a", "a", True, A, A_PEER, "2/2 replies")]
    cells.append(Cell("tcp", "cross", "b", "a", False, B, A, "timed out"))
    cells.append(Cell("tcp", "cross", "a", "b", True, A, B, "connected"))
    cells[2] = Cell("icmp", "cross", "b", "a", False, B, A, "0/2 replies")
    attach_causes(_diag(), cells)
    # b -> a is allowed, but a's answers are dropped (the reasoning's a -> b verdict)
    assert cells[2].cause.startswith("the answers from a to b are dropped: Pod traffic leaves unencapsulated")
    assert cells[5].cause.startswith("the answers from a to b are dropped") and cells[6].cause == ""
    cells[2] = Cell("icmp", "cross", "b", "a", True, B, A, "2/2 replies")
    attach_causes(_diag(), cells)
    assert cells[0].cause.startswith("Pod traffic leaves unencapsulated and OpenStack drops it. blocked at the port of a")
    assert "pod MTU is larger than the path allows" in cells[1].cause
    assert cells[2].cause == ""
    assert "ping passes but TCP 8080 does not" in cells[3].cause


def test_junit_parses_with_a_real_xml_parser_and_render():
    cells = [Cell("icmp", "cross", "a", "b", False, A, B, "0/2 replies", cause="anti-spoofing drops <pod> & more"),
             Cell("tcp", "host", "a", "b", True, HOST_A, B, "connected")]
    xml = junit_xml(cells, unchecked=[Unchecked("matrix", "the same-node cells on c", "not ready")], seconds=1.5)
    root = ET.fromstring(xml.encode())
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "1"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["labtui doctor: pod -> pod, across nodes", "labtui doctor: host -> pod",
                                               "labtui doctor: not checked"]
    case = suites[0].find("testcase")
    assert case.get("name") == "ICMP ping: a -> b"
    assert case.find("failure").get("message") == "anti-spoofing drops <pod> & more"
    assert suites[2].find("testcase/skipped") is not None
    for s in suites:
        assert int(s.get("tests")) == len(s.findall("testcase"))
    text = render_cells(cells, ["a", "b"])
    rows = [ln.split() for ln in text.splitlines()]
    assert ["a", "(pod)", "-", "FAIL"] in rows and ["a", "(host)", "-", "ok"] in rows
    assert "1 of 2 cells fail" in text and "cause: anti-spoofing" in text


def test_capture_recognises_tcp_and_leaves_host_packets_out():
    from labtui.doctor.probe import capture_filter, parse_tcpdump

    line = ("01:00:00.1 fa:16:3e:00:00:04 > fa:16:3e:00:00:21, ethertype IPv4 (0x0800), length 74: "
            "172.16.200.10.39312 > 172.16.110.11.8080: Flags [S], seq 1, win 64240, length 0")
    assert parse_tcpdump(line, "172.16.0.0/16") == (["direct"], [
        "direct (unencapsulated) 172.16.200.10 > 172.16.110.11: Flags [S]"])
    ipip = ("01:00:00.1 IP 10.0.0.1 > 10.0.0.2: IP 172.16.1.1.40000 > 172.16.2.2.8080: Flags [S], seq 1, length 0 "
            "(ipip-proto-4)")
    assert parse_tcpdump(ipip)[0] == ["ipip"]
    f = capture_filter("172.16.0.0/16")
    assert f == "(ip proto 4) or (udp port 4789) or (src net 172.16.0.0/16 and dst net 172.16.0.0/16)"
    assert subprocess.run(["tcpdump", "-d", f], capture_output=True).returncode == 0  # the real tcpdump compiles it
