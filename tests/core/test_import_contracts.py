"""The house's import rules (.importlinter), checked with import-linter on every test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter"), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    kept = [line for line in res.stdout.splitlines() if line.rstrip().endswith("KEPT")]
    assert len(kept) == 5, res.stdout[-3000:]


def test_a_broken_rule_is_caught(tmp_path):
    """The checker is live: the same contracts over a copy where a stage imports textual fail."""
    import shutil

    for pkg in ("labtui", "screens"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "labtui" / "stages" / "leak.py").write_text("import textual\n")
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter"), "--no-cache"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert res.returncode != 0
    assert "labtui.stages.leak -> textual" in res.stdout
