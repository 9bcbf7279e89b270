"""Bad input gets a clear error (field named, what to do), no traceback, and nothing is lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from labtui.cloudconfig import load_clouds
from labtui.errors import LabError, ValidationFailed
from labtui.inventory import load_inventory, parse_ini, parse_yaml
from labtui.model import Plan
from labtui.store import SCHEMA_VERSION, Store


def problems_of(data: dict) -> list:
    with pytest.raises(ValidationFailed) as exc:
        Plan.parse(data)
    return exc.value.problems


def only(problems, field_prefix: str) -> list:
    return [p for p in problems if p.field.startswith(field_prefix) and p.severity == "error"]


def test_malformed_cidr(incident_plan_data):
    data = dict(incident_plan_data, pod_cidr="172.16.0.0/33")
    [p] = only(problems_of(data), "pod_cidr")
    assert "not a valid CIDR" in p.message and "172.16.0.0/33" in p.message
    assert p.hint and "a.b.c.d/len" in p.hint


def test_cidr_without_prefix(incident_plan_data):
    [p] = only(problems_of(dict(incident_plan_data, node_subnet="10.100.200.0")), "node_subnet")
    assert "no prefix length" in p.message and p.hint == "write it as CIDR, e.g. 10.100.200.0/24"
    # a short address (the wizard walk typed it): the hint must not suggest another invalid form
    [p] = only(problems_of(dict(incident_plan_data, node_subnet="10.100.200")), "node_subnet")
    assert "no prefix length" in p.message and "10.100.200/24" not in p.hint and "a.b.c.d/len" in p.hint


def test_pod_overlaps_node_subnet(incident_plan_data):
    [p] = only(problems_of(dict(incident_plan_data, pod_cidr="10.100.0.0/16")), "pod_cidr")
    assert p.message == "10.100.0.0/16 overlaps the node subnet 10.100.200.0/24"
    assert "172.16.0.0/16" in p.hint


def test_service_overlaps_node_subnet_kubeadm_default(incident_plan_data):
    # kubeadm's default service CIDR 10.96.0.0/12 contains the incident's node subnet
    [p] = only(problems_of(dict(incident_plan_data, service_cidr="10.96.0.0/12")), "service_cidr")
    assert "overlaps the node subnet 10.100.200.0/24" in p.message


def test_service_overlaps_pod(incident_plan_data):
    [p] = only(problems_of(dict(incident_plan_data, service_cidr="172.16.128.0/20")), "service_cidr")
    assert "overlaps the pod CIDR 172.16.0.0/16" in p.message


def test_calico_default_pool_on_192_168_cloud(incident_plan_data):
    nodes = [dict(n, address=n["address"].replace("10.100.200", "192.168.10")) for n in incident_plan_data["nodes"]]
    data = dict(incident_plan_data, nodes=nodes, node_subnet="192.168.10.0/24", pod_cidr="192.168.0.0/16")
    [p] = only(problems_of(data), "pod_cidr")
    assert "Calico's default pod pool" in p.hint


def test_calico_default_pool_warns_even_without_overlap(incident_plan_data):
    plan = Plan.parse(dict(incident_plan_data, pod_cidr="192.168.0.0/16"))
    from labtui.model import plan_problems

    warnings = [p for p in plan_problems(plan) if p.severity == "warning" and p.field == "pod_cidr"]
    assert warnings and "192.168.x.0/24" in warnings[0].message


def test_node_outside_subnet(incident_plan_data):
    nodes = incident_plan_data["nodes"] + [{"name": "w4", "address": "10.100.201.5"}]
    [p] = only(problems_of(dict(incident_plan_data, nodes=nodes)), "nodes[w4]")
    assert p.message == "10.100.201.5 is outside the node subnet 10.100.200.0/24"


def test_duplicate_names(incident_plan_data):
    nodes = incident_plan_data["nodes"] + [{"name": "w1", "address": "10.100.200.30"}]
    [p] = only(problems_of(dict(incident_plan_data, nodes=nodes)), "nodes[w1].name")
    assert "used twice" in p.message


def test_duplicate_addresses(incident_plan_data):
    nodes = incident_plan_data["nodes"] + [{"name": "w4", "address": "10.100.200.21"}]
    [p] = only(problems_of(dict(incident_plan_data, nodes=nodes)), "nodes[w4].address")
    assert "also the address of w1" in p.message


def test_no_control_plane(incident_plan_data):
    nodes = [dict(n, role="worker") for n in incident_plan_data["nodes"]]
    [p] = only(problems_of(dict(incident_plan_data, nodes=nodes)), "nodes")
    assert p.message == "no control-plane node" and "exactly one" in p.hint


def test_two_control_planes(incident_plan_data):
    nodes = [dict(n, role="control-plane") for n in incident_plan_data["nodes"][:2]] + incident_plan_data["nodes"][2:]
    [p] = only(problems_of(dict(incident_plan_data, nodes=nodes)), "nodes")
    assert "2 control-plane nodes (cp1, w1)" in p.message


def test_bad_node_name_and_address(incident_plan_data):
    nodes = incident_plan_data["nodes"] + [{"name": "Bad_Name", "address": "10.100.200.300"}]
    probs = problems_of(dict(incident_plan_data, nodes=nodes))
    messages = " | ".join(p.message for p in probs)
    assert "not a valid node name" in messages and "neither an IP address nor a host name" in messages


def test_unknown_cloud_name(clouds_yaml):
    with pytest.raises(LabError) as exc:
        load_clouds().require("nosuch")
    assert "cloud 'nosuch' is not defined" in exc.value.message and "study, other" in exc.value.message
    assert "OS_CLIENT_CONFIG_FILE" in exc.value.hint


def test_unreadable_clouds_yaml(lab_home, tmp_path, monkeypatch):
    path = tmp_path / "clouds.yaml"
    path.write_text("clouds: {}\n")
    path.chmod(0)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    if os.geteuid() == 0:  # root reads anything: use a directory instead
        path.chmod(0o600)
        path.unlink()
        path.mkdir()
    with pytest.raises(LabError) as exc:
        load_clouds(path)
    assert f"cannot read {path}" in exc.value.message


def test_invalid_clouds_yaml(lab_home, tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text("clouds:\n  study:\n\tauth: {}\n")
    with pytest.raises(LabError) as exc:
        load_clouds(path)
    assert "is not valid YAML at line 3" in exc.value.message and "tab" in exc.value.hint


def test_clouds_yaml_without_clouds_mapping(lab_home, tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(LabError) as exc:
        load_clouds(path)
    assert "has no 'clouds:' mapping" in exc.value.message


def test_malformed_ini_inventory():
    with pytest.raises(LabError) as exc:
        parse_ini("[all\nnode1 ansible_host=10.0.0.1\n", "hosts.ini")
    assert "hosts.ini, line 1: unclosed section header" in exc.value.message
    with pytest.raises(LabError) as exc:
        parse_ini("[all]\nnode1 ansible_host\n", "hosts.ini")
    assert "line 2: 'ansible_host' is not key=value" in exc.value.message


def test_malformed_yaml_inventory(tmp_path):
    with pytest.raises(LabError) as exc:
        parse_yaml("nodes:\n  - name: a\n   address: b\n", "inv.yaml")
    assert "inv.yaml is not valid YAML at line" in exc.value.message
    with pytest.raises(LabError) as exc:
        parse_yaml("something: else\n", "inv.yaml")
    assert "neither a labtui inventory" in exc.value.message
    with pytest.raises(LabError) as exc:
        load_inventory(tmp_path / "missing.yaml")
    assert "cannot read the inventory" in exc.value.message


def test_name_clash_keeps_the_first_lab(store, incident_plan_data):
    store.create_session("incident", plan=incident_plan_data)
    with pytest.raises(LabError) as exc:
        store.create_session("incident")
    assert "a lab named 'incident' already exists" in exc.value.message
    assert "labtui resume incident" in exc.value.hint
    assert store.get_session("incident").plan["nodes"][0]["name"] == "cp1"


def test_unwritable_state_directory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LABTUI_HOME", str(blocker / "state"))
    with pytest.raises(LabError) as exc:
        Store()
    assert "cannot use the state directory" in exc.value.message and "LABTUI_HOME" in exc.value.hint
    # and through the CLI: a clear message, exit 2, no traceback
    res = subprocess.run([sys.executable, "-m", "labtui", "sessions"], capture_output=True, text=True,
                         env={**os.environ, "LABTUI_HOME": str(blocker / "state")})
    assert res.returncode == 2
    assert "labtui: cannot use the state directory" in res.stderr and "Traceback" not in res.stderr


def test_database_from_a_newer_labtui(lab_home):
    s = Store()
    s.create_session("keepme")
    s.close()
    db = sqlite3.connect(lab_home / "labtui.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(LabError) as exc:
        Store()
    assert "written by a newer labtui" in exc.value.message and "upgrade labtui" in exc.value.hint
    res = subprocess.run([sys.executable, "-m", "labtui", "sessions"], capture_output=True, text=True)
    assert res.returncode == 2 and "newer labtui" in res.stderr and "Traceback" not in res.stderr
    # nothing lost: the data is still there for the newer version
    db = sqlite3.connect(lab_home / "labtui.db")
    assert db.execute("SELECT name FROM sessions").fetchall() == [("keepme",)]


def test_unknown_lab_in_cli(lab_home):
    res = subprocess.run([sys.executable, "-m", "labtui", "show", "nosuch"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "no lab named 'nosuch'" in res.stderr and "labtui sessions" in res.stderr and "Traceback" not in res.stderr
