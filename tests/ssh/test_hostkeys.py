"""Host keys: unknown keys are refused headless and accepted only on request (flag or decider);
a changed key is refused with "was this VM rebuilt?" until it is explicitly replaced."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from labtui.adapters.ssh import HostKeyChanged, HostKeyUnknown

pytestmark = pytest.mark.root


def _keygen_fingerprint(node) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(node.dir / "ssh_host_ed25519_key.pub")],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def test_unknown_key_refused_headless(lab3, make_ssh):
    ssh = make_ssh(lab3, trusted=False)
    node = lab3.nodes[0]
    with pytest.raises(HostKeyUnknown) as err:
        ssh.run(node.name, "true")
    exc = err.value
    assert exc.info.fingerprint == _keygen_fingerprint(node)  # exactly as OpenSSH prints it
    assert exc.info.host == node.address and exc.info.key_type == "ssh-ed25519"
    assert exc.message.startswith(f"{node.name}: the host key of {node.address} is not known yet")
    assert exc.info.fingerprint in exc.message
    assert "--accept-new-host-keys" in exc.hint
    assert not ssh.known_hosts.own.exists()  # nothing stored


def test_unknown_key_accepted_with_the_flag(lab3, make_ssh):
    events = []
    ssh = make_ssh(lab3, trusted=False, accept_new_host_keys=True, events=events)
    res = ssh.run_all([n.name for n in lab3.nodes], "hostname")
    assert all(r.ok for r in res.values())
    own = ssh.known_hosts.own
    assert stat.S_IMODE(os.stat(own).st_mode) == 0o600
    lines = own.read_text().splitlines()
    assert sorted(lines) == sorted(n.known_hosts_line() for n in lab3.nodes)
    assert sum("accepted the host key" in e.message for e in events) == 3
    # the user's known_hosts is never written
    assert lab3.known_hosts.read_text().count("\n") == 3


def test_decider_is_asked_with_the_fingerprint(lab3, make_ssh):
    seen = []
    ssh = make_ssh(lab3, trusted=False, host_key_decider=lambda info: seen.append(info) or info.node == "node1")
    assert ssh.run("node1", "hostname").stdout.strip() == "node1"
    with pytest.raises(HostKeyUnknown):
        ssh.run("node2", "true")
    assert [i.node for i in seen] == ["node1", "node2"]
    assert seen[0].fingerprint == lab3.nodes[0].fingerprint
    assert "node2" not in ssh.known_hosts.own.read_text() and lab3.nodes[1].address not in ssh.known_hosts.own.read_text()


def test_changed_key_is_refused_then_replaced(fresh_lab, make_ssh):
    events = []
    ssh = make_ssh(fresh_lab, trusted=True, accept_new_host_keys=True, events=events)
    assert ssh.run("node1", "hostname").ok
    old = fresh_lab.nodes[0].fingerprint
    new = fresh_lab.rebuild_host_key("node1")
    assert new != old
    ssh.drop("node1")
    with pytest.raises(HostKeyChanged) as err:  # even with accept_new_host_keys: a change is never new
        ssh.run("node1", "true")
    exc = err.value
    assert "Was this VM rebuilt?" in exc.message
    assert old in exc.message and new in exc.message
    assert exc.info.known_fingerprint == old and exc.info.fingerprint == new
    assert "--replace" in exc.hint
    # an explicit replace, then it works; the user's file is untouched but flagged as stale
    info = ssh.replace_host_key("node1")
    assert info.fingerprint == new
    assert ssh.run("node1", "hostname").stdout.strip() == "node1"
    assert any("still holds the old key" in e.message and "ssh-keygen -R" in e.message for e in events)
    assert fresh_lab.nodes[0].known_hosts_line() not in fresh_lab.known_hosts.read_text()


def test_trust_refuses_a_changed_key_without_replace(fresh_lab, make_ssh):
    ssh = make_ssh(fresh_lab, trusted=False, accept_new_host_keys=True)
    ssh.run("node2", "true")
    fresh_lab.rebuild_host_key("node2")
    info = ssh.scan_host_key("node2")
    assert ssh.host_key_state(info) == "changed"
    with pytest.raises(HostKeyChanged):
        ssh.trust_host_key(info)
    ssh.trust_host_key(info, replace_changed=True)
    assert ssh.host_key_state(ssh.scan_host_key("node2")) == "known"
    assert ssh.known_hosts.own.read_text().count(fresh_lab.nodes[1].address) == 1


def test_hashed_user_known_hosts_are_read(lab3, make_ssh, tmp_path):
    hashed = tmp_path / "hashed_known_hosts"
    hashed.write_text(lab3.known_hosts.read_text())
    subprocess.run(["ssh-keygen", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert "|1|" in hashed.read_text()
    ssh = make_ssh(lab3, user_known_hosts=[hashed])
    assert ssh.run("node3", "hostname").stdout.strip() == "node3"
    assert not ssh.known_hosts.own.exists()
