"""The house rules that run: ruff over the whole project and mypy strict over the engine's core, both
configured in pyproject.toml ([tool.ruff], [tool.mypy]). Each checker is first shown to be live on a
file that breaks its rule, so a configuration that checks nothing cannot pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def _tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.fail(f"{name} is not installed in this venv: the README's test command installs it (pip install -e .[test])")
    return str(path)


def test_ruff_is_live_and_the_project_passes(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os  # noqa: E501\n")  # an unused import and a noqa that ruff does not need
    live = subprocess.run([_tool("ruff"), "check", "--config", str(PYPROJECT), "--no-cache", str(bad)],
                          capture_output=True, text=True, cwd=ROOT)
    assert live.returncode == 1 and "F401" in live.stdout and "RUF100" in live.stdout, live.stdout + live.stderr
    run = subprocess.run([_tool("ruff"), "check", "--no-cache", "labtui", "screens", "tests", "bench"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_strict_is_live_and_the_engine_core_passes(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def untyped(x):\n    return x\n")
    cache = str(tmp_path / "mypy-cache")
    live = subprocess.run([_tool("mypy"), "--config-file", str(PYPROJECT), "--cache-dir", cache, str(bad)],
                          capture_output=True, text=True, cwd=ROOT)
    assert live.returncode == 1 and "no-untyped-def" in live.stdout, live.stdout + live.stderr
    # the files listed in [tool.mypy] (model, net, changes, execute, runner, pool_change, steps, interfaces)
    run = subprocess.run([_tool("mypy"), "--config-file", str(PYPROJECT), "--cache-dir", cache],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_each_adapter_implements_its_interface(tmp_path):
    """mypy proves each adapter has the shape of the Protocol the engine holds it by
    (labtui.adapters.interfaces); a method renamed on either side fails here."""
    check = tmp_path / "adapters_conform.py"
    check.write_text(
        "from labtui.adapters.calico import Calico\n"
        "from labtui.adapters.interfaces import CalicoAPI, CloudSession, KubeAPI, NodeCommands\n"
        "from labtui.adapters.kube import KubeClient\n"
        "from labtui.adapters.openstack import CloudConnection\n"
        "from labtui.adapters.ssh import NodeSSH\n\n\n"
        "def cloud(c: CloudConnection) -> CloudSession:\n    return c\n\n\n"
        "def ssh(c: NodeSSH) -> NodeCommands:\n    return c\n\n\n"
        "def kube(c: KubeClient) -> KubeAPI:\n    return c\n\n\n"
        "def calico(c: Calico) -> CalicoAPI:\n    return c\n")
    wrong = tmp_path / "adapter_wrong.py"
    wrong.write_text("from labtui.adapters.interfaces import KubeAPI\n\n\nclass NotKube:\n    pass\n\n\n"
                     "def kube(c: NotKube) -> KubeAPI:\n    return c\n")
    cache = str(tmp_path / "mypy-cache")
    args = [_tool("mypy"), "--ignore-missing-imports", "--follow-imports=silent", "--cache-dir", cache]
    live = subprocess.run(args + [str(wrong)], capture_output=True, text=True, cwd=ROOT)
    assert live.returncode == 1 and "KubeAPI" in live.stdout, live.stdout + live.stderr
    run = subprocess.run(args + [str(check)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
