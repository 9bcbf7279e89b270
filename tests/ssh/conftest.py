"""SSH tests: real OpenSSH sshd nodes in network namespaces (tests/harness/sshnodes.py), root only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, sshd)")


@pytest.fixture(scope="session")
def lab3():
    """Three nodes on one bridge, shared by the read-only tests (tests that break a node start their own)."""
    _need_root()
    from tests.harness.sshnodes import SSHNodes

    with SSHNodes(3) as lab:
        yield lab


@pytest.fixture(scope="session")
def bastion_lab():
    """Three nodes reachable only through a bastion."""
    _need_root()
    from tests.harness.sshnodes import SSHNodes

    with SSHNodes(3, bastion=True) as lab:
        yield lab


@pytest.fixture
def fresh_lab():
    """A private two-node lab for tests that rebuild keys or stop nodes."""
    _need_root()
    from tests.harness.sshnodes import SSHNodes

    with SSHNodes(2) as lab:
        yield lab


@pytest.fixture
def ssh_env(lab_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No agent, no ~/.ssh of the machine: HOME is a temporary directory (lab_home)."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("LABTUI_SSH_CONFIG", raising=False)
    monkeypatch.delenv("LABTUI_SSH_KNOWN_HOSTS", raising=False)
    return lab_home


@pytest.fixture
def make_ssh(ssh_env: Path, tmp_path: Path):
    """make_ssh(lab, trusted=True, specs=None, **options) -> NodeSSH with its own known_hosts.

    trusted=True reads the harness's known_hosts as the user's (read-only) file."""
    from labtui.model import NodeSpec
    from labtui.adapters.ssh import NodeSSH

    made = []

    def make(lab, *, trusted: bool = True, specs=None, via_config: bool = True, events=None, **options):
        specs = specs if specs is not None else lab.node_specs(via_config=via_config)
        options.setdefault("known_hosts", tmp_path / "labtui_known_hosts")
        options.setdefault("user_known_hosts", [lab.known_hosts] if trusted else [])
        options.setdefault("ssh_config", lab.ssh_config)
        options.setdefault("look_for_keys", False)
        options.setdefault("connect_timeout", 5.0)
        if events is not None:
            options["emit"] = events.append
        ssh = NodeSSH([NodeSpec.model_validate(s) for s in specs], **options)
        made.append(ssh)
        return ssh

    yield make
    for ssh in made:
        ssh.close()


def pytest_collection_modifyitems(config, items):
    """A hung SSH test fails after 3 minutes instead of holding CI (pytest-timeout)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(180))
