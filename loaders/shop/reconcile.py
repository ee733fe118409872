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

The common case is cheap (a no-op load of an unchanged source hashes no key). Each
comparison leaves a *check* (`_elt_reconcile` in the raw dataset, written once the load
holding its tombstones completed): the source's row count at its snapshot, that time, and
the newest completed load whose live keys were compared. The next reconcile first asks
the source, in its REPEATABLE READ snapshot, for `count(*)` and the rows whose cursor is
NULL or within `lag_seconds` of the check. Same count and no such row: no key was
inserted since the check (an insert carries a newer cursor, as the cursor read itself
assumes), so with an equal count none was deleted either, and every key raw held live
then is still there. Only the keys of loads completed since the check are compared, by
primary-key lookups in the source (none after a no-op). Otherwise the full comparison runs.

Deferred, and only by that path: a delete in the same interval as an insert (or a key
update) that carries a cursor older than the check minus the lag. The cursor read misses
that insert too; the full comparison, forced at least every `FULL_EVERY`, catches the
delete then.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

DELETED_AT_COLUMN = "_elt_deleted_at"
BUCKETS = 4096
FETCH_ROWS = 10_000  # rows per server-side cursor round trip and per tombstone batch
CONNECT_TIMEOUT_SECONDS = 10
CHECKS_TABLE = "_elt_reconcile"
FULL_EVERY = timedelta(hours=24)  # the longest a table goes without a full comparison
# cursor types a check can bound with "cursor >= since - lag"
TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")


@dataclass(frozen=True)
class TableRef:
    """A table on one side of the comparison."""

    schema: str
    table: str
    key: tuple[str, ...]


@dataclass(frozen=True)
class Check:
    """What a reconcile established, for the next one to start from (see the module doc)."""

    source_count: int
    since: datetime  # the source's clock at the snapshot compared
    verified_through: str | None  # newest completed load whose live keys were compared
    full_at: datetime  # the last full comparison
    full: bool = True  # whether this one was full


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
    with ThreadPoolExecutor(max_workers=1) as pool:  # the two servers hash at once
        source_side = pool.submit(_buckets, source_conn, source_sql)
        raw_buckets = _buckets(raw_conn, live_sql)
        source_buckets = source_side.result()
    if not raw_buckets:
        return
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
    *,
    source_cursor: str | None = None,
    lag_seconds: float = 0,
    last: Check | None = None,
    on_checked: Callable[[Check], None] | None = None,
    raw_conn: Any = None,
) -> Iterator[tuple[datetime, list[tuple]]]:
    """(deletion time, batch of vanished keys) for each batch of up to FETCH_ROWS keys.

    With `last` (the previous check) and the source's cursor column, an unchanged source
    compares only the keys of loads completed since (see the module doc). Once every
    batch is taken, `on_checked` gets this comparison's check. `raw_conn`: an open
    connection to raw (the caller's, left open) instead of one to `raw_url`.
    """
    own_raw = closing(open_raw(raw_url)) if raw_conn is None else nullcontext(raw_conn)
    with closing(open_source(source_url)) as source_conn, own_raw as raw_conn:
        raw_conn.set_session(readonly=True)
        for conn in (source_conn, raw_conn):
            with conn.cursor() as cur:
                cur.execute("set local time zone 'UTC'")
        with source_conn.cursor() as cur:
            cur.execute("select clock_timestamp()")  # after the snapshot is taken
            deleted_at = cur.fetchone()[0]
        completed = _completed_loads(raw_conn, raw.schema)  # before comparing: later is newer
        newest = max(completed, key=_load_time, default=None)
        quiet = last is not None and _quiet(
            source_conn, source, source_cursor, lag_seconds, last, deleted_at
        )
        if quiet and last is not None:
            new_loads = [load for load in completed if _newer(load, last.verified_through)]
            keys = touched_vanished(
                source_conn, raw_conn, source, raw, cursor, has_tombstones, new_loads
            )
            check = Check(last.source_count, deleted_at, newest, last.full_at, full=False)
        else:
            keys = vanished(source_conn, raw_conn, source, raw, cursor, has_tombstones)
            count = _count(source_conn, source)
            check = Check(count, deleted_at, newest, deleted_at)
        while batch := list(itertools.islice(keys, FETCH_ROWS)):
            yield deleted_at, batch
    if on_checked is not None:
        on_checked(check)


def _completed_loads(conn: Any, schema: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(f"select load_id from {quote(schema)}._dlt_loads where status = 0")
        return [row[0] for row in cur.fetchall()]


def _newer(load_id: str, than: str | None) -> bool:
    """dlt's load ids are creation times in seconds, as text of varying length; an id of
    another shape counts as newer (compared again)."""
    try:
        return than is None or float(load_id) > float(than)
    except ValueError:
        return True


def _load_time(load_id: str) -> float:
    try:
        return float(load_id)
    except ValueError:
        return 0.0


def _count(conn: Any, ref: TableRef) -> int:
    with conn.cursor() as cur:
        cur.execute(f"select count(*) from {quote(ref.schema)}.{quote(ref.table)}")
        return cur.fetchone()[0]


def _quiet(
    conn: Any, ref: TableRef, cursor: str | None, lag_seconds: float, last: Check, now: datetime
) -> bool:
    """Whether the source's key set is the one `last` saw: the same row count and no row
    whose cursor is NULL or could be newer than `last` (its time minus the lag)."""
    if cursor is None or now - last.full_at >= FULL_EVERY:
        return False
    with conn.cursor() as cur:
        cur.execute(
            "select atttypid::regtype::text from pg_attribute"  # no typmod: timestamp(3)
            " where attrelid = %s::regclass and attname = %s and not attisdropped",
            (f"{quote(ref.schema)}.{quote(ref.table)}", cursor),
        )
        kind = cur.fetchone()
        if kind is None or not kind[0].startswith(TIME_TYPES):
            return False
        column = quote(cursor)
        cur.execute(
            f"select count(*), count(*) filter (where {column} is null or {column} >= %s)"
            f" from {quote(ref.schema)}.{quote(ref.table)}",
            (last.since - timedelta(seconds=lag_seconds),),
        )
        count, recent = cur.fetchone()
    return count == last.source_count and recent == 0


def touched_vanished(
    source_conn: Any,
    raw_conn: Any,
    source: TableRef,
    raw: TableRef,
    cursor: str,
    has_tombstones: bool,
    load_ids: list[str],
) -> Iterator[tuple]:
    """Keys of rows in `load_ids` that are live in raw and absent from the source, looked
    up by key in the source (its primary key's index), a batch at a time."""
    if not load_ids:
        return
    table = f"{quote(raw.schema)}.{quote(raw.table)}"
    columns = ", ".join(quote(column) for column in raw.key)
    touched = (
        f"select k, {columns} from ({live_keys_sql(raw, cursor, has_tombstones)}) as live"
        f" where ({columns}) in (select {columns} from {table} where _dlt_load_id = any(%s))"
    )
    types = _column_types(source_conn, source)
    arrays = ", ".join(f"%s::{kind}[]" for kind in types)
    names = ", ".join(f"c{i}" for i in range(len(types)))
    match = " and ".join(f"s.{quote(column)} = v.c{i}" for i, column in enumerate(source.key))
    lookup = (
        f"select v.n from unnest({arrays}) with ordinality as v({names}, n)"
        f" where exists (select 1 from {quote(source.schema)}.{quote(source.table)} as s"
        f" where {match})"
    )
    with raw_conn.cursor(name="elt_reconcile_touched") as raw_cur:
        raw_cur.itersize = FETCH_ROWS
        raw_cur.execute(touched, (load_ids,))
        while rows := raw_cur.fetchmany(FETCH_ROWS):
            keys = [tuple(row[1:]) for row in rows]
            with source_conn.cursor() as cur:
                cur.execute(lookup, [list(column) for column in zip(*keys, strict=True)])
                present = {row[0] for row in cur.fetchall()}
            yield from (key for n, key in enumerate(keys, start=1) if n not in present)


def _column_types(conn: Any, ref: TableRef) -> list[str]:
    """The source's type of each key column, so looked-up values compare as the index does."""
    with conn.cursor() as cur:
        cur.execute(
            "select attname, format_type(atttypid, atttypmod) from pg_attribute"
            " where attrelid = %s::regclass and attnum > 0 and not attisdropped",
            (f"{quote(ref.schema)}.{quote(ref.table)}",),
        )
        found = dict(cur.fetchall())
    return [found[column] for column in ref.key]


def checks_ddl(schema: str) -> str:
    return (
        f"create table if not exists {quote(schema)}.{CHECKS_TABLE} (table_name text primary"
        " key, source_count bigint not null, since timestamptz not null, verified_through"
        " text, full_at timestamptz not null)"
    )


def last_check(conn: Any, schema: str, table: str) -> Check | None:
    """The check the last completed reconcile of `table` left, if any."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass(%s)", (f"{quote(schema)}.{CHECKS_TABLE}",))
        if cur.fetchone()[0] is None:
            return None
        cur.execute(
            "select source_count, since, verified_through, full_at"
            f" from {quote(schema)}.{CHECKS_TABLE} where table_name = %s",
            (table,),
        )
        row = cur.fetchone()
    return Check(*row) if row else None


def save_check(conn: Any, schema: str, table: str, check: Check) -> None:
    """Record `check` (call once the load holding its tombstones completed)."""
    with conn.cursor() as cur:
        cur.execute(checks_ddl(schema))
        cur.execute(
            f"insert into {quote(schema)}.{CHECKS_TABLE} (table_name, source_count, since,"
            " verified_through, full_at) values (%s, %s, %s, %s, %s)"
            " on conflict (table_name) do update set source_count = excluded.source_count,"
            " since = excluded.since, verified_through = excluded.verified_through,"
            " full_at = excluded.full_at",
            (table, check.source_count, check.since, check.verified_through, check.full_at),
        )
