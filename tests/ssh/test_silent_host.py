"""A host that accepts TCP but never speaks SSH (a VM still booting after ACTIVE does exactly this):
paramiko's transport thread logs its traceback; it goes to labtui.log (0600), never to the terminal.
And `labtui calico set-mode` refuses a mode that does not exist before it connects anywhere (issue 20)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _silent_listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    accepted = []

    def loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(conn)  # held open, never a byte: paramiko waits for the banner, then gives up

    threading.Thread(target=loop, daemon=True).start()
    return srv, accepted


def _labtui(home: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, LABTUI_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "labtui", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_a_host_that_never_speaks_ssh_prints_no_traceback(tmp_path):
    srv, accepted = _silent_listener()
    port = srv.getsockname()[1]
    home = tmp_path / "home"
    inv = tmp_path / "inv.yaml"
    inv.write_text(f"nodes:\n  - {{name: cp, address: 127.0.0.1, port: {port}, role: control-plane, user: root}}\n")
    try:
        run = _labtui(home, "nodes", "check", "silent", "--inventory", str(inv), "--timeout", "3")
    finally:
        srv.close()
        for c in accepted:
            c.close()
    assert accepted, "labtui never connected"
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and "Exception (client)" not in run.stderr, run.stderr
    # labtui's own line says what was found and what to check (it said "unexpected error: No existing session")
    assert "accepted the connection but did not speak SSH" in run.stdout + run.stderr, run.stdout + run.stderr
    assert "unexpected error" not in run.stdout + run.stderr
    log = home / "labtui.log"
    if log.exists():  # paramiko's thread logged its banner traceback before the process ended: it went here
        assert "paramiko.transport" in log.read_text()
        assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_paramiko_thread_records_go_to_the_log_file(tmp_path):
    """In-process, the record paramiko's transport thread writes lands in labtui.log (0600), not on stderr."""
    code = (
        "import logging, sys\n"
        "from labtui.logs import route_library_logs\n"
        "route_library_logs()\n"
        "try:\n"
        "    raise EOFError('x')\n"
        "except EOFError:\n"
        "    logging.getLogger('paramiko.transport').error('Exception (client): Error reading SSH protocol banner',"
        " exc_info=True)\n"
    )
    env = dict(os.environ, LABTUI_HOME=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    text = (tmp_path / "labtui.log").read_text()
    assert "ERROR paramiko.transport: Exception (client): Error reading SSH protocol banner" in text
    assert "Traceback" in text and "EOFError: x" in text
    assert stat.S_IMODE((tmp_path / "labtui.log").stat().st_mode) == 0o600


def test_set_mode_refuses_a_bogus_mode_before_connecting(tmp_path):
    home = tmp_path / "home"
    run = _labtui(home, "calico", "set-mode", "nolab", "default-ipv4-ippool", "BOGUS", "--yes")
    assert run.returncode == 2
    assert "'BOGUS' is not a Calico encapsulation" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
