"""The report tells the story (issue 12, item 7): symptom, setup, cause in plain words, the change
(commands as they run, here-documents intact), proof before (failing matrix, unencapsulated capture)
and after (passing matrix, encapsulated capture), the latest health line. Built from real doctor
runs on the sshd nodes and the test Kubernetes API (kubectl and tcpdump SIMULATED at the process
boundary, replaying recorded output), as `labtui report NAME --format md|json` prints it."""

from __future__ import annotations

import json
import re

import pytest

from labtui.cli import main
from labtui.doctor.run import run_doctor
from labtui.report import session_report, session_report_data
from labtui.store import Change
from tests.doctor.simulation import tools
from tests.harness.kube import incident_cluster, ippool

HEREDOC = ("calicoctl apply -f - <<'EOF'\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n"
           "  name: default-ipv4-ippool\nspec:\n  cidr: 172.16.0.0/16\n  ipipMode: Always\n  vxlanMode: Never\nEOF")


@pytest.mark.root
def test_report_tells_the_story_before_and_after(sshlab, kube_nodes, open_lab, store, tmp_path, capsys):
    tools.install(sshlab, tools.scenario(sshlab, reach="none", wire="direct-noreply"))
    cluster = incident_cluster(nodes=kube_nodes).start()
    try:
        _story(cluster, sshlab, open_lab, store, tmp_path, capsys)
    finally:
        cluster.stop()


def _story(cluster, sshlab, open_lab, store, tmp_path, capsys):
    kc = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    lab, _ = open_lab("story", plan=sshlab.plan_data("story"), kubeconfig=kc, known_hosts=sshlab.known_hosts)
    first = run_doctor(lab.ctx)
    assert first.exit_code == 1
    # the change, recorded as the executor records it (twice: the report lists it once), and a no-op
    change = Change(kind="calico.pool-mode", target="default-ipv4-ippool",
                    description="IP pool default-ipv4-ippool: ipipMode CrossSubnet -> Always", command=HEREDOC,
                    revert_command=HEREDOC.replace("ipipMode: Always", "ipipMode: CrossSubnet"),
                    revert_data={"ipipMode": "CrossSubnet"})
    store.record_change(lab.ctx.session.id, change)
    store.record_change(lab.ctx.session.id, Change(**{**change.__dict__, "id": None}))
    store.record_change(lab.ctx.session.id, Change(kind="openstack.port-pairs", target="port-x",
                                                   description="port-x: allowed-address-pair 172.16.0.0/16",
                                                   command="openstack port set --allowed-address ip-address=172.16.0.0/16 port-x",
                                                   revert_data={"port_id": "x", "added": []}))
    # what the change did: the pool is now Always, the network carries the pods' traffic
    cluster.add_pool(ippool("default-ipv4-ippool", "172.16.0.0/16", ipip="Always"))
    tools.set_scenario(sshlab, tools.scenario(sshlab, reach="all", wire="ipip"))
    after = run_doctor(lab.ctx)
    assert after.cells and all(c.ok for c in after.cells)

    text = session_report(store, "story")
    # the story's sections, in order
    assert text.startswith("# Lab report: story\n")
    heads = [ln for ln in text.splitlines() if ln.startswith("## ") or ln.startswith("### ")]
    assert heads[:6] == ["## Symptom", "## The setup", "## The cause", "## The change", "## Proof",
                         heads[5]] and heads[5].startswith("### Before")
    assert any(h.startswith("### After") for h in heads)
    assert "Pods on the same node could talk. Pods on different nodes could not reach each other: 12 of 12 node " \
           "pairs failed, while each node itself reached every pod" in text
    # the cause in plain words, whole
    top = first.problems[0]
    assert f"**{top.title}**" in text and top.explanation.split("\n\n")[0].strip() in text
    # the change: once, its here-document intact in a fenced block; the no-op is not listed
    assert text.count("ipipMode CrossSubnet -> Always") == 1
    assert "```sh\n" + HEREDOC + "\n```" in text
    assert "port-x" not in text
    # proof: the failing matrix and the unencapsulated capture before, the passing matrix and IPIP after
    before, after_md = text.split("### After", 1)
    before = before.split("## Proof", 1)[1]
    assert "**FAIL**" in before and "unencapsulated pod packets" in before and "direct (unencapsulated)" in before
    assert "**FAIL**" not in after_md and "IP-in-IP (protocol 4) between the node addresses" in after_md
    assert "| TCP 8080 (a listener in the probe pod), pod to pod, across nodes | 0 of 12 |" in before
    assert "| TCP 8080 (a listener in the probe pod), pod to pod, across nodes | 12 of 12 |" in after_md
    # the setup: the node subnet as a subnet, no raw values, the latest run's health
    subnet = str(sshlab.subnet)
    assert f"- node subnet: {subnet}" in text and f"| {subnet} |" in text
    # values the plan lacks come from the live cluster, saying so
    assert "- Kubernetes: 1.36.2 (read from the API server's /version)" in text
    assert "- encapsulation: IPIP (read from IP pool default-ipv4-ippool (ipipMode Always" in text  # the latest read
    assert not re.search(r"\b(True|False|None)\b", text.replace("vxlanMode Never", ""))
    health = store.get_session("story").health
    # a lab without a cloud: the cloud's checks are said to be skipped, not "could not check" (issue 18, item 10)
    assert health.startswith("doctor: healthy") or "could not check" in health or "skipped (do not apply)" in health
    assert f"**Health (latest run):** {health}" in text
    # nothing cut mid-word: every line of the report ends at a word (no truncation marks)
    assert "…" not in text

    # the same through the command line, as Markdown and as JSON
    assert main(["report", "story", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["symptom"] == session_report_data(store, "story")["symptom"]
    assert [c["command"] for c in data["changes"]] == [HEREDOC]
    assert data["before"]["captures"][0]["seen"] == ["direct"] and data["after"]["captures"][0]["seen"] == ["ipip"]
    assert main(["report", "story"]) == 0
    assert capsys.readouterr().out == text


def test_report_of_a_lab_not_diagnosed_yet_and_unknown_lab(store, capsys):
    store.create_session("fresh", wizard="plan", plan={})
    text = session_report(store, "fresh")
    assert "The doctor has not run on this lab yet." in text and "None: labtui changed nothing" in text
    assert main(["report", "nope"]) == 2
    err = capsys.readouterr().err
    assert "there is no lab named 'nope'" in err and "Traceback" not in err
