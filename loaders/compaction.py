"""Compaction: drop the raw rows no reader can see any more, per source, in one transaction.

Raw is an append-only log of versions (DESIGN.md): every load appends, and a version
becomes visible when its load's `_dlt_loads` row is written. Staging reads the current
version of each key (macros/dedupe_completed_loads.sql: completed loads only, latest
cursor, then latest load). Two kinds of rows are dead weight, and only those go:

- superseded versions: a key's versions from completed loads that rank below the
  current one in exactly staging's order (`row_number() > 1`), so staging and the marts
  read the same rows before and after;
- orphan rows: rows of a load without a `_dlt_loads` row that can never complete. A
  load id older than a completed load qualifies: that later load started from the state
  of the last completed one and re-read everything the orphan held. A load whose package
  is still pending in this dlt working dir does not: the next `elt load` finishes it.
  Orphans newer than every completed load are kept and reported (a rerun that completes
  supersedes them, and its compaction drops them).

A compaction holds the source's load lock (runtime/locks.py, `load:<source>`; the caller
takes it), so it never runs beside a load of the source. SQL differences between
warehouse engines (which pseudo-column names a row) come from runtime/engines/.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders import dataset_name
from runtime import engines

DEFAULT_EVERY_LOADS = 1  # compact after every load that completed something; 0 turns it off


@dataclass(frozen=True)
class Versioning:
    """How a raw table's versions are ordered: the same key and cursor as its staging model."""

    key: tuple[str, ...]
    cursor: str
    # a load brings at most one version of a key (one snapshot read of a database table)
    one_version_per_load: bool = False


@dataclass
class CompactionReport:
    source: str
    dataset: str
    # table -> {"superseded": n, "orphans": n}
    removed: dict[str, dict[str, int]] = field(default_factory=dict)
    kept_orphan_loads: list[str] = field(default_factory=list)
    kept_orphan_rows: int = 0
    seconds: float = 0.0

    @property
    def total_removed(self) -> int:
        return sum(sum(counts.values()) for counts in self.removed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dataset": self.dataset,
            "removed": self.removed,
            "total_removed": self.total_removed,
            "kept_orphan_loads": self.kept_orphan_loads,
            "kept_orphan_rows": self.kept_orphan_rows,
            "seconds": round(self.seconds, 3),
        }


def every_loads(source: str) -> int:
    """`[sources.<source>] compact_every_loads`: 0 never, N after every Nth completed load."""
    import dlt

    value = dlt.config.get(f"sources.{source}.compact_every_loads", int)
    return DEFAULT_EVERY_LOADS if value is None else int(value)


def due(destination_url: str, source: str, completed_now: int) -> bool:
    """Whether the load that just completed `completed_now` loads should be compacted."""
    every = every_loads(source)
    if every <= 0 or completed_now <= 0:
        return False
    if engines.of(engines.warehouse_for_url(destination_url)).ROW_ID is None:
        return False  # an engine whose raw rows cannot be deleted (Spark's parquet lake)
    if every == 1:
        return True
    loads = f'"{dataset_name(source)}"."_dlt_loads"'
    warehouse = engines.warehouse_for_url(destination_url)
    with contextlib.closing(warehouse.connect()) as conn, conn.cursor() as cur:
        cur.execute(f"select count(*) from {loads} where status = 0")
        completed = cur.fetchone()[0]
    # crossing a multiple of `every` with the loads just completed
    return completed // every > (completed - completed_now) // every


def versioning(source: str, overrides: dict[str, Any] | None = None) -> dict[str, Versioning]:
    """The source's tables and how their versions order: its module's `versioning` hook."""
    from loaders.pipeline import source_hook

    hook = source_hook(source, "versioning")
    return hook(overrides) if hook is not None else {}


def compact(
    source: str,
    *,
    destination_url: str,
    pipelines_dir: Path,
    source_overrides: dict[str, Any] | None = None,
    load_ids: list[str] | None = None,
    had_rows: frozenset[str] | None = None,
) -> CompactionReport:
    """Remove superseded versions and abandoned orphan rows of `source`, in one transaction.

    The caller holds the source's load lock. `load_ids` (the loads just completed) limits
    the search for superseded versions to the keys those loads brought, which is where new
    ones can be; without it every key is looked at (`elt compact`).
    `had_rows` are the tables that held rows before those loads (`tables_with_rows`): the
    others have no orphans, and no superseded version either where one load brought one
    version per key, so a first load's millions of rows are not scanned for nothing.
    """
    started = time.monotonic()
    dataset = dataset_name(source)
    report = CompactionReport(source=source, dataset=dataset)
    tables_versioning = versioning(source, source_overrides)
    warehouse = engines.warehouse_for_url(destination_url)
    row_id = engines.of(warehouse).ROW_ID
    conn = warehouse.connect()
    try:
        with conn, conn.cursor() as cur:  # one transaction: committed at the end, or nothing
            tables = _loaded_tables(cur, dataset)
            if not tables or "_dlt_loads" not in _dlt_tables(cur, dataset):
                return report
            filled = [t for t in tables if had_rows is None or t in had_rows]
            orphans = _orphan_loads(cur, dataset, filled)
            pending = _pending_here(pipelines_dir / f"elt_{source}", orphans)
            newest = _newest_completed(cur, dataset)
            abandoned = [
                load_id
                for load_id in orphans
                if load_id not in pending and newest is not None and _older(load_id, newest)
            ]
            for table in tables:
                counts = {"superseded": 0, "orphans": 0}
                fresh = had_rows is not None and table not in had_rows
                if abandoned and not fresh:
                    counts["orphans"] = _delete_loads(cur, dataset, table, abandoned)
                spec = tables_versioning.get(table)
                one_load = load_ids is not None and len(load_ids) == 1
                if fresh and one_load and spec is not None and spec.one_version_per_load:
                    spec = None
                if spec is not None:
                    counts["superseded"] = _delete_superseded(
                        cur, dataset, table, spec, load_ids, row_id
                    )
                if any(counts.values()):
                    report.removed[table] = counts
            kept = sorted(set(orphans) - set(abandoned))
            report.kept_orphan_loads = kept
            report.kept_orphan_rows = sum(orphans[load_id] for load_id in kept)
    finally:
        conn.close()
    report.seconds = time.monotonic() - started
    return report


def tables_with_rows(destination_url: str, source: str) -> frozenset[str] | None:
    """The source's loaded tables holding at least one row, taken before a load: `compact`
    skips the scans of the others after it. None where compaction does not apply, or on
    doubt (which costs a full compaction, never a wrong one). Each probe stops at a row."""
    warehouse = engines.warehouse_for_url(destination_url)
    if engines.of(warehouse).ROW_ID is None:
        return None
    dataset = dataset_name(source)
    try:
        with contextlib.closing(warehouse.connect()) as conn, conn.cursor() as cur:
            tables = _loaded_tables(cur, dataset)
            if not tables:
                return frozenset()
            cur.execute(
                " union all ".join(
                    f"select {_literal(t)} where exists (select 1 from {_q(dataset, t)})"
                    for t in tables
                )
            )
            return frozenset(row[0] for row in cur.fetchall())
    except Exception:
        return None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _q(dataset: str, table: str) -> str:
    return '"{}"."{}"'.format(dataset.replace('"', '""'), table.replace('"', '""'))


def _column(name: str) -> str:
    return '"{}"'.format(name.replace('"', '""'))


def _dlt_tables(cur: Any, dataset: str) -> set[str]:
    cur.execute(
        "select table_name from information_schema.tables"
        " where table_schema = %s and table_name like '\\_dlt\\_%%'",
        (dataset,),
    )
    return {row[0] for row in cur.fetchall()}


def _loaded_tables(cur: Any, dataset: str) -> list[str]:
    """The source's tables whose rows carry a load id; dlt's own tables are dlt's business."""
    cur.execute(
        "select table_name from information_schema.columns"
        " where table_schema = %s and column_name = '_dlt_load_id'"
        " and table_name not like '\\_dlt\\_%%' order by table_name",
        (dataset,),
    )
    return [row[0] for row in cur.fetchall()]


def _orphan_loads(cur: Any, dataset: str, tables: list[str]) -> dict[str, int]:
    """Load ids with rows in raw but no `_dlt_loads` row, with their row counts."""
    loads = _q(dataset, "_dlt_loads")
    found: dict[str, int] = {}
    for table in tables:
        cur.execute(
            f"select r._dlt_load_id, count(*) from {_q(dataset, table)} as r"
            f" where not exists (select 1 from {loads} as l where l.load_id = r._dlt_load_id)"
            " group by r._dlt_load_id"
        )
        for load_id, count in cur.fetchall():
            found[load_id] = found.get(load_id, 0) + count
    return found


def _pending_here(working_dir: Path, load_ids: dict[str, int]) -> set[str]:
    """Load ids with a package anywhere in this dlt working dir: the next load finishes them."""
    if not load_ids or not working_dir.is_dir():
        return set()
    return {load_id for load_id in load_ids if any(working_dir.glob(f"**/{load_id}"))}


def _newest_completed(cur: Any, dataset: str) -> str | None:
    cur.execute(f"select load_id from {_q(dataset, '_dlt_loads')} where status = 0")
    ids = [row[0] for row in cur.fetchall()]
    return max(ids, key=_load_time) if ids else None


def _load_time(load_id: str) -> float:
    """dlt load ids are unix timestamps; anything else sorts first (never 'older')."""
    try:
        return float(load_id)
    except (TypeError, ValueError):
        return float("inf")


def _older(load_id: str, newest: str) -> bool:
    return _load_time(load_id) < _load_time(newest)


def _delete_loads(cur: Any, dataset: str, table: str, load_ids: list[str]) -> int:
    target = f"{_q(dataset, table)} where _dlt_load_id in ({_marks(load_ids)})"
    return _delete(cur, target, load_ids)


def _delete_superseded(
    cur: Any,
    dataset: str,
    table: str,
    spec: Versioning,
    load_ids: list[str] | None,
    row: str,
) -> int:
    """Delete every completed version ranked below the current one, in staging's order.

    The engine's row id (`ctid`, `rowid`) names a row; the rank is the dedupe macro's
    row_number().
    """
    cur.execute(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = %s",
        (dataset, table),
    )
    columns = {row[0] for row in cur.fetchall()}
    if not set(spec.key) <= columns or spec.cursor not in columns:
        return 0  # the table does not have the shape staging reads: leave it alone
    relation, loads = _q(dataset, table), _q(dataset, "_dlt_loads")
    keys = ", ".join(_column(column) for column in spec.key)
    scope, params = "", ()
    if load_ids is not None:
        if not load_ids:
            return 0
        scope = (
            f" and ({keys}) in (select {keys} from {relation}"
            f" where _dlt_load_id in ({_marks(load_ids)}))"
        )
        params = tuple(load_ids)
    return _delete(
        cur,
        f"{relation} where {row} in ("
        f" select {row} from ("
        f"  select {row}, row_number() over (partition by {keys}"
        f"   order by {_column(spec.cursor)} desc, _dlt_load_id desc) as version_rank"
        f"  from {relation}"
        f"  where _dlt_load_id in (select load_id from {loads} where status = 0){scope}"
        " ) as ranked where version_rank > 1)",
        params,
    )


def _marks(values: list[str]) -> str:
    return ", ".join(["%s"] * len(values))


def _delete(cur: Any, target: str, params: Any) -> int:
    """`delete from <target>`; the rows it removed (counted first: not every driver gives
    a row count for a delete)."""
    cur.execute(f"select count(*) from {target}", tuple(params))
    count = cur.fetchone()[0]
    if count:
        cur.execute(f"delete from {target}", tuple(params))
    return count
