"""Quarantine: rows a source could not load, kept with their reason and raw text.

How a row gets to `elt_audit.quarantine`, exactly once:

1. The source yields rejected rows into `raw_<source>._elt_quarantine`, and one row per
   file read into `raw_<source>._elt_files`, in the same dlt load package as the good
   rows. dlt loads the package as a unit and a run killed half way finishes it on the
   next run, so good and rejected rows of a file arrive together or not at all.
2. After every load, `publish` copies the rejected rows of completed loads into
   `elt_audit.quarantine` (keyed by `quarantine_id`, so copying twice changes nothing),
   marks rows superseded where a newer delivery of the same file was loaded, and
   applies replay outcomes (`raw_<source>._elt_replays`). Publishing is idempotent:
   a run killed between load and publish is caught up by the next one.

`elt_audit.quarantine` is the table people and `elt quarantine` read; its `status` is
open (waiting for a fix), replayed (loaded by `elt quarantine replay`) or superseded
(a newer delivery of its file was loaded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

QUARANTINE_TABLE = "_elt_quarantine"
FILES_TABLE = "_elt_files"
REPLAYS_TABLE = "_elt_replays"
BOOKKEEPING_PREFIX = "_elt_"  # raw tables that are not data: not counted as loaded rows

AUDIT_SCHEMA = "elt_audit"
AUDIT_TABLE = f"{AUDIT_SCHEMA}.quarantine"

OPEN, REPLAYED, SUPERSEDED = "open", "replayed", "superseded"
STATUSES = (OPEN, REPLAYED, SUPERSEDED)


def _text(*names: str, nullable: bool = True) -> dict[str, dict[str, Any]]:
    return {n: {"name": n, "data_type": "text", "nullable": nullable} for n in names}


def _column(name: str, data_type: str, **extra: Any) -> dict[str, dict[str, Any]]:
    return {name: {"name": name, "data_type": data_type, "nullable": True, **extra}}


QUARANTINE_COLUMNS = {
    **_text("quarantine_id", "feed", "file", "reason", nullable=False),
    **_column("file_modified_at", "timestamp", timezone=True),
    **_column("line", "bigint"),
    **_text("raw_text", "raw_base64", "header"),
    # a database source's rejected row (feed = its table, file = schema.table in the
    # source): the row's key and the column(s) at fault, never the value
    **_text("row_key", "column_name"),
}
FILES_COLUMNS = {
    **_text("feed", "file", "format", "status", nullable=False),
    **_column("file_modified_at", "timestamp", timezone=True),
    **_column("size_bytes", "bigint"),
    **_column("rows_in", "bigint"),
    **_column("rows_loaded", "bigint"),
    **_column("rows_quarantined", "bigint"),
    # rows of the file whose key a later line of the same chunk repeats (last line wins)
    **_column("duplicates_in_batch", "bigint"),
    **_text("detail"),
    **_column("type_changes", "json"),
}
REPLAYS_COLUMNS = {**_text("quarantine_id", "feed", "outcome", nullable=False), **_text("reason")}

_DDL = f"""
create schema if not exists {AUDIT_SCHEMA};
create table if not exists {AUDIT_TABLE} (
    quarantine_id text primary key,
    source text not null,
    feed text not null,
    file text not null,
    file_modified_at timestamptz,
    line bigint,
    reason text not null,
    raw_text text,
    raw_base64 text,
    header text,
    load_id text not null,
    quarantined_at timestamptz not null default now(),
    status text not null default '{OPEN}',
    resolved_at timestamptz,
    resolved_load_id text
);
alter table {AUDIT_TABLE} add column if not exists row_key text;
alter table {AUDIT_TABLE} add column if not exists column_name text;
create index if not exists quarantine_source_feed_status
    on {AUDIT_TABLE} (source, feed, status);
comment on table {AUDIT_TABLE} is
    'Rows a loader could not load: reason, raw text, load id; status open|replayed|superseded';
"""


def quarantine_id(source: str, feed: str, file: str, modified_at: datetime, line: int) -> str:
    """Stable id of one rejected row of one delivery of one file."""
    key = f"{source}\x1f{feed}\x1f{file}\x1f{modified_at.isoformat()}\x1f{line}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def ensure_audit_table(client: Any) -> None:
    """Create elt_audit.quarantine where missing. Two first loads at once (sources load
    concurrently) race on `create ... if not exists`: the loser fails on pg_type's unique
    index once the winner commits, and its second attempt finds the table."""
    try:
        client.execute_sql(_DDL)
    except Exception:
        client.execute_sql(_DDL)  # dlt's client resets its connection after an error


def _existing(client: Any, dataset: str, tables: Iterable[str]) -> set[str]:
    rows = client.execute_sql(
        "select table_name from information_schema.tables where table_schema = %s",
        dataset,
    )
    return {row[0] for row in rows or []} & set(tables)


def _columns_or_null(
    client: Any, dataset: str, names: tuple[str, ...], table: str = QUARANTINE_TABLE
) -> list[str]:
    """`<name>` for the raw table's columns that exist, else `null` (a table made before
    the column was added gets it only when a row brings a value)."""
    rows = client.execute_sql(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = %s",
        dataset,
        table,
    )
    present = {row[0] for row in rows or []}
    return [name if name in present else "null" for name in names]


def publish(client: Any, source: str, dataset: str) -> None:
    """Bring `elt_audit.quarantine` up to date with the completed loads of `dataset`."""
    ensure_audit_table(client)
    present = _existing(client, dataset, (QUARANTINE_TABLE, FILES_TABLE, REPLAYS_TABLE))
    completed = f"(select load_id from {dataset}._dlt_loads where status = 0)"
    if QUARANTINE_TABLE in present:
        row_key, column_name = _columns_or_null(client, dataset, ("row_key", "column_name"))
        client.execute_sql(
            f"""
            insert into {AUDIT_TABLE} (quarantine_id, source, feed, file, file_modified_at,
                line, reason, raw_text, raw_base64, header, load_id, row_key, column_name)
            select q.quarantine_id, %s, q.feed, q.file, q.file_modified_at, q.line, q.reason,
                q.raw_text, q.raw_base64, q.header, q._dlt_load_id, {row_key}, {column_name}
            from {dataset}.{QUARANTINE_TABLE} as q
            where q._dlt_load_id in {completed}
            on conflict (quarantine_id) do nothing
            """,
            source,
        )
    if FILES_TABLE in present:
        client.execute_sql(
            f"""
            update {AUDIT_TABLE} as t
            set status = '{SUPERSEDED}', resolved_at = now(), resolved_load_id = f._dlt_load_id
            from {dataset}.{FILES_TABLE} as f
            where t.source = %s and t.status = '{OPEN}'
              and f.feed = t.feed and f.file = t.file and f.status = 'loaded'
              and f.file_modified_at > t.file_modified_at
              and f._dlt_load_id in {completed}
            """,
            source,
        )
    if REPLAYS_TABLE in present:
        client.execute_sql(
            f"""
            update {AUDIT_TABLE} as t
            set status = '{REPLAYED}', resolved_at = now(), resolved_load_id = r._dlt_load_id
            from {dataset}.{REPLAYS_TABLE} as r
            where t.source = %s and t.status = '{OPEN}' and r.outcome = 'loaded'
              and r.quarantine_id = t.quarantine_id and r._dlt_load_id in {completed}
            """,
            source,
        )
        # rows a replay kept: the latest replay's reason (the rules may have changed)
        client.execute_sql(
            f"""
            update {AUDIT_TABLE} as t
            set reason = latest.reason
            from (
                select distinct on (r.quarantine_id) r.quarantine_id, r.reason
                from {dataset}.{REPLAYS_TABLE} as r
                where r.outcome = 'quarantined' and r._dlt_load_id in {completed}
                order by r.quarantine_id, r._dlt_load_id desc
            ) as latest
            where t.source = %s and t.status = '{OPEN}'
              and t.quarantine_id = latest.quarantine_id and t.reason <> latest.reason
            """,
            source,
        )


def file_summary(client: Any, dataset: str, load_ids: list[str]) -> dict[str, Any]:
    """Per feed: files, rows read, loaded and quarantined by these loads; skipped files;
    declared columns whose type changed in a file."""
    summary: dict[str, Any] = {
        "feeds": {},
        "skipped_files": [],
        "type_changes": [],
        "empty_files": [],
        "duplicates": {},  # per feed: rows a later line of their file superseded
    }
    if not load_ids or not _existing(client, dataset, (FILES_TABLE,)):
        return summary
    (duplicates,) = _columns_or_null(client, dataset, ("duplicates_in_batch",), FILES_TABLE)
    rows = client.execute_sql(
        f"""
        select feed, file, status, rows_in, rows_loaded, rows_quarantined, detail,
               type_changes::text, coalesce({duplicates}, 0)
        from {dataset}.{FILES_TABLE}
        where _dlt_load_id = any(%s)
        order by feed, file_modified_at, file
        """,
        list(load_ids),
    )
    import json

    for feed, file, status, rows_in, loaded, quarantined, detail, changes, dupes in rows or []:
        if status != "loaded":
            summary["skipped_files"].append({"feed": feed, "file": file, "reason": detail})
            continue
        if not rows_in:
            summary["empty_files"].append({"feed": feed, "file": file, "reason": detail})
        stats = summary["feeds"].setdefault(
            feed, {"files": 0, "rows": 0, "loaded": 0, "quarantined": 0}
        )
        stats["files"] += 1
        stats["rows"] += rows_in or 0
        stats["loaded"] += loaded or 0
        stats["quarantined"] += quarantined or 0
        summary["duplicates"][feed] = summary["duplicates"].get(feed, 0) + (dupes or 0)
        for change in json.loads(changes) if changes else []:
            summary["type_changes"].append({"feed": feed, "file": file, **change})
    return summary


def replay_summary(client: Any, dataset: str, load_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per feed: rows a replay loaded and rows it kept in quarantine."""
    if not load_ids or not _existing(client, dataset, (REPLAYS_TABLE,)):
        return {}
    rows = client.execute_sql(
        f"""
        select feed, outcome, count(*) from {dataset}.{REPLAYS_TABLE}
        where _dlt_load_id = any(%s) group by feed, outcome
        """,
        list(load_ids),
    )
    result: dict[str, dict[str, int]] = {}
    for feed, outcome, count in rows or []:
        result.setdefault(feed, {"loaded": 0, "quarantined": 0})[outcome] = count
    return result


def rejected_by_table(client: Any, dataset: str, load_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per table (feed): rows these loads quarantined, by reason."""
    if not load_ids or not _existing(client, dataset, (QUARANTINE_TABLE,)):
        return {}
    rows = client.execute_sql(
        f"""
        select feed, reason, count(*) from {dataset}.{QUARANTINE_TABLE}
        where _dlt_load_id = any(%s) group by feed, reason
        """,
        list(load_ids),
    )
    result: dict[str, dict[str, int]] = {}
    for feed, reason, count in rows or []:
        result.setdefault(feed, {})[reason] = count
    return result


def supersede_rows(
    client: Any,
    source: str,
    dataset: str,
    table: str,
    key: list[tuple[str, str]],
    load_ids: list[str],
) -> None:
    """A database source's open quarantined row is superseded once a later version of its
    key loaded (fixed at the source, it was read again). `row_key` is `k1=v1, k2=v2` in
    the source's column names; `key` pairs each with its raw column."""
    if not load_ids:
        return
    parts = " || ', ' || ".join(
        f"{_literal(name + '=')} || r.{client.escape_column_name(raw)}::text" for name, raw in key
    )
    client.execute_sql(
        f"""
        update {AUDIT_TABLE} as t
        set status = '{SUPERSEDED}', resolved_at = now(), resolved_load_id = r._dlt_load_id
        from {client.make_qualified_table_name(table)} as r
        where t.source = %s and t.feed = %s and t.status = '{OPEN}'
          and t.row_key = {parts} and r._dlt_load_id = any(%s)
          and t.load_id < r._dlt_load_id
        """,
        source,
        table,
        list(load_ids),
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
