"""Columns that disappear at the source: announced, kept in raw as NULL under `evolve`,
refused before loading under `freeze`, and `elt test` drift while a model still reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import execute, query

from demo import shop
from diagnostics.schema_drift import unhandled_variants, variant_columns
from loaders import pipeline
from loaders.identifiers import IdentifierError
from loaders.schema_evolution import FrozenDroppedColumn


@pytest.fixture
def seeded(elt_env, shop_url):
    shop.seed(shop_url, 20)
    return elt_env


def load(env, **overrides) -> pipeline.LoadReport:
    return pipeline.run(
        "shop",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
        source_overrides=overrides or None,
    )


def customers_manifest(sql: str) -> dict:
    return {
        "sources": {"source.elt.shop.customers": {"schema": "raw_shop", "identifier": "customers"}},
        "nodes": {
            "model.elt.stg_shop__customers": {
                "name": "stg_shop__customers",
                "resource_type": "model",
                "raw_code": sql,
                "depends_on": {"nodes": ["source.elt.shop.customers"]},
            }
        },
    }


def test_a_dropped_nullable_column_is_announced_kept_and_null_for_new_rows(
    seeded, warehouse, shop_url
):
    load(seeded)
    execute(shop_url, "alter table customers drop column deleted_at")
    execute(shop_url, "update customers set full_name = 'Renamed' where customer_id = 1")
    report = load(seeded)
    assert "load shop: column customers.deleted_at disappeared" in report.notes
    assert report.rows["customers"] == 1
    rows = query(
        warehouse,
        "select deleted_at from raw_shop.customers where customer_id = 1"
        " order by _dlt_load_id desc limit 1",
    )
    assert rows == [(None,)]
    # a staging model still reading the column is drift `elt test` fails on
    conn = warehouse.connect()
    try:
        found = variant_columns(conn, ["raw_shop"])
    finally:
        conn.close()
    drift = unhandled_variants(found, customers_manifest("select deleted_at from x"))
    assert [d.variant.column for d in drift] == ["deleted_at"]
    assert "disappeared from the source" in drift[0].describe()
    # the column comes back: the mark goes
    execute(shop_url, "alter table customers add column deleted_at timestamptz")
    load(seeded)
    conn = warehouse.connect()
    try:
        assert variant_columns(conn, ["raw_shop"]) == []
    finally:
        conn.close()


def test_a_dropped_not_null_column_names_table_and_column_and_the_rest_loads(
    seeded, warehouse, shop_url
):
    load(seeded)
    execute(shop_url, "alter table customers drop column full_name")
    execute(shop_url, "update customers set email = email || '.x' where customer_id = 2")
    report = load(seeded)
    assert "load shop: column customers.full_name disappeared (it was NOT NULL)" in report.notes
    assert report.rows == {"customers": 1}


def test_freeze_refuses_a_dropped_column_before_loading(seeded, warehouse, shop_url, monkeypatch):
    load(seeded)
    before = query(warehouse, "select count(*) from raw_shop._dlt_loads")
    execute(shop_url, "alter table orders drop column currency")
    execute(shop_url, "update orders set status = 'paid' where order_id = 1")
    monkeypatch.setenv("SOURCES__SHOP__SCHEMA_CONTRACT__COLUMNS", "freeze")
    with pytest.raises(FrozenDroppedColumn, match=r"column orders\.currency disappeared"):
        load(seeded)
    assert query(warehouse, "select count(*) from raw_shop._dlt_loads") == before


def test_a_removed_cursor_is_a_named_hard_failure(seeded, shop_url):
    load(seeded)
    execute(shop_url, "alter table products drop column updated_at cascade")
    with pytest.raises(
        IdentifierError, match=r"sources\.shop\.tables\.products\.cursor: 'updated_at' is not"
    ):
        load(seeded)


def test_a_removed_key_is_a_named_hard_failure(seeded, shop_url):
    tables = json.loads(json.dumps(shop_tables()))
    tables["products"]["primary_key"] = ["product_code"]
    with pytest.raises(IdentifierError, match=r"sources\.shop\.tables\.products\.primary_key"):
        load(seeded, tables=tables)


def shop_tables() -> dict:
    import dlt

    return dlt.config["sources.shop.tables"]
