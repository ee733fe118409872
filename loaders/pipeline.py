"""Build and run the dlt pipeline of one source into the warehouse's raw_<source> schema.

This is the only place a pipeline is built. It finishes a load package left pending by
an earlier, killed run before extracting anew (dlt's `run()` would load the pending
package and return without extracting), and reports rows per table and schema changes.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders import SOURCES, dataset_name, kill_switch, stops
from loaders.compaction import tables_with_rows
from loaders.schema_evolution import (
    ContractConfigError,
    FrozenDroppedColumn,
    FrozenTypeChange,
    TypeChange,
    contract_for,
    find_dropped_columns,
    find_type_changes,
    keep_dropped_columns,
    mark_gone_columns,
    route_type_changes,
    split_variant,
)

# dlt writes parquet from the arrow batches and loads it into Postgres through ADBC
LOADER_FILE_FORMAT = "parquet"


def _bound_memory() -> None:
    """Peak memory of a large load: what is held per file, and what arrow gives back.

    The ADBC PostgreSQL driver holds every row of one ingest: dlt's own switch makes it
    one ingest per parquet row group (one extracted batch). Arrow's default allocator
    (mimalloc) keeps freed batches; jemalloc returns them to the system, so extraction's
    batches do not stay in the process while the files load. For all sources.
    """
    import pyarrow as pa
    from dlt.destinations.impl.postgres.postgres import PostgresParquetCopyJob

    PostgresParquetCopyJob._ingest_per_rowgroup = True
    with contextlib.suppress(NotImplementedError):  # an arrow built without jemalloc
        pa.set_memory_pool(pa.jemalloc_memory_pool())


@dataclass
class LoadReport:
    """What one `load` of one source did; plain data for the CLI to render."""

    source: str
    dataset: str
    rows: dict[str, int] = field(default_factory=dict)
    new_tables: list[str] = field(default_factory=list)
    new_columns: list[dict[str, str]] = field(default_factory=list)
    type_changes: list[TypeChange] = field(default_factory=list)
    schema_contract: dict[str, str] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    resumed_load_ids: list[str] = field(default_factory=list)
    stops: list[stops.Stop] = field(default_factory=list)
    seconds: float = 0.0
    # sources that quarantine rows (loaders/quarantine.py) fill these in their after_load
    quarantine: dict[str, dict[str, Any]] = field(default_factory=dict)
    replayed: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    # a file whose column does not have the feed's declared type (its rows quarantined)
    file_type_changes: list[dict[str, str]] = field(default_factory=list)
    # per table: rows read, loaded (reached raw), quarantined, duplicates_in_batch
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # one-line announcements: columns that disappeared, rows quarantined, empty files
    notes: list[str] = field(default_factory=list)
    # what the compaction after this load removed (loaders/compaction.py), when it ran
    compaction: dict[str, Any] | None = None
    # keys gone from the source, per table: tombstones appended (loaders/shop/deletes.py)
    deleted: dict[str, int] = field(default_factory=dict)
    # loaded tables holding rows before this run's extraction (loaders/compaction.py); None:
    # not known
    had_rows: frozenset[str] | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dataset": self.dataset,
            "rows": self.rows,
            "total_rows": self.total_rows,
            "new_tables": self.new_tables,
            "new_columns": self.new_columns,
            "type_changes": [change.as_dict() for change in self.type_changes],
            "schema_contract": self.schema_contract,
            "load_ids": self.load_ids,
            "resumed_load_ids": self.resumed_load_ids,
            "status": "stopped" if self.stops else "success",
            "stops": [stop.as_dict() for stop in self.stops],
            "seconds": round(self.seconds, 3),
            "quarantine": self.quarantine,
            "replayed": self.replayed,
            "skipped_files": self.skipped_files,
            "file_type_changes": self.file_type_changes,
            "counts": self.counts,
            "notes": self.notes,
            "compaction": self.compaction,
            "deleted": self.deleted,
        }


class _QuietArrowHintMerge(logging.Filter):
    """Drop dlt's warning that arrow and reflected column hints differ.

    connectorx marks every arrow field nullable while the reflected table knows the
    NOT NULL columns; dlt keeps the reflected hints, which is what we want, and warns
    on every table of every run. Type changes still surface as schema updates.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "several column hints were different" not in record.getMessage()


logging.getLogger("dlt").addFilter(_QuietArrowHintMerge())


def build_source(name: str, **overrides: Any) -> Any:
    """The configured dlt source `name`; keyword overrides win over `.dlt/` configuration."""
    module_name, function = SOURCES[name].split(":")
    factory = getattr(importlib.import_module(module_name), function)
    built = factory(**overrides)
    prepare = source_hook(name, "prepare_source")  # steps dlt orders only once it is built
    return prepare(built) if prepare is not None else built


def source_hook(name: str, hook: str) -> Callable[..., Any] | None:
    """An optional function of the source's module, e.g. `after_load` or `replay`."""
    return getattr(importlib.import_module(SOURCES[name].split(":")[0]), hook, None)


def is_data_table(table: str) -> bool:
    """dlt's own tables and a source's bookkeeping tables (`_elt_*`) are not loaded data."""
    return not table.startswith(("_dlt", "_elt_"))


def pipeline_for(
    source: str, destination_url: str, pipelines_dir: Path, progress: Any = None
) -> Any:
    import dlt

    from runtime import engines

    _bound_memory()
    return dlt.pipeline(
        pipeline_name=f"elt_{source}",
        destination=engines.dlt_destination(destination_url),
        dataset_name=dataset_name(source),
        pipelines_dir=str(pipelines_dir),
        **({"progress": progress} if progress is not None else {}),
    )


def run(
    source: str,
    *,
    destination_url: str,
    pipelines_dir: Path,
    source_overrides: dict[str, Any] | None = None,
    progress: Any = None,
    on_stage: Callable[[str], None] | None = None,
    build: Callable[[Any], Any] | None = None,
) -> LoadReport:
    """Finish pending packages, then extract, normalize and load `source` once.

    The source's schema contract (`[sources.<name>.schema_contract]`) applies to the
    extraction; under `data_type = "evolve"` a changed column type goes to a variant column
    (see loaders/schema_evolution.py), reported in `type_changes`. A source that stopped
    early on purpose (see loaders/stops.py) still has what it extracted loaded; its stops
    are in the report for the caller to act on.
    `build(pipeline)` returns what to extract instead of the configured source (replay
    uses it). A source module's `after_load(pipeline, report, overrides)` runs last.
    """
    started = time.monotonic()
    kill_switch.install()  # a test hook; nothing unless ELT_TEST_KILL_AT is set
    stage = on_stage or (lambda _name: None)
    contract = contract_for(source)
    pipeline = pipeline_for(source, destination_url, pipelines_dir, progress)
    report = LoadReport(source=source, dataset=dataset_name(source), schema_contract=contract)

    if pipeline.has_pending_data:
        stage("finishing a pending load package")
        pending = list(pipeline.list_extracted_load_packages()) + list(
            pipeline.list_normalized_load_packages()
        )
        pipeline.normalize()
        load_info = _load(pipeline, pipelines_dir, source)
        _count_loaded_rows(report, pipeline, pending)
        _collect(report, None, load_info, {})
        report.resumed_load_ids = pending
    else:
        # an ephemeral runner has no local state: take it (and the schema) from the warehouse
        stage("syncing state")
        pipeline.sync_destination()
    known = _known_columns(pipeline)
    report.had_rows = tables_with_rows(destination_url, source)

    stage("extracting")
    stops.take(source)  # forget stops of an earlier run in this process
    if build is not None:  # a replay of rows the source already knows: no new schema
        dlt_source, changes = build(pipeline), []
    else:
        dlt_source = build_source(source, **(source_overrides or {}))
        changes = find_type_changes(dlt_source, known)
    if build is None:
        report.notes += _dropped_columns(source, pipeline, dlt_source, known, contract)
    if changes and contract["data_type"] == "freeze":
        raise FrozenTypeChange(source, changes)
    if changes and contract["data_type"] != "evolve":
        # dlt's discard modes drop whole arrow columns or batches: rows or values lost
        # silently at best, an unloadable package at worst
        raise ContractConfigError(
            f"[sources.{source}.schema_contract] data_type = {contract['data_type']!r} cannot"
            f" apply to the type change of {changes[0].table}.{changes[0].column}: this source's"
            ' columns are typed; use "evolve" (variant column) or "freeze"'
        )
    if changes:
        route_type_changes(dlt_source, changes)
        # before extracting: a package left pending by a kill must still load
        _allow_nulls(pipeline, changes)
    pipeline.extract(dlt_source, loader_file_format=LOADER_FILE_FORMAT, schema_contract=contract)
    kill_switch.at(kill_switch.EXTRACTED)
    stage("normalizing")
    normalized = pipeline.normalize()
    kill_switch.at(kill_switch.NORMALIZED)
    stage("loading")
    _collect(report, normalized, _load(pipeline, pipelines_dir, source), known)
    report.stops = stops.take(source)
    after_load = source_hook(source, "after_load")
    if after_load is not None:
        stage("bookkeeping")
        after_load(pipeline, report, source_overrides)
    report.seconds = time.monotonic() - started
    return report


def _dropped_columns(
    source: str, pipeline: Any, dlt_source: Any, known: dict[str, Any], contract: dict[str, str]
) -> list[str]:
    """Columns the source stopped delivering: refused under `columns = "freeze"`, else kept
    in raw (nullable, NULL in new rows, marked for `elt test`); one note each."""
    dropped = find_dropped_columns(dlt_source, known)
    if dropped and contract["columns"] == "freeze":
        raise FrozenDroppedColumn(source, dropped)
    if dropped:
        keep_dropped_columns(dlt_source, dropped)
        _allow_nulls(pipeline, dropped)
    if known:
        with pipeline.sql_client() as client:
            mark_gone_columns(client, dropped, known)
    return [column.describe(source) for column in dropped]


def _load(pipeline: Any, pipelines_dir: Path, source: str) -> Any:
    """dlt's load; a package refused for its data is moved aside (loaders/packages.py)."""
    try:
        return pipeline.load()
    except Exception as exc:
        from loaders.packages import move_aside_if_data_failure

        move_aside_if_data_failure(exc, pipeline, pipelines_dir, source)
        raise


def _known_columns(pipeline: Any) -> dict[str, dict[str, Any]]:
    """Tables and columns of the pipeline's stored schema, before this run changes it."""
    if not pipeline.default_schema_name:
        return {}
    return {
        name: {column: dict(schema) for column, schema in table.get("columns", {}).items()}
        for name, table in pipeline.default_schema.tables.items()
    }


def _allow_nulls(pipeline: Any, changes: list[Any]) -> None:
    """A column whose values moved to a variant gets no value in new rows: drop NOT NULL.

    dlt only ever adds columns to existing tables, so this is done here, in the dataset
    and in the staging dataset merges go through (each only if the table exists).
    """
    with pipeline.sql_client() as client:
        _drop_not_null(client, changes)
        with client.with_staging_dataset():
            _drop_not_null(client, changes)


def _drop_not_null(client: Any, changes: list[Any]) -> None:
    for change in changes:
        table = client.make_qualified_table_name(change.table)
        column = client.escape_column_name(change.column)
        client.execute_sql(f"alter table if exists {table} alter column {column} drop not null")


def _count_loaded_rows(report: LoadReport, pipeline: Any, load_ids: list[str]) -> None:
    """Rows a resumed package brought, counted in the warehouse (its normalize ran earlier)."""
    with pipeline.sql_client() as client:
        for table in filter(is_data_table, pipeline.default_schema.data_table_names()):
            name = client.make_qualified_table_name(table)
            placeholders = ", ".join(["%s"] * len(load_ids))
            rows = client.execute_sql(
                f"select count(*) from {name} where _dlt_load_id in ({placeholders})", *load_ids
            )
            if rows and rows[0][0]:
                report.rows[table] = report.rows.get(table, 0) + rows[0][0]


def _collect(
    report: LoadReport, normalize_info: Any, load_info: Any, known: dict[str, dict[str, Any]]
) -> None:
    """Add the row counts and schema changes of a finished load to the report.

    Columns of tables the schema already knew are reported one by one; a new table is
    reported once, not as a list of every column it was created with. A new variant
    column (`<column>__v_<type>`, made by dlt for JSON or by route_type_changes) is a
    type change of its column: reported with the old and the new type.
    """
    if normalize_info is not None:
        for table, count in normalize_info.row_counts.items():
            if is_data_table(table) and count:
                report.rows[table] = report.rows.get(table, 0) + count
    for package in load_info.load_packages:
        report.load_ids.append(package.load_id)
        for table_name, table in (package.schema_update or {}).items():
            if not is_data_table(table_name):
                continue
            if table_name not in known:
                if table_name not in report.new_tables:
                    report.new_tables.append(table_name)
                continue
            for column in table.get("columns", {}).values():
                variant = split_variant(column["name"])
                stored = known[table_name].get(variant[0]) if variant else None
                if variant and stored:
                    report.type_changes.append(
                        TypeChange(
                            table=table_name,
                            column=variant[0],
                            old_type=stored.get("data_type", "unknown"),
                            new_type=column.get("data_type", variant[1]),
                            variant_column=column["name"],
                        )
                    )
                    continue
                report.new_columns.append(
                    {
                        "table": table_name,
                        "column": column["name"],
                        "data_type": column.get("data_type", "unknown"),
                    }
                )
