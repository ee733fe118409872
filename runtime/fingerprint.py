"""A fingerprint of a schema's tables that two engines can agree on: per table, the row
count and an order-independent checksum of its rows rendered canonically.

Canonical values: numbers (integer, decimal, float) as decimals at a fixed scale; instants
in UTC ISO format (a time-zone-less timestamp is taken as UTC); dates ISO; booleans
`true`/`false`; JSON with sorted keys; NULL as `\\N`. Columns are taken in name order, so
their order in the table does not matter. The checksum adds the rows' SHA-256 values
modulo 2**256: the order of the rows does not matter, a duplicated row does.

Lineage columns (which load brought a row, when it was extracted) name the load, not the
data: two warehouses loaded at different moments differ there by design, so they are
left out by default. Works on any DB-API connection with `%s` parameters (the engines'
connections, runtime/engines/).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

SCALE = 6  # decimal places numbers are compared at
LINEAGE = frozenset({"dlt_load_id", "extracted_at", "_dlt_load_id", "_dlt_id"})
_MODULUS = 2**256
_QUANTUM = Decimal(1).scaleb(-SCALE)


def canonical(value: Any) -> str:
    """One value as text both engines render the same way."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return str(number.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN) + 0)
    if isinstance(value, datetime):
        instant = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return instant.isoformat(timespec="microseconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def row_digest(values: tuple) -> int:
    text = "\x1f".join(canonical(value) for value in values)
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


def table_fingerprint(conn: Any, schema: str, table: str, columns: list[str]) -> dict[str, Any]:
    selected = ", ".join(_ident(column) for column in columns)
    total, rows = 0, 0
    with conn.cursor() as cur:
        cur.execute(f"select {selected} from {_ident(schema)}.{_ident(table)}")
        while batch := cur.fetchmany(10_000):
            for row in batch:
                total = (total + row_digest(row)) % _MODULUS
                rows += 1
    return {"rows": rows, "checksum": f"{total:064x}", "columns": columns}


def fingerprint(
    conn: Any, schema: str = "marts", *, exclude: frozenset[str] = LINEAGE
) -> dict[str, dict[str, Any]]:
    """{table: {rows, checksum, columns}} for every table and view of `schema`."""
    with conn.cursor() as cur:
        cur.execute(
            "select table_name, column_name from information_schema.columns"
            " where table_schema = %s order by table_name, column_name",
            (schema,),
        )
        found = cur.fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in found:
        if column.lower() not in exclude:
            tables.setdefault(table, []).append(column)
    return {table: table_fingerprint(conn, schema, table, cols) for table, cols in tables.items()}


def differences(left: dict[str, dict], right: dict[str, dict]) -> list[str]:
    """What differs between two fingerprints, one line per table (empty: identical)."""
    lines = []
    for table in sorted(set(left) | set(right)):
        a, b = left.get(table), right.get(table)
        if a is None or b is None:
            lines.append(f"{table}: only in the {'right' if a is None else 'left'} warehouse")
        elif a["columns"] != b["columns"]:
            lines.append(f"{table}: columns differ: {a['columns']} vs {b['columns']}")
        elif a["rows"] != b["rows"]:
            lines.append(f"{table}: {a['rows']} rows vs {b['rows']}")
        elif a["checksum"] != b["checksum"]:
            lines.append(f"{table}: same {a['rows']} rows, different values")
    return lines


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def main(argv: list[str] | None = None) -> None:
    """`python -m runtime.fingerprint [SCHEMA]`: the fingerprint of the warehouse
    ELT_WAREHOUSE_URL names (the embedded one where unset), as JSON on stdout."""
    import sys

    from runtime import engines
    from runtime.project import project_dir

    args = sys.argv[1:] if argv is None else argv
    warehouse = engines.resolve(project_dir())
    conn = engines.read_only(warehouse, timeout=600)
    try:
        found = fingerprint(conn, args[0] if args else "marts")
    finally:
        conn.close()
    summary = {table: {"rows": f["rows"], "checksum": f["checksum"]} for table, f in found.items()}
    print(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
