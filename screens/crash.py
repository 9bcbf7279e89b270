"""Every unexpected error in a UI worker leaves its traceback in crash.log (0600, the file the CLI's
crash handler writes) and the user sees one line that names that file."""

from __future__ import annotations

from labtui.logs import crash_line


def worker_crash(exc: BaseException, where: str = "") -> str:
    """For a worker that catches its own unexpected error: the traceback written, the line to show."""
    return crash_line(exc, f"labtui UI: {where}" if where else "labtui UI")


class CrashReporting:
    """Mixed into the screens: a worker that ends with an uncaught error (exit_on_error=False) is
    reported here (textual's Worker.StateChanged does not bubble, so each screen listens)."""

    def on_worker_state_changed(self, event) -> None:
        from textual.worker import WorkerState

        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        line = worker_crash(event.worker.error, f"worker {event.worker.name or event.worker.group}")
        self.notify(line, title="labtui hit a bug", severity="error", timeout=20)
