"""What every headless command shares: printing actions before they run and asking for them
(the executor's confirmation callback), printing progress events, reading a yes/no."""

from __future__ import annotations

import sys
import threading
from typing import Callable

PROGRESS_KINDS = ("action.start", "action.done", "action.failed", "change", "warn", "error", "info")


_print_lock = threading.Lock()


def eprint(text: str) -> None:
    """One whole line on stderr, even when worker threads report at the same time."""
    with _print_lock:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def print_event(event) -> None:
    """Progress on stderr (stdout stays clean for --json and the result); API calls too."""
    if event.kind in PROGRESS_KINDS or (event.kind == "action.output" and event.stream == "api"):
        eprint(f"  {event.line()}")


def ask(prompt: str) -> str:
    try:
        return input(prompt)
    except EOFError:
        return ""


def print_actions(actions, heading: str = "Changes:", out: Callable[[str], None] = print) -> None:
    out(heading)
    for a in actions:
        warn = " (DESTRUCTIVE)" if a.risk.value == "destructive" else ""
        out(f"  {a.title}{warn}")
        for line in a.render().splitlines():
            out(f"    {line}")
        if a.data.get("cost"):
            out(f"    cost: {a.data['cost']}")
        if a.data.get("blocked"):
            out(f"    cannot be applied: {a.data['blocked']}")
        if a.data.get("why"):
            out(f"    why: {a.data['why']}")


def confirmer(yes: bool, *, verb: str = "Apply", heading: str = "Changes:",
              out: Callable[[str], None] = print) -> Callable[[list], bool]:
    """The executor's confirmation for a headless command: show the exact changes (on stdout unless
    `out` says otherwise); --yes applies, a terminal is asked, anything else refuses and says how."""

    def confirm(actions) -> bool:
        print_actions(actions, heading, out)
        if yes:
            return True
        if sys.stdin.isatty():
            return ask(f"{verb} these {len(actions)} change(s)? [y/N] ").strip().lower() in ("y", "yes")
        out("Re-run with --yes to apply exactly these changes.")
        return False

    return confirm
