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
