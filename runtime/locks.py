"""Run locks in the warehouse: one per source for `load`, one for `transform`/`test`.

Two `elt transform` at once left incremental models with every row twice; two loads of
one source fought over dlt's working files. A lock is a Postgres session advisory lock
held on a connection of its own for the command's lifetime: a killed process's
connection dies and the server releases its locks, so no lock outlives its holder.

Who holds it (command, pid, host, since, run id) is written to `elt_audit.locks`, keyed
by name and by the backend that holds the advisory lock. A second run names the holder
from that row only when `pg_locks` shows that very backend holding the lock, so a row
left by a killed run is never named (and the next holder overwrites it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runtime import signals
from runtime.errors import ConfigError

log = logging.getLogger("elt")

SCHEMA = "elt_audit"
NAMESPACE = 0x454C54  # 'ELT': the first key of every named lock
RUN_NAMESPACE = NAMESPACE + 1  # the audit's lock of one run (runtime/audit.py)
DDL_KEY = 0  # (NAMESPACE, 0) serialises elt's DDL: concurrent CREATE ... IF NOT EXISTS races
POLL_SECONDS = 0.5

DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.locks (
    name text primary key,
    backend_pid integer not null,
    command text not null,
    pid integer not null,
    host text not null,
    started_at timestamptz not null,
    run_id text
);
"""


class LockHeld(ConfigError):
    """Another run holds the lock: exit 2 at once (or after `--wait`)."""

    cause = "locked"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its holder recorded it (None fields: not recorded yet)."""

    backend_pid: int
    command: str | None = None
    pid: int | None = None
    host: str | None = None
    started_at: datetime | None = None
    run_id: str | None = None

    def describe(self) -> str:
        if self.command is None:
            return f"locked by another run (warehouse backend pid {self.backend_pid})"
        since = self.started_at.astimezone(UTC).strftime("%H:%M:%S") if self.started_at else "?"
        run = f" (run {self.run_id[:8]})" if self.run_id else ""
        return (
            f"locked by `{self.command}` pid {self.pid} on host {self.host} since {since} UTC{run}"
        )


def key(name: str) -> int:
    """The advisory lock's second key: a stable non-negative int4 from the name."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def label(name: str) -> str:
    """`load:shop` -> `load shop`, as the error line names it."""
    return name.replace(":", " ")


def server_locks(conn: Any) -> bool:
    """Whether the connection's engine has advisory locks (PostgreSQL); an engine without
    them admits one elt process at a time (runtime/engines/: ONE_PROCESS)."""
    return getattr(conn, "engine", "postgres") == "postgres"


def run_ddl(conn: Any, ddl: str) -> None:
    """Run elt's `create ... if not exists` under one advisory lock: two first runs at once
    would otherwise race on the catalog (duplicate key in pg_type)."""
    if not server_locks(conn):  # one process at a time: nobody to race
        with conn.cursor() as cur:
            cur.execute(ddl)
        return
    previous = conn.autocommit
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s, %s)", (NAMESPACE, DDL_KEY))
            cur.execute(ddl)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = previous


@contextlib.contextmanager
def hold(warehouse: Any, name: str, *, run: Any = None, wait: float = 0.0) -> Iterator[None]:
    """Hold lock `name` (e.g. `load:shop`, `transform`) for the block.

    Held by another run: waits up to `wait` seconds (a signal stops the wait), then
    raises `LockHeld` naming the holder. `run` (runtime.audit.Run) names this holder.
    An engine that admits one elt process at a time (DuckDB: its file lock) has nothing
    left to serialise.
    """
    from runtime import engines

    if engines.of(warehouse).ONE_PROCESS:
        yield
        return
    conn = warehouse.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("set application_name = %s", (f"elt {label(name)}"[:63],))
        run_ddl(conn, DDL)
        _acquire(conn, name, wait)
        _record(conn, name, run)
        yield
    finally:
        _release(conn, name)


def _acquire(conn: Any, name: str, wait: float) -> None:
    deadline = time.monotonic() + max(wait, 0.0)
    announced = False
    while True:
        with conn.cursor() as cur:
            cur.execute("select pg_try_advisory_lock(%s, %s)", (NAMESPACE, key(name)))
            if cur.fetchone()[0]:
                return
        found = _named_holder(conn, name)
        if found is None:
            continue  # released between the two queries: try again
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockHeld(
                f"{label(name)}: {found.describe()}",
                hint=f"wait for it to end, or rerun with --wait SECONDS (ELT_WAIT)"
                f"{'' if not wait else f'; waited {wait:g}s'}",
            )
        if not announced:
            announced = True
            log.warning(f"{label(name)}: {found.describe()}; waiting up to {wait:g}s")
        signals.checkpoint()
        time.sleep(min(POLL_SECONDS, remaining))


def _named_holder(conn: Any, name: str, patience: float = 1.0) -> Holder | None:
    """The holder, given an instant to record who it is: it writes its row just after it
    took the lock, so a run arriving at the same moment may see the lock before the row."""
    deadline = time.monotonic() + patience
    while True:
        found = holder(conn, name)
        if found is None or found.command is not None or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def holder(conn: Any, name: str) -> Holder | None:
    """The live holder of lock `name`, or None when nobody holds it."""
    with conn.cursor() as cur:
        cur.execute(
            "select held.pid, rec.command, rec.pid, rec.host, rec.started_at, rec.run_id"
            " from pg_locks as held"
            f" left join {SCHEMA}.locks as rec on rec.name = %s and rec.backend_pid = held.pid"
            " where held.locktype = 'advisory' and held.granted and held.objsubid = 2"
            " and held.database = (select oid from pg_database where datname = current_database())"
            " and held.classid = %s and held.objid = %s limit 1",
            (name, NAMESPACE, key(name)),
        )
        row = cur.fetchone()
    return Holder(*row) if row else None


def _record(conn: Any, name: str, run: Any) -> None:
    command = f"elt {run.command}" if run is not None else "elt"
    with conn.cursor() as cur:
        cur.execute(
            f"insert into {SCHEMA}.locks (name, backend_pid, command, pid, host, started_at,"
            " run_id) values (%s, pg_backend_pid(), %s, %s, %s, now(), %s)"
            " on conflict (name) do update set backend_pid = excluded.backend_pid,"
            " command = excluded.command, pid = excluded.pid, host = excluded.host,"
            " started_at = excluded.started_at, run_id = excluded.run_id",
            (name, command, os.getpid(), socket.gethostname(), getattr(run, "run_id", None)),
        )


def _release(conn: Any, name: str) -> None:
    """Drop the holder's row and the lock; closing the connection releases it anyway."""
    import psycopg2

    try:
        if not conn.closed:
            with conn.cursor() as cur:
                cur.execute(
                    f"delete from {SCHEMA}.locks"
                    " where name = %s and backend_pid = pg_backend_pid()",
                    (name,),
                )
    except psycopg2.Error:
        pass
    finally:
        conn.close()
