"""The `marketing` source: CSV, JSONL and Parquet drops in a landing folder, one feed per glob.

Built on dlt's filesystem source: `filesystem()` lists each feed's files, incremental on
`modification_date`, so a file is read once and again only when it changes. dlt's own
readers would fail a whole file on one bad row (or need pandas/duckdb and coerce what
they cannot parse), so each file goes through this package's row parsers instead
(`parsers.py`): every row is either loaded, typed as the feed declares, or rejected
with a reason into the quarantine (see loaders/quarantine.py). Rows keep their file
and line (`_elt_file`, `_elt_line`, `_elt_file_modified_at`); feed tables are an
append-only log keyed on the feed's key: a re-delivered file appends new versions, and
staging keeps the one of the latest file time, then the latest load, so it does not
duplicate rows (superseded versions go at compaction, loaders/compaction.py).

Feeds are configuration: `[sources.marketing.feeds.<name>]` in `.dlt/config.toml`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.sources import DltResource
from dlt.sources.filesystem import filesystem

from loaders import quarantine as q
from loaders.marketing import landing, poison
from loaders.marketing.feeds import FILE_COLUMN, LINE_COLUMN, MODIFIED_COLUMN, Feed, parse_feeds
from loaders.marketing.parsers import DEFAULT_CHUNK_ROWS, PARSERS
from loaders.marketing.rows import Batch
from loaders.metadata import EXTRACTED_AT_COLUMN, SOURCE_COLUMN, add_load_metadata

SOURCE_NAME = "marketing"
DEFAULT_MAX_QUARANTINE_SHARE = 0.1


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def marketing(
    feeds: dict[str, Any] = dlt.config.value,
    bucket_url: str = landing.DEFAULT_BUCKET_URL,
    credentials: Any = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_decompressed_bytes: int = poison.DEFAULT_MAX_DECOMPRESSED_BYTES,
    max_decompression_ratio: float = poison.DEFAULT_MAX_DECOMPRESSION_RATIO,
) -> Iterator[DltResource]:
    """One append resource per feed, plus bookkeeping tables (files read, rejected rows).

    `bucket_url` is a local folder (relative to the project) or any location dlt's
    filesystem source supports, with `credentials` for it; `chunk_rows` bounds how many
    rows are held in memory per file. A compressed file that expands past
    `max_decompressed_bytes` or `max_decompression_ratio` times its size is quarantined
    whole (loaders/marketing/poison.py).
    """
    specs = parse_feeds(feeds)
    bucket_url = landing.resolve_bucket_url(bucket_url, dlt.current.run_context().run_dir)
    yield _materialize(specs)
    for feed in specs.values():
        yield _feed_resource(
            feed,
            bucket_url,
            credentials,
            chunk_rows,
            (int(max_decompressed_bytes), float(max_decompression_ratio)),
        )


def feed_columns(feed: Feed) -> dict[str, dict[str, Any]]:
    """The feed table's declared and lineage columns, plus the load metadata columns."""
    return {
        **feed.dlt_columns(),
        SOURCE_COLUMN: {"name": SOURCE_COLUMN, "data_type": "text"},
        EXTRACTED_AT_COLUMN: {
            "name": EXTRACTED_AT_COLUMN,
            "data_type": "timestamp",
            "timezone": True,
        },
    }


def _materialize(specs: dict[str, Feed]) -> DltResource:
    """Create the feed tables on the first run even when no file has landed yet, so the
    dbt models over them build (and report staleness) instead of failing."""

    @dlt.resource(name="_elt_tables")
    def tables() -> Iterator[Any]:
        schema = dlt.current.source_schema()
        check_declared_types(schema, specs)
        known = schema.tables
        for feed in specs.values():
            if feed.name in known:
                continue
            hints = feed_hints(feed)
            # dlt's ADBC parquet job cannot load an empty file; an empty insert is fine
            hints["file_format"] = "insert_values"
            # the empty item goes through dlt's JSON normalizer, which would add a NOT NULL
            # _dlt_id the arrow rows of later loads do not have
            hints["columns"]["_dlt_id"] = {
                "name": "_dlt_id",
                "data_type": "text",
                "nullable": True,
                "row_key": False,
                "unique": False,
            }
            yield dlt.mark.with_hints(
                dlt.mark.materialize_table_schema(), hints, create_table_variant=True
            )

    return tables


def check_declared_types(schema: Any, specs: dict[str, Feed]) -> None:
    """Refuse a declared type that differs from the type a raw column already has.

    dlt does not alter a loaded column's type, and arrow data of another type would be
    rejected by (or worse, converted in) the database: a configuration error, said early.
    """
    for feed in specs.values():
        table = schema.tables.get(feed.name)
        if not table:
            continue
        for name, declared in feed.columns.items():
            existing = table["columns"].get(schema.naming.normalize_identifier(name), {})
            if "data_type" not in existing:
                continue
            loaded = {
                k: existing.get(k)
                for k in ("data_type", "precision", "scale")
                if k in declared.hint
            }
            wanted = {k: declared.hint[k] for k in loaded}
            if loaded != wanted:
                found = existing["data_type"] + (
                    f"({existing.get('precision')},{existing.get('scale')})"
                    if existing["data_type"] == "decimal"
                    else ""
                )
                raise ValueError(
                    f"feed {feed.name}: column {name} is declared {declared.name} but "
                    f"raw_{SOURCE_NAME}.{feed.name}.{name} was loaded as {found}; a loaded "
                    "column's type cannot change in place (declare it under a new name, or "
                    "drop the raw column to reload the feed)"
                )


def _bookkeeping(table: str, columns: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
    hints = dlt.mark.make_hints(
        table_name=table, write_disposition="append", primary_key="", columns=columns
    )
    return dlt.mark.with_hints(rows, hints, create_table_variant=True)


def _feed_resource(
    feed: Feed, bucket_url: str, credentials: Any, chunk_rows: int, limits: tuple[int, float]
) -> DltResource:
    files = filesystem(
        bucket_url=bucket_url,
        credentials=credentials if credentials is not None else dlt.secrets.value,
        file_glob=feed.file_glob,
        incremental=dlt.sources.incremental("modification_date", row_order="asc"),
    ).with_name(f"{feed.name}_files")
    add_metadata = add_load_metadata(SOURCE_NAME)
    hints = feed_hints(feed)

    def read_files(items: list[Any]) -> Iterator[Any]:
        for item in items:
            for table in read_file(feed, item, bucket_url, chunk_rows, add_metadata, limits):
                if isinstance(table, pa.Table):
                    table = dlt.mark.with_hints(table, hints, create_table_variant=True)
                yield table

    # no resource-level hints: a table variant starts from them, and the bookkeeping
    # tables must not inherit the feed's columns and key; each item says its table
    return dlt.transformer(read_files, data_from=files, name=feed.name)


def feed_hints(feed: Feed) -> Any:
    return dlt.mark.make_hints(
        table_name=feed.name,
        write_disposition="append",
        primary_key=list(feed.primary_key),
        columns=feed_columns(feed),
        file_format="parquet",
    )


def read_file(
    feed: Feed,
    item: Any,
    bucket_url: str,
    chunk_rows: int,
    add_metadata: Any,
    limits: tuple[int, float] = (
        poison.DEFAULT_MAX_DECOMPRESSED_BYTES,
        poison.DEFAULT_MAX_DECOMPRESSION_RATIO,
    ),
) -> Iterator[Any]:
    """The rows of one file (typed arrow tables), its rejected rows and its manifest row."""
    file = str(item["relative_path"])
    modified_at = item["modification_date"]
    manifest = {
        "feed": feed.name,
        "file": file,
        "file_modified_at": modified_at,
        "format": feed.format,
        "size_bytes": item.get("size_in_bytes"),
        "rows_in": 0,
        "rows_loaded": 0,
        "rows_quarantined": 0,
    }
    skip = landing.outside_reason(item, bucket_url)
    if skip is not None:
        yield _bookkeeping(
            q.FILES_TABLE, q.FILES_COLUMNS, [{**manifest, "status": "skipped", "detail": skip}]
        )
        return
    poisoned = poison.decompression_problem(item, *limits)
    if poisoned is not None:
        yield _bookkeeping(
            q.FILES_TABLE, q.FILES_COLUMNS, [{**manifest, **_quarantined_whole(poisoned)}]
        )
        return
    header = _csv_header(item, feed) if feed.format == "csv" else None
    type_changes: list[dict[str, str]] = []
    duplicates = 0
    try:
        with item.open(mode="rb") as stream:
            for batch in PARSERS[feed.format](stream, feed, chunk_rows):
                table, dropped = last_line_wins(batch.table, feed.primary_key)
                duplicates += dropped
                manifest["rows_in"] += batch.rows_in
                manifest["rows_loaded"] += batch.rows_loaded - dropped
                manifest["rows_quarantined"] += len(batch.rejected)
                type_changes += batch.type_changes
                if table is not None and table.num_rows:
                    yield add_metadata(with_lineage(table, file, modified_at))
                if batch.rejected:
                    rows = quarantine_rows(feed, file, modified_at, header, batch)
                    yield _bookkeeping(q.QUARANTINE_TABLE, q.QUARANTINE_COLUMNS, rows)
    except poison.PoisonFile as exc:
        # rows of earlier chunks (chunk_rows each) were handed on already: said, not hidden
        loaded = manifest["rows_loaded"]
        reason = exc.reason + (f" ({loaded:,} rows before it loaded)" if loaded else "")
        yield _bookkeeping(
            q.FILES_TABLE, q.FILES_COLUMNS, [{**manifest, **_quarantined_whole(reason)}]
        )
        return
    manifest.update(
        status="loaded",
        type_changes=type_changes or None,
        duplicates_in_batch=duplicates,
        detail=_empty_detail(feed, manifest["rows_in"], header),
    )
    yield _bookkeeping(q.FILES_TABLE, q.FILES_COLUMNS, [manifest])


def _quarantined_whole(reason: str) -> dict[str, Any]:
    return {"status": poison.STATUS, "detail": f"quarantined whole: {reason}"}


def _empty_detail(feed: Feed, rows_in: int, header: str | None) -> str | None:
    if rows_in:
        return None
    return "header only: no rows" if feed.format == "csv" and header else "empty file: no rows"


def last_line_wins(table: pa.Table | None, key: tuple[str, ...]) -> tuple[pa.Table | None, int]:
    """Of rows sharing a key in one chunk, keep the last line; the others are counted as
    `duplicates_in_batch` (a merge would keep one of them at random, and count them all)."""
    if table is None or table.num_rows < 2:
        return table, 0
    last = (
        table.select([*key, LINE_COLUMN])  # a line number is unique within a file
        .group_by(list(key), use_threads=False)
        .aggregate([(LINE_COLUMN, "max")])
    )[f"{LINE_COLUMN}_max"]
    if len(last) == table.num_rows:
        return table, 0
    keep = pc.is_in(table[LINE_COLUMN], value_set=last)
    return table.filter(keep), table.num_rows - len(last)


def _csv_header(item: Any, feed: Feed) -> str | None:
    """The header line as text (kept with each rejected CSV row, so replay can parse it)."""
    with item.open(mode="rb") as stream:
        first = stream.readline(1024 * 1024)
    try:
        text = first.decode(feed.encoding).rstrip("\r\n")
    except UnicodeDecodeError:
        return None
    return text.removeprefix("\ufeff")


def with_lineage(table: pa.Table, file: str, modified_at: Any) -> pa.Table:
    """Append `_elt_file` and `_elt_file_modified_at`, the same for every row of a file."""
    rows = table.num_rows
    files = pa.repeat(pa.scalar(file, pa.string()), rows)
    stamps = pa.repeat(pa.scalar(modified_at, pa.timestamp("us", tz="UTC")), rows)
    return table.append_column(FILE_COLUMN, files).append_column(MODIFIED_COLUMN, stamps)


def quarantine_rows(
    feed: Feed, file: str, modified_at: Any, header: str | None, batch: Batch
) -> list[dict[str, Any]]:
    return [
        {
            "quarantine_id": q.quarantine_id(SOURCE_NAME, feed.name, file, modified_at, row.line),
            "feed": feed.name,
            "file": file,
            "file_modified_at": modified_at,
            "line": row.line,
            "reason": row.reason,
            "raw_text": row.raw_text,
            "raw_base64": row.raw_base64,
            "header": header,
        }
        for row in batch.rejected
    ]


def settings(overrides: dict[str, Any] | None = None) -> tuple[dict[str, Feed], float]:
    """The feeds and the default quarantine threshold, from overrides or configuration."""
    overrides = overrides or {}
    feeds = overrides.get("feeds") or dlt.config.get("sources.marketing.feeds", dict)
    share = overrides.get("max_quarantine_share")
    if share is None:
        share = dlt.config.get("sources.marketing.max_quarantine_share", float)
    return parse_feeds(feeds), DEFAULT_MAX_QUARANTINE_SHARE if share is None else float(share)


def after_load(pipeline: Any, report: Any, overrides: dict[str, Any] | None = None) -> None:
    """Publish quarantined rows to elt_audit.quarantine and add per-feed counts to the report.

    A feed whose quarantined share of this run's rows is above its `max_quarantine_share`
    (default `[sources.marketing] max_quarantine_share`) is marked `exceeded`; the CLI
    turns that into exit code 1.
    """
    specs, default_share = settings(overrides)
    load_ids = [*report.resumed_load_ids, *report.load_ids]
    with pipeline.sql_client() as client:
        q.publish(client, SOURCE_NAME, report.dataset)
        summary = q.file_summary(client, report.dataset, load_ids)
        report.replayed = q.replay_summary(client, report.dataset, load_ids)
    for feed, stats in summary["feeds"].items():
        spec = specs.get(feed)
        limit = (
            spec.max_quarantine_share
            if spec and spec.max_quarantine_share is not None
            else default_share
        )
        share = stats["quarantined"] / stats["rows"] if stats["rows"] else 0.0
        stats.update(share=round(share, 4), max_share=limit, exceeded=share > limit)
    report.quarantine = summary["feeds"]
    report.skipped_files = summary["skipped_files"]
    for feed, stats in summary["feeds"].items():
        duplicates = summary["duplicates"].get(feed, 0)
        report.counts[feed] = {
            "read": stats["rows"],
            "loaded": stats["loaded"],
            "quarantined": stats["quarantined"],
            "duplicates_in_batch": duplicates,
        }
        if duplicates:
            report.notes.append(
                f"load {SOURCE_NAME}: {feed}: {duplicates:,} row(s) repeat a key of a later"
                " line in the same file: the last line wins"
            )
    for empty in summary["empty_files"]:
        report.notes.append(
            f"load {SOURCE_NAME}: {empty['feed']} file {empty['file']}: {empty['reason']}"
        )
    report.file_type_changes = summary["type_changes"]


def versioning(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each feed's key; versions order by file time, as staging dedupes (loaders/compaction.py)."""
    from loaders.compaction import Versioning

    specs, _ = settings(overrides)
    return {
        name: Versioning(tuple(feed.primary_key), MODIFIED_COLUMN) for name, feed in specs.items()
    }


def replay(pipeline: Any, overrides: dict[str, Any] | None = None, feed: str | None = None) -> Any:
    """The dlt source that re-parses open quarantined rows with the current feed rules."""
    from loaders.marketing.replayer import replay_source

    specs, _ = settings(overrides)
    if feed is not None and feed not in specs:
        raise ValueError(f"unknown feed {feed}; configured: {', '.join(sorted(specs))}")
    chosen = {name: spec for name, spec in specs.items() if feed in (None, name)}
    return replay_source(pipeline, chosen)


__all__ = ["SOURCE_NAME", "after_load", "marketing", "replay", "versioning"]
