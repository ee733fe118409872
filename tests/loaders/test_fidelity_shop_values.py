"""Shop values arrow or the warehouse cannot hold: exact numerics, per-row quarantine."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from support import execute, query

from demo import shop
from loaders import pipeline


@pytest.fixture
def seeded(elt_env, shop_url):
    shop.seed(shop_url, 50)
    return elt_env


def load(env, **overrides) -> pipeline.LoadReport:
    return pipeline.run(
        "shop",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
        source_overrides=overrides or None,
    )


def test_infinity_timestamp_and_nan_numeric_are_quarantined_and_other_rows_load(
    seeded, warehouse, shop_url
):
    load(seeded)
    execute(shop_url, "update orders set ordered_at = 'infinity' where order_id = 1")
    execute(shop_url, "update orders set shipping_amount = 'NaN' where order_id = 2")
    execute(shop_url, "update orders set status = 'paid' where order_id = 3")
    report = load(seeded)
    assert report.rows["orders"] == 1
    assert report.counts["orders"] == {"read": 3, "loaded": 1, "quarantined": 2}
    notes = " ".join(report.notes)
    assert "orders" in notes and "ordered_at" in notes and "shipping_amount" in notes
    rows = query(
        warehouse,
        "select feed, row_key, column_name, reason, raw_text from elt_audit.quarantine"
        " where source = 'shop' order by row_key",
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("orders", "order_id=1", "ordered_at"),
        ("orders", "order_id=2", "shipping_amount"),
    ]
    assert all(r[4] is None for r in rows)  # no value kept or printed
    assert "NaN" not in rows[1][3].replace("NaN or Infinity", "")
    # a later run loads new rows normally
    shop.tick(shop_url)
    assert load(seeded).rows["orders"] > 0


LEDGER = {"primary_key": ["entry_id"], "cursor": "updated_at"}


def make_ledger(shop_url: str) -> None:
    execute(
        shop_url,
        "create table ledger (entry_id bigint primary key, updated_at timestamptz,"
        " amount numeric, fee numeric(30, 18), rate double precision)",
    )


def test_unbounded_and_wide_numerics_keep_every_digit(seeded, warehouse, shop_url):
    make_ledger(shop_url)
    execute(
        shop_url,
        "insert into ledger values"
        " (1, now(), 0.123456789012345678, 1.123456789012345678, 'NaN'),"
        " (2, now(), 12345678901234567890123456789012345678901234.5, 0, 1.5)",
    )
    report = load(seeded, tables={"ledger": LEDGER})
    assert report.counts["ledger"] == {"read": 2, "loaded": 2, "quarantined": 0}
    rows = query(warehouse, "select entry_id, amount, fee, rate from raw_shop.ledger order by 1")
    assert rows[0][1] == "0.123456789012345678"  # unbounded: exact text, staging casts
    assert rows[1][1] == "12345678901234567890123456789012345678901234.5"
    assert rows[0][2] == Decimal("1.123456789012345678")  # numeric(30,18): exact decimal
    assert rows[1][3] == 1.5  # a float NaN is a float value: it loads
    types = dict(
        query(
            warehouse,
            "select column_name, data_type from information_schema.columns"
            " where table_schema = 'raw_shop' and table_name = 'ledger'",
        )
    )
    assert types["fee"] == "numeric" and types["amount"] in ("text", "character varying")
    assert query(
        warehouse, "select cast(amount as numeric) from raw_shop.ledger where entry_id = 1"
    )[0][0] == Decimal("0.123456789012345678")


def test_a_null_cursor_is_quarantined_by_default_and_the_rest_loads(seeded, warehouse, shop_url):
    make_ledger(shop_url)
    execute(shop_url, "insert into ledger values (1, now(), 1, 1, 1), (2, null, 2, 2, 2)")
    report = load(seeded, tables={"ledger": LEDGER})
    assert report.counts["ledger"] == {"read": 2, "loaded": 1, "quarantined": 1}
    assert query(
        warehouse,
        "select row_key, column_name, reason from elt_audit.quarantine where feed = 'ledger'",
    ) == [("entry_id=2", "updated_at", "cursor updated_at is NULL")]


def test_null_cursor_fail_stops_the_source_naming_table_and_policy(seeded, shop_url):
    make_ledger(shop_url)
    execute(shop_url, "insert into ledger values (1, now(), 1, 1, 1), (2, null, 2, 2, 2)")
    with pytest.raises(Exception, match=r"public\.ledger: cursor updated_at is NULL in 1 row"):
        load(seeded, tables={"ledger": {**LEDGER, "null_cursor": "fail"}})


def test_an_unknown_null_cursor_policy_names_the_setting(seeded):
    with pytest.raises(ValueError, match=r"sources\.shop\.null_cursor: 'skip' is not a policy"):
        load(seeded, null_cursor="skip")


def test_a_quarantined_row_fixed_at_the_source_loads_and_is_superseded(seeded, warehouse, shop_url):
    load(seeded)
    execute(shop_url, "update orders set shipping_amount = 'NaN' where order_id = 4")
    load(seeded)
    assert query(warehouse, "select status from elt_audit.quarantine") == [("open",)]
    execute(shop_url, "update orders set shipping_amount = 4.5 where order_id = 4")
    report = load(seeded)
    assert report.counts["orders"] == {"read": 1, "loaded": 1, "quarantined": 0}
    assert query(warehouse, "select status from elt_audit.quarantine") == [("superseded",)]


def test_null_cursor_fail_is_a_data_failure_with_a_hint(seeded, shop_url):
    from elt.commands.load import describe_failure
    from runtime.errors import DataError

    make_ledger(shop_url)
    execute(shop_url, "insert into ledger values (1, null, 1, 1, 1)")
    with pytest.raises(Exception) as caught:
        load(seeded, tables={"ledger": {**LEDGER, "null_cursor": "fail"}})
    error = describe_failure("shop", "extracting", caught.value)
    assert isinstance(error, DataError) and "cursor updated_at is NULL" in str(error)
    assert 'null_cursor = "quarantine"' in error.hint


HOSTILE = {"primary_key": ["entry_id"], "cursor": "updated_at"}


@pytest.mark.parametrize("backend", ["connectorx", "pyarrow"])
def test_both_backends_quarantine_the_same_hostile_values_with_the_same_reasons(
    seeded, warehouse, shop_url, backend
):
    """connectorx judges values in arrow, pyarrow in SQL: the same rows, columns, reasons."""
    execute(
        shop_url,
        "create table hostile (entry_id bigint primary key, updated_at timestamptz,"
        " amount numeric, booked_on date, noted_at timestamp)",
    )
    execute(
        shop_url,
        "insert into hostile values"
        " (1, now(), 1.25, '2024-01-01', '2024-01-01 10:00'),"
        " (2, now(), 'NaN', 'infinity', '9999-12-31 23:59:59.999999'),"
        " (3, now(), 2.5, '0001-01-01', '0001-01-01 00:00:00'),"
        " (4, now(), '-Infinity', '10000-01-01', '-infinity'),"
        " (5, now(), 2, '0001-12-31 BC', '200000-01-01'),"
        " (6, 'infinity', 3, '5874897-12-31', '10000-01-01'),"
        " (7, '0044-03-15 BC', 4, '2024-02-29', null),"
        " (8, now(), 'Infinity', '9999-12-31', null)",
    )
    report = load(seeded, backend=backend, tables={"hostile": HOSTILE})
    assert report.counts["hostile"] == {"read": 8, "loaded": 2, "quarantined": 6}
    date = "date outside the warehouse range (years 1..9999, no infinity)"
    stamp = "timestamp outside the warehouse range (years 1..9999, no infinity)"
    nan = "NaN or Infinity has no value in the warehouse"
    assert query(
        warehouse,
        "select row_key, column_name, reason from elt_audit.quarantine"
        " where feed = 'hostile' order by row_key",
    ) == [
        ("entry_id=2", "amount, booked_on", f"column amount: {nan}; column booked_on: {date}"),
        ("entry_id=4", "amount, booked_on, noted_at",
         f"column amount: {nan}; column booked_on: {date}; column noted_at: {stamp}"),
        ("entry_id=5", "booked_on, noted_at",
         f"column booked_on: {date}; column noted_at: {stamp}"),
        ("entry_id=6", "updated_at, booked_on, noted_at",
         f"column updated_at: {stamp}; column booked_on: {date}; column noted_at: {stamp}"),
        ("entry_id=7", "updated_at", f"column updated_at: {stamp}"),
        ("entry_id=8", "amount", f"column amount: {nan}"),
    ]  # fmt: skip
    assert query(warehouse, "select entry_id, amount from raw_shop.hostile order by 1") == [
        (1, "1.25"),
        (3, "2.5"),
    ]
