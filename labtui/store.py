"""The session store: one SQLite database (WAL, 0600) with a schema version and forward migrations.

Tables: sessions, step_runs, events (the command log), changes (applied changes with revert data),
facts (cached node/cloud/cluster facts). Every write is a transaction, so a kill -9 at any moment
leaves the last committed step intact. Secrets never reach it: events and outputs are redacted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from labtui.errors import LabError
from labtui.events import Event
from labtui.paths import db_path, ensure_dir, state_home
from labtui.redact import redact, redact_data

SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    cloud TEXT,
    wizard TEXT NOT NULL DEFAULT 'plan',
    step TEXT,
    plan TEXT NOT NULL DEFAULT '{}',
    inputs TEXT NOT NULL DEFAULT '{}',
    health TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS step_runs (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    wizard TEXT NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    outputs TEXT NOT NULL DEFAULT '{}',
    started REAL NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS step_runs_by_session ON step_runs(session_id, wizard, step, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    node TEXT,
    stream TEXT,
    message TEXT NOT NULL,
    data TEXT
);
CREATE INDEX IF NOT EXISTS events_by_session ON events(session_id, id);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    description TEXT NOT NULL,
    command TEXT NOT NULL,
    revert_command TEXT,
    revert_data TEXT NOT NULL DEFAULT '{}',
    reverted REAL
);
CREATE TABLE IF NOT EXISTS facts (
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (session_id, scope, key)
);
"""

# Forward migrations: MIGRATIONS[n] takes a database at version n to n+1.
def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Run DDL statements inside the caller's transaction (executescript would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: lambda db: _run_script(db, _SCHEMA_V1),
}


@dataclass
class SessionRecord:
    id: int
    name: str
    cloud: str | None
    wizard: str
    step: str | None
    plan: dict[str, Any]
    inputs: dict[str, Any]
    health: str
    created: float
    updated: float

    @property
    def cloud_name(self) -> str | None:
        """The lab's cloud: the one chosen for a run (inputs), else the session's, else the plan's."""
        return (self.inputs or {}).get("cloud") or self.cloud or (self.plan or {}).get("cloud")

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "SessionRecord":
        return cls(
            id=row["id"],
            name=row["name"],
            cloud=row["cloud"],
            wizard=row["wizard"],
            step=row["step"],
            plan=json.loads(row["plan"] or "{}"),
            inputs=json.loads(row["inputs"] or "{}"),
            health=row["health"],
            created=row["created"],
            updated=row["updated"],
        )


@dataclass
class StepRun:
    wizard: str
    step: str
    state: str
    detail: str
    outputs: dict[str, Any]
    started: float
    finished: float | None


@dataclass
class Change:
    kind: str  # e.g. "openstack.sg-rule", "openstack.port-pairs", "calico.pool-mode"
    target: str  # what was changed (a security group, a port, a pool)
    description: str
    command: str  # the exact command as the user would type it
    revert_command: str | None = None
    revert_data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    ts: float = 0.0
    reverted: float | None = None


def _json(value: Any) -> str:
    return json.dumps(redact_data(value), sort_keys=True, default=str)


class Store:
    """Thread-safe access to the state database (one connection, one lock, short transactions)."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = ensure_dir(Path(home) if home else state_home())
        self.path = db_path(self.home)
        self._lock = threading.RLock()
        existed = self.path.exists()
        try:
            if not existed:
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            os.chmod(self.path, 0o600)
            self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise LabError(
                f"cannot open the session database {self.path}: {exc}",
                "check the permissions of the state directory, or set LABTUI_HOME elsewhere",
                code="state",
            ) from exc
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise LabError(
                f"the session database {self.path} is unreadable: {exc}",
                "move it aside (labtui will start a new one) or restore a backup",
                code="state",
            ) from exc
        for suffix in ("-wal", "-shm"):
            side = Path(str(self.path) + suffix)
            if side.exists():
                os.chmod(side, 0o600)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        with self._lock:
            self.db.close()

    def _tx(self):
        store = self

        class _Tx:
            def __enter__(self_inner):
                store._lock.acquire()
                store.db.execute("BEGIN IMMEDIATE")
                return store.db

            def __exit__(self_inner, exc_type, exc, tb):
                try:
                    store.db.execute("ROLLBACK" if exc_type else "COMMIT")
                finally:
                    store._lock.release()
                return False

        return _Tx()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self.db.close()
            raise LabError(
                f"the session database {self.path} was written by a newer labtui (schema {version}, "
                f"this labtui knows {SCHEMA_VERSION})",
                "upgrade labtui, or set LABTUI_HOME to another directory to start afresh",
                code="schema",
            )
        while version < SCHEMA_VERSION:
            with self._tx() as db:
                MIGRATIONS[version](db)
                version += 1
                db.execute(f"PRAGMA user_version={version}")

    # ------------------------------------------------------------------ sessions
    def create_session(self, name: str, cloud: str | None = None, wizard: str = "plan", **fields: Any) -> SessionRecord:
        now = time.time()
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO sessions(name, cloud, wizard, plan, inputs, created, updated) VALUES (?,?,?,?,?,?,?)",
                    (name, cloud, wizard, _json(fields.get("plan", {})), _json(fields.get("inputs", {})), now, now),
                )
        except sqlite3.IntegrityError:
            raise LabError(
                f"a lab named {name!r} already exists",
                f"choose another name, or resume it with: labtui resume {name}",
                code="exists",
            ) from None
        return self.get_session(name)

    def get_session(self, name: str) -> SessionRecord:
        with self._lock:
            row = self.db.execute("SELECT * FROM sessions WHERE name=?", (name,)).fetchone()
        if row is None:
            raise LabError(f"no lab named {name!r}", "list the labs with: labtui sessions", code="not-found")
        return SessionRecord.from_row(row)

    def has_session(self, name: str) -> bool:
        with self._lock:
            return self.db.execute("SELECT 1 FROM sessions WHERE name=?", (name,)).fetchone() is not None

    def list_sessions(self) -> list[SessionRecord]:
        with self._lock:
            rows = self.db.execute("SELECT * FROM sessions ORDER BY updated DESC").fetchall()
        return [SessionRecord.from_row(r) for r in rows]

    def delete_session(self, name: str) -> None:
        rec = self.get_session(name)
        with self._tx() as db:
            for table in ("events", "step_runs", "changes", "facts"):
                db.execute(f"DELETE FROM {table} WHERE session_id=?", (rec.id,))
            db.execute("DELETE FROM sessions WHERE id=?", (rec.id,))
        sdir = self.home / "sessions" / name
        if sdir.is_dir():
            for child in sdir.iterdir():
                child.unlink()
            sdir.rmdir()

    def update_session(self, name: str, **fields: Any) -> SessionRecord:
        allowed = {"cloud", "wizard", "step", "plan", "inputs", "health"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown session fields: {unknown}")
        sets, values = [], []
        for key, value in fields.items():
            sets.append(f"{key}=?")
            values.append(_json(value) if key in ("plan", "inputs") else value)
        sets.append("updated=?")
        values.append(time.time())
        with self._tx() as db:
            cur = db.execute(f"UPDATE sessions SET {', '.join(sets)} WHERE name=?", (*values, name))
            if cur.rowcount == 0:
                raise LabError(f"no lab named {name!r}", "list the labs with: labtui sessions", code="not-found")
        return self.get_session(name)

    def save_inputs(self, name: str, values: dict[str, Any]) -> SessionRecord:
        """Merge wizard inputs into the session in one transaction."""
        with self._tx() as db:
            row = db.execute("SELECT inputs FROM sessions WHERE name=?", (name,)).fetchone()
            if row is None:
                raise LabError(f"no lab named {name!r}", "list the labs with: labtui sessions", code="not-found")
            merged = json.loads(row["inputs"] or "{}")
            merged.update(values)
            db.execute("UPDATE sessions SET inputs=?, updated=? WHERE name=?", (_json(merged), time.time(), name))
        return self.get_session(name)

    # ------------------------------------------------------------------ step runs
    def record_step(
        self, session_id: int, wizard: str, step: str, state: str, detail: str = "", outputs: dict | None = None,
        session_step: str | None = None,
    ) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO step_runs(session_id, wizard, step, state, detail, outputs, started, finished) VALUES (?,?,?,?,?,?,?,?)",
                (session_id, wizard, step, state, redact(detail), _json(outputs or {}), now,
                 None if state == "running" else now),
            )
            if session_step is not None:
                db.execute("UPDATE sessions SET wizard=?, step=?, updated=? WHERE id=?", (wizard, session_step, now, session_id))
            else:
                db.execute("UPDATE sessions SET updated=? WHERE id=?", (now, session_id))

    def step_states(self, session_id: int, wizard: str | None = None) -> dict[str, StepRun]:
        """The last run of each step (optionally of one wizard)."""
        query = (
            "SELECT * FROM step_runs WHERE id IN (SELECT MAX(id) FROM step_runs WHERE session_id=?"
            + (" AND wizard=?" if wizard else "")
            + " GROUP BY wizard, step)"
        )
        args = (session_id, wizard) if wizard else (session_id,)
        with self._lock:
            rows = self.db.execute(query, args).fetchall()
        return {
            r["step"]: StepRun(r["wizard"], r["step"], r["state"], r["detail"], json.loads(r["outputs"]), r["started"], r["finished"])
            for r in rows
        }

    # ------------------------------------------------------------------ events
    def add_events(self, session_id: int, events: list[Event]) -> None:
        if not events:
            return
        rows = []
        for ev in events:
            safe = ev.redacted()
            rows.append(
                (session_id, safe.ts, safe.kind, safe.step, safe.node, safe.stream, safe.message,
                 json.dumps(safe.data, default=str) if safe.data else None)
            )
        with self._tx() as db:
            db.executemany(
                "INSERT INTO events(session_id, ts, kind, step, node, stream, message, data) VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )

    def events(self, session_id: int, limit: int | None = None, since_id: int = 0) -> list[Event]:
        if limit:
            query = (
                "SELECT * FROM (SELECT * FROM events WHERE session_id=? AND id>? ORDER BY id DESC LIMIT ?) ORDER BY id"
            )
            args: tuple = (session_id, since_id, limit)
        else:
            query = "SELECT * FROM events WHERE session_id=? AND id>? ORDER BY id"
            args = (session_id, since_id)
        with self._lock:
            rows = self.db.execute(query, args).fetchall()
        return [
            Event(kind=r["kind"], message=r["message"], step=r["step"], node=r["node"], stream=r["stream"],
                  data=json.loads(r["data"]) if r["data"] else {}, ts=r["ts"])
            for r in rows
        ]

    def count_events(self, session_id: int) -> int:
        with self._lock:
            return self.db.execute("SELECT COUNT(*) FROM events WHERE session_id=?", (session_id,)).fetchone()[0]

    def recorder(self, session_id: int, flush_every: int = 200, flush_seconds: float = 0.25) -> "EventRecorder":
        return EventRecorder(self, session_id, flush_every, flush_seconds)

    # ------------------------------------------------------------------ changes
    def record_change(self, session_id: int, change: Change) -> Change:
        change.ts = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO changes(session_id, ts, kind, target, description, command, revert_command, revert_data) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (session_id, change.ts, change.kind, change.target, redact(change.description), redact(change.command),
                 redact(change.revert_command) if change.revert_command else None, _json(change.revert_data)),
            )
            change.id = cur.lastrowid
        return change

    def changes(self, session_id: int, include_reverted: bool = True) -> list[Change]:
        q = "SELECT * FROM changes WHERE session_id=?" + ("" if include_reverted else " AND reverted IS NULL") + " ORDER BY id"
        with self._lock:
            rows = self.db.execute(q, (session_id,)).fetchall()
        return [
            Change(kind=r["kind"], target=r["target"], description=r["description"], command=r["command"],
                   revert_command=r["revert_command"], revert_data=json.loads(r["revert_data"]), id=r["id"],
                   ts=r["ts"], reverted=r["reverted"])
            for r in rows
        ]

    def mark_reverted(self, change_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE changes SET reverted=? WHERE id=?", (time.time(), change_id))

    # ------------------------------------------------------------------ facts
    def put_facts(self, session_id: int, scope: str, values: dict[str, Any]) -> None:
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT INTO facts(session_id, scope, key, value, ts) VALUES (?,?,?,?,?) "
                "ON CONFLICT(session_id, scope, key) DO UPDATE SET value=excluded.value, ts=excluded.ts",
                [(session_id, scope, k, _json(v), now) for k, v in values.items()],
            )

    def facts(self, session_id: int, scope: str | None = None) -> dict[str, dict[str, Any]]:
        """{scope: {key: value}}"""
        q = "SELECT scope, key, value FROM facts WHERE session_id=?" + (" AND scope=?" if scope else "")
        args = (session_id, scope) if scope else (session_id,)
        with self._lock:
            rows = self.db.execute(q, args).fetchall()
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            out.setdefault(r["scope"], {})[r["key"]] = json.loads(r["value"])
        return out


class DryRunStore(Store):
    """The store a dry run works on: it reads the lab's record, and what the steps would write (facts
    read, inputs remembered, the doctor's health...) stays in memory for the run, so later steps see
    it as in a real run while the record itself is left as it was (DESIGN 8: a dry run writes nothing,
    not even to the lab's own record). Changes and step runs are never recorded; the command log is
    not written (the dry run prints what it read)."""

    def __init__(self, home: Path | None = None) -> None:
        super().__init__(home)
        self._sessions: dict[str, dict[str, Any]] = {}
        self._inputs: dict[str, dict[str, Any]] = {}
        self._facts: dict[tuple[int, str], dict[str, Any]] = {}

    def create_session(self, name: str, cloud: str | None = None, wizard: str = "plan", **fields: Any) -> SessionRecord:
        raise LabError("a dry run creates no lab", "run without --dry-run to create it", code="dry-run")

    def delete_session(self, name: str) -> None:
        raise LabError("a dry run deletes nothing", "run without --dry-run", code="dry-run")

    def get_session(self, name: str) -> SessionRecord:
        rec = super().get_session(name)
        for key, value in self._sessions.get(name, {}).items():
            setattr(rec, key, json.loads(_json(value)) if key in ("plan", "inputs") else value)
        if name in self._inputs:
            rec.inputs = {**rec.inputs, **self._inputs[name]}
        return rec

    def list_sessions(self) -> list[SessionRecord]:
        return [self.get_session(r.name) for r in super().list_sessions()]

    def update_session(self, name: str, **fields: Any) -> SessionRecord:
        allowed = {"cloud", "wizard", "step", "plan", "inputs", "health"}
        if set(fields) - allowed:
            raise ValueError(f"unknown session fields: {set(fields) - allowed}")
        super().get_session(name)  # the lab exists
        if "inputs" in fields:
            self._inputs.pop(name, None)
        self._sessions.setdefault(name, {}).update(fields)
        return self.get_session(name)

    def save_inputs(self, name: str, values: dict[str, Any]) -> SessionRecord:
        super().get_session(name)
        self._inputs.setdefault(name, {}).update(json.loads(_json(values)))
        return self.get_session(name)

    def record_step(self, session_id: int, wizard: str, step: str, state: str, detail: str = "",
                    outputs: dict | None = None, session_step: str | None = None) -> None:
        return None

    def add_events(self, session_id: int, events: list[Event]) -> None:
        return None

    def record_change(self, session_id: int, change: Change) -> Change:
        raise LabError("a dry run changes nothing", "run without --dry-run to apply the change", code="dry-run")

    def mark_reverted(self, change_id: int) -> None:
        raise LabError("a dry run reverts nothing", "run without --dry-run", code="dry-run")

    def put_facts(self, session_id: int, scope: str, values: dict[str, Any]) -> None:
        self._facts.setdefault((session_id, scope), {}).update(json.loads(_json(values)))

    def facts(self, session_id: int, scope: str | None = None) -> dict[str, dict[str, Any]]:
        out = super().facts(session_id, scope)
        for (sid, sc), values in self._facts.items():
            if sid == session_id and (scope is None or sc == scope):
                out.setdefault(sc, {}).update(values)
        return out


class EventRecorder:
    """Buffers events and writes them in batches (one transaction per batch) from any thread."""

    def __init__(self, store: Store, session_id: int, flush_every: int, flush_seconds: float) -> None:
        self.store = store
        self.session_id = session_id
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._buf: list[Event] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._buf.append(event)
            due = (
                len(self._buf) >= self.flush_every
                or time.monotonic() - self._last >= self.flush_seconds
                or not event.kind.startswith("action.output")
            )
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._buf = self._buf, []
            self._last = time.monotonic()
        if batch:
            self.store.add_events(self.session_id, batch)

