"""Deletes of the shop's cursor-read tables: settings, the tombstone resource, the counts.

Per table in `.dlt/config.toml` (`[sources.shop.tables.<t>]`): `deletes = "reconcile"` (the
default where the table has a primary key) or `"none"`, and `reconcile_every = N` (also
settable for the whole source): reconcile on every Nth load only, for very large tables.
The comparison itself is in loaders/shop/reconcile.py; the check each one leaves (which
makes the next one cheap) is saved by `commit_checks` once the load has completed.

Raw must accept a tombstone (NULL in every column but the key, the cursor and the load
metadata): the shop resources reflect their non-key columns as nullable, and a raw table
created NOT NULL by an earlier version of elt is altered once, before its first tombstone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from loaders.shop.reconcile import (
    DELETED_AT_COLUMN,
    Check,
    TableRef,
    last_check,
    quote,
    reconcile,
    save_check,
)

DELETES_MODES = ("none", "reconcile")
# raw's columns are nullable; this column hint keeps that the source's column is NOT NULL
SOURCE_NOT_NULL = "x-source-not-null"
DELETED_AT_HINT = {"data_type": "timestamp", "timezone": True, "nullable": True}
STATE_KEY = "reconcile"

_counts: dict[tuple[str, str], int] = {}
# (source, raw table) -> (raw url, dataset, check): saved once the load completed
_checks: dict[tuple[str, str], tuple[str, str, Check]] = {}
_lock = threading.Lock()


def deletes_mode(table: str, spec: dict[str, Any]) -> str:
    default = "reconcile" if spec.get("primary_key") else "none"
    mode = spec.get("deletes", default)
    if mode not in DELETES_MODES:
        raise ValueError(
            f"sources.shop.tables.{table}.deletes: {mode!r} is not supported; use one of"
            f" {', '.join(DELETES_MODES)}"
        )
    if mode == "reconcile" and not spec.get("primary_key"):
        raise ValueError(
            f"sources.shop.tables.{table}.deletes: reconcile needs the table's primary_key"
        )
    return mode


def reconcile_every(table: str, spec: dict[str, Any], default: int) -> int:
    value = spec.get("reconcile_every", default)
    try:
        every = int(value)
    except (TypeError, ValueError):
        every = 0
    if every < 1:
        raise ValueError(
            f"sources.shop.tables.{table}.reconcile_every: {value!r} must be a whole number >= 1"
        )
    return every


def record(source: str, table: str, count: int) -> None:
    with _lock:
        _counts[(source, table)] = _counts.get((source, table), 0) + count


def take(source: str) -> dict[str, int]:
    """Tombstones extracted per table of `source` since the last call, removed from the record."""
    with _lock:
        taken = {table: n for (name, table), n in _counts.items() if name == source}
        for table in taken:
            del _counts[(source, table)]
    return taken


def forget_checks(source: str) -> None:
    """Drop the checks of a load that did not complete: the next reconcile compares again."""
    with _lock:
        for key in [key for key in _checks if key[0] == source]:
            del _checks[key]


def commit_checks(source: str) -> None:
    """Save the checks of `source`'s reconciles; call once their load has completed (its
    tombstones are visible), never before."""
    import psycopg2

    with _lock:
        pending = {key: value for key, value in _checks.items() if key[0] == source}
        for key in pending:
            del _checks[key]
    by_url: dict[str, list[tuple[str, str, Check]]] = {}
    for (_, table), (url, dataset, check) in sorted(pending.items()):
        by_url.setdefault(url, []).append((dataset, table, check))
    for url, checks in by_url.items():
        conn = psycopg2.connect(url, connect_timeout=10, application_name="elt-reconcile")
        try:
            conn.autocommit = True
            for dataset, table, check in checks:
                save_check(conn, dataset, table, check)
        finally:
            conn.close()


def make_nullable(table: Any, primary_key: list[str]) -> Any:
    """sql_table's `table_adapter_callback`: reflect every non-key column as nullable, so raw
    tables are created able to hold tombstones (and replication's delete versions)."""
    for column in table.columns:
        if column.name not in primary_key:
            column.nullable = True
    return table


def psycopg2_url(credentials: Any) -> str:
    if not isinstance(credentials, str):
        credentials = credentials.to_native_representation()
    scheme, _, rest = credentials.partition("://")
    return "postgresql://" + rest if scheme.startswith("postgres") else credentials


class RawUrl:
    """The raw dataset's URL, looked up once per source build and shared by its tables'
    tombstone resources: dlt resolves its whole destination configuration on every
    `sql_client()` (about 25 ms of a no-op load each)."""

    def __init__(self) -> None:
        self._url: str | None = None

    def of(self, pipeline: Any) -> str:
        if self._url is None:
            self._url = psycopg2_url(pipeline.sql_client().credentials)
        return self._url


def tombstones(
    *,
    raw: RawUrl,
    source: str,
    table: str,
    raw_table: str,
    spec: dict[str, Any],
    credentials: Any,
    schema: str,
    write_disposition: Any,
    every: int,
    lag_seconds: float = 600,
) -> Any:
    """The resource appending a tombstone to `table` for each key gone from the source."""
    import dlt

    primary_key = list(spec["primary_key"])
    cursor = spec.get("cursor", "updated_at")
    # raw's names are dlt's normalised ones (`Item Id` -> `item_id`)
    naming = dlt.current.source_schema().naming
    raw_key = [naming.normalize_identifier(column) for column in primary_key]
    raw_cursor = naming.normalize_identifier(cursor)

    def generate() -> Iterator[Any]:
        if every > 1:  # count loads in the state (with every == 1 a no-op load stays empty)
            state = dlt.current.resource_state()
            loads = state.get("loads", 0)
            state["loads"] = loads + 1
            if loads % every:
                return
        pipeline = dlt.current.pipeline()
        if pipeline.destination.destination_name != "postgres":
            return  # the key-set comparison is written for Postgres (README: Deletes and CDC)
        import psycopg2

        raw_url = raw.of(pipeline)
        dataset = pipeline.dataset_name
        raw_conn = psycopg2.connect(raw_url, connect_timeout=10, application_name="elt-reconcile")
        try:
            yield from _tombstones_of(raw_conn, raw_url, dataset)
        finally:
            raw_conn.close()

    def _tombstones_of(raw_conn: Any, raw_url: str, dataset: str) -> Iterator[Any]:
        prepared = _prepare_raw(raw_conn, dataset, raw_table, raw_key)
        if prepared is None:
            return  # not loaded yet: nothing can have vanished
        columns, last = prepared
        raw_conn.autocommit = False  # the comparison's server-side cursors need a transaction

        def checked(check: Check) -> None:
            with _lock:
                _checks[(source, raw_table)] = (raw_url, dataset, check)

        found = 0
        batches = reconcile(
            psycopg2_url(credentials),
            raw_url,
            TableRef(schema, table, tuple(primary_key)),
            TableRef(dataset, raw_table, tuple(raw_key)),
            raw_cursor,
            DELETED_AT_COLUMN in columns,
            source_cursor=cursor,
            lag_seconds=lag_seconds,
            last=last,
            on_checked=checked,
            raw_conn=raw_conn,
        )
        for deleted_at, keys in batches:
            found += len(keys)
            item = _tombstone_table(primary_key, cursor, deleted_at, keys)
            hints = {c: {"nullable": True} for c in columns if c not in raw_key}
            hints[DELETED_AT_COLUMN] = DELETED_AT_HINT
            yield dlt.mark.with_hints(item, dlt.mark.make_hints(columns=hints))
        record(source, raw_table, found)

    # hints go with the items, not the resource: a resource's column hints are read as the
    # table's full column list (schema_evolution.find_dropped_columns)
    return dlt.resource(
        generate,
        name=f"{table}_tombstones",
        table_name=raw_table,
        write_disposition=write_disposition,
        primary_key=primary_key,
    )


def _tombstone_table(primary_key: list[str], cursor: str, deleted_at: Any, keys: list[tuple]):
    """An arrow table like the extracted batches (a plain-row item would make dlt add a
    `_dlt_id` column to raw); dlt's normalizer adds the other columns, NULL."""
    import pyarrow as pa

    stamp = pa.array([deleted_at] * len(keys), pa.timestamp("us", tz="UTC"))
    arrays = {name: pa.array([key[i] for key in keys]) for i, name in enumerate(primary_key)}
    return pa.table({**arrays, cursor: stamp, DELETED_AT_COLUMN: stamp})


def _prepare_raw(
    conn: Any, dataset: str, table: str, primary_key: list[str]
) -> tuple[list[str], Check | None] | None:
    """The raw table's columns and its last reconcile check (None when the table does not
    exist yet), after dropping NOT NULL from its non-key columns, here and in dlt's staging
    dataset merges go through."""
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "select table_schema, column_name, is_nullable from information_schema.columns"
            " where table_schema in (%s, %s) and table_name = %s",
            (dataset, f"{dataset}_staging", table),
        )
        found = cur.fetchall()
        columns = [name for schema_name, name, _ in found if schema_name == dataset]
        if not columns:
            return None
        for schema_name, name, nullable in found:
            if nullable == "NO" and name not in primary_key and not name.startswith("_dlt"):
                cur.execute(
                    f"alter table {quote(schema_name)}.{quote(table)}"
                    f" alter column {quote(name)} drop not null"
                )
    return columns, last_check(conn, dataset, table)
