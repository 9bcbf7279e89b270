"""Library log records go to labtui's own log file, never to the terminal.

paramiko logs from its transport thread (e.g. "Exception (client): Error reading SSH protocol banner"
and the traceback after it when a host accepts TCP but does not speak SSH yet, as a VM still booting
does). With no handler configured, Python's last-resort handler prints those records on stderr, over
labtui's own clear message and over the UI. `route_library_logs()` gives those loggers a handler that
appends to <state>/labtui.log (0600, opened on the first record only, so a command that logs nothing
writes nothing)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback

from labtui import paths

LIBRARY_LOGGERS = ("labtui", "paramiko", "keystoneauth", "openstack", "urllib3", "kubernetes")


class PrivateLogHandler(logging.Handler):
    """Appends formatted records to labtui.log, created 0600 on first use; never raises."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lock_file = threading.Lock()
        self.path: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {record.levelname} {record.name}: {record.getMessage()}"
            if record.exc_info:
                line += "\n" + logging.Formatter().formatException(record.exc_info)
            with self._lock_file:
                path = paths.log_path()
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
                self.path = str(path)
        except Exception:  # logging must never break the command or the UI
            pass


def route_library_logs() -> None:
    """Idempotent: each library logger gets one PrivateLogHandler and stops propagating to the root."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, PrivateLogHandler) for h in logger.handlers):
            logger.addHandler(PrivateLogHandler())
        logger.propagate = False


def write_crash(exc: BaseException, context: str = "") -> str:
    """A bug's traceback appended to crash.log in the state directory (0600), for the report. Returns
    the file's path, or "the log directory" when it cannot be written (reporting a crash never crashes)."""
    try:
        home = paths.state_home()
        home.mkdir(parents=True, exist_ok=True)
        path = home / "crash.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(path, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + (context or " ".join(sys.argv)) + "\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return str(path)
    except Exception:  # reporting a crash must not crash
        return "the log directory"


def crash_line(exc: BaseException, context: str = "") -> str:
    """The one line a user sees for a bug: what broke, and where its traceback is (written now)."""
    where = write_crash(exc, context)
    return (f"unexpected error: {type(exc).__name__}: {exc} -> this is a bug in labtui; the details are in {where}")
