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
