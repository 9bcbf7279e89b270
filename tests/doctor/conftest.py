"""Doctor tests: pure reasoning on facts (test_doctor_*), gatherers and end-to-end runs on the real
test backends (e2e_*: sshd nodes, OpenStack, kmock)."""

import os

import pytest


@pytest.fixture
def labtui_home(tmp_path, monkeypatch):
    home = tmp_path / "state"
    monkeypatch.setenv("LABTUI_HOME", str(home))
    return home
