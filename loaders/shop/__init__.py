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

from loaders import quarantine as q
from loaders.identifiers import IdentifierError, check_table_names, check_table_settings
from loaders.lag_window import LagWindowFilter
from loaders.metadata import add_load_metadata
from loaders.shop import deletes, replication
from loaders.shop.timeouts import explain_failure, with_timeouts
from loaders.shop.values import (
    NULL_CURSOR_POLICIES,
    RowQuarantine,
    TableRules,
    Unrepresentable,
    exact_decimal,
    fast_select,
    is_numeric,
    safe_select,
)
from runtime.warehouse import connectorx_url

SOURCE_NAME = "shop"
ARROW_BACKENDS = ("connectorx", "pyarrow")
MODES = ("cursor", "replication")


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def shop(
    credentials: str = dlt.secrets.value,
    tables: dict[str, Any] = dlt.config.value,
    schema: str = "public",
    backend: str = "connectorx",
    chunk_size: int = 15_000,
    lag_seconds: float = 600,
    null_cursor: str = "quarantine",
    connect_timeout_seconds: float = 10,
    statement_timeout_seconds: float = 600,
    reconcile_every: int = 1,
    mode: str = "cursor",
    slot_name: str = "elt_shop",
    publication: str = "elt_shop",
    resnapshot: bool = False,
) -> Iterator[DltResource]:
    """One append resource per configured table, incremental on its cursor with a lag window.

    Raw is an append-only log: every load appends the versions it read, and they become
    visible to staging when the load's `_dlt_loads` row is written (see
    macros/dedupe_completed_loads.sql); superseded versions go at compaction
    (loaders/compaction.py). A merge would delete the old versions before the new load is
    recorded, so a crash in between would leave staging with neither.

    `lag_seconds` re-reads that much cursor history on every run: a row committed late by
    a transaction that began before the previous load carries an older `updated_at` and
    is still caught; the lag-window filter keeps repeats out.

    Values arrow or the warehouse cannot hold (NaN, infinity, ...) and rows with a NULL
    cursor go to the quarantine row by row (loaders/shop/values.py); `null_cursor =
    "fail"` (per source or per table) stops the source instead.

    `connect_timeout_seconds` and `statement_timeout_seconds` bound every connection and
    statement (reflection and extraction alike), so a host that accepts and never answers,
    or a table locked by another session, fails the load naming the bound instead of
    hanging it (see timeouts.py).

    Tables in `mode = "replication"` (the source's `mode`, or the table's own) are read by
    logical replication instead (loaders/shop/replication.py), through the slot
    `slot_name` and the publication `publication`; `resnapshot` drops the slot and reads
    them whole again. A cursor table with `deletes = "reconcile"` (the default where it
    has a primary key) also gets a tombstone resource (loaders/shop/deletes.py): keys gone
    from the source get a deleted version in the same load, every `reconcile_every` loads.
    """
    if backend not in ARROW_BACKENDS:
        raise ValueError(
            f"sources.shop.backend: {backend!r} is not supported; use one of"
            f" {', '.join(ARROW_BACKENDS)} (the lag-window filter and load metadata work on"
            " arrow batches)"
        )
    credentials = with_timeouts(
        _sqlalchemy_url(credentials), connect_timeout_seconds, statement_timeout_seconds
    )
    naming = dlt.current.source_schema().naming
    check_table_names(SOURCE_NAME, list(tables), naming)
    quarantine_hints = dlt.mark.make_hints(
        table_name=q.QUARANTINE_TABLE,
        write_disposition="append",
        primary_key="",
        columns=q.QUARANTINE_COLUMNS,
    )
    # what an earlier run in this process left behind when its load failed
    deletes.take(SOURCE_NAME)
    deletes.forget_checks(SOURCE_NAME)
    replication.forget_pending(SOURCE_NAME)
    replicated = {}
    metadata = _reflect(credentials, schema, tables, mode)
    raw_url = deletes.RawUrl()
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
        primary_key = list(spec.get("primary_key") or [])
        cursor = spec.get("cursor", "updated_at")
        deletes_mode = deletes.deletes_mode(table, spec)
        every = deletes.reconcile_every(table, spec, reconcile_every)
        policy = spec.get("null_cursor", null_cursor)
        if policy not in NULL_CURSOR_POLICIES:
            raise ValueError(
                f"sources.shop.null_cursor: {policy!r} is not a policy; use one of"
                f" {', '.join(NULL_CURSOR_POLICIES)}"
            )
        raw_table = naming.normalize_table_identifier(table)
        write_disposition = "append"  # raw is a log: tombstones too are appended versions
        resource = sql_table(
            credentials=credentials,
            table=table,
            schema=schema,
            metadata=metadata,
            backend=backend,
            chunk_size=chunk_size,
            backend_kwargs=_backend_kwargs(backend, chunk_size, credentials),
            reflection_level="full_with_precision",
            incremental=cursor_incremental(table, cursor, lag_seconds),
            write_disposition=write_disposition,
            primary_key=primary_key,
            query_adapter_callback=fast_select if backend == "connectorx" else safe_select,
            table_adapter_callback=partial(_adapt_table, primary_key=primary_key),
        )
        sql_columns = _remembered.pop(table, {})
        for name in _not_null.pop(table, set()):
            if isinstance(resource.columns, dict) and name in resource.columns:
                resource.columns[name][deletes.SOURCE_NOT_NULL] = True
        check_table_settings(SOURCE_NAME, table, primary_key, cursor, list(sql_columns), naming)
        decimals = _numeric_as_text(resource, sql_columns)
        rules = TableRules(
            SOURCE_NAME,
            f"{schema}.{table}",
            raw_table,
            tuple(primary_key),
            cursor,
            policy,
            decimals,
        )
        # the quarantine table's own hints: a variant made on the fly would start from
        # this table's columns (dlt copies the resource's hints into a new variant)
        resource._set_hints(quarantine_hints, create_table_variant=True)
        if backend == "connectorx":  # values judged in arrow (see values.py)
            resource.add_map(Unrepresentable(sql_columns))
        resource.add_map(LagWindowFilter(table, primary_key, cursor, lag_seconds))
        resource.add_map(add_load_metadata(SOURCE_NAME))
        resource.add_yield_map(RowQuarantine(rules, quarantine_hints))
        yield resource
        if deletes_mode == "reconcile":
            tombstones = deletes.tombstones(
                raw=raw_url,
                source=SOURCE_NAME,
                table=table,
                raw_table=raw_table,
                spec=spec,
                credentials=credentials,
                schema=schema,
                write_disposition=write_disposition,
                every=every,
                lag_seconds=lag_seconds,
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


def _count_deletes(report: Any) -> None:
    """Tombstones are rows of their table: report them as `deleted`, not as loaded rows."""
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


def cursor_incremental(table: str, cursor: str, lag_seconds: float) -> Any:
    """dlt's incremental on `cursor`; NULL cursors pass to the row quarantine."""
    try:
        return dlt.sources.incremental(cursor, lag=lag_seconds, on_cursor_value_missing="include")
    except Exception as exc:  # jsonpath_ng's parser errors name nothing
        raise IdentifierError(
            f"sources.{SOURCE_NAME}.tables.{table}.cursor: {cursor!r} is not a usable cursor"
            " name (dlt reads it as a JSON path: spaces, dots and quotes are not allowed);"
            " expose the column under a plain name through a view"
        ) from exc


def prepare_source(source: Any) -> Any:
    """Run dlt's incremental step before the row quarantine, not after it.

    dlt appends the incremental step last when the source is built; the quarantine step
    yields rejected rows for another table, which the incremental step must not see
    (their cursor is often the reason they were rejected).
    """
    from dlt.extract.incremental import IncrementalResourceWrapper

    from loaders.shop.values import RowQuarantine

    for resource in source.resources.values():
        steps = resource._pipe._steps
        wrapper = next((s for s in steps if isinstance(s, IncrementalResourceWrapper)), None)
        quarantine = next(
            (i for i, s in enumerate(steps) if isinstance(_step_function(s), RowQuarantine)),
            None,
        )
        if wrapper is not None and quarantine is not None and steps.index(wrapper) > quarantine:
            steps.remove(wrapper)
            steps.insert(quarantine, wrapper)
    return source


# table name -> its sqlalchemy columns, seen by the table adapter while sql_table reflects
_remembered: dict[str, dict[str, Any]] = {}


def _remember_columns(table: Any) -> None:
    _remembered[table.name] = {column.name: column for column in table.columns}


def _adapt_table(table: Any, primary_key: list[str]) -> None:
    _remember_columns(table)
    _not_null[table.name] = {c.name for c in table.columns if not c.nullable}
    deletes.make_nullable(table, primary_key)


# table name -> its NOT NULL columns in the source (raw's are nullable: tombstones)
_not_null: dict[str, set[str]] = {}


def _numeric_as_text(resource: DltResource, sql_columns: dict[str, Any]) -> dict[str, Any]:
    """Numeric columns are read as text (values.safe_select). A bounded one is cast back to
    its exact arrow decimal; an unbounded one (or wider than arrow's 38 digits) is typed
    text in raw, so no digit is lost (dlt would make it numeric(38,9))."""
    decimals = {}
    for name, column in sql_columns.items():
        if not is_numeric(column):
            continue
        decimal = exact_decimal(column)
        if decimal is not None:
            decimals[name] = decimal
            continue
        hint = resource.columns.get(name) if isinstance(resource.columns, dict) else None
        if hint is not None:
            hint.pop("precision", None)
            hint.pop("scale", None)
            hint["data_type"] = "text"
    return decimals


def versioning(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each table's key and cursor, as its staging model dedupes (for loaders/compaction.py)."""
    from loaders.compaction import Versioning

    tables = (overrides or {}).get("tables") or dlt.config.get("sources.shop.tables", dict)
    mode = (overrides or {}).get("mode") or dlt.config.get("sources.shop.mode", str) or "cursor"
    return {
        table: Versioning(
            tuple(spec["primary_key"]),
            spec.get("cursor", "updated_at"),
            # a cursor read is one snapshot of the table; a replication slot may hold many
            # changes of a key
            one_version_per_load=spec.get("mode", mode) == "cursor",
        )
        for table, spec in tables.items()
        if spec.get("primary_key")
    }


def _backend_kwargs(backend: str, chunk_size: int, credentials: Any = None) -> dict[str, Any]:
    if backend == "connectorx":
        kwargs: dict[str, Any] = {"return_type": "arrow_stream", "batch_size": chunk_size}
        # sslmode verify-full: connectorx verifies against sslrootcert under another name
        tls = connectorx_url(credentials) if isinstance(credentials, str) else None
        if tls:
            kwargs["conn"] = tls
        return kwargs
    return {}


def _reflect(credentials: Any, schema: str, tables: dict[str, Any], mode: str) -> Any:
    """The cursor tables' definitions, reflected together for sql_table to reuse.

    SQLAlchemy reflects many tables with the same few catalog queries it runs for one, and
    compiles them once; table by table, the reflection was most of a no-op load of this
    source. A configured table not found here (a view, a missing table) is left to
    sql_table, which reflects it alone and names it when it is missing.
    """
    import sqlalchemy as sa
    from dlt.sources.sql_database.helpers import engine_from_credentials

    wanted = {name for name, spec in tables.items() if spec.get("mode", mode) == "cursor"}
    metadata = sa.MetaData(schema=schema)
    if not wanted:
        return metadata
    engine = engine_from_credentials(credentials)
    try:
        metadata.reflect(engine, only=lambda name, _meta: name in wanted, resolve_fks=False)
    finally:
        engine.dispose()
    return metadata


def _sqlalchemy_url(credentials: Any) -> Any:
    """SQLAlchemy 2.1 reads a bare postgresql:// URL as psycopg 3; name psycopg2 explicitly."""
    if isinstance(credentials, str) and credentials.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg2://" + credentials.split("://", 1)[1]
    return credentials


def after_load(pipeline: Any, report: Any, overrides: dict[str, Any] | None = None) -> None:
    """Publish rejected rows to elt_audit.quarantine; per table: read = loaded + quarantined.
    The load is recorded: the replication slot may now forget the changes it holds."""
    replication.confirm_pending(SOURCE_NAME)
    deletes.commit_checks(SOURCE_NAME)  # their tombstones are visible now
    _count_deletes(report)
    load_ids = [*report.resumed_load_ids, *report.load_ids]
    tables = (overrides or {}).get("tables") or dlt.config.get(
        f"sources.{SOURCE_NAME}.tables", dict
    )
    naming = pipeline.default_schema.naming
    keys = {  # raw table -> (source name, raw name) of each key column
        naming.normalize_table_identifier(table): [
            (column, naming.normalize_identifier(column))
            for column in spec.get("primary_key") or []
        ]
        for table, spec in (tables or {}).items()
    }
    with pipeline.sql_client() as client:
        q.publish(client, SOURCE_NAME, report.dataset)
        rejected = q.rejected_by_table(client, report.dataset, load_ids)
        for table in report.rows:
            if keys.get(table):
                q.supersede_rows(client, SOURCE_NAME, report.dataset, table, keys[table], load_ids)
    for table in sorted(set(report.rows) | set(rejected)):
        reasons = rejected.get(table, {})
        quarantined = sum(reasons.values())
        loaded = report.rows.get(table, 0)
        report.counts[table] = {
            "read": loaded + quarantined,
            "loaded": loaded,
            "quarantined": quarantined,
        }
        if quarantined:
            why = "; ".join(f"{reason} ({count})" for reason, count in sorted(reasons.items()))
            report.notes.append(
                f"load {SOURCE_NAME}: {table}: {quarantined:,} row(s) quarantined: {why}"
                f" (elt quarantine list --feed {table})"
            )


def _step_function(step: Any) -> Any:
    return getattr(step, "_f", None) or getattr(step, "_f_meta", None)


__all__ = ["SOURCE_NAME", "after_load", "explain_failure", "shop", "versioning"]
