"""Schema evolution policy per source, and changed column types routed to variant columns.

The policy is dlt's schema contract, read per source from `[sources.<name>.schema_contract]`
(`tables`, `columns`, `data_type`: evolve | freeze | discard_row | discard_value; every key
can be set by environment variable, e.g. SOURCES__SHOP__SCHEMA_CONTRACT__DATA_TYPE=freeze).

`data_type = "evolve"` means in dlt: a value of another type goes to a *variant* column
`<column>__v_<type>` and the original column keeps its type. dlt's JSON normalizer does that
for dict rows. Arrow rows with reflected column hints (the sql_database source) get no
variant: the changed hint rewrites the column's type in dlt's schema, which the destination
never applies, and the load fails. `route_type_changes` gives those sources the same
behaviour as JSON: the column's hint stops typing it (the stored type stays), the arrow
column is renamed to the variant, and the original column becomes nullable (its new rows
have no value in it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

CONTRACT_ENTITIES = ("tables", "columns", "data_type")
CONTRACT_MODES = ("evolve", "freeze", "discard_row", "discard_value")
DEFAULT_MODE = "evolve"

# dlt names a variant column `<column>__v_<dlt data type>`
VARIANT_SEPARATOR = "__v_"
VARIANT_COLUMN = re.compile(r"^(?P<column>.+?)__v_(?P<data_type>[a-z]+)$")


class ContractConfigError(ValueError):
    """A `[sources.<name>.schema_contract]` value that is not a dlt contract mode."""


@dataclass(frozen=True)
class TypeChange:
    """A column whose type changed in the source; new values go to `variant_column`."""

    table: str
    column: str
    old_type: str
    new_type: str
    variant_column: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def contract_for(source: str) -> dict[str, str]:
    """The source's schema contract from dlt configuration; unset entities evolve."""
    import dlt

    contract = {}
    for entity in CONTRACT_ENTITIES:
        mode = dlt.config.get(f"sources.{source}.schema_contract.{entity}") or DEFAULT_MODE
        if mode not in CONTRACT_MODES:
            raise ContractConfigError(
                f"[sources.{source}.schema_contract] {entity} = {mode!r}: expected one of "
                + ", ".join(CONTRACT_MODES)
            )
        contract[entity] = mode
    return contract


def variant_column(column: str, data_type: str) -> str:
    return f"{column}{VARIANT_SEPARATOR}{data_type}"


def split_variant(column: str) -> tuple[str, str] | None:
    """(original column, dlt data type) of a variant column name, else None."""
    match = VARIANT_COLUMN.match(column)
    return (match["column"], match["data_type"]) if match else None


class FrozenTypeChange(Exception):
    """A column changed type in a source whose contract freezes data types."""

    def __init__(self, source: str, changes: list[TypeChange]) -> None:
        self.source, self.changes = source, changes
        first = changes[0]
        super().__init__(
            f"{first.table}.{first.column} changed type {first.old_type} -> {first.new_type}"
        )


def find_type_changes(source: Any, known_tables: dict[str, dict[str, Any]]) -> list[TypeChange]:
    """Hinted columns whose type differs from the type stored for them in the schema.

    `known_tables` are the tables of the pipeline's stored schema (name -> columns). Only
    resources with column hints (e.g. reflected from a database) and a table already known
    can show a change before their data is read.
    """
    changes: list[TypeChange] = []
    for resource in source.resources.selected.values():
        table = resource.table_name if isinstance(resource.table_name, str) else resource.name
        known = known_tables.get(table)
        hints = resource.columns if isinstance(resource.columns, dict) else None
        if not known or not hints:
            continue
        for name, hint in hints.items():
            old_type = (known.get(name) or {}).get("data_type")
            new_type = hint.get("data_type")
            if old_type and new_type and old_type != new_type:
                changes.append(
                    TypeChange(table, name, old_type, new_type, variant_column(name, new_type))
                )
    return changes


def route_type_changes(source: Any, changes: list[TypeChange]) -> None:
    """Send the values of the changed columns to their variant columns, as dlt does for JSON.

    The resources are modified in place: the column hint (which dlt lets callers edit in
    place) stops typing the column, so its stored type stays, and a map step renames the
    column to its variant; the variant's type comes from the data.
    """
    by_table: dict[str, dict[str, str]] = {}
    for change in changes:
        by_table.setdefault(change.table, {})[change.column] = change.variant_column
    for resource in source.resources.selected.values():
        table = resource.table_name if isinstance(resource.table_name, str) else resource.name
        renames = by_table.get(table)
        if not renames:
            continue
        for column in renames:
            # new rows hold no value in the column: it must accept NULL
            resource.columns[column] = {"name": column, "nullable": True}
        resource.add_map(_rename_columns(renames))


def _rename_columns(renames: dict[str, str]) -> Callable[[Any], Any]:
    """A map step renaming columns of arrow tables/batches and of dict rows."""

    def _rename(item: Any) -> Any:
        names = getattr(item, "column_names", None)
        if names is not None:  # pyarrow Table or RecordBatch
            return item.rename_columns([renames.get(name, name) for name in names])
        if isinstance(item, dict):
            return {renames.get(key, key): value for key, value in item.items()}
        if isinstance(item, list):
            return [_rename(row) for row in item]
        return item

    return _rename


# the raw column's comment while its source column is gone; diagnostics/schema_drift.py
# reads it so `elt test` fails while a model still reads the column
GONE_MARKER = "elt: disappeared from the source"


@dataclass(frozen=True)
class DroppedColumn:
    """A column raw has that the source no longer delivers (dropped or renamed)."""

    table: str
    column: str
    data_type: str
    was_not_null: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, source: str) -> str:
        constraint = " (it was NOT NULL)" if self.was_not_null else ""
        return f"load {source}: column {self.table}.{self.column} disappeared{constraint}"


class FrozenDroppedColumn(Exception):
    """A source column disappeared and the source's contract freezes columns."""

    def __init__(self, source: str, dropped: list[DroppedColumn]) -> None:
        self.source, self.dropped = source, dropped
        super().__init__(dropped[0].describe(source))


def find_dropped_columns(
    source: Any, known_tables: dict[str, dict[str, Any]]
) -> list[DroppedColumn]:
    """Columns of known raw tables that a resource's column hints (reflected from the
    source database) no longer have. Resources without hints say nothing about absence."""
    naming = source.schema.naming
    dropped = []
    for resource in source.resources.selected.values():
        hints = resource.columns if isinstance(resource.columns, dict) else None
        if not hints:
            continue
        table = naming.normalize_table_identifier(
            resource.table_name if isinstance(resource.table_name, str) else resource.name
        )
        known = known_tables.get(table)
        if not known:
            continue
        present = {naming.normalize_identifier(name) for name in hints}
        for name, column in known.items():
            if name in present or name.startswith(("_dlt", "_elt")) or split_variant(name):
                continue
            if "data_type" not in column:
                continue
            dropped.append(
                DroppedColumn(
                    table,
                    name,
                    column.get("data_type", "unknown"),
                    column.get("nullable") is False or column.get("x-source-not-null") is True,
                )
            )
    return dropped


def keep_dropped_columns(source: Any, dropped: list[DroppedColumn]) -> None:
    """Under `evolve`: raw keeps the column, nullable, and new rows hold NULL in it."""
    naming = source.schema.naming
    by_table: dict[str, list[str]] = {}
    for column in dropped:
        by_table.setdefault(column.table, []).append(column.column)
    for resource in source.resources.selected.values():
        table = naming.normalize_table_identifier(
            resource.table_name if isinstance(resource.table_name, str) else resource.name
        )
        for name in by_table.get(table, []):
            resource.columns[name] = {"name": name, "nullable": True}


def mark_gone_columns(client: Any, dropped: list[DroppedColumn], known: dict[str, Any]) -> None:
    """Comment the raw columns that disappeared; clear the comment of those that came back."""
    gone = {(c.table, c.column) for c in dropped}
    rows = client.execute_sql(
        "select c.relname, a.attname from pg_catalog.pg_attribute a"
        " join pg_catalog.pg_class c on c.oid = a.attrelid"
        " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and col_description(a.attrelid, a.attnum) like %s",
        client.dataset_name,
        GONE_MARKER + "%",
    )
    marked = {(table, column) for table, column in rows or []}
    for table, column in gone - marked:
        if column in known.get(table, {}):
            client.execute_sql(
                f"comment on column {client.make_qualified_table_name(table)}."
                f"{client.escape_column_name(column)} is '{GONE_MARKER}'"
            )
    for table, column in marked - gone:
        client.execute_sql(
            f"comment on column {client.make_qualified_table_name(table)}."
            f"{client.escape_column_name(column)} is null"
        )
