"""The fingerprint compares data, not its storage: row order, column order, decimal scale
and time zone do not change it; a changed, missing or duplicated row does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from runtime import fingerprint
from runtime.engines.duckdb import DuckDBWarehouse


@pytest.fixture
def conn(tmp_path):
    warehouse = DuckDBWarehouse(path=tmp_path / "fp.duckdb")
    connection = warehouse.connect()
    with connection.cursor() as cur:
        cur.execute("create schema marts")
    yield connection
    connection.close()


def make(conn, table: str, columns: str, rows: list[tuple]) -> None:
    with conn.cursor() as cur:
        cur.execute(f"create table marts.{table} ({columns})")
        for row in rows:
            cur.execute(f"insert into marts.{table} values ({', '.join(['%s'] * len(row))})", row)


def test_row_order_column_order_scale_and_time_zone_do_not_matter(conn):
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    make(
        conn,
        "a",
        "id integer, amount decimal(18, 2), ts timestamptz",
        [(1, Decimal("1.50"), at), (2, Decimal("2.00"), at)],
    )
    make(
        conn,
        "b",
        "ts timestamp, amount decimal(28, 6), id bigint",
        [(at.replace(tzinfo=None), Decimal("2.000000"), 2), (at.replace(tzinfo=None), 1.5, 1)],
    )
    found = fingerprint.fingerprint(conn)
    assert found["a"]["checksum"] == found["b"]["checksum"]
    assert found["a"]["rows"] == 2


def test_a_changed_missing_or_duplicated_row_changes_it(conn):
    base = [(1, "x"), (2, "y")]
    make(conn, "base", "id integer, v text", base)
    make(conn, "changed", "id integer, v text", [(1, "x"), (2, "z")])
    make(conn, "missing", "id integer, v text", base[:1])
    make(conn, "duplicated", "id integer, v text", [*base, base[0]])
    found = fingerprint.fingerprint(conn)
    sums = {name: found[name]["checksum"] for name in found}
    assert len(set(sums.values())) == 4


def test_instants_render_in_utc_and_lineage_columns_are_left_out(conn):
    plus2 = timezone(timedelta(hours=2))
    assert fingerprint.canonical(datetime(2026, 1, 1, 12, tzinfo=plus2)) == (
        "2026-01-01T10:00:00.000000+00:00"
    )
    make(
        conn,
        "with_lineage",
        "id integer, dlt_load_id text, extracted_at timestamptz",
        [(1, "123.4", datetime.now(UTC))],
    )
    assert fingerprint.fingerprint(conn)["with_lineage"]["columns"] == ["id"]
