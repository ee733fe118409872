"""What elt's metrics say, read from `elt_audit` (runtime/metrics.py turns it into metric
families): the last run of each command, run counts, rows loaded and quarantined per
source and table (summed over the audit), each source's last load and last success, and
the dbt nodes of the last transform and the last test run.
"""

from __future__ import annotations

import json
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
    from runtime import engines

    snap = Snapshot()
    engines.bound(conn, STATEMENT_TIMEOUT_MS / 1000)
    with conn.cursor() as cur:
        if not engines.relation_exists(cur, SCHEMA, "runs"):
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
            cur.execute(
                f"select command, sources, ended_at from {SCHEMA}.runs"
                " where sources is not null order by started_at"
            )
            for command, sources, ended_at in cur.fetchall():
                _add_sources(snap, command, _object(sources), ended_at)
        if engines.relation_exists(cur, SCHEMA, "dbt_results"):
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


def _add_sources(
    snap: Snapshot, command: str, sources: dict[str, Any], ended_at: datetime | None
) -> None:
    """One run's `sources` (runs read oldest first, so the last one seen is the latest):
    rows loaded and quarantined per source and table, each source's last state and last
    success. Summed here, not in SQL, so every engine's JSON reads the same."""
    for name, source in sources.items():
        if not isinstance(source, dict):
            continue
        if command == "load":
            for table, count in _object(source.get("rows")).items():
                key = (name, table)
                snap.rows_total[key] = snap.rows_total.get(key, 0) + int(count or 0)
        for feed, counts in _object(source.get("quarantine")).items():
            key = (name, feed)
            quarantined = int(_object(counts).get("quarantined") or 0)
            snap.quarantined_total[key] = snap.quarantined_total.get(key, 0) + quarantined
        if ended_at is None:
            continue
        seconds = source.get("seconds")
        snap.source_last[name] = {
            "source": name,
            "status": source.get("status"),
            "seconds": float(seconds) if seconds is not None else None,
            "rows": source.get("rows"),
            "ended_at": ended_at,
        }
        if source.get("status") == "success":
            last = snap.source_last_success.get(name)
            snap.source_last_success[name] = max(last, ended_at) if last else ended_at


def _object(value: Any) -> dict[str, Any]:
    """A JSON object as a dict (drivers hand JSON decoded, or as text); else empty."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


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
