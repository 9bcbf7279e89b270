#!/usr/bin/python3
"""tcpdump, SIMULATED on the test nodes: replays a capture recorded with the real tcpdump
(recorded/tcpdump-*.txt) for the scenario's "wire": ipip | vxlan | direct | direct-noreply
(direct pod packets with no answer: what a node sees when anti-spoofing drops its pod traffic).
Only `-c N` is honoured; the addresses are the scenario's (this node and the first peer)."""
import json
import sys
import time

sc = json.load(open("/usr/local/bin/labtui-sim.json"))
args = sys.argv[1:]
count = int(args[args.index("-c") + 1]) if "-c" in args else 8
iface = args[args.index("-i") + 1] if "-i" in args else "any"
wire = sc.get("wire", "ipip")
me = sc["capture_node"]
peer = next(n for n in sc["nodes"] if n != me)
files = {"ipip": "tcpdump-ipip.txt", "vxlan": "tcpdump-vxlan.txt", "direct": "tcpdump-direct.txt",
         "direct-noreply": "tcpdump-direct.txt"}
text = open(sc["recorded"] + "/" + files[wire]).read()
a, b = sc["nodes"][me], sc["nodes"][peer]
for key, value in (("SRC_NODE", a["ip"]), ("DST_NODE", b["ip"]), ("SRC_POD", a["pod"]), ("DST_POD", b["pod"]),
                   ("SRC_MAC", a["mac"]), ("DST_MAC", b["mac"])):
    text = text.replace("{" + key + "}", value)
lines = text.splitlines()
print(lines[0], file=sys.stderr)
print(f"listening on {iface}, link-type EN10MB (Ethernet), snapshot length 262144 bytes", file=sys.stderr)
packets = [ln for ln in lines[1:] if ln[:2].isdigit()]
if wire == "direct-noreply":
    packets = [ln for ln in packets if "echo request" in ln]
time.sleep(0.2)
out = []
for ln in lines[1:]:
    if ln[:2].isdigit() and ln not in packets:
        continue
    out.append(ln)
n = 0
for ln in out:
    if ln[:2].isdigit():
        n += 1
        if n > count:
            break
    print(ln, flush=True)
print(f"{min(n, count)} packets captured", file=sys.stderr)
