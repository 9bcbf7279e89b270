"""`labtui COMMAND ...` imports that command's module alone: the others' imports cost every run."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from labtui.cli import COMMAND_HOMES, COMMAND_MODULES


def test_every_command_has_its_home_and_every_home_registers_its_commands():
    registered: dict[str, str] = {}
    for modname in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers(dest="command")
        importlib.import_module(modname).register(sub)
        registered.update({name: modname for name in sub.choices})
    assert registered == COMMAND_HOMES


def test_a_command_imports_only_its_own_module():
    code = ("import sys; from labtui.cli import build_parser; build_parser(['sessions']); "
            "print(sorted(m for m in sys.modules if m.startswith('labtui.commands.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "labtui.commands.labs" in out
    assert not {"labtui.commands.doctor", "labtui.commands.nodes", "labtui.commands.provision"} & set(eval(out))
