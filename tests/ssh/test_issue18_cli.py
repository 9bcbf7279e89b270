"""Issue 18 headless: a host key not accepted and machines that do not speak SSH end `labtui up` with
what to do, not 'labtui has no automatic way to do this step'."""

from __future__ import annotations

import socket
import threading

import pytest

from labtui.cli import main

pytestmark = pytest.mark.root


def test_up_with_an_unknown_host_key_says_how_to_accept_it(fresh_lab, ssh_env, store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABTUI_SSH_CONFIG", str(fresh_lab.ssh_config))
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(tmp_path / "empty_known_hosts"))
    store.create_session("lab", plan=fresh_lab.plan_data("lab", via_config=True), wizard="nodes")
    assert main(["up", "lab", "--from", "nodes", "--until", "nodes"]) != 0
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "Node facts" in out and "is not known yet" in out
    assert "no automatic way" not in out
    assert "labtui nodes trust lab --all" in out and "--accept-new-host-keys" in out


def test_up_on_machines_that_do_not_speak_ssh_says_what_was_found_and_what_to_check(ssh_env, store, monkeypatch,
                                                                                     capsys, tmp_path):
    monkeypatch.setenv("LABTUI_SSH_CONFIG", str(tmp_path / "no_config"))
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(tmp_path / "empty_known_hosts"))
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # accepts, never says a word
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        plan = {"name": "lab", "cloud": "", "node_subnet": "127.0.0.0/8", "pod_cidr": "172.16.0.0/16",
                "service_cidr": "172.20.0.0/16", "kubernetes": "1.36", "calico": "3.32.2", "encapsulation": "VXLAN",
                "nodes": [{"name": "cp1", "address": "127.0.0.1", "port": port, "role": "control-plane", "user": "root"}]}
        from labtui.model import Plan

        store.create_session("lab", plan=Plan.parse(plan).model_dump(mode="json"), wizard="nodes")
        assert main(["up", "lab", "--from", "nodes", "--until", "nodes"]) != 0
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        silent.close()
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "accepted the connection but did not speak SSH" in out
    assert "no automatic way" not in out
    assert "still booting" in out and f"listens on port {port}" in out


@pytest.mark.parametrize("target", ["node1", "--all"])
def test_ctrl_c_on_nodes_run_leaves_no_remote_process(fresh_lab, ssh_env, store, tmp_path, monkeypatch, target):
    """`labtui nodes run LAB NODE|--all -- sleep N` interrupted with ctrl+c (SIGINT): the remote sleeps are
    gone too, on every node (the sshd nodes' processes are visible from here: they share this machine's
    PID namespace)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from labtui.model import Plan

    known = tmp_path / "known_hosts"
    known.write_text(fresh_lab.known_hosts.read_text())
    store.create_session("lab", plan=Plan.parse(fresh_lab.plan_data("lab", via_config=True)).model_dump(mode="json"),
                         wizard="nodes")
    env = dict(os.environ, LABTUI_SSH_CONFIG=str(fresh_lab.ssh_config), LABTUI_SSH_KNOWN_HOSTS=str(known),
               LABTUI_HOME=os.environ["LABTUI_HOME"], HOME=str(ssh_env))
    env.pop("SSH_AUTH_SOCK", None)
    from pathlib import Path

    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # this checkout's labtui
    marker = "4747"

    def remote_sleeps() -> list[str]:
        out = subprocess.run(["pgrep", "-f", f"^sleep {marker}$"], capture_output=True, text=True).stdout
        return out.split()

    assert remote_sleeps() == []
    nodes = len(fresh_lab.plan_data("lab", via_config=True)["nodes"]) if target == "--all" else 1
    proc = subprocess.Popen([sys.executable, "-m", "labtui", "nodes", "run", "lab", target, "--accept-new-host-keys",
                             "--", f"sleep {marker}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            if len(remote_sleeps()) == nodes:
                break
            time.sleep(0.1)
        assert len(remote_sleeps()) == nodes, "the remote sleeps never started"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.count("stopped the remote command") == nodes, err
    for _ in range(50):
        if not remote_sleeps():
            break
        time.sleep(0.1)
    assert remote_sleeps() == []
