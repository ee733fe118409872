"""Replay: parse open quarantined rows again with the feeds' current rules.

Rows that now pass are appended to their feed table with their original file, line and
file time; each replayed row also gets an outcome row in `_elt_replays` (loaded, or
quarantined with the current reason) in the same load package, and `publish` applies
the outcomes to `elt_audit.quarantine` after the load. A replay killed before its load
completed changes nothing, and a row replayed twice is one key in staging (its dedupe
keeps the latest load of the key's file time).
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources import DltResource

from loaders import quarantine as q
from loaders.marketing import SOURCE_NAME, check_declared_types, feed_hints, with_lineage
from loaders.marketing.feeds import Feed
from loaders.marketing.parsers import Line, csv_header, parse_csv_records, parse_jsonl_lines
from loaders.marketing.rows import Batch, Rejected
from loaders.metadata import add_load_metadata

PAGE_ROWS = 10_000
_COLUMNS = "quarantine_id, file, file_modified_at, line, raw_text, raw_base64, header"


def replay_source(pipeline: Any, feeds: dict[str, Feed]) -> Any:
    @dlt.source(name=SOURCE_NAME, max_table_nesting=0)
    def marketing() -> Iterator[DltResource]:
        add_metadata = add_load_metadata(SOURCE_NAME)
        for feed in feeds.values():
            # hints per item, as in the file resources: the outcome rows go to another table
            yield dlt.resource(_replayed_rows(pipeline, feed, add_metadata), name=feed.name)

    return marketing()


def _replayed_rows(pipeline: Any, feed: Feed, add_metadata: Any) -> Iterator[Any]:
    check_declared_types(dlt.current.source_schema(), {feed.name: feed})
    with pipeline.sql_client() as client:
        exists = client.execute_sql(
            "select 1 from information_schema.tables"
            " where table_schema = %s and table_name = 'quarantine'",
            q.AUDIT_SCHEMA,
        )
        if not exists:
            return
        with client.execute_query(
            f"select {_COLUMNS} from {q.AUDIT_TABLE}"
            " where source = %s and feed = %s and status = %s"
            " order by file, file_modified_at, line",
            SOURCE_NAME,
            feed.name,
            q.OPEN,
        ) as cursor:
            while page := cursor.fetchmany(PAGE_ROWS):
                for (file, modified_at, header), group in itertools.groupby(
                    page, key=lambda row: (row[1], row[2], row[6])
                ):
                    yield from _replay_file(
                        feed, file, modified_at, header, list(group), add_metadata
                    )


def _replay_file(
    feed: Feed,
    file: str,
    modified_at: Any,
    header: str | None,
    rows: list[tuple],
    add_metadata: Any,
) -> Iterator[Any]:
    """Re-parse the quarantined rows of one delivery of one file."""
    ids = {row[3]: row[0] for row in rows}
    lines: list[Line] = [_line(feed, row[3], row[4], row[5]) for row in rows]
    if feed.format == "csv":
        names, problem = csv_header(header, feed)
        records = ((number, text, bad) for number, text, bad in lines)
        batches = parse_csv_records(records, feed, header, names, problem, len(lines) + 1)
    else:  # a JSONL line, or a Parquet row kept as a JSON object
        batches = parse_jsonl_lines(lines, feed, len(lines) + 1)
    outcomes: list[dict[str, Any]] = []
    hints = feed_hints(feed)
    for batch in batches:
        if batch.rows_loaded:
            outcomes += [_outcome(ids[n], feed, "loaded") for n in _loaded_lines(batch)]
            table = add_metadata(with_lineage(batch.table, file, modified_at))
            yield dlt.mark.with_hints(table, hints, create_table_variant=True)
        outcomes += [_outcome(ids[r.line], feed, "quarantined", r.reason) for r in batch.rejected]
    if outcomes:
        hints = dlt.mark.make_hints(
            table_name=q.REPLAYS_TABLE,
            write_disposition="append",
            primary_key="",
            columns=q.REPLAYS_COLUMNS,
        )
        yield dlt.mark.with_hints(outcomes, hints, create_table_variant=True)


def _line(feed: Feed, number: int, raw_text: str | None, raw_base64: str | None) -> Line:
    """The row's original text: its exact bytes decoded with the feed's current encoding."""
    if raw_base64 is not None:
        raw = base64.b64decode(raw_base64)
        try:
            return number, raw.decode(feed.encoding), None
        except UnicodeDecodeError as exc:
            reason = (
                f"not valid {feed.encoding}: byte 0x{raw[exc.start]:02x} at position {exc.start}"
            )
            return number, None, Rejected.of_bytes(number, reason, raw, feed.encoding)
    if raw_text is None:
        reason = "nothing to replay: the file could not be read; deliver it again"
        return number, None, Rejected(number, reason, None)
    return number, raw_text, None


def _loaded_lines(batch: Batch) -> list[int]:
    from loaders.marketing.feeds import LINE_COLUMN

    return batch.table.column(LINE_COLUMN).to_pylist()


def _outcome(quarantine_id: str, feed: Feed, outcome: str, reason: str | None = None) -> dict:
    return {"quarantine_id": quarantine_id, "feed": feed.name, "outcome": outcome, "reason": reason}
