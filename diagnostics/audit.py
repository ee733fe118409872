"""Data checks that read the audit schema (contract: /tmp/elt-contract/AUDIT.md):
elt_audit.runs (one row per `elt load|transform|test`), elt_audit.dbt_results (one row
per dbt node result) and elt_audit.quarantine (rows a loader set aside).

Where a table does not exist yet, the check WARNs "no audit yet" and names the command
that creates it, so a fresh project is not reported broken.
"""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from typing import Any

from diagnostics import pg
from diagnostics.context import Context
from diagnostics.data import age_text, utc
from diagnostics.results import Outcome, fail, ok, warn
from diagnostics.sources import SourceSpec

SCHEMA = "elt_audit"
# the command whose first run creates each audit table (AUDIT.md)
CREATED_BY = {
    "runs": "`elt transform` (every elt load, transform and test records itself)",
    "dbt_results": "`elt transform` (dbt's on-run-end writes it)",
    "quarantine": "`elt load` (loaders set rejected rows aside there)",
}
FAILED_RESULTS = ("fail", "error", "runtime error")
MAX_NAMES = 5


def no_audit(table: str) -> Outcome:
    return warn(f"no audit yet: {SCHEMA}.{table} does not exist", CREATED_BY[table], audit=False)


def _columns(conn: Any, table: str) -> set[str]:
    return {
        row[0]
        for row in pg.rows(
            conn,
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = %s",
            (SCHEMA, table),
        )
    }


def _latest_run(conn: Any, command: str) -> dict[str, Any] | None:
    found = pg.rows(
        conn,
        "select run_id, status, started_at, ended_at, exit_code, failures, error"
        f" from {SCHEMA}.runs where command = %s order by started_at desc limit 1",
        (command,),
    )
    if not found:
        return None
    keys = ("run_id", "status", "started_at", "ended_at", "exit_code", "failures", "error")
    return dict(zip(keys, found[0], strict=True))


def _failing_results(conn: Any, run_id: str | None) -> list[tuple[str, str, int | None]]:
    """(name, status, failures) of failed dbt nodes of the run, or of the newest dbt
    invocation that ran tests when the run is unknown."""
    if not pg.relation_exists(conn, SCHEMA, "dbt_results"):
        return []
    if run_id is not None:
        where, params = "run_id = %s", (run_id,)
    else:
        where = (
            f"invocation_id = (select invocation_id from {SCHEMA}.dbt_results"
            " where resource_type in ('test', 'unit_test')"
            " order by finished_at desc nulls last limit 1)"
        )
        params = ()
    return pg.rows(
        conn,
        f"select name, status, failures from {SCHEMA}.dbt_results where {where}"
        " and status in ('fail', 'error', 'runtime error') order by name",
        params,
    )


def _run_summary(run: dict[str, Any]) -> str:
    started = utc(run["started_at"])
    age = age_text((datetime.now(UTC) - started).total_seconds())
    took = ""
    if run["ended_at"] is not None:
        took = f" in {(utc(run['ended_at']) - started).total_seconds():.1f}s"
    return f"{age} ago: {run['status']}{took}"


def last_run(ctx: Context, command: str) -> Outcome:
    """The newest `elt <command>` from the audit; for tests, the failing ones by name."""
    with ctx.warehouse_connection() as conn:
        has_runs = pg.relation_exists(conn, SCHEMA, "runs")
        has_results = pg.relation_exists(conn, SCHEMA, "dbt_results")
        if not has_runs and not (command == "test" and has_results):
            return no_audit("runs")
        run = _latest_run(conn, command) if has_runs else None
        failing = (
            _failing_results(conn, run["run_id"] if run else None) if command == "test" else []
        )
    if run is None and not failing:
        return warn(f"no `elt {command}` recorded yet", f"`elt {command}`", audit=True)
    if command == "test" and run is not None and not failing:
        failing = [
            (f.get("name", "?"), f.get("status", "fail"), f.get("failures"))
            for f in run.get("failures") or []
            if isinstance(f, dict) and f.get("status", "fail") in FAILED_RESULTS
        ]
    facts: dict[str, Any] = {"audit": True}
    summary = _run_summary(run) if run else "from dbt results"
    if run is not None:
        facts.update(run_id=run["run_id"], status=run["status"], exit_code=run["exit_code"])
    if failing:
        facts["failing"] = [{"name": n, "status": s, "failures": f} for n, s, f in failing]
        names = ", ".join(
            f"{name} ({failures} rows)" if failures else f"{name} ({status})"
            for name, status, failures in failing[:MAX_NAMES]
        )
        more = f" and {len(failing) - MAX_NAMES} more" if len(failing) > MAX_NAMES else ""
        return fail(
            f"last {command} {summary}; {len(failing)} failing: {names}{more}",
            f"`elt test -s {failing[0][0]}` reruns the first",
            **facts,
        )
    assert run is not None
    if run["status"] in ("failed", "error"):
        error = f": {run['error']}" if run.get("error") else ""
        hint = f"`elt {command}` after fixing the cause"
        return fail(f"last {command} {summary}{error}", hint, **facts)
    if run["status"] == "running":
        hours = (datetime.now(UTC) - utc(run["started_at"])).total_seconds() / 3600
        if hours > ctx.config.doctor("running_stale_hours"):
            return warn(
                f"last {command} started {age_text(hours * 3600)} ago and never ended (killed?)",
                f"`elt {command}`",
                **facts,
            )
        return ok(f"last {command} running, started {age_text(hours * 3600)} ago", **facts)
    return ok(f"last {command} {summary}", **facts)


# --- row counts against recent runs -----------------------------------------------------


def row_counts(ctx: Context, spec: SourceSpec) -> Outcome:
    """Rows the last successful load brought per table against the median of the runs
    before it: a drop or a spike by the configured factor is a WARN."""
    history = int(ctx.config.doctor("row_count_min_history"))
    factor = ctx.config.doctor("row_count_change_factor")
    prefix = f"{spec.dataset}."
    with ctx.warehouse_connection() as conn:
        if not pg.relation_exists(conn, SCHEMA, "runs"):
            return no_audit("runs")
        # filtered here, not in SQL: the JSON operators differ between engines
        found = pg.rows(
            conn,
            f"select rows, args from {SCHEMA}.runs where command = 'load'"
            " and status = 'success' order by started_at desc limit 200",
        )
    runs = [
        {k.removeprefix(prefix): int(v) for k, v in (rows or {}).items() if k.startswith(prefix)}
        for rows, args in found
        if _loaded(spec.name, prefix, _json(rows), _json(args))
    ][:20]
    if len(runs) <= history:
        return ok(f"{len(runs)} successful load(s) recorded: too few to judge", runs=len(runs))
    latest, previous = runs[0], runs[1:]
    changes = []
    for table in sorted(set().union(*runs)):
        usual = statistics.median(run.get(table, 0) for run in previous)
        now = latest.get(table, 0)
        if now > factor * max(usual, 1) and now >= 100:
            changes.append((table, "spike", now, usual))
        elif usual >= factor and now < usual / factor:
            changes.append((table, "drop", now, usual))
    facts = {
        "runs": len(runs),
        "changes": [{"table": t, "change": c, "rows": n, "median": m} for t, c, n, m in changes],
    }
    if changes:
        listed = ", ".join(f"{t}: {c} to {n:,} rows (median {m:,.0f})" for t, c, n, m in changes)
        table = changes[0][0]
        return warn(
            f"last load vs the {len(previous)} before it: {listed}",
            f'look at recent loads: `elt sql "select _dlt_load_id, count(*) from'
            f' {spec.dataset}.{table} group by 1 order by 1 desc limit 10"`',
            **facts,
        )
    return ok(f"last load in line with the {len(previous)} before it", **facts)


def _json(value: Any) -> Any:
    """A JSON column's value (psycopg2 decodes jsonb; other drivers may hand text)."""
    return json.loads(value) if isinstance(value, str) else value


def _loaded(source: str, prefix: str, rows: Any, args: Any) -> bool:
    """Whether a load run was of `source`: it brought rows to its dataset, or named it, or
    ran every source (no names)."""
    if any(str(key).startswith(prefix) for key in (rows or {})):
        return True
    sources = args.get("sources") if isinstance(args, dict) else args
    return not sources or source in sources


# --- quarantine -------------------------------------------------------------------------

_SOURCE_COLUMNS = ("source", "source_name")
_DATASET_COLUMNS = ("dataset", "dataset_name", "schema_name", "table_schema")
_RESOLVED_COLUMNS = ("resolved_at", "released_at", "reprocessed_at", "replayed_at")
_TIME_COLUMNS = ("quarantined_at", "created_at", "inserted_at", "loaded_at", "extracted_at")


def quarantine(ctx: Context, spec: SourceSpec) -> Outcome:
    """Rows set aside for this source and not resolved: how many, and the oldest's age."""
    with ctx.warehouse_connection() as conn:
        if not pg.relation_exists(conn, SCHEMA, "quarantine"):
            return no_audit("quarantine")
        columns = _columns(conn, "quarantine")
        where, params, scope = ["true"], [], ""
        by_source = next((c for c in _SOURCE_COLUMNS if c in columns), None)
        by_dataset = next((c for c in _DATASET_COLUMNS if c in columns), None)
        if by_source:
            where.append(f"{pg.ident(by_source)} = %s")
            params.append(spec.name)
        elif by_dataset:
            where.append(f"{pg.ident(by_dataset)} = %s")
            params.append(spec.dataset)
        else:
            scope = " (all sources: the quarantine names none)"
        where += [f"{c} is null" for c in _RESOLVED_COLUMNS if c in columns]
        if "status" in columns:  # open | replayed | superseded: only open rows wait
            where.append("status = 'open'")
        stamp = next((c for c in _TIME_COLUMNS if c in columns), None)
        oldest = f"min({pg.ident(stamp)})" if stamp else "null"
        count, first = pg.rows(
            conn,
            f"select count(*), {oldest} from {SCHEMA}.quarantine where {' and '.join(where)}",
            tuple(params),
        )[0]
    if not count:
        return ok(f"no quarantined rows{scope}", rows=0)
    age = f", oldest {age_text((datetime.now(UTC) - utc(first)).total_seconds())}" if first else ""
    group = "reason" if "reason" in columns else "1"
    column = by_source or by_dataset
    value = spec.name if by_source else spec.dataset
    only = f" where {column} = '{value}'" if column else ""
    return warn(
        f"{count:,} quarantined row(s) waiting{age}{scope}",
        f'`elt sql "select {group}, count(*) from {SCHEMA}.quarantine{only} group by 1"`',
        rows=count,
    )
