"""Every folder under tests/ that holds test files is collected by pytest.

pytest skips some folder names silently (its default `norecursedirs` holds `build`, `dist`, `*venv*`
and `.*`): tests/build once held 29 tests that no run ever collected. This collects the whole suite in
a fresh pytest, as `./tests/run` does, and names any folder whose test files yield nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def _folders_with_test_files() -> set[Path]:
    return {p.parent.relative_to(ROOT) for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts}


def _collected_folders() -> set[Path]:
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folders = set()
    for line in run.stdout.splitlines():
        path = line.split("::", 1)[0]
        if "::" in line and path.endswith(".py"):
            folders.add(Path(path).parent)
    return folders


def test_every_folder_with_tests_is_collected():
    expected = _folders_with_test_files()
    assert Path("tests/cluster") in expected  # the folder that was once skipped is looked at
    missing = sorted(str(p) for p in expected - _collected_folders())
    assert not missing, f"pytest collects no test from {missing}: rename the folder (pytest skips build, dist, venv, .*)"


def test_the_check_sees_a_skipped_folder(tmp_path):
    """The check is live: a folder named `build` with a test in it is not collected by pytest."""
    (tmp_path / "tests" / "build").mkdir(parents=True)
    (tmp_path / "tests" / "ok").mkdir()
    for d in ("build", "ok"):
        (tmp_path / "tests" / d / "test_x.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "tests/ok/test_x.py::test_x" in run.stdout, run.stdout
    assert "tests/build/test_x.py" not in run.stdout, run.stdout
