"""What staging sees of raw: the project's own dedupe macro, rendered and run on the warehouse.

`macros/dedupe_completed_loads.sql` is plain Jinja; rendering it here (not a copy of its
SQL) lets loader tests assert what staging would read after each load, kill or
compaction without a dbt run per scenario.
"""

from __future__ import annotations

from typing import Any

import jinja2
from support import PROJECT, query

MACRO = PROJECT / "macros" / "dedupe_completed_loads.sql"


def visible_sql(dataset: str, table: str, key: str | list[str], cursor: str = "updated_at") -> str:
    """The select staging runs over `dataset.table` (current version of each key)."""
    template = jinja2.Environment().from_string(
        MACRO.read_text() + "{{ dedupe_completed_loads(relation, loads, key, cursor=cursor) }}"
    )
    return template.render(
        relation=f'"{dataset}"."{table}"',
        loads=f'"{dataset}"."_dlt_loads"',
        key=key,
        cursor=cursor,
    )


def visible(
    warehouse: Any,
    dataset: str,
    table: str,
    key: str | list[str],
    columns: str,
    cursor: str = "updated_at",
) -> list[tuple]:
    """`columns` of the visible rows, ordered by them: what staging would hold."""
    sql = visible_sql(dataset, table, key, cursor)
    return query(warehouse, f"select {columns} from ({sql}) as visible_rows order by {columns}")


def counts(warehouse: Any, dataset: str, table: str, key: str) -> tuple[int, int]:
    """(raw rows, distinct keys) of a raw table."""
    return query(warehouse, f'select count(*), count(distinct {key}) from "{dataset}"."{table}"')[0]
