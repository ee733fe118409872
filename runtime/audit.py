"""Run history in the warehouse: one `elt_audit.runs` row per `elt load|transform|test`.

The row is written when the command starts (status 'running', no end) and completed
when it ends, whatever the outcome: 'success' (exit 0), 'failed' (exit 1: the data or
checks failed), 'error' (exit 2, an internal error, a panic of a native library: the
one-line error), 'stopped' (a signal stopped it at a safe point: exit 2, rerun resumes).
A run never ends without its row saying how: while it runs, the run holds an advisory
lock of its own (runtime/locks.py RUN_NAMESPACE, key in `lock_key`) on the connection
that wrote the row; a 'running' row whose lock is free belongs to a process that died
(SIGKILL, OOM, a lost runner) and becomes 'abandoned' when the next command starts or
`elt runs` reads. dbt's node results go to `elt_audit.dbt_results` from the on-run-end
macro (macros/elt_audit_dbt_results.sql), tied to the run by `ELT_RUN_ID`, which this
module sets for the dbt it invokes.

The shape is a contract with `elt doctor` and whoever reads the history: see README.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from runtime import locks, signals
from runtime.errors import ConfigError, EltError
from runtime.secrets import redact

log = logging.getLogger("elt")

RUN_ID_ENV = "ELT_RUN_ID"
SCHEMA = "elt_audit"
STATUSES = ("running", "success", "failed", "error", "stopped", "abandoned")
ABANDONED = "abandoned: the process ended without recording how (killed?); rerun resumes"

DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.runs (
    run_id text primary key,
    command text not null,
    args jsonb,
    started_at timestamptz not null,
    ended_at timestamptz,
    status text not null,
    exit_code integer,
    rows jsonb,
    failures jsonb,
    error text
);
"""

# added later: migrated in place (`add column if not exists`) where missing
COLUMNS_ADDED = {
    "load_ids": "jsonb",  # {"<source>": ["<dlt load id>", ...]}: the loads this run produced
    "sources": "jsonb",  # {"<source>": {status, seconds, rows, load_ids, quarantine, ...}}
    "host": "text",
    "commit": "text",  # the project's git commit, when it is a checkout
    "log_path": "text",  # the run's JSON-lines log (runtime/runlog.py)
    "pid": "integer",  # the elt process
    "lock_key": "integer",  # the run's own advisory lock while it runs (abandoned runs)
}

# a 'running' row whose run lock is free: its process is gone (pre-lock rows have no key)
_SWEEP = f"""
update {SCHEMA}.runs set status = 'abandoned', ended_at = now(), exit_code = null,
    error = coalesce(error, %s)
where status = 'running'
    and (lock_key is null or pg_try_advisory_xact_lock({locks.RUN_NAMESPACE}, lock_key))
returning run_id
"""
_SWEEP_ALL = f"""
update {SCHEMA}.runs set status = 'abandoned', ended_at = now(), exit_code = null,
    error = coalesce(error, %s)
where status = 'running'
returning run_id
"""


@dataclass
class Run:
    """What a command tells the audit while it runs: rows per table, failures."""

    run_id: str
    command: str
    rows: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lock_key(self) -> int:
        return locks.key(self.run_id)

    def add_failure(
        self, name: str, status: str, failures: int | None = None, message: str | None = None
    ) -> None:
        self.failures.append(
            {
                "name": name,
                "status": status,
                "failures": failures,
                "message": redact(message) if message else message,
            }
        )

    # what runtime/observe.py records and publishes
    args: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    host: str | None = None
    commit: str | None = None
    log_path: str | None = None
    hint: str | None = None  # the next step of the error the run ended with

    def source_done(self, source: str, report: Any = None, error: str | None = None) -> None:
        """A source's outcome in this run: its load report (`as_dict()`), or the error."""
        if report is not None:
            self.sources[source] = report.as_dict()
        else:
            self.sources[source] = {
                "source": source,
                "status": "failed",
                "error": redact(error or ""),
            }

    @property
    def load_ids(self) -> dict[str, list[str]]:
        return {name: list(s.get("load_ids") or []) for name, s in self.sources.items()}


@dataclass
class Outcome:
    status: str = "success"
    exit_code: int = 0
    error: str | None = None


@contextlib.contextmanager
def audited(warehouse: Any, command: str, args: dict[str, Any]) -> Iterator[Run]:
    """Record the command in `elt_audit.runs`, from start to end, also when it fails.

    Every way out is recorded: errors, a panic of a native library (a BaseException),
    SystemExit, a signal (also the second one, which exits at once: `signals.last_words`).
    The exception goes on to the CLI, which renders it; a failure to write the end is
    logged, never raised over it (the row then becomes 'abandoned' once the lock is gone).
    """
    from runtime import observe

    run = Run(run_id=uuid.uuid4().hex, command=command)
    os.environ[RUN_ID_ENV] = run.run_id
    observe.run_started(run, args)
    try:
        session = _start(warehouse, run, args)
    except EltError as exc:  # the warehouse is down: nothing to record in, still alert
        run.hint = exc.hint
        observe.run_ended(warehouse, run, "error", exc.exit_code, redact(str(exc)))
        raise
    outcome = Outcome()

    def stopped_now() -> None:  # from the signal thread: a connection of its own
        if session is not None:
            _end(warehouse, None, run, Outcome("stopped", signals.EXIT_CODE, stop_message()))

    with signals.last_words(stopped_now):
        try:
            yield run
            if signals.requested() is not None:  # stopped after its last safe point
                outcome = outcome_of(signals.Stopped(signals.requested()), run)
        except BaseException as exc:
            outcome = outcome_of(exc, run)
            raise
        finally:
            signals.defer_stops()  # a signal from here on must not cut the row's end short
            if session is not None:
                _end(warehouse, session, run, outcome)
            observe.run_ended(warehouse, run, outcome.status, outcome.exit_code, outcome.error)


def outcome_of(exc: BaseException, run: Run | None = None) -> Outcome:
    """How a run that raised `exc` ended: its status, exit code and one-line cause."""
    if signals.requested() is not None or isinstance(exc, KeyboardInterrupt):
        return Outcome("stopped", signals.EXIT_CODE, stop_message())
    if isinstance(exc, EltError):
        if exc.exit_code == 1:
            if run is not None and not run.failures:
                run.add_failure(run.command, "failed", message=str(exc))
            return Outcome("failed", 1, None)
        return Outcome("error", exc.exit_code, redact(str(exc)))
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if code in (0, 1):
            return Outcome("success" if code == 0 else "failed", code, None)
        return Outcome("error", code, f"exited with code {code}")
    code = getattr(exc, "exit_code", None)  # click's exceptions, raised inside a command
    if isinstance(code, int) and code == 0:
        return Outcome()
    return Outcome("error", 2, internal_error(exc))


def internal_error(exc: BaseException) -> str:
    """`internal error: PanicException: <first line>`: one line, no secret."""
    cause = str(exc).strip().splitlines()
    return redact(f"internal error: {type(exc).__name__}: {cause[0] if cause else ''}")


def stop_message() -> str:
    return f"stopped by {signals.name(signals.requested())}: rerun resumes"


def _start(warehouse: Any, run: Run, args: dict[str, Any]) -> Any:
    """Take the run's lock and insert the 'running' row on a connection kept for the run.

    Marks the rows of dead runs 'abandoned' first. An unreachable warehouse is the
    command's error too (raised by connect); a failing audit only logs a warning.
    """
    from runtime import engines

    conn = warehouse.connect()
    try:
        conn.autocommit = True
        locks.run_ddl(conn, DDL)
        _add_missing_columns(conn)
        sweep(conn)
        with conn.cursor() as cur:
            if locks.server_locks(conn):
                cur.execute("set application_name = %s", (f"elt {run.command} {run.run_id}",))
                cur.execute("set lock_timeout = '10s'")
                # blocking, not try: a sweep may hold this key for an instant
                cur.execute("select pg_advisory_lock(%s, %s)", (locks.RUN_NAMESPACE, run.lock_key))
                cur.execute("set lock_timeout = 0")
            cur.execute(
                f"insert into {SCHEMA}.runs (run_id, command, args, started_at, status, rows,"
                " failures, pid, host, lock_key)"
                " values (%s, %s, %s, now(), 'running', '{}', '[]', %s, %s, %s)",
                (
                    run.run_id,
                    run.command,
                    json.dumps(args),
                    os.getpid(),
                    socket.gethostname(),
                    run.lock_key,
                ),
            )
            _record_where(cur, run)
        return conn
    except engines.errors(warehouse) as exc:
        log.warning(f"audit: run not recorded ({_first_line(exc)})")
        conn.close()
        return None
    except BaseException:
        conn.close()
        raise


def _add_missing_columns(conn: Any) -> None:
    """Columns an older table lacks, added first (checked before, so the usual run takes
    no exclusive lock on the table)."""
    with conn.cursor() as cur:
        cur.execute(
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = 'runs'",
            (SCHEMA,),
        )
        present = {row[0] for row in cur.fetchall()}
    missing = [(column, kind) for column, kind in COLUMNS_ADDED.items() if column not in present]
    if missing:
        locks.run_ddl(
            conn,
            "".join(
                f"alter table {SCHEMA}.runs add column if not exists {column} {kind};"
                for column, kind in missing
            ),
        )


def _record_where(cur: Any, run: Run) -> None:
    """Who and where (host, commit) and the log file, on the run's fresh row."""
    cur.execute(
        f"update {SCHEMA}.runs set host = coalesce(%s, host), commit = %s, log_path = %s"
        " where run_id = %s",
        (run.host, run.commit, run.log_path, run.run_id),
    )


def _record_loads(cur: Any, run: Run) -> None:
    """The dlt load ids and the per-source outcome of a load, at the run's end."""
    cur.execute(
        f"update {SCHEMA}.runs set load_ids = %s, sources = %s where run_id = %s",
        (json.dumps(run.load_ids), json.dumps(run.sources, default=str), run.run_id),
    )


def sweep(conn: Any) -> list[str]:
    """Mark 'running' rows whose run lock is free 'abandoned'; their run ids."""
    previous = conn.autocommit
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            # without server locks only one elt process runs: any 'running' row is dead
            cur.execute(_SWEEP if locks.server_locks(conn) else _SWEEP_ALL, (ABANDONED,))
            found = [row[0] for row in cur.fetchall()]
        conn.commit()  # releases the transaction-level locks taken to test the rows
        return found
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = previous


def _end(warehouse: Any, session: Any, run: Run, outcome: Outcome) -> None:
    """Complete the row on the run's own connection (or a new one if it died); then close
    it, which releases the run lock."""
    from runtime import engines

    statement = (
        f"update {SCHEMA}.runs set ended_at = now(), status = %s, exit_code = %s,"
        " rows = %s, failures = %s, error = %s where run_id = %s"
    )
    params = (
        outcome.status,
        outcome.exit_code,
        json.dumps(run.rows),
        json.dumps(run.failures),
        outcome.error,
        run.run_id,
    )
    for attempt in ("session", "fresh"):
        conn = session
        try:
            if attempt == "fresh" or conn is None or getattr(conn, "closed", False):
                conn = warehouse.connect(connect_timeout=5)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement, params)
                _record_loads(cur, run)
            return
        except (engines.errors(warehouse), ConfigError) as exc:
            if attempt == "fresh":
                log.warning(f"audit: end of run {run.run_id} not recorded ({_first_line(exc)})")
        finally:
            if conn is not None:
                with contextlib.suppress(engines.errors(warehouse)):
                    conn.close()


def recent_runs(warehouse: Any, *, limit: int, command: str | None = None) -> list[dict[str, Any]]:
    """The latest runs, newest first; none before the first audited command.

    Rows of dead runs are marked 'abandoned' first (best effort: a read-only role only
    reads them as they are)."""
    from runtime import engines

    conn = warehouse.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            if not engines.relation_exists(cur, SCHEMA, "runs"):
                return []
        with contextlib.suppress(engines.errors(warehouse)):
            sweep(conn)
        with conn.cursor() as cur:
            cur.execute(
                "select column_name from information_schema.columns"
                " where table_schema = %s and table_name = 'runs' and column_name = 'lock_key'",
                (SCHEMA,),
            )
            # where the sweep could not write (a read-only role), the status is judged here
            status = (
                "status"
                if cur.fetchone() is None or not locks.server_locks(conn)
                else "case when status = 'running' and (lock_key is null or"
                f" pg_try_advisory_xact_lock({locks.RUN_NAMESPACE}, lock_key))"
                " then 'abandoned' else status end as status"
            )
            cur.execute(
                f"select run_id, command, args, started_at, ended_at, {status}, exit_code, rows,"
                f" failures, error from {SCHEMA}.runs"
                " where %(command)s is null or command = %(command)s"
                " order by started_at desc limit %(limit)s",
                {"command": command, "limit": limit},
            )
            columns = [d.name for d in cur.description]
            return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def _first_line(exc: Exception) -> str:
    lines = (getattr(exc, "pgerror", None) or str(exc)).strip().splitlines()
    return redact(lines[0]) if lines else type(exc).__name__
