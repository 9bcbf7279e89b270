"""Where labtui keeps its state. `LABTUI_HOME` overrides the platform default."""

from __future__ import annotations

import os
from pathlib import Path

from labtui.errors import LabError


def state_home() -> Path:
    env = os.environ.get("LABTUI_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_state_path

    return user_state_path("labtui")


def ensure_dir(path: Path, mode: int = 0o700) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        os.chmod(path, mode)
    except OSError as exc:
        raise LabError(
            f"cannot use the state directory {path}: {exc.strerror or exc}",
            "set LABTUI_HOME to a directory you can write, e.g. LABTUI_HOME=~/labtui-state",
            code="state",
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise LabError(
            f"the state directory {path} is not writable",
            "fix its permissions or set LABTUI_HOME to a directory you can write",
            code="state",
        )
    return path


def db_path(home: Path | None = None) -> Path:
    return (home or state_home()) / "labtui.db"


def known_hosts_path(home: Path | None = None) -> Path:
    return (home or state_home()) / "known_hosts"


def log_path(home: Path | None = None) -> Path:
    return (home or state_home()) / "labtui.log"


def session_dir(name: str, home: Path | None = None) -> Path:
    """A per-session directory (0700) for files that must not go into the database (admin.conf)."""
    return ensure_dir((home or state_home()) / "sessions" / name)


def write_private(path: Path, data: bytes | str) -> Path:
    """Write a file that only the owner can read (0600), atomically."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
