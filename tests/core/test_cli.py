"""Headless commands over the same engine."""

from __future__ import annotations

import json
import subprocess
import sys

from labtui import __version__
from labtui.session import LabSession
from labtui.stages import wizard_for


def labtui(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labtui", *args], capture_output=True, text=True)


def build_incident_lab(store, data):
    store.create_session(data["name"])
    wizard = wizard_for("plan")
    store.save_inputs(data["name"], {k: v for k, v in data.items() if k != "name"} | {"cloud": ""})
    with LabSession(store, data["name"]) as lab:
        runner = lab.runner(wizard)
        for step in wizard.steps:
            # no cloud: the Machines step does not apply (skipped with its reason)
            assert runner.run_step(step).state.value == ("skipped" if step.id == "machines" else "done"), step.id


def test_version():
    res = labtui("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"labtui {__version__}"


def test_sessions_show_info(store, incident_plan_data, lab_home):
    res = labtui("sessions")
    assert res.returncode == 0 and "No labs yet" in res.stdout
    build_incident_lab(store, incident_plan_data)
    store.create_session("half")
    rows = json.loads(labtui("sessions", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["incident"]["stage"] == "Plan" and by_name["incident"]["done_steps"] == 7  # the plan wizard's 7 steps, Sources among them
    assert by_name["half"]["done_steps"] == 0
    table = labtui("sessions").stdout
    assert "incident" in table and "half" in table
    shown = json.loads(labtui("show", "incident", "--json").stdout)
    assert shown["plan"]["encapsulation"] == "IPIP"
    assert [s["state"] for s in shown["steps"] if s["wizard"] == "plan"] == ["done", "skipped"] + ["done"] * 5
    text = labtui("show", "incident").stdout
    assert "cp1=10.100.200.4 (control-plane)" in text and "encapsulation IPIP" in text
    info = json.loads(labtui("info", "--json").stdout)
    assert info["state_dir"] == str(lab_home) and info["database"].endswith("labtui.db")
    res = labtui("resume", "incident", "--headless")
    assert res.returncode == 0 and "Lab incident" in res.stdout


def test_delete_needs_yes(store):
    store.create_session("x")
    res = labtui("delete", "x")
    assert res.returncode == 1 and "--yes" in res.stdout
    assert labtui("delete", "x", "--yes").returncode == 0
    assert json.loads(labtui("sessions", "--json").stdout) == []
