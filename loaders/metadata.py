"""Load metadata carried by every raw row, so any mart row traces back to its load.

dlt adds `_dlt_load_id` (the parquet normalizer is told to in `.dlt/config.toml`); this
adds the source name and the extraction time, which dbt uses for source freshness.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

SOURCE_COLUMN = "_elt_source"
EXTRACTED_AT_COLUMN = "_elt_extracted_at"


def add_load_metadata(source: str) -> Callable[[Any], Any]:
    """An `add_map` step appending source name and one extraction timestamp per run.

    Takes arrow tables (sql_database) and JSON records (rest_api) alike.
    """
    extracted_at = datetime.now(UTC)

    def _add(table: Any) -> Any:
        if isinstance(table, dict):
            return {**table, SOURCE_COLUMN: source, EXTRACTED_AT_COLUMN: extracted_at}
        rows = table.num_rows
        for name in (SOURCE_COLUMN, EXTRACTED_AT_COLUMN):
            if name in table.column_names:
                table = table.drop_columns([name])
        # one scalar repeated in C: a list of datetimes would cost ~1 us per row to convert
        table = table.append_column(SOURCE_COLUMN, pa.repeat(pa.scalar(source, pa.string()), rows))
        return table.append_column(
            EXTRACTED_AT_COLUMN,
            pa.repeat(pa.scalar(extracted_at, pa.timestamp("us", tz="UTC")), rows),
        )

    return _add
