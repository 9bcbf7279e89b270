"""The engine never imports Textual or the UI, and no engine module pulls a heavy SDK at import."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import labtui

FORBIDDEN = ["textual", "screens", "openstack", "kubernetes", "paramiko"]


def engine_modules() -> list[str]:
    names = ["labtui"]
    for info in pkgutil.walk_packages(labtui.__path__, "labtui."):
        if info.name != "labtui.__main__":
            names.append(info.name)
    return names


def test_every_engine_module_imports_without_ui_or_sdks():
    mods = engine_modules()
    assert "labtui.store" in mods and "labtui.stages.plan" in mods
    code = (
        "import importlib, json, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(res.stdout) == []


def test_cli_parser_builds_without_ui_or_sdks():
    code = (
        "import json, sys\n"
        "from labtui.cli import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(res.stdout) == []


def test_ui_first_screen_does_not_import_sdks():
    code = (
        "import json, sys\n"
        "import screens.app, screens.home, screens.wizard\n"
        "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in ('openstack', 'kubernetes', 'paramiko'))))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(res.stdout) == []
