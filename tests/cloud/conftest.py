"""Fixtures for the cloud tests: the real OpenStack backend (tests/harness/openstack) and labs on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.openstack import CLOUD_ADMIN, CLOUD_MEMBER, connect
from tests.harness.openstack.fixtures import incident, incident_layout, openstack_stack  # noqa: F401
from tests.harness.openstack.layout import IncidentLayout, build_incident_layout


@pytest.fixture
def cloud_env(lab_home: Path, openstack_stack, monkeypatch: pytest.MonkeyPatch):
    """A fresh LABTUI_HOME whose clouds.yaml is the test backend's."""
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(openstack_stack.clouds_yaml))
    return openstack_stack


@pytest.fixture
def make_lab(store, cloud_env):
    """make_lab(layout, encapsulation="IPIP", name="incident", extra_nodes=()) -> lab name."""

    def make(layout: IncidentLayout, encapsulation: str = "IPIP", name: str = "incident", extra_nodes=()) -> str:
        plan = layout.plan(lab=name, encapsulation=encapsulation)
        plan["nodes"] += [dict(n) for n in extra_nodes]
        store.create_session(name, cloud=layout.cloud, wizard="cloud", plan=plan)
        return name

    return make


@pytest.fixture
def labtui(capsys):
    """Run the CLI in-process: labtui("cloud", "check", "x", "--json") -> (exit code, stdout, stderr)."""
    from labtui.cli import main

    def run(*argv: str):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def check_json(labtui):
    def run(lab: str, *extra: str) -> tuple[int, dict]:
        code, out, err = labtui("cloud", "check", lab, "--json", *extra)
        assert out.strip(), err
        return code, json.loads(out)

    return run


@pytest.fixture(scope="session")
def member_layout(openstack_stack) -> IncidentLayout:
    """Two servers of the member-only user on a network the admin owns and shares (the usual
    shared provider network): the member may add rules to its own group, but Neutron's policy
    refuses it allowed-address-pairs and port security on those ports (HTTP 403)."""
    return build_incident_layout(
        connect(CLOUD_MEMBER), cloud=CLOUD_MEMBER, name="member", sg_name="member-k8s",
        subnet_cidr="10.100.210.0/24", network_conn=connect(CLOUD_ADMIN), shared_network=True,
        nodes=(("m-cp1", None, "control-plane"), ("m-w1", None, "worker")),
    )
