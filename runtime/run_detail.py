"""One run of the audit in full, for `elt runs show` and `elt lineage`.

The run's row of `elt_audit.runs` (arguments, who and where, rows and load ids per
source, schema changes, the error line, the log file), its dbt node results from
`elt_audit.dbt_results`, and the rows its loads quarantined (counts per feed and status:
`elt quarantine list` shows the rows themselves).
"""

from __future__ import annotations

import json
from typing import Any

from runtime import engines
from runtime.errors import ConfigError

SCHEMA = "elt_audit"
_MESSAGE_CHARS = 300


def find_run(warehouse: Any, run_id: str) -> dict[str, Any]:
    """The run whose id is (or starts with) `run_id`; a usage error when none or several."""
    prefix = run_id.strip().lower()
    if len(prefix) < 4 or not all(c in "0123456789abcdef" for c in prefix):
        raise ConfigError(
            f"runs show: {run_id!r} is not a run id",
            hint="give the run id (or its first 8 characters) from `elt runs`",
        )
    conn = warehouse.connect()
    try:
        conn.autocommit = True
        engines.bound(conn, 10)
        with conn.cursor() as cur:
            tables = _tables(cur)
            found = []
            if "runs" in tables:
                cur.execute(
                    f"select * from {SCHEMA}.runs where run_id like %s"
                    " order by started_at desc limit 2",
                    (prefix + "%",),
                )
                found = _dicts(cur)
            if not found:
                raise ConfigError(
                    f"runs show: no run {run_id} in {SCHEMA}.runs",
                    hint="`elt runs` lists the recorded runs",
                )
            if len(found) > 1:
                raise ConfigError(
                    f"runs show: {run_id} matches several runs",
                    hint="give more characters of the run id",
                )
            run = found[0]
            run["dbt_nodes"] = _dbt_nodes(cur, run["run_id"]) if "dbt_results" in tables else []
            load_ids = [i for ids in (run.get("load_ids") or {}).values() for i in ids]
            run["quarantine"] = _quarantine(cur, load_ids) if "quarantine" in tables else []
            return run
    finally:
        conn.close()


def runs_of_loads(cur: Any, load_ids: list[str]) -> dict[str, dict[str, Any]]:
    """load id -> the elt run that produced it (run id, command, status, start, end)."""
    if not load_ids or "runs" not in _tables(cur):
        return {}
    wanted = set(load_ids)
    # a text match narrows the runs on every engine; the JSON decides
    like = " or ".join(["cast(load_ids as text) like %s"] * len(wanted))
    cur.execute(
        f"select run_id, command, status, started_at, ended_at, load_ids from {SCHEMA}.runs"
        f" where {like}",
        [f'%"{load_id}"%' for load_id in sorted(wanted)],
    )
    found = {}
    for run in _dicts(cur):
        by_source = run.pop("load_ids")
        if isinstance(by_source, str):
            by_source = json.loads(by_source)
        for ids in (by_source or {}).values() if isinstance(by_source, dict) else ():
            for load_id in ids if isinstance(ids, list) else ():
                if load_id in wanted:
                    found[load_id] = run
    return found


def _dbt_nodes(cur: Any, run_id: str) -> list[dict[str, Any]]:
    cur.execute(
        "select name, resource_type, status, execution_time as seconds, failures,"
        f" rows_affected, message from {SCHEMA}.dbt_results where run_id = %s"
        " order by finished_at, name",
        (run_id,),
    )
    nodes = _dicts(cur)
    for node in nodes:
        if node["status"] in ("success", "pass"):
            node["message"] = None
        elif node["message"]:
            node["message"] = node["message"].strip().splitlines()[0][:_MESSAGE_CHARS]
    return nodes


def _quarantine(cur: Any, load_ids: list[str]) -> list[dict[str, Any]]:
    if not load_ids:
        return []
    cur.execute(
        "select source, feed, status, count(*) as rows, count(distinct file) as files"
        f" from {SCHEMA}.quarantine where load_id = any(%s) group by 1, 2, 3 order by 1, 2, 3",
        (load_ids,),
    )
    return _dicts(cur)


def _tables(cur: Any) -> set[str]:
    cur.execute(
        "select table_name from information_schema.tables where table_schema = %s", (SCHEMA,)
    )
    return {row[0] for row in cur.fetchall()}


def _dicts(cur: Any) -> list[dict[str, Any]]:
    columns = [d.name for d in cur.description]
    return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
