"""Run history in the warehouse: one `elt_audit.runs` row per `elt load|transform|test`.

The row is written when the command starts (status 'running', no end) and completed
when it ends, whatever the outcome: 'success' (exit 0), 'failed' (exit 1: the data or
checks failed), 'error' (exit 2 or an internal error, with the one-line error). A run
killed mid-way stays 'running' with no `ended_at`. dbt's node results go to
`elt_audit.dbt_results` from the on-run-end macro (macros/elt_audit_dbt_results.sql),
tied to the run by `ELT_RUN_ID`, which this module sets for the dbt it invokes.

The shape is a contract with `elt doctor` and whoever reads the history: see README.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import ConfigError, EltError
from runtime.secrets import redact

log = logging.getLogger("elt")

RUN_ID_ENV = "ELT_RUN_ID"
SCHEMA = "elt_audit"

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


@dataclass
class Run:
    """What a command tells the audit while it runs: rows per table, failures."""

    run_id: str
    command: str
    rows: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

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


@contextlib.contextmanager
def audited(warehouse: Any, command: str, args: dict[str, Any]) -> Iterator[Run]:
    """Record the command in `elt_audit.runs`, from start to end, also when it fails.

    The end is recorded even when the command raises (the exception goes on to the CLI,
    which renders it); a failure to write the end is logged, never raised over it.
    """
    from runtime import observe

    run = Run(run_id=uuid.uuid4().hex, command=command)
    os.environ[RUN_ID_ENV] = run.run_id
    observe.run_started(run, args)
    try:
        recorded = _start(warehouse, run, args)
    except EltError as exc:  # the warehouse is down: nothing to record in, still alert
        run.hint = exc.hint
        observe.run_ended(warehouse, run, "error", exc.exit_code, redact(str(exc)))
        raise
    status, exit_code, error = "success", 0, None
    try:
        yield run
    except EltError as exc:
        run.hint = exc.hint
        exit_code = exc.exit_code
        status = "failed" if exit_code == 1 else "error"
        if status == "error":
            error = redact(str(exc))
        elif not run.failures:
            run.add_failure(command, "failed", message=str(exc))
        raise
    except KeyboardInterrupt:
        status, exit_code, error = "error", 130, "interrupted"
        raise
    except Exception as exc:
        cause = str(exc).strip().splitlines()
        status, exit_code = "error", 2
        error = redact(f"internal error: {type(exc).__name__}: {cause[0] if cause else ''}")
        raise
    finally:
        if recorded:
            _end(warehouse, run, status, exit_code, error)
        observe.run_ended(warehouse, run, status, exit_code, error)


def _start(warehouse: Any, run: Run, args: dict[str, Any]) -> bool:
    """Insert the 'running' row; an unreachable warehouse is the command's error too."""
    from runtime import engines

    conn = warehouse.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(DDL)
            cur.execute(
                f"insert into {SCHEMA}.runs (run_id, command, args, started_at, status, rows,"
                " failures) values (%s, %s, %s, now(), 'running', '{}', '[]')",
                (run.run_id, run.command, json.dumps(args)),
            )
            _record_where(cur, run)
        return True
    except engines.errors(warehouse) as exc:
        log.warning(f"audit: run not recorded ({_first_line(exc)})")
        return False
    finally:
        conn.close()


# added later: migrated in place (`add column if not exists`) where missing
COLUMNS_ADDED = {
    "load_ids": "jsonb",  # {"<source>": ["<dlt load id>", ...]}: the loads this run produced
    "sources": "jsonb",  # {"<source>": {status, seconds, rows, load_ids, quarantine, ...}}
    "host": "text",
    "commit": "text",  # the project's git commit, when it is a checkout
    "log_path": "text",  # the run's JSON-lines log (runtime/runlog.py)
}


def _record_where(cur: Any, run: Run) -> None:
    """Who and where (host, commit) and the log file, on the run's fresh row; the columns
    are added first where an older table lacks them (checked before, so the usual run
    takes no exclusive lock on the table)."""
    cur.execute(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = 'runs'",
        (SCHEMA,),
    )
    present = {row[0] for row in cur.fetchall()}
    for column, kind in COLUMNS_ADDED.items():
        if column not in present:
            cur.execute(f"alter table {SCHEMA}.runs add column if not exists {column} {kind}")
    cur.execute(
        f"update {SCHEMA}.runs set host = %s, commit = %s, log_path = %s where run_id = %s",
        (run.host, run.commit, run.log_path, run.run_id),
    )


def _record_loads(cur: Any, run: Run) -> None:
    """The dlt load ids and the per-source outcome of a load, at the run's end."""
    cur.execute(
        f"update {SCHEMA}.runs set load_ids = %s, sources = %s where run_id = %s",
        (json.dumps(run.load_ids), json.dumps(run.sources, default=str), run.run_id),
    )


def _end(warehouse: Any, run: Run, status: str, exit_code: int, error: str | None) -> None:
    from runtime import engines

    try:
        conn = warehouse.connect()
    except ConfigError as exc:
        log.warning(f"audit: end of run {run.run_id} not recorded ({exc})")
        return
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                f"update {SCHEMA}.runs set ended_at = now(), status = %s, exit_code = %s,"
                " rows = %s, failures = %s, error = %s where run_id = %s",
                (
                    status,
                    exit_code,
                    json.dumps(run.rows),
                    json.dumps(run.failures),
                    error,
                    run.run_id,
                ),
            )
            _record_loads(cur, run)
    except engines.errors(warehouse) as exc:
        log.warning(f"audit: end of run {run.run_id} not recorded ({_first_line(exc)})")
    finally:
        conn.close()


def recent_runs(warehouse: Any, *, limit: int, command: str | None = None) -> list[dict[str, Any]]:
    """The latest runs, newest first; none before the first audited command."""
    from runtime import engines

    conn = engines.read_only(warehouse)
    try:
        with conn.cursor() as cur:
            if not engines.relation_exists(cur, SCHEMA, "runs"):
                return []
            cur.execute(
                "select run_id, command, args, started_at, ended_at, status, exit_code, rows,"
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
