"""Source identifiers as raw names: checked before anything is read, named when they clash.

dlt normalizes every table and column name (snake_case: `Weird Table` becomes
`weird_table`, `Order` becomes `order`). Two source names that normalize to one raw name
would silently share a column or table, so they are a configuration error naming both.
Configured keys and cursors must be columns of their table: a typo (or a column the
source dropped) is a one-line error naming the setting, not a parser error from deep
inside dlt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class IdentifierError(ValueError):
    """A configured or delivered name that cannot map to one raw name."""


def collisions(names: Iterable[str], normalize: Any) -> list[tuple[str, str, str]]:
    """(first name, second name, raw name) for each pair that normalizes to one raw name."""
    seen: dict[str, str] = {}
    found = []
    for name in names:
        raw = normalize(name)
        if raw in seen and seen[raw] != name:
            found.append((seen[raw], name, raw))
        else:
            seen.setdefault(raw, name)
    return found


def check_table_names(source: str, tables: list[str], naming: Any) -> None:
    clash = collisions(tables, naming.normalize_table_identifier)
    if clash:
        first, second, raw = clash[0]
        raise IdentifierError(
            f"sources.{source}.tables: {first!r} and {second!r} both load into raw table"
            f" {raw}; configure only one, or load the other through a view with another name"
        )


def check_table_settings(
    source: str,
    table: str,
    primary_key: list[str],
    cursor: str,
    columns: list[str],
    naming: Any,
) -> None:
    """The configured key and cursor are columns of `table`; its columns map one to one."""
    setting = f"sources.{source}.tables.{table}"
    if not primary_key:
        raise IdentifierError(f"{setting}.primary_key is required: rows are merged on it")
    shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
    for name in primary_key:
        if name not in columns:
            raise IdentifierError(
                f"{setting}.primary_key: {name!r} is not a column of {table} (it has {shown})"
            )
    if cursor not in columns:
        raise IdentifierError(
            f"{setting}.cursor: {cursor!r} is not a column of {table} (it has {shown})"
        )
    clash = collisions(columns, naming.normalize_identifier)
    if clash:
        first, second, raw = clash[0]
        raise IdentifierError(
            f"{setting}: columns {first!r} and {second!r} both load into raw column {raw};"
            f" rename one in a view of {table} (e.g. select {first!r} as {raw}_1, ...) and"
            " configure the view as the table"
        )
