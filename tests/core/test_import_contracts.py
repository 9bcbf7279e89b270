"""The house's import rules (.importlinter), checked with import-linter on every test run."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
PREFIX = "importlinter:contract:"

# For each contract (by its id in .importlinter), files that break it and the import the checker
# must then name under that contract: what proves the contract is live, not a rule that holds
# because it checks nothing (a misspelt module, a layer that matches no package).
LEAKS: dict[str, list[tuple[str, str, str]]] = {
    "engine-headless": [("labtui/stages/leak.py", "import textual\n", "labtui.stages.leak -> textual")],
    "screens-no-cli": [("screens/leak.py", "import labtui.cli\n", "screens.leak -> labtui.cli")],
    "adapters-only-talk": [("labtui/adapters/leak.py", "import labtui.execute\n",
                            "labtui.adapters.leak -> labtui.execute")],
    "commands-no-screens": [("labtui/commands/leak.py", "import screens\n", "labtui.commands.leak -> screens")],
    "sdks-in-adapters": [("labtui/net/leak_sdk.py", "import paramiko\n", "labtui.net.leak_sdk -> paramiko")],
    "engine-layers": [
        ("labtui/net/leak.py", "import labtui.steps\n", "labtui.net.leak -> labtui.steps"),  # upwards
        ("labtui/unplaced.py", "", "labtui.unplaced"),  # a new top-level module no layer names (exhaustive)
    ],
}


def contracts() -> dict[str, str]:
    """Contract id -> its name, as .importlinter declares them."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return {s[len(PREFIX):]: parser[s]["name"] for s in parser.sections() if s.startswith(PREFIX)}


def lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    base = env if env is not None else dict(os.environ)
    return subprocess.run([str(lint_imports), "--config", str(CONFIG), "--no-cache"], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env={**base, "COLUMNS": "400"})


def test_import_contracts_hold():
    res = lint(ROOT)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    kept = [line for line in res.stdout.splitlines() if line.rstrip().endswith("KEPT")]
    assert len(kept) == len(contracts()), res.stdout[-3000:]


def test_every_contract_is_live(tmp_path):
    """The checker is live: the same contracts over a copy where each rule is broken once (e.g. a
    stage imports textual) report each break under that rule."""
    declared = contracts()
    assert set(declared) <= set(LEAKS), f"give these contracts a leak in LEAKS: {sorted(set(declared) - set(LEAKS))}"
    for pkg in ("labtui", "screens"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for cid in declared:
        for path, text, _ in LEAKS[cid]:
            (tmp_path / path).write_text(text)
    res = lint(tmp_path, {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert res.returncode != 0
    out = res.stdout
    assert "Broken contracts" in out, out[-3000:]
    report = out[out.index("Broken contracts"):]
    # each contract's own section of the report: from its name to the next contract's name
    starts = sorted((report.index(name), cid) for cid, name in declared.items() if name in report)
    assert {cid for _, cid in starts} == set(declared), out[-3000:]
    for i, (start, cid) in enumerate(starts):
        section = report[start:starts[i + 1][0] if i + 1 < len(starts) else len(report)]
        for _, _, expected in LEAKS[cid]:
            assert expected in section, f"{cid}: {expected!r} not reported\n{section}"
