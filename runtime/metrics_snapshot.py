"""What elt's metrics say, read from `elt_audit` (runtime/metrics.py turns it into metric
families): the last run of each command, run counts, rows loaded and quarantined per
source and table (summed over the audit), each source's last load and last success, and
the dbt nodes of the last transform and the last test run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA = "elt_audit"
STATEMENT_TIMEOUT_MS = 5000


@dataclass
class Snapshot:
    """What the metrics say, read from the audit (or, failing that, from one run)."""

    audit_up: bool = True
    last_runs: list[dict[str, Any]] = field(default_factory=list)
    last_success: dict[str, datetime] = field(default_factory=dict)
    runs_total: dict[tuple[str, str], int] = field(default_factory=dict)
    rows_total: dict[tuple[str, str], int] = field(default_factory=dict)
    quarantined_total: dict[tuple[str, str], int] = field(default_factory=dict)
    source_last: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_last_success: dict[str, datetime] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)


# ---- reading the audit ----


def read_snapshot(conn: Any) -> Snapshot:
    """The audit's state; an empty snapshot before the first audited run."""
    snap = Snapshot()
    with conn.cursor() as cur:
        cur.execute(f"set statement_timeout = {STATEMENT_TIMEOUT_MS}")
        cur.execute(
            "select to_regclass(%s), to_regclass(%s)", (f"{SCHEMA}.runs", f"{SCHEMA}.dbt_results")
        )
        runs_table, results_table = cur.fetchone()
        if runs_table is None:
            return snap
        cur.execute(
            f"select distinct on (command) run_id, command, status, exit_code, started_at,"
            f" ended_at from {SCHEMA}.runs where ended_at is not null"
            " order by command, started_at desc"
        )
        snap.last_runs = _dicts(cur)
        cur.execute(
            f"select command, max(ended_at) from {SCHEMA}.runs where status = 'success'"
            " group by command"
        )
        snap.last_success = dict(cur.fetchall())
        cur.execute(f"select command, status, count(*) from {SCHEMA}.runs group by 1, 2")
        snap.runs_total = {(c, s): n for c, s, n in cur.fetchall()}
        if _has_column(cur, "sources"):
            _read_sources(cur, snap)
        if results_table is not None:
            ids = [
                run["run_id"] for run in snap.last_runs if run["command"] in ("transform", "test")
            ]
            cur.execute(
                "select r.command, d.resource_type, d.name, d.status, d.execution_time,"
                f" d.failures from {SCHEMA}.dbt_results as d join {SCHEMA}.runs as r"
                " on r.run_id = d.run_id where d.run_id = any(%s)",
                (ids,),
            )
            snap.nodes = _dicts(cur)
    return snap


def _read_sources(cur: Any, snap: Snapshot) -> None:
    per_table = f"""
        select s.key, t.key, sum(t.value::bigint)
        from {SCHEMA}.runs as r, jsonb_each(r.sources) as s,
            jsonb_each_text(coalesce(s.value -> %s, '{{}}'::jsonb)) as t
        where r.command = 'load' and jsonb_typeof(r.sources) = 'object'
        group by 1, 2
    """
    cur.execute(per_table, ("rows",))
    snap.rows_total = {(s, t): int(n) for s, t, n in cur.fetchall()}
    cur.execute(
        f"""
        select s.key, f.key, sum((f.value ->> 'quarantined')::bigint)
        from {SCHEMA}.runs as r, jsonb_each(r.sources) as s,
            jsonb_each(coalesce(s.value -> 'quarantine', '{{}}'::jsonb)) as f
        where jsonb_typeof(r.sources) = 'object' group by 1, 2
        """
    )
    snap.quarantined_total = {(s, f): int(n or 0) for s, f, n in cur.fetchall()}
    cur.execute(
        f"""
        select distinct on (s.key) s.key as source, s.value ->> 'status' as status,
            (s.value ->> 'seconds')::float as seconds, s.value -> 'rows' as rows,
            r.ended_at
        from {SCHEMA}.runs as r, jsonb_each(r.sources) as s
        where r.ended_at is not null and jsonb_typeof(r.sources) = 'object'
        order by s.key, r.started_at desc
        """
    )
    snap.source_last = {row["source"]: row for row in _dicts(cur)}
    cur.execute(
        f"""
        select s.key, max(r.ended_at)
        from {SCHEMA}.runs as r, jsonb_each(r.sources) as s
        where jsonb_typeof(r.sources) = 'object' and s.value ->> 'status' = 'success'
        group by 1
        """
    )
    snap.source_last_success = dict(cur.fetchall())


def _has_column(cur: Any, column: str) -> bool:
    cur.execute(
        "select 1 from information_schema.columns"
        " where table_schema = %s and table_name = 'runs' and column_name = %s",
        (SCHEMA, column),
    )
    return cur.fetchone() is not None


def _dicts(cur: Any) -> list[dict[str, Any]]:
    columns = [d.name for d in cur.description]
    return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def snapshot_of(warehouse: Any) -> Snapshot:
    conn = warehouse.connect(connect_timeout=5)
    try:
        conn.autocommit = True
        return read_snapshot(conn)
    finally:
        conn.close()


def run_snapshot(run: Any, outcome: dict[str, Any]) -> Snapshot:
    """The one run's figures, for when the audit cannot be read."""
    now = datetime.now(UTC)
    snap = Snapshot(audit_up=False)
    snap.last_runs = [
        {
            "run_id": run.run_id,
            "command": run.command,
            "status": outcome["status"],
            "exit_code": outcome["exit_code"],
            "seconds": outcome["seconds"],
            "ended_at": now,
        }
    ]
    if outcome["status"] == "success":
        snap.last_success[run.command] = now
    for name, source in run.sources.items():
        snap.source_last[name] = {**source, "ended_at": now}
        if source.get("status") == "success":
            snap.source_last_success[name] = now
    return snap
