"""The session store: permissions, WAL, transactions that survive kill -9, redaction, resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

from labtui.events import Event, EventBus
from labtui.session import LabSession
from labtui.steps import StepState
from labtui.store import Change, Store
from labtui.stages import wizard_for


def test_files_are_private_and_wal(store, lab_home):
    store.create_session("a")
    mode = stat.S_IMODE(os.stat(lab_home / "labtui.db").st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(lab_home).st_mode) == 0o700
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for side in ("labtui.db-wal", "labtui.db-shm"):
        if (lab_home / side).exists():
            assert stat.S_IMODE(os.stat(lab_home / side).st_mode) == 0o600


def test_session_roundtrip_and_facts_and_changes(store):
    rec = store.create_session("a", cloud="study")
    store.save_inputs("a", {"cloud": "study", "nodes": [{"name": "cp1"}]})
    store.save_inputs("a", {"pod_cidr": "172.16.0.0/16"})
    assert store.get_session("a").inputs == {"cloud": "study", "nodes": [{"name": "cp1"}], "pod_cidr": "172.16.0.0/16"}
    store.put_facts(rec.id, "node:cp1", {"kernel": "6.8", "swap": False})
    store.put_facts(rec.id, "node:cp1", {"kernel": "6.9"})
    assert store.facts(rec.id) == {"node:cp1": {"kernel": "6.9", "swap": False}}
    ch = store.record_change(rec.id, Change("openstack.sg-rule", "k8s", "allow IP protocol 4 from k8s",
                                            "openstack security group rule create --protocol 4 --remote-group k8s k8s",
                                            "openstack security group rule delete RULE", {"rule_id": "RULE"}))
    store.mark_reverted(ch.id)
    [back] = store.changes(rec.id)
    assert back.revert_data == {"rule_id": "RULE"} and back.reverted is not None
    assert store.changes(rec.id, include_reverted=False) == []


def test_delete_removes_everything(store, lab_home):
    rec = store.create_session("gone")
    store.add_events(rec.id, [Event("info", "hello")])
    from labtui.paths import session_dir, write_private

    write_private(session_dir("gone") / "admin.conf", "secret")
    store.delete_session("gone")
    assert not store.has_session("gone")
    assert store.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    assert not (lab_home / "sessions" / "gone").exists()


def test_secrets_never_reach_the_database(store, lab_home):
    rec = store.create_session("s")
    token = "abcdef.0123456789abcdef"
    cert_key = "f" * 64
    bus = EventBus()
    rec_fn = store.recorder(rec.id)
    bus.subscribe(rec_fn)
    bus.emit(Event("action.output", f"kubeadm join 10.100.200.4:6443 --token {token} \\"))
    bus.emit(Event("action.output", f"--control-plane --certificate-key {cert_key}"))
    bus.emit(Event("info", "OS_PASSWORD=hunter2hunter2 password: 's3cret-Passw0rd'"))
    bus.emit(Event("info", "key", data={"password": "s3cret-Passw0rd", "nested": {"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"}}))
    rec_fn.flush()
    store.save_inputs("s", {"note": f"token {token}"})
    store.record_step(rec.id, "plan", "lab", "failed", f"join failed: --token {token}")
    store.close()
    raw = b""
    for f in lab_home.iterdir():
        if f.is_file():
            raw += f.read_bytes()
    for secret in (token, cert_key, "hunter2hunter2", "s3cret-Passw0rd", "BEGIN OPENSSH PRIVATE KEY"):
        assert secret.encode() not in raw, secret
    db = sqlite3.connect(lab_home / "labtui.db")
    messages = [r[0] for r in db.execute("SELECT message FROM events")]
    assert "--token <redacted-token>" in messages[0]
    assert "discovery" not in messages[0]


def test_log_file_is_private_and_redacted(store, lab_home):
    store.create_session("logged")
    with LabSession(store, "logged") as lab:
        lab.ctx.emit(Event("action.output", "kubeadm join x --token abcdef.0123456789abcdef", node="cp1"))
    log = (lab_home / "labtui.log")
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    text = log.read_text()
    assert "logged action.output [cp1] kubeadm join x --token <redacted-token>" in text
    assert "0123456789abcdef" not in text


def test_discovery_hash_is_kept():
    from labtui.redact import redact

    line = "--discovery-token-ca-cert-hash sha256:" + "a" * 64
    assert redact(line) == line


WRITER = textwrap.dedent(
    """
    import sys, time
    from labtui.store import Store
    from labtui.events import Event
    s = Store()
    rec = s.create_session("crash")
    for i in range(100000):
        s.record_step(rec.id, "plan", f"step{i % 5}", "done", f"run {i}", {"i": i}, session_step=f"step{i % 5}")
        s.add_events(rec.id, [Event("action.output", f"line {i}")])
        if i == 50:
            print("ready", flush=True)
    """
)


def test_kill_9_mid_stream_leaves_committed_steps_intact(lab_home):
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    s = Store()
    assert s.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rec = s.get_session("crash")
    states = s.step_states(rec.id, "plan")
    assert set(states) == {f"step{i}" for i in range(5)}
    last = max(r.outputs["i"] for r in states.values())
    events = s.count_events(rec.id)
    assert last > 50 and events >= last  # every committed step has its event(s)
    assert all(r.state == "done" for r in states.values())


def test_resume_lands_on_first_open_step_and_rechecks(store, incident_plan_data):
    store.create_session("r")
    wizard = wizard_for("plan")
    with LabSession(store, "r") as lab:
        runner = lab.runner(wizard)
        store.save_inputs("r", {"cloud": "", "nodes": incident_plan_data["nodes"]})
        assert runner.run_step(wizard.step("lab")).state == StepState.DONE
        assert runner.run_step(wizard.step("machines")).state == StepState.SKIPPED  # no cloud: does not apply
        assert runner.run_step(wizard.step("nodes")).state == StepState.DONE
    # a new process would do exactly this
    with LabSession(store, "r") as lab:
        point = lab.runner(wizard).resume()
        assert point.step == "networks" and point.changed == []
        assert store.get_session("r").step == "networks"
        # reality changed: the node list became invalid behind our back
        store.save_inputs("r", {"nodes": [{"name": "w1", "address": "10.100.200.21"}]})
        lab.ctx.reload()
        point = lab.runner(wizard).resume()
        assert point.step == "nodes"
        assert point.changed and "no longer satisfied" in point.changed[0] and "no control-plane" in point.changed[0]


def test_running_step_of_a_dead_process_counts_as_failed(store):
    rec = store.create_session("d")
    store.record_step(rec.id, "plan", "lab", "running")
    with LabSession(store, "d") as lab:
        assert lab.runner(wizard_for("plan")).states()["lab"] == StepState.FAILED
