"""The `shop` source: tables of a Postgres application database, read with dlt's sql_database.

Which tables, their primary keys and cursor columns are configuration
(`[sources.shop.tables.<name>]` in `.dlt/config.toml`), so adding a table needs no code.
Extraction streams arrow batches through connectorx (measured ~5x faster than the
default sqlalchemy backend, see bench/README.md) and bounded in memory by `chunk_size`.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import dlt
from dlt.sources import DltResource
from dlt.sources.sql_database import sql_table

from loaders.lag_window import LagWindowFilter
from loaders.metadata import add_load_metadata
from loaders.shop import deletes, replication

SOURCE_NAME = "shop"
ARROW_BACKENDS = ("connectorx", "pyarrow")
MERGE = {"disposition": "merge", "strategy": "delete-insert"}
MODES = ("cursor", "replication")


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def shop(
    credentials: str = dlt.secrets.value,
    tables: dict[str, Any] = dlt.config.value,
    schema: str = "public",
    backend: str = "connectorx",
    chunk_size: int = 100_000,
    lag_seconds: float = 600,
    reconcile_every: int = 1,
    mode: str = "cursor",
    slot_name: str = "elt_shop",
    publication: str = "elt_shop",
    resnapshot: bool = False,
) -> Iterator[DltResource]:
    """One merge resource per configured table, incremental on its cursor with a lag window.

    `lag_seconds` re-reads that much cursor history on every run: a row committed late by
    a transaction that began before the previous load carries an older `updated_at` and
    is still caught; the lag-window filter keeps repeats out.

    Tables in `mode = "replication"` (the source's `mode`, or the table's own) are read by
    logical replication instead (loaders/shop/replication.py), through the slot
    `slot_name` and the publication `publication`; `resnapshot` drops the slot and reads
    them whole again.

    A cursor table with `deletes = "reconcile"` (the default where it has a primary key) also gets
    a tombstone resource (loaders/shop/deletes.py): keys gone from the source get a deleted
    version in the same load. `reconcile_every` is the default for the tables' own setting.
    """
    if backend not in ARROW_BACKENDS:
        raise ValueError(
            f"sources.shop.backend: {backend!r} is not supported; use one of"
            f" {', '.join(ARROW_BACKENDS)} (the lag-window filter and load metadata work on"
            " arrow batches)"
        )
    credentials = _sqlalchemy_url(credentials)
    known_tables = _tables_in_warehouse()
    # what an earlier run in this process left behind when its load failed
    deletes.take(SOURCE_NAME)
    replication.forget_pending(SOURCE_NAME)
    replicated = {}
    for table, spec in tables.items():
        table_mode = spec.get("mode", mode)
        if table_mode not in MODES:
            raise ValueError(
                f"sources.shop.tables.{table}.mode: {table_mode!r} is not supported; use one"
                f" of {', '.join(MODES)}"
            )
        if table_mode == "replication":
            replicated[table] = spec
            continue
        primary_key = list(spec["primary_key"])
        cursor = spec.get("cursor", "updated_at")
        deletes_mode = deletes.deletes_mode(table, spec)
        every = deletes.reconcile_every(table, spec, reconcile_every)
        write_disposition = MERGE if known_tables is None or table in known_tables else "append"
        resource = sql_table(
            credentials=credentials,
            table=table,
            schema=schema,
            backend=backend,
            chunk_size=chunk_size,
            backend_kwargs=_backend_kwargs(backend, chunk_size),
            reflection_level="full_with_precision",
            incremental=dlt.sources.incremental(cursor, lag=lag_seconds),
            write_disposition=write_disposition,
            primary_key=primary_key,
            table_adapter_callback=partial(deletes.make_nullable, primary_key=primary_key),
        )
        # a merge keeps the latest version of a key seen twice in one load (a tombstone
        # carries its deletion time as cursor, so it wins over the version it deletes)
        if write_disposition == MERGE:
            resource.apply_hints(columns={cursor: {"dedup_sort": "desc"}})
        resource.add_map(LagWindowFilter(table, primary_key, cursor, lag_seconds))
        resource.add_map(add_load_metadata(SOURCE_NAME))
        yield resource
        if deletes_mode == "reconcile":
            tombstones = deletes.tombstones(
                source=SOURCE_NAME,
                table=table,
                spec=spec,
                credentials=credentials,
                schema=schema,
                write_disposition=write_disposition,
                every=every,
            )
            tombstones.add_map(add_load_metadata(SOURCE_NAME))
            yield tombstones
    if replicated:
        changes = replication.changes_resource(
            source=SOURCE_NAME,
            credentials=credentials,
            schema=schema,
            tables=replicated,
            slot_name=slot_name,
            publication=publication,
            resnapshot=resnapshot,
        )
        changes.add_map(add_load_metadata(SOURCE_NAME))
        yield changes


def after_load(pipeline: Any, report: Any, overrides: dict[str, Any] | None) -> None:
    """Tombstones are rows of their table: report them as `deleted`, not as loaded rows.
    The load is recorded: the replication slot may now forget the changes it holds."""
    replication.confirm_pending(SOURCE_NAME)
    for table, count in deletes.take(SOURCE_NAME).items():
        if table in report.rows:
            report.rows[table] -= count
            if not report.rows[table]:
                del report.rows[table]
        if count:
            report.deleted[table] = count


def drop_slot() -> str | None:
    """Drop the source's replication slot (`elt load --drop-slot shop`), freeing the WAL it
    holds on the source server; its name, or None when there was none. The next load in
    replication mode then fails until a re-snapshot (see replication.py)."""
    credentials = dlt.secrets["sources.shop.credentials"]
    name = dlt.config.get("sources.shop.slot_name") or "elt_shop"
    return name if replication.drop_slot(deletes.psycopg2_url(credentials), name) else None


def _tables_in_warehouse() -> set[str] | None:
    """Tables the pipeline's schema (synced from the warehouse) already has.

    A table's first load appends: one extract holds each primary key once and there is
    nothing to merge into, and dlt's merge through a staging table more than doubles the
    load time of a large first load (bench/README.md). Later loads merge on the key.
    """
    try:
        pipeline = dlt.current.pipeline()
    except Exception:  # built outside a pipeline (e.g. inspected): merge, always correct
        return None
    if not pipeline.default_schema_name:
        return set()
    return set(pipeline.default_schema.tables)


def _backend_kwargs(backend: str, chunk_size: int) -> dict[str, Any]:
    if backend == "connectorx":
        return {"return_type": "arrow_stream", "batch_size": chunk_size}
    return {}


def _sqlalchemy_url(credentials: Any) -> Any:
    """SQLAlchemy 2.1 reads a bare postgresql:// URL as psycopg 3; name psycopg2 explicitly."""
    if isinstance(credentials, str) and credentials.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg2://" + credentials.split("://", 1)[1]
    return credentials
