"""pytest fixtures for the OpenStack test backend (import them into a conftest.py)."""

from __future__ import annotations

import os

import pytest

from . import connect
from .layout import IncidentLayout, build_incident_layout
from .stack import CLOUD_ADMIN, Stack, StackError, start, stop


@pytest.fixture(scope="session")
def openstack_stack() -> Stack:
    try:
        stack = start()
    except StackError as exc:
        pytest.fail(f"the OpenStack test backend did not start: {exc}", pytrace=False)
    old = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(stack.clouds_yaml)
    yield stack
    if old is None:
        os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
    else:
        os.environ["OS_CLIENT_CONFIG_FILE"] = old
    if os.environ.get("CI") and not os.environ.get("LABTUI_OPENSTACK_KEEP"):
        stop()


@pytest.fixture(scope="session")
def incident_layout(openstack_stack: Stack) -> IncidentLayout:
    return build_incident_layout(connect(CLOUD_ADMIN), cloud=CLOUD_ADMIN)


@pytest.fixture
def incident(incident_layout: IncidentLayout) -> IncidentLayout:
    return incident_layout.reset()
