"""Build and run the dlt pipeline of one source into the warehouse's raw_<source> schema.

This is the only place a pipeline is built. It finishes a load package left pending by
an earlier, killed run before extracting anew (dlt's `run()` would load the pending
package and return without extracting), and reports rows per table and schema changes.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders import SOURCES, dataset_name

# dlt writes parquet from the arrow batches and loads it into Postgres through ADBC
LOADER_FILE_FORMAT = "parquet"


@dataclass
class LoadReport:
    """What one `load` of one source did; plain data for the CLI to render."""

    source: str
    dataset: str
    rows: dict[str, int] = field(default_factory=dict)
    new_tables: list[str] = field(default_factory=list)
    new_columns: list[dict[str, str]] = field(default_factory=list)
    load_ids: list[str] = field(default_factory=list)
    resumed_load_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # sources that quarantine rows (loaders/quarantine.py) fill these in their after_load
    quarantine: dict[str, dict[str, Any]] = field(default_factory=dict)
    replayed: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    type_changes: list[dict[str, str]] = field(default_factory=list)

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
            "load_ids": self.load_ids,
            "resumed_load_ids": self.resumed_load_ids,
            "seconds": round(self.seconds, 3),
            "quarantine": self.quarantine,
            "replayed": self.replayed,
            "skipped_files": self.skipped_files,
            "type_changes": self.type_changes,
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
    return factory(**overrides)


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
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    credentials = PostgresCredentials(destination_url)
    if credentials.password is None:
        credentials.password = ""  # trust auth (the embedded warehouse): dlt wants a value
    return dlt.pipeline(
        pipeline_name=f"elt_{source}",
        destination=dlt.destinations.postgres(credentials=credentials),
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

    `build(pipeline)` returns what to extract instead of the configured source (replay
    uses it). A source module's `after_load(pipeline, report, overrides)` runs last.
    """
    started = time.monotonic()
    stage = on_stage or (lambda _name: None)
    pipeline = pipeline_for(source, destination_url, pipelines_dir, progress)
    report = LoadReport(source=source, dataset=dataset_name(source))

    if pipeline.has_pending_data:
        stage("finishing a pending load package")
        pending = list(pipeline.list_extracted_load_packages()) + list(
            pipeline.list_normalized_load_packages()
        )
        pipeline.normalize()
        load_info = pipeline.load()
        _count_loaded_rows(report, pipeline, pending)
        _collect(report, None, load_info, set())
        report.resumed_load_ids = pending
    else:
        # an ephemeral runner has no local state: take it (and the schema) from the warehouse
        stage("syncing state")
        pipeline.sync_destination()
    known_tables = set(pipeline.default_schema.tables) if pipeline.default_schema_name else set()

    stage("extracting")
    data = build(pipeline) if build else build_source(source, **(source_overrides or {}))
    pipeline.extract(data, loader_file_format=LOADER_FILE_FORMAT)
    stage("normalizing")
    normalized = pipeline.normalize()
    stage("loading")
    _collect(report, normalized, pipeline.load(), known_tables)
    after_load = source_hook(source, "after_load")
    if after_load is not None:
        stage("bookkeeping")
        after_load(pipeline, report, source_overrides)
    report.seconds = time.monotonic() - started
    return report


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
    report: LoadReport, normalize_info: Any, load_info: Any, known_tables: set[str]
) -> None:
    """Add the row counts and schema changes of a finished load to the report.

    Columns of tables the schema already knew are reported one by one; a new table is
    reported once, not as a list of every column it was created with.
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
            if table_name not in known_tables:
                if table_name not in report.new_tables:
                    report.new_tables.append(table_name)
                continue
            for column in table.get("columns", {}).values():
                report.new_columns.append(
                    {
                        "table": table_name,
                        "column": column["name"],
                        "data_type": column.get("data_type", "unknown"),
                    }
                )
