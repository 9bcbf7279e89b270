"""Parsers of the live proof, on output recorded from the real busybox ping and tcpdump."""

from __future__ import annotations

import json

from labtui.doctor.matrix import parse_matrix_output, parse_ping
from labtui.doctor.probe import (
    matrix_script,
    parse_tcpdump,
    ping_script,
    probe_manifest,
    probe_pod_name,
    tcpdump_command,
)
from tests.doctor.simulation.replay import recorded

V = dict(SRC_NODE="10.100.200.4", DST_NODE="10.100.200.21", SRC_POD="172.16.200.0", DST_POD="172.16.110.23",
         SRC_MAC="fa:16:3e:00:00:04", DST_MAC="fa:16:3e:00:00:21")


def test_ping_ok_and_fail():
    ok, s = parse_ping(recorded("ping-ok.txt", **V))
    assert ok and s.startswith("2/2 replies, 0% packet loss, rtt avg")
    ok, s = parse_ping(recorded("ping-fail.txt", **V))
    assert not ok and s == "0/2 replies, 100% packet loss"
    assert parse_ping("ping: bad address 'x'") == (False, "ping: bad address 'x'")


def test_tcpdump_ipip_like_the_incident():
    kinds, lines = parse_tcpdump(recorded("tcpdump-ipip.txt", **V), "172.16.0.0/16")
    assert kinds == ["ipip"]
    assert lines[0] == "IPIP 10.100.200.4 > 10.100.200.21 carrying 172.16.200.0 > 172.16.110.23: ICMP echo request"


def test_tcpdump_vxlan_and_direct():
    kinds, lines = parse_tcpdump(recorded("tcpdump-vxlan.txt", **V), "172.16.0.0/16")
    assert kinds == ["vxlan"] and len(lines) == 4
    assert "carrying 172.16.200.0 > 172.16.110.23: ICMP echo request" in lines[0]
    kinds, lines = parse_tcpdump(recorded("tcpdump-direct.txt", **V), "172.16.0.0/16")
    assert kinds == ["direct"] and lines[0].startswith("direct (unencapsulated) 172.16.200.0 > 172.16.110.23")


def test_tcpdump_without_e_flag():
    text = "12:00:00.1 IP 10.0.0.1 > 10.0.0.2: IP 172.16.1.1 > 172.16.2.2: ICMP echo request, id 1, seq 1, length 64 (ipip-proto-4)"
    assert parse_tcpdump(text)[0] == ["ipip"]


def test_matrix_output_blocks():
    ok = recorded("ping-ok.txt", **V)
    fail = recorded("ping-fail.txt", **V)
    text = (f"@@@ a\n### 172.16.110.23 rc=0\n{ok}\n### 172.16.5.5 rc=1\n{fail}\n### exec rc=0\n"
            f"@@@ b\nerror: unable to upgrade connection\n### exec rc=1\n")
    res = parse_matrix_output(text, {"172.16.200.0": "a", "172.16.110.23": "b", "172.16.5.5": "c"},
                              {"a": "172.16.200.0", "b": "172.16.110.23", "c": "172.16.5.5"})
    by = {(r.src, r.dst): r for r in res}
    assert by[("a", "b")].ok and not by[("a", "c")].ok
    assert not by[("b", "a")].ok and "kubectl exec failed" in by[("b", "a")].detail


def test_manifest_and_scripts():
    m = probe_manifest(["k8s-cp", "k8s-w1"])
    pod = m["items"][0]
    assert pod["spec"]["nodeName"] == "k8s-cp" and pod["spec"]["tolerations"] == [{"operator": "Exists"}]
    assert pod["metadata"]["labels"]["labtui.io/probe"] == "doctor"
    json.dumps(m)
    assert len(probe_pod_name("n" * 80)) <= 63
    assert "ping -c 2 -w 2" in ping_script(["1.2.3.4"])
    s = matrix_script("kubectl", {"a": "labtui-probe-a"}, {"a": ["1.2.3.4"]}, "default")
    assert "kubectl exec -n default labtui-probe-a -- sh -c" in s
    assert tcpdump_command("ens3", "172.16.0.0/16").startswith("timeout 6 tcpdump -i ens3 -nn -e -l -c 8 ")
