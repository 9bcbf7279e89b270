"""Running commands: streamed output, exit codes, sudo, big output, SFTP, port forward, fan-out."""

from __future__ import annotations

import socket
import time

import pytest

from labtui import events as ev
from labtui.errors import LabError

pytestmark = pytest.mark.root


def _lines(events, node=None, stream=None):
    out = []
    for e in events:
        if e.kind == ev.ACTION_OUTPUT and (node is None or e.node == node) and (stream is None or e.stream == stream):
            out.extend(e.message.split("\n"))
    return out


def test_failing_command_exit_code_and_stderr(lab3, make_ssh):
    events = []
    ssh = make_ssh(lab3, events=events)
    res = ssh.run("node2", "echo out; echo 'oops: disk full' >&2; exit 3", announce=True)
    assert (res.exit_code, res.stdout, res.stderr) == (3, "out\n", "oops: disk full\n")
    assert res.duration > 0
    assert _lines(events, "node2", "stdout") == ["out"] and _lines(events, "node2", "stderr") == ["oops: disk full"]
    assert events[0].kind == ev.ACTION_START and events[0].message.startswith("$ ssh node2 ")
    assert events[-1].kind == ev.ACTION_FAILED and "exit 3" in events[-1].message
    with pytest.raises(LabError) as err:
        res.check()
    assert err.value.message.startswith("node2: `echo out;") and "exit code 3: oops: disk full" in err.value.message


def test_streaming_is_live_and_line_based(lab3, make_ssh):
    events = []
    stamps = []
    ssh = make_ssh(lab3, emit=lambda e: (events.append(e), stamps.append(time.monotonic())))
    t0 = time.monotonic()
    res = ssh.run("node1", "echo first; sleep 1; printf 'second\\npartial'; sleep 0.3; echo ' line'")
    total = time.monotonic() - t0
    outs = [(e, s) for e, s in zip(events, stamps) if e.kind == ev.ACTION_OUTPUT]
    assert [e.message for e, _ in outs] == ["first", "second", "partial line"]
    assert outs[0][1] - t0 < total - 0.8  # "first" arrived while the command was still running
    assert res.stdout == "first\nsecond\npartial line\n"


def test_command_timeout(lab3, make_ssh):
    ssh = make_ssh(lab3)
    t0 = time.monotonic()
    with pytest.raises(LabError) as err:
        ssh.run("node3", "sleep 30", timeout=1.0)
    assert time.monotonic() - t0 < 3
    assert err.value.code == "timeout" and err.value.message.startswith("node3: `sleep 30` did not finish within 1 s")
    assert ssh.run("node3", "echo still usable").stdout == "still usable\n"


def test_passwordless_sudo(lab3, make_ssh):
    ssh = make_ssh(lab3, specs=[{"name": "node1", "address": "node1", "user": "labnopw"}])
    assert ssh.sudo_mode("node1") == "nopasswd"
    res = ssh.run("node1", "id -u; echo $HOME", sudo=True)
    assert res.stdout.split()[0] == "0" and res.sudo
    assert ssh.run("node1", "id -u").stdout.strip() != "0"


def test_sudo_that_wants_a_password_stops_clearly(lab3, make_ssh):
    ssh = make_ssh(lab3, specs=[{"name": "node2", "address": "node2", "user": "labpw"}])
    assert ssh.run("node2", "id -un").stdout.strip() == "labpw"  # the login itself works
    t0 = time.monotonic()
    with pytest.raises(LabError) as err:
        ssh.run("node2", "cat /etc/shadow", sudo=True)
    assert time.monotonic() - t0 < 5
    assert err.value.code == "sudo-password"
    assert err.value.message == ("node2: sudo for labpw wants a password; labtui never asks for or stores sudo "
                                 "passwords, so it stops here")
    assert "NOPASSWD" in err.value.hint
    assert ssh.sudo_mode("node2") == "password"


def test_five_megabytes_stream_through_the_session_without_stalling(lab3, make_ssh, store):
    from labtui.session import LabSession

    store.create_session("big")
    lab = LabSession(store, "big")
    seen = []
    lab.bus.subscribe(lambda e: seen.append((time.monotonic(), e)) if e.kind == ev.ACTION_OUTPUT else None)
    ssh = make_ssh(lab3, emit=lab.bus.emit)
    ssh.run("node1", "true")
    # 65 536 lines of 80 characters (5.2 MB) through the real event bus (redaction), log file and store
    command = "i=0; while [ $i -lt 16 ]; do awk 'BEGIN { for (n = 0; n < 4096; n++) printf \"%079d\\n\", n }'; i=$((i+1)); done"
    t0 = time.monotonic()
    res = ssh.run("node1", command, timeout=120)
    total = time.monotonic() - t0
    lab.close()
    assert res.exit_code == 0
    assert len(res.stdout) == 65536 * 80
    lines = [ln for _, e in seen for ln in e.message.split("\n")]
    assert len(lines) == 65536 and lines[4095] == "%079d" % 4095
    first_at, last_at = seen[0][0] - t0, seen[-1][0] - t0
    assert first_at < 1.5, first_at  # streamed from the start, not collected and delivered at the end
    assert len(seen) >= 20 and last_at - first_at > 0.1  # many events spread over the run
    assert total < 30, total  # redaction, the event log and the store keep up (about 1.5 s here)
    assert store.count_events(lab.record.id) >= len(seen)


def test_five_megabytes_raw_throughput(lab3, make_ssh):
    got = []
    ssh = make_ssh(lab3, emit=got.append)
    ssh.run("node2", "true")
    t0 = time.monotonic()
    res = ssh.run("node2", "head -c 5242880 /dev/zero | tr '\\0' 'x' | fold -w 100")
    elapsed = time.monotonic() - t0
    assert len(res.stdout) == 5242880 + 52428 and sum(len(e.message.split("\n")) for e in got) == 52429
    assert elapsed < 10, elapsed


def test_sftp_put_and_get_with_and_without_sudo(lab3, make_ssh, tmp_path):
    root = make_ssh(lab3)
    root.put("node1", b"hello\n", "/tmp/labtui-put.txt", mode=0o640)
    assert root.get("node1", "/tmp/labtui-put.txt") == b"hello\n"
    assert root.run("node1", "stat -c %a /tmp/labtui-put.txt").stdout.strip() == "640"
    user = make_ssh(lab3, specs=[{"name": "node1", "address": "node1", "user": "labnopw"}])
    user.put("node1", "secret: 42\n", "/root/labtui-owned.conf", mode=0o600, sudo=True)
    assert root.run("node1", "stat -c '%U %a' /root/labtui-owned.conf").stdout.strip() == "root 600"
    with pytest.raises(LabError) as err:
        user.get("node1", "/root/labtui-owned.conf")
    assert err.value.message.startswith("node1: cannot read /root/labtui-owned.conf")
    dest = tmp_path / "copy.conf"
    assert user.get("node1", "/root/labtui-owned.conf", sudo=True, local_path=dest) == b"secret: 42\n"
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert root.run("node1", "ls /tmp | grep -c labtui- || true").stdout.strip() == "1"  # no temp file left


def test_local_port_forward_through_a_node(lab3, make_ssh):
    ssh = make_ssh(lab3)
    port, close = ssh.forward_local("node1", lab3.nodes[1].address, 22)
    try:
        for _ in range(2):  # two connections through the same tunnel
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")
    finally:
        close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_fan_out_a_dead_node_holds_nobody_up(lab3, make_ssh):
    specs = [{"name": n.name, "address": n.name, "user": "root"} for n in lab3.nodes]
    specs.append({"name": "dead", "address": lab3.unused_address(), "user": "root", "key_file": str(lab3.client_key)})
    ssh = make_ssh(lab3, specs=specs, connect_timeout=2.0)
    t0 = time.monotonic()
    res = ssh.run_all(["dead"] + [n.name for n in lab3.nodes], "hostname")
    assert time.monotonic() - t0 < 4
    assert not res["dead"].ok and res["dead"].error.message.startswith("dead: ")
    for n in lab3.nodes:
        assert res[n.name].ok and res[n.name].value.stdout.strip() == n.name
        assert res[n.name].duration < 2.0


def test_kube_shell_and_forward_glue(lab3, store, ssh_env, monkeypatch, tmp_path):
    """labtui.adapters.kubeconfig reaches the control plane through these two functions."""
    from labtui.session import LabSession
    from labtui.adapters.ssh import kube_shell, local_forward

    monkeypatch.setenv("LABTUI_SSH_CONFIG", str(lab3.ssh_config))
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(lab3.known_hosts))
    store.create_session("glue", plan=lab3.plan_data("glue", via_config=True))
    lab = LabSession(store, "glue")
    try:
        shell = kube_shell(lab.ctx, lab.plan().control_plane)
        assert shell.node == "node1"
        assert shell.run("hostname", timeout=10) == (0, "node1\n", "")
        port, close = local_forward(lab.ctx, lab.plan().control_plane, lab3.nodes[2].address, 22)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            assert s.recv(16).startswith(b"SSH-2.0")
        close()
    finally:
        lab.close()
