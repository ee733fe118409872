"""Drift in raw tables: variant columns that no model reading the table handles, and
columns the source stopped delivering that a model still reads.

When a source column changes type, dlt keeps the column and puts values of the new type
in a variant column `<column>__v_<type>` (loaders/schema_evolution.py does the same for
arrow sources). A staging model that keeps reading the original column silently gets
NULLs for those rows. A model selecting from the raw table is affected when its SQL names
the original column, and handles the change once it also names the variant column
(typically coalescing it into the original column).

Pure checks: a database connection and dbt's manifest in, plain data out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

# dlt's variant naming: <column>__v_<dlt data type>
VARIANT_SUFFIX = re.compile(
    r"^(?P<column>.+)__v_(?P<type>text|bigint|double|decimal|bool|timestamp|date|time|json|binary|wei)$"
)


@dataclass(frozen=True)
class VariantColumn:
    schema: str
    table: str
    column: str  # the variant column, e.g. amount__v_text
    base_column: str  # the column whose type changed, e.g. amount
    base_type: str | None  # the warehouse type of the base column (None if it is gone)
    variant_type: str  # the warehouse type of the variant column
    # the source no longer delivers the column (dropped or renamed): new rows hold NULL
    gone: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"


@dataclass
class UnhandledVariant:
    variant: VariantColumn
    models: list[str] = field(default_factory=list)  # models reading the column, not the variant

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.variant),
            "column_path": self.variant.qualified,
            "models": self.models,
        }

    def describe(self) -> str:
        v = self.variant
        if v.gone:
            return (
                f"{v.schema}.{v.table}.{v.column} disappeared from the source (new rows hold"
                f" NULL), but {', '.join(self.models)} still reads it"
            )
        return (
            f"{v.schema}.{v.table}.{v.base_column} changed type"
            f" ({v.base_type} -> {v.variant_type}): its new values are in {v.column},"
            f" which {', '.join(self.models)} does not handle"
        )


def variant_columns(conn: Any, schemas: Iterable[str]) -> list[VariantColumn]:
    """Variant columns holding values in the given (raw) schemas, with their base column's type.

    A variant column whose values are all gone (the rows were loaded again after the
    source's type was restored) holds nothing a model could miss: it is left out.
    """
    schemas = list(schemas)
    if not schemas:
        return []
    with conn.cursor() as cur:
        cur.execute(
            "select table_schema, table_name, column_name, data_type"
            " from information_schema.columns"
            f" where table_schema in ({', '.join(['%s'] * len(schemas))})"
            " order by table_schema, table_name, ordinal_position",
            schemas,
        )
        rows = cur.fetchall()
    types = {(schema, table, column): data_type for schema, table, column, data_type in rows}
    found = []
    for schema, table, column, data_type in rows:
        match = VARIANT_SUFFIX.match(column)
        if match and not table.startswith("_dlt"):
            base = match["column"]
            variant = VariantColumn(
                schema, table, column, base, types.get((schema, table, base)), data_type
            )
            if _holds_values(conn, variant):
                found.append(variant)
    return found + gone_columns(conn, schemas)


# loaders/schema_evolution.py comments a raw column so while its source column is gone
GONE_MARKER = "elt: disappeared from the source"


def gone_columns(conn: Any, schemas: list[str]) -> list[VariantColumn]:
    """Raw columns the loader marked as no longer delivered by their source."""
    with conn.cursor() as cur:
        cur.execute(
            "select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
            " from pg_catalog.pg_attribute a"
            " join pg_catalog.pg_class c on c.oid = a.attrelid"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = any(%s) and not a.attisdropped"
            " and col_description(a.attrelid, a.attnum) like %s"
            " order by 1, 2, 3",
            (schemas, GONE_MARKER + "%"),
        )
        rows = cur.fetchall()
    return [
        VariantColumn(schema, table, column, column, data_type, data_type, gone=True)
        for schema, table, column, data_type in rows
    ]


def _holds_values(conn: Any, variant: VariantColumn) -> bool:
    from diagnostics.pg import ident, qualified

    with conn.cursor() as cur:
        cur.execute(
            f"select exists (select 1 from {qualified(variant.schema, variant.table)}"
            f" where {ident(variant.column)} is not null)"
        )
        return bool(cur.fetchone()[0])


def unhandled_variants(
    variants: list[VariantColumn], manifest: dict[str, Any]
) -> list[UnhandledVariant]:
    """The variants whose original column a model reads without naming the variant.

    `manifest` is dbt's manifest (as in target/manifest.json): `sources` give each source
    table's schema and identifier, `nodes` the models with `depends_on` and `raw_code`.
    A column no model reads cannot leak into the marts and is not reported.
    """
    source_ids: dict[tuple[str, str], str] = {}
    for unique_id, source in manifest.get("sources", {}).items():
        identifier = source.get("identifier") or source.get("name")
        source_ids[(str(source.get("schema", "")).lower(), str(identifier).lower())] = unique_id
    readers: dict[str, list[dict[str, Any]]] = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model":
            continue
        for parent in node.get("depends_on", {}).get("nodes", []):
            readers.setdefault(parent, []).append(node)
    unhandled = []
    for variant in variants:
        source_id = source_ids.get((variant.schema.lower(), variant.table.lower()))
        affected = sorted(
            model["name"]
            for model in (readers.get(source_id, []) if source_id else [])
            if _names(model, variant.base_column)
            and (variant.gone or not _names(model, variant.column))
        )
        if affected:
            unhandled.append(UnhandledVariant(variant, affected))
    return unhandled


def _names(model: dict[str, Any], column: str) -> bool:
    return re.search(rf"\b{re.escape(column)}\b", model.get("raw_code") or "", re.I) is not None
