"""`labtui`: launches the UI (lazily importing `screens`) or runs a headless command.

Feature modules add their subcommands through `COMMAND_MODULES`: each defines
`register(subparsers)` and sets `func=handler` on its parsers; a handler takes the parsed args
and returns the exit code. Handlers raise `LabError` for anything the user must hear about.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from labtui import __version__
from labtui.commands.launch import launch_ui
from labtui.errors import LabError
from labtui.logs import route_library_logs, write_crash

# the command modules are imported by name, only when a command is given: the UI's first frame does not wait for them
COMMAND_MODULES = [
    "labtui.commands.labs",
    "labtui.commands.nodes",
    "labtui.commands.cloud",
    "labtui.commands.calico",
    "labtui.commands.doctor",
    "labtui.commands.up",
    "labtui.commands.kubernetes",
    "labtui.commands.provision",
]


# which module registers each command: `labtui doctor ...` imports labtui.commands.doctor alone (each
# module imports what it needs at its top; the others' imports would cost every run ~0.1-0.3 s)
COMMAND_HOMES = {
    "sessions": "labtui.commands.labs", "show": "labtui.commands.labs", "resume": "labtui.commands.labs",
    "delete": "labtui.commands.labs", "info": "labtui.commands.labs",
    "nodes": "labtui.commands.nodes", "cloud": "labtui.commands.cloud", "calico": "labtui.commands.calico",
    "doctor": "labtui.commands.doctor", "revert": "labtui.commands.doctor", "report": "labtui.commands.doctor",
    "up": "labtui.commands.up", "kubernetes": "labtui.commands.kubernetes",
    "provision": "labtui.commands.provision", "teardown": "labtui.commands.provision",
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv` naming a command, only that command's module is imported (help, an
    unknown command or no command: all of them, in their order)."""
    parser = argparse.ArgumentParser(prog="labtui", description="A lab assistant from an OpenStack project to a working kubeadm + Calico cluster.")
    parser.add_argument("--version", action="version", version=f"labtui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    first = next((a for a in argv or [] if not a.startswith("-")), None)
    modules = [COMMAND_HOMES[first]] if first in COMMAND_HOMES else COMMAND_MODULES
    for modname in modules:
        if importlib.util.find_spec(modname) is not None:
            importlib.import_module(modname).register(sub)
    return parser


def _quiet_stdout() -> None:
    """After a closed pipe (`labtui ... | head`): send what is left to /dev/null, so Python's own
    flush at exit prints no traceback either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _crash(exc: BaseException) -> int:
    """A bug: one clear line for the user, the traceback in a 0600 file for the report."""
    where = write_crash(exc)
    try:
        print(f"labtui: unexpected error: {type(exc).__name__}: {exc}\n  -> this is a bug in labtui; the details are "
              f"in {where}", file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 70


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    route_library_logs()  # paramiko's thread logs to labtui.log, never over the terminal or the UI
    try:
        if not argv:  # the UI: do not load the headless command modules on the way to the first frame
            return launch_ui()
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            return launch_ui()
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at exit
        return rc
    except LabError as exc:
        try:
            print(f"labtui: {exc.render()}", file=sys.stderr)
        except (OSError, ValueError):
            pass
        return 2
    except KeyboardInterrupt:
        try:
            print("labtui: interrupted", file=sys.stderr)
        except (OSError, ValueError):
            pass
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except SystemExit:
        raise
    except Exception as exc:  # no traceback ever reaches the user
        return _crash(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
