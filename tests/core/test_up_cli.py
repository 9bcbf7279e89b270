"""`labtui up` and plan files without backends: the template, validation with the wizard's rules and
labels, bad files, stage names; and the CLI's edges (a closed pipe, a failing --cloud)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labtui.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_template_round_trips_into_a_lab(lab_home, capsys, tmp_path):
    code, out, _ = _run(capsys, "show", "walk", "--plan-yaml")
    assert code == 0 and out.startswith("# labtui plan file")
    plan = tmp_path / "plan.yaml"
    plan.write_text(out)
    # a dry run on a lab that does not exist yet validates the file and creates nothing
    code, out, err = _run(capsys, "up", "walk", "--plan", str(plan), "--dry-run")
    assert code == 0 and "valid (2 nodes, IPIP)" in out
    from labtui.store import Store

    assert not Store().has_session("walk")
    # the plan stage alone: the lab is created, the plan saved, the stage done
    code, out, err = _run(capsys, "up", "walk", "--plan", str(plan), "--until", "plan")
    assert code == 0, out + err
    assert "Every stage of walk from Plan to Plan is done." in out
    store = Store()
    rec = store.get_session("walk")
    assert rec.plan["encapsulation"] == "IPIP" and [n["name"] for n in rec.plan["nodes"]] == ["cp1", "w1"]
    # the saved plan prints back as the same file
    import yaml

    from labtui.model import Plan

    code, again, _ = _run(capsys, "show", "walk", "--plan-yaml")
    assert Plan.parse(yaml.safe_load(again)) == Plan.parse(yaml.safe_load(plan.read_text()))
    assert again.index("\nname:") < again.index("\nnodes:") < again.index("\nencapsulation:")
    # and a second run changes nothing
    code, out, err = _run(capsys, "up", "walk", "--plan", str(plan), "--until", "plan")
    assert code == 0 and "saved from" not in err


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.replace("pod_cidr: 172.16.0.0/16", "pod_cidr: 172.16.0.0/33"), "Pod CIDR: '172.16.0.0/33' is not a valid CIDR"),
    (lambda t: t.replace("name: walk", "name: other"), "is for the lab 'other', not 'walk'"),
    (lambda t: t + "colour: blue\n", "unknown field(s) colour"),
    (lambda t: t.replace("nodes:", "nodes: [", 1), "is not valid YAML (line"),
    (lambda t: "- just\n- a list\n", "must be a mapping of plan fields"),
])
def test_a_bad_plan_file_is_refused_and_saves_nothing(lab_home, capsys, tmp_path, edit, needle):
    _, template, _ = _run(capsys, "show", "walk", "--plan-yaml")
    plan = tmp_path / "plan.yaml"
    plan.write_text(edit(template))
    code, out, err = _run(capsys, "up", "walk", "--plan", str(plan))
    assert code == 2
    assert needle in err, err
    assert "Traceback" not in err
    from labtui.store import Store

    assert not Store().has_session("walk")


def test_stage_names_and_missing_lab(lab_home, capsys):
    code, _, err = _run(capsys, "up", "nolab")
    assert code == 2 and "there is no lab named 'nolab'" in err and "--plan-yaml" in err
    code, _, err = _run(capsys, "up", "nolab", "--from", "nowhere")
    assert code == 2 and "--from nowhere: there is no such stage" in err and "plan" in err
    code, _, err = _run(capsys, "up", "nolab", "--from", "doctor", "--until", "plan")
    assert code == 2 and "comes after" in err


def test_a_closed_pipe_prints_no_traceback(lab_home):
    from labtui.store import Store

    store = Store()
    for i in range(400):
        store.create_session(f"lab-{i:03d}")
    store.close()
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "labtui", "sessions", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    first = proc.stdout.read(64)  # read only the first bytes, then close the pipe, like `| head -c 64`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert first.startswith(b"[")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode in (0, 141)


def test_a_failing_cloud_option_saves_nothing(lab_home, capsys, tmp_path, monkeypatch):
    """`labtui cloud check NAME --cloud nope` fails and leaves the lab's cloud as it was."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  real:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    from labtui.store import Store

    store = Store()
    store.create_session("c1", cloud="real", plan={"name": "c1", "cloud": "real", "nodes": [
        {"name": "cp1", "address": "10.0.0.11", "role": "control-plane"}]})
    store.save_inputs("c1", {"cloud": "real"})
    code, out, err = _run(capsys, "cloud", "check", "c1", "--cloud", "nope")
    assert code == 2 and "nope" in err and "Traceback" not in err
    rec = Store().get_session("c1")
    assert rec.cloud == "real" and rec.inputs.get("cloud") == "real"
    code, out, _ = _run(capsys, "show", "c1")
    assert "cloud: real" in out


def test_the_cloud_stage_is_skipped_with_its_reason_for_a_lab_without_a_cloud(lab_home, capsys, tmp_path):
    """Machines of your own: nothing to check on a cloud. The stage says so and counts as done
    (it once failed with "could not check: no cloud")."""
    from labtui.session import LabSession
    from labtui.stages import wizard_for
    from labtui.steps import StepState
    from labtui.store import Store

    _, template, _ = _run(capsys, "show", "own", "--plan-yaml")
    plan = tmp_path / "plan.yaml"
    plan.write_text(template)
    assert _run(capsys, "up", "own", "--plan", str(plan), "--until", "plan")[0] == 0
    with LabSession(Store(), "own") as lab:
        runner = lab.runner(wizard_for("cloud"))
        outcomes = [runner.run_step(s) for s in runner.wizard.steps]
        assert [o.state for o in outcomes] == [StepState.SKIPPED] * 3
        assert "no cloud" in outcomes[0].detail and "UDP 4789" in outcomes[0].detail
        assert runner.stage_done()


# --------------------------------------------------------------------------- the sources block


def _sources_plan(tmp_path, capsys, **sources) -> Path:
    import yaml

    code, out, _ = _run(capsys, "show", "src", "--plan-yaml")
    data = yaml.safe_load(out)
    data["sources"] = sources
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(data, sort_keys=False))
    return plan


PROXY = {"http_proxy": "http://10.0.0.1:3142", "no_proxy": ".corp.example", "registry_mirror": "mirror.corp.example:5000",
         "kubernetes_repo": "https://apt.corp.example/k8s/core:/stable:"}


def test_the_template_shows_the_upstream_sources(lab_home, capsys):
    import yaml

    code, out, _ = _run(capsys, "show", "src", "--plan-yaml")
    assert code == 0 and "# sources:" in out
    assert yaml.safe_load(out)["sources"]["kubernetes_repo"] == "https://pkgs.k8s.io/core:/stable:"


def test_plan_file_sources_dry_run_then_saved_and_shown_in_the_wizards_inputs(lab_home, capsys, tmp_path):
    plan = _sources_plan(tmp_path, capsys, **PROXY)
    # a dry run of a lab that does not exist yet: valid, the customised sources named, nothing saved
    code, out, err = _run(capsys, "up", "src", "--plan", str(plan), "--dry-run")
    assert code == 0, out + err
    assert ("Sources: HTTP proxy http://10.0.0.1:3142; No proxy for .corp.example; Kubernetes packages "
            "https://apt.corp.example/k8s/core:/stable:; Registry mirror mirror.corp.example:5000") in out
    from labtui.store import Store

    assert not Store().has_session("src")
    # applied: the saved plan carries them, the wizard's Sources step shows them
    code, out, err = _run(capsys, "up", "src", "--plan", str(plan), "--until", "plan")
    assert code == 0, out + err
    rec = Store().get_session("src")
    assert {k: rec.plan["sources"][k] for k in PROXY} == PROXY
    assert rec.plan["sources"]["docker_repo"] == "https://download.docker.com/linux"  # the default stays
    assert rec.inputs["src_http_proxy"] == "http://10.0.0.1:3142" and rec.inputs["src_registry_mirror"] == \
        "mirror.corp.example:5000"
    # a dry run of the lab names them too (text and JSON), and writes nothing
    before = Store().get_session("src")
    code, out, err = _run(capsys, "up", "src", "--dry-run", "--until", "plan")
    assert code == 0 and "Sources: HTTP proxy http://10.0.0.1:3142;" in out
    code, out, err = _run(capsys, "up", "src", "--dry-run", "--until", "plan", "--json")
    assert json.loads(out)["sources"] == PROXY
    after = Store().get_session("src")
    assert (after.plan, after.inputs) == (before.plan, before.inputs)
    # the plan prints back with them
    code, again, _ = _run(capsys, "show", "src", "--plan-yaml")
    import yaml

    assert yaml.safe_load(again)["sources"]["http_proxy"] == "http://10.0.0.1:3142"


def test_a_default_plans_dry_run_says_upstream(lab_home, capsys, tmp_path):
    plan = _sources_plan(tmp_path, capsys)
    code, out, err = _run(capsys, "up", "src", "--plan", str(plan), "--dry-run")
    assert code == 0 and "Sources: upstream (pkgs.k8s.io" in out


@pytest.mark.parametrize("sources, needle", [
    ({"http_proxy": "htp://10.0.0.1:3142"}, "HTTP proxy: 'htp://10.0.0.1:3142' is not an http:// or https:// URL"),
    ({"http_proxy": "http://10.0.0.1:3142; rm -rf /"}, "HTTP proxy: "),
    ({"registry_mirror": "https://mirror/"}, "Registry mirror: 'https://mirror/' is not a registry host"),
    ({"kubernetes_repo": ""}, "Kubernetes packages: '' is not a URL"),
    ({"colour": "blue"}, "sources.colour: is not a field of the sources block"),
])
def test_bad_sources_are_refused_by_their_label_and_save_nothing(lab_home, capsys, tmp_path, sources, needle):
    plan = _sources_plan(tmp_path, capsys, **sources)
    code, out, err = _run(capsys, "up", "src", "--plan", str(plan))
    assert code == 2, out + err
    assert needle in err and "Traceback" not in err
    from labtui.store import Store

    assert not Store().has_session("src")


# --------------------------------------------------------------------------- issue 18, item 3


def _record(home) -> dict:
    """Everything the lab's record holds (the database's rows), read without labtui."""
    import sqlite3

    db = sqlite3.connect(Path(home) / "labtui.db")
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("sessions", "step_runs", "facts", "changes", "events")}
    finally:
        db.close()


def test_a_dry_run_writes_nothing_to_the_labs_record(lab_home, capsys, tmp_path):
    """`labtui up NAME --dry-run` once stored the doctor's health ("could not check ..."), after which
    the report said both that and "found nothing that blocks pod traffic"; and it said Calico's
    install step does not apply because "the cluster was not built by labtui's Kubernetes stage"
    for a lab whose Kubernetes stage had simply not run yet."""
    import yaml

    _, template, _ = _run(capsys, "show", "dry", "--plan-yaml")
    data = yaml.safe_load(template)
    for node in data["nodes"]:  # SSH is refused at once: nothing answers there
        node.update(ssh_host="127.0.0.1", port=1)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(data, sort_keys=False))
    assert _run(capsys, "up", "dry", "--plan", str(plan), "--until", "plan")[0] == 0
    from labtui.paths import state_home

    before = _record(state_home())
    code, out, err = _run(capsys, "up", "dry", "--dry-run")
    assert "Dry run: nothing was changed." in out, out + err
    after = _record(state_home())
    for table in before:
        assert after[table] == before[table], table
    calico = next(line for line in out.splitlines() if "Install Calico" in line)
    assert "not built by labtui" not in calico and "the Kubernetes stage has not run yet" in calico, calico


def test_the_doctor_says_the_cloud_checks_were_skipped_for_a_lab_without_a_cloud(lab_home, capsys, tmp_path):
    """Issue 18, item 10: "no cloud in the plan" was reported as "could not check"; it says which checks
    were skipped and why, and is not counted as a failure to check."""
    import yaml

    _, template, _ = _run(capsys, "show", "own", "--plan-yaml")
    data = yaml.safe_load(template)
    for node in data["nodes"]:
        node.update(ssh_host="127.0.0.1", port=1)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(data, sort_keys=False))
    assert _run(capsys, "up", "own", "--plan", str(plan), "--until", "plan")[0] == 0
    code, out, err = _run(capsys, "up", "own", "--dry-run", "--from", "doctor", "--until", "doctor")
    line = next(ln for ln in out.splitlines() if "Pods talk across nodes" in ln)
    assert "could not check the security groups and ports" not in line, line
    assert "skipped the security groups and ports: no cloud in the plan (machines of your own)" in line, line
    from labtui.doctor.model import Unchecked
    from labtui.doctor.run import summary_line
    from labtui.session import LabSession
    from labtui.store import Store

    with LabSession(Store(), "own") as lab:
        from labtui.doctor.run import run_doctor

        diag = run_doctor(lab.ctx, live=False)
    cloud = [u for u in diag.unchecked if u.source == "cloud"]
    assert cloud and all(isinstance(u, Unchecked) and u.skipped for u in cloud)
    assert cloud[0] not in diag.blocked_sources
    summary = summary_line(diag)
    assert "skipped (do not apply): the security groups and ports" in summary
    assert "could not check: the security groups" not in summary
