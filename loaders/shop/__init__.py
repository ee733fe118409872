"""The `shop` source: tables of a Postgres application database, read with dlt's sql_database.

Which tables, their primary keys and cursor columns are configuration
(`[sources.shop.tables.<name>]` in `.dlt/config.toml`), so adding a table needs no code.
Extraction streams arrow batches through connectorx (measured ~5x faster than the
default sqlalchemy backend, see bench/README.md) and bounded in memory by `chunk_size`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources import DltResource
from dlt.sources.sql_database import sql_table

from loaders.lag_window import LagWindowFilter
from loaders.metadata import add_load_metadata
from loaders.shop.timeouts import explain_failure, with_timeouts

SOURCE_NAME = "shop"
ARROW_BACKENDS = ("connectorx", "pyarrow")


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def shop(
    credentials: str = dlt.secrets.value,
    tables: dict[str, Any] = dlt.config.value,
    schema: str = "public",
    backend: str = "connectorx",
    chunk_size: int = 100_000,
    lag_seconds: float = 600,
    connect_timeout_seconds: float = 10,
    statement_timeout_seconds: float = 600,
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

    `connect_timeout_seconds` and `statement_timeout_seconds` bound every connection and
    statement (reflection and extraction alike), so a host that accepts and never answers,
    or a table locked by another session, fails the load naming the bound instead of
    hanging it (see timeouts.py).
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
    for table, spec in tables.items():
        primary_key = list(spec["primary_key"])
        cursor = spec.get("cursor", "updated_at")
        resource = sql_table(
            credentials=credentials,
            table=table,
            schema=schema,
            backend=backend,
            chunk_size=chunk_size,
            backend_kwargs=_backend_kwargs(backend, chunk_size),
            reflection_level="full_with_precision",
            incremental=dlt.sources.incremental(cursor, lag=lag_seconds),
            write_disposition="append",
            primary_key=primary_key,
        )
        resource.add_map(LagWindowFilter(table, primary_key, cursor, lag_seconds))
        resource.add_map(add_load_metadata(SOURCE_NAME))
        yield resource


def versioning(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each table's key and cursor, as its staging model dedupes (for loaders/compaction.py)."""
    from loaders.compaction import Versioning

    tables = (overrides or {}).get("tables") or dlt.config["sources.shop.tables"]
    return {
        table: Versioning(tuple(spec["primary_key"]), spec.get("cursor", "updated_at"))
        for table, spec in tables.items()
    }


def _backend_kwargs(backend: str, chunk_size: int) -> dict[str, Any]:
    if backend == "connectorx":
        return {"return_type": "arrow_stream", "batch_size": chunk_size}
    return {}


def _sqlalchemy_url(credentials: Any) -> Any:
    """SQLAlchemy 2.1 reads a bare postgresql:// URL as psycopg 3; name psycopg2 explicitly."""
    if isinstance(credentials, str) and credentials.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg2://" + credentials.split("://", 1)[1]
    return credentials


__all__ = ["SOURCE_NAME", "explain_failure", "shop", "versioning"]
