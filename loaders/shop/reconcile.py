"""Hard-delete detection for cursor-read tables: the source's key set against raw's live keys.

A row deleted in the source never gets a newer `updated_at`, so a cursor read never sees
it go. Reconcile finds such keys and appends a *tombstone* version for each: the key, the
cursor set to the deletion time (so it sorts after every earlier version, in staging's
dedupe and in dlt's merge), `_elt_deleted_at` (the same time) and the load metadata; every
other column NULL. Tombstones travel in the load package of the rest of the load, so they
become visible with its `_dlt_loads` row, atomically.

Memory stays bounded whatever the table size (neither key set is ever held in Python):

1. Both sides hash every key (`md5` of its text) into `BUCKETS` buckets and return one
   row per bucket: count and two independent 28-bit hash sums. Equal rows mean equal
   key sets in that bucket (a difference hiding needs a 2^-56 coincidence).
2. The keys of the differing buckets only are streamed from both sides, ordered by their
   text in byte order (`collate "C"`, the order Python compares str in), through
   server-side cursors, and merged: a key raw holds live that the source lacks is gone.

"Live in raw" is: the latest version of the key (cursor, then load id), over completed
loads only, is not a tombstone. That holds whether raw merges on the key (one row per
key) or appends every version. The source side runs in one REPEATABLE READ transaction,
and the deletion time is the source's clock once its snapshot is taken: every version
committed before has an older `updated_at`, a key inserted again later a newer one. A
key re-inserted by a transaction that began before the snapshot and committed after it
is seen as deleted until its next update or the next reconcile (which heals any such
misorder: it compares again).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DELETED_AT_COLUMN = "_elt_deleted_at"
BUCKETS = 4096
FETCH_ROWS = 10_000  # rows per server-side cursor round trip and per tombstone batch
CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class TableRef:
    """A table on one side of the comparison."""

    schema: str
    table: str
    key: tuple[str, ...]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def key_text(key: tuple[str, ...]) -> str:
    """The key as one text value: a row literal, unambiguous for composite keys."""
    return "row(" + ", ".join(quote(column) for column in key) + ")::text"


def _hash_part(expr: str, start: int) -> str:
    """28 bits of the key's md5 from hex digit `start` (1-based): a non-negative integer."""
    return f"('x' || substr(md5({expr}), {start}, 7))::bit(28)::integer"


def bucket_of(expr: str) -> str:
    return f"mod({_hash_part(expr, 1)}, {BUCKETS})"


def _aggregate_sql(keys_sql: str) -> str:
    """Per bucket: count and two hash sums of the `k` column of `keys_sql`."""
    return (
        f"select {bucket_of('k')} as bucket, count(*),"
        f" sum({_hash_part('k', 8)}::bigint), sum({_hash_part('k', 15)}::bigint)"
        f" from ({keys_sql}) as keys group by 1"
    )


def source_keys_sql(ref: TableRef) -> str:
    return f"select {key_text(ref.key)} as k from {quote(ref.schema)}.{quote(ref.table)}"


def live_keys_sql(ref: TableRef, cursor: str, has_tombstones: bool) -> str:
    """Keys whose latest version in raw, over completed loads, is not a tombstone."""
    table = f"{quote(ref.schema)}.{quote(ref.table)}"
    loads = f"{quote(ref.schema)}._dlt_loads"
    columns = ", ".join(quote(column) for column in ref.key)
    gone = f"{quote(DELETED_AT_COLUMN)} is not null" if has_tombstones else "false"
    return (
        f"select k, {columns} from ("
        f"select {key_text(ref.key)} as k, {columns}, {gone} as gone,"
        f" row_number() over (partition by {columns}"
        f" order by {quote(cursor)} desc, _dlt_load_id desc) as version_rank"
        f" from {table}"
        f" where _dlt_load_id in (select load_id from {loads} where status = 0)"
        ") as versions where version_rank = 1 and not gone"
    )


def _buckets(conn: Any, keys_sql: str) -> dict[int, tuple[int, int, int]]:
    with conn.cursor() as cur:
        cur.execute(_aggregate_sql(keys_sql))
        return {row[0]: (row[1], int(row[2]), int(row[3])) for row in cur}


def _stream(conn: Any, name: str, keys_sql: str, buckets: list[int]) -> Iterator[tuple]:
    """Rows (k, ...) of `keys_sql` in the given buckets, in byte order of k, in batches."""
    with conn.cursor(name=name) as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(
            f"select * from ({keys_sql}) as keys where {bucket_of('k')} = any(%s)"
            ' order by k collate "C"',
            (buckets,),
        )
        yield from cur


def vanished(
    source_conn: Any,
    raw_conn: Any,
    source: TableRef,
    raw: TableRef,
    cursor: str,
    has_tombstones: bool,
) -> Iterator[tuple]:
    """Key tuples (raw's types) live in raw and absent from the source, one at a time.

    Both connections must be in a transaction (the source's a REPEATABLE READ one): the
    server-side cursors live in it.
    """
    live_sql = live_keys_sql(raw, cursor, has_tombstones)
    source_sql = source_keys_sql(source)
    raw_buckets = _buckets(raw_conn, live_sql)
    if not raw_buckets:
        return
    source_buckets = _buckets(source_conn, source_sql)
    differing = sorted(b for b, agg in raw_buckets.items() if source_buckets.get(b) != agg)
    del raw_buckets, source_buckets
    if not differing:
        return
    source_rows = _stream(source_conn, "elt_reconcile_source", source_sql, differing)
    source_keys = (row[0] for row in source_rows)
    current = next(source_keys, None)
    for row in _stream(raw_conn, "elt_reconcile_raw", live_sql, differing):
        while current is not None and current < row[0]:
            current = next(source_keys, None)
        if current != row[0]:
            yield tuple(row[1:])


def open_source(credentials: str) -> Any:
    import psycopg2

    conn = psycopg2.connect(
        credentials, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="elt-reconcile"
    )
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    return conn


def open_raw(url: str) -> Any:
    import psycopg2

    conn = psycopg2.connect(
        url, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="elt-reconcile"
    )
    conn.set_session(readonly=True)
    return conn


def reconcile(
    source_url: str,
    raw_url: str,
    source: TableRef,
    raw: TableRef,
    cursor: str,
    has_tombstones: bool,
) -> Iterator[tuple[datetime, list[tuple]]]:
    """(deletion time, batch of vanished keys) for each batch of up to FETCH_ROWS keys."""
    with closing(open_source(source_url)) as source_conn, closing(open_raw(raw_url)) as raw_conn:
        for conn in (source_conn, raw_conn):
            with conn.cursor() as cur:
                cur.execute("set local time zone 'UTC'")
        with source_conn.cursor() as cur:
            cur.execute("select clock_timestamp()")  # after the snapshot is taken
            deleted_at = cur.fetchone()[0]
        keys = vanished(source_conn, raw_conn, source, raw, cursor, has_tombstones)
        while batch := list(itertools.islice(keys, FETCH_ROWS)):
            yield deleted_at, batch
