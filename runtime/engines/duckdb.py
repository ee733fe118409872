"""DuckDB: an embedded analytical warehouse in one file, `duckdb:///path/to/file.duckdb`.

Everything DuckDB-specific on the Python side is here:
- connections with psycopg2's surface (`%s` / `%(name)s` parameters, `cursor()` as a
  context manager, `description[i].name`, JSON decoded), so the audit, quarantine,
  `sql` and `runs` code is shared;
- a `jsonb` type (an alias of DuckDB's JSON) so the audit DDL is the same text;
- a statement deadline (DuckDB has no statement_timeout: a timer interrupts);
- one writer: DuckDB locks its file, and so does elt, with `fcntl` on a file beside it
  (`<file>.elt-lock`), before DuckDB is even opened. A second elt process gets a one-line
  error naming the holder, never a half-written file. Readers share the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from runtime.engines import first_line as _first_line
from runtime.errors import ConfigError

SCHEMES = ("duckdb",)
ROW_ID = "rowid"
ONE_PROCESS = True
DBT_TARGET = "duckdb"
# doctor checks that need a server, and why they do not apply to a file
NO_SERVER: dict[str, str] = {
    "tls": "DuckDB is a local file: no network, no TLS",
    "roles": "DuckDB has no roles: file permissions decide who reads it",
    "connections": "DuckDB has no server connections: one process writes the file",
    "latency": "DuckDB is in-process: no round trip to measure",
}
SESSION_ENV: dict[str, str] = {}  # UTC sessions: `settings: timezone` in dbt/profiles.yml
_JSON_ALIAS = "create type if not exists jsonb as json"


@dataclass(frozen=True)
class DuckDBWarehouse:
    """A DuckDB file warehouse; there is no password, so `url` and `safe_url` agree."""

    path: Path
    engine: str = "duckdb"
    embedded: bool = False  # no embedded server to start: the file is the warehouse

    @property
    def password(self) -> str:
        """None: file permissions guard the file (callers that mask passwords ask)."""
        return ""

    @property
    def url(self) -> str:
        return f"duckdb:///{self.path}"

    @property
    def safe_url(self) -> str:
        return self.url

    @property
    def database(self) -> str:
        """The catalog name DuckDB (and dbt-duckdb) give the file: its stem."""
        return self.path.stem

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".elt-lock")

    def as_role(self, role: str) -> DuckDBWarehouse:
        """One user: a DuckDB file has no roles (runtime/roles.py applies to PostgreSQL)."""
        return self

    def dbt_env(self) -> dict[str, str]:
        return {"ELT_DUCKDB_PATH": str(self.path)}

    def connect(self, **_ignored: Any) -> Connection:
        """A read-write connection (this process becomes the file's one writer)."""
        return _open(self, read_only=False)


def resolve(url: str, project_dir: Path | None, *, start: bool = True) -> DuckDBWarehouse:
    parts = urlsplit(url)
    raw = unquote(parts.path)
    if parts.netloc or not raw or raw in ("/", ""):
        raise ConfigError(
            f"ELT_WAREHOUSE_URL: a DuckDB URL names a file, got {url!r}",
            hint="use duckdb:///absolute/path/to/warehouse.duckdb (three slashes)",
        )
    path = Path(raw).expanduser()
    if not path.is_absolute() and project_dir is not None:
        path = project_dir / path
    return DuckDBWarehouse(path=path.resolve())


def dlt_destination(warehouse: DuckDBWarehouse) -> Any:
    """dlt's duckdb destination on the file (parquet loads natively there)."""
    import dlt

    take_lock(warehouse, exclusive=True)
    warehouse.path.parent.mkdir(parents=True, exist_ok=True)
    return dlt.destinations.duckdb(credentials=str(warehouse.path))


def error_class() -> type[BaseException]:
    import duckdb

    return duckdb.Error


def read_only(warehouse: DuckDBWarehouse, *, timeout: float) -> Connection:
    return _open(warehouse, read_only=True, timeout=timeout)


def bound(conn: Connection, seconds: float) -> None:
    """DuckDB has no statement_timeout: the connection's timer interrupts a statement."""
    conn.timeout = seconds


# ---- one writer: the file lock beside the database ---------------------------------

_held: dict[Path, tuple[int, bool]] = {}  # lock path -> (fd, exclusive), for this process
_held_guard = threading.Lock()


def take_lock(warehouse: DuckDBWarehouse, *, exclusive: bool) -> None:
    """Hold the file's lock until this process ends (the kernel frees it on any exit).

    Shared for readers, exclusive for the writer; held already at least as strongly: done.
    """
    path = warehouse.lock_path
    with _held_guard:
        held = _held.get(path)
        if held and (held[1] or not exclusive):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = held[0] if held else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not held:
                os.close(fd)
            raise ConfigError(
                f"warehouse {warehouse.path}: in use by another elt process{holder};"
                " DuckDB allows one writer at a time",
                hint="wait for it to finish, then rerun",
            ) from None
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {' '.join(sys.argv[1:3])}".encode(), 0)
        _held[path] = (fd, exclusive)


def release_lock(warehouse: DuckDBWarehouse) -> None:
    """Give the lock up before the process ends (tests running commands in-process)."""
    with _held_guard:
        held = _held.pop(warehouse.lock_path, None)
    if held:
        os.close(held[0])


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid, _, command = path.read_text().partition(" ")
        return f" (pid {int(pid)}{', elt ' + command if command else ''})"
    return ""


# ---- connections with psycopg2's surface ------------------------------------------

_NAMED = re.compile(r"%\((\w+)\)s")


def _open(warehouse: DuckDBWarehouse, *, read_only: bool, timeout: float | None = None):
    import duckdb

    take_lock(warehouse, exclusive=not read_only)
    if read_only and not warehouse.path.exists():
        read_only = False  # nothing to read yet: an empty warehouse, created by the writer
        take_lock(warehouse, exclusive=True)
    warehouse.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        raw = duckdb.connect(str(warehouse.path), read_only=read_only)
    except duckdb.ConnectionException as exc:
        if "different configuration" not in str(exc):
            raise
        # this process already has the file open read-write (a command run in-process)
        raw = duckdb.connect(str(warehouse.path))
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise ConfigError(f"warehouse {warehouse.path}: {_first_line(exc)}") from None
        raise ConfigError(
            f"warehouse {warehouse.path}: locked by another process (not elt?);"
            " DuckDB allows one writer at a time",
            hint="close the other DuckDB client, then rerun",
        ) from None
    if not read_only:
        raw.execute(_JSON_ALIAS)
    return Connection(raw, timeout=timeout)


class Connection:
    """A DuckDB connection that callers written for psycopg2 can use unchanged."""

    engine = "duckdb"  # what code shared by engines asks (runtime/locks.py, runtime/audit.py)

    def __init__(self, raw: Any, *, timeout: float | None = None) -> None:
        self.raw, self.timeout, self.autocommit = raw, timeout, True

    def set_session(self, **_ignored: Any) -> None:
        """Read-only is how the connection was opened; DuckDB commits each statement."""

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.commit()

    def rollback(self) -> None:
        with contextlib.suppress(Exception):  # no open transaction: nothing to undo
            self.raw.rollback()

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Column:
    name: str
    type_code: str


class Cursor:
    def __init__(self, conn: Connection) -> None:
        self.conn, self.description, self._json, self._result = conn, None, set(), None
        self.rowcount = -1

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._result = None

    def execute(self, sql: str, params: Any = None) -> Cursor:
        if params is not None:
            sql = _NAMED.sub(r"$\1", sql).replace("%s", "?").replace("%%", "%")
            params = dict(params) if isinstance(params, dict) else list(params)
        timer = None
        if self.conn.timeout:
            timer = threading.Timer(self.conn.timeout, self.conn.raw.interrupt)
            timer.start()
        try:
            self._result = (
                self.conn.raw.execute(sql, params) if params else self.conn.raw.execute(sql)
            )
        finally:
            if timer:
                timer.cancel()
        described = self._result.description
        self.description = (
            [Column(d[0], str(d[1])) for d in described] if described is not None else None
        )
        self._json = {
            i for i, column in enumerate(self.description or []) if column.type_code == "JSON"
        }
        return self

    def _decode(self, row: tuple | None) -> tuple | None:
        if row is None or not self._json:
            return row
        return tuple(
            json.loads(v) if i in self._json and isinstance(v, str) else v
            for i, v in enumerate(row)
        )

    def fetchone(self) -> tuple | None:
        return self._decode(self._result.fetchone())

    def fetchall(self) -> list[tuple]:
        return [self._decode(row) for row in self._result.fetchall()]

    def fetchmany(self, size: int = 1) -> list[tuple]:
        return [self._decode(row) for row in self._result.fetchmany(size)]

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row
