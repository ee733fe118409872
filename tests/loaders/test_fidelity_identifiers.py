"""Source identifiers with case and spaces load like plain ones; names that collide once
normalized, and configured keys or cursors that are not columns, are named errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import execute, query

from loaders import pipeline
from loaders.identifiers import IdentifierError


def load(env, tables: dict) -> pipeline.LoadReport:
    return pipeline.run(
        "shop",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
        source_overrides={"tables": tables},
    )


def dispositions(env) -> dict[str, str]:
    import dlt

    p = dlt.attach(pipeline_name="elt_shop", pipelines_dir=env["ELT_PIPELINES_DIR"])
    return {name: t.get("write_disposition") for name, t in p.default_schema.tables.items()}


def test_a_table_named_with_case_and_spaces_gets_the_plain_tables_disposition(
    elt_env, warehouse, shop_url
):
    execute(
        shop_url,
        'create table "Weird Table" ("Item Id" bigint primary key, "Label" text,'
        " updated_at timestamptz not null default now());"
        " create table plain (item_id bigint primary key, label text,"
        " updated_at timestamptz not null default now());"
        """insert into "Weird Table" values (1, 'a'); insert into plain values (1, 'a')""",
    )
    tables = {
        "Weird Table": {"primary_key": ["Item Id"], "cursor": "updated_at"},
        "plain": {"primary_key": ["item_id"], "cursor": "updated_at"},
    }
    load(elt_env, tables)
    for label in ("b", "c"):
        execute(shop_url, f"""update "Weird Table" set "Label" = '{label}'""")
        execute(shop_url, f"update plain set label = '{label}'")
        load(elt_env, tables)
    found = dispositions(elt_env)
    assert found["weird_table"] == found["plain"]
    weird = query(warehouse, "select count(*), max(label) from raw_shop.weird_table")
    plain = query(warehouse, "select count(*), max(label) from raw_shop.plain")
    assert weird == plain


def test_two_tables_that_normalize_to_one_name_are_a_named_configuration_error(elt_env):
    tables = {
        "Order": {"primary_key": ["id"], "cursor": "updated_at"},
        "order": {"primary_key": ["id"], "cursor": "updated_at"},
    }
    with pytest.raises(IdentifierError, match=r"'Order' and 'order' both load into raw table"):
        load(elt_env, tables)


def test_two_columns_that_normalize_to_one_name_are_named_with_how_to_map_them(elt_env, shop_url):
    execute(
        shop_url,
        'create table clash (id bigint primary key, "Order" text, "order" text,'
        " updated_at timestamptz not null default now())",
    )
    with pytest.raises(
        IdentifierError,
        match=r"sources\.shop\.tables\.clash: columns 'Order' and 'order' both load into raw"
        r" column order; rename one in a view",
    ):
        load(elt_env, {"clash": {"primary_key": ["id"], "cursor": "updated_at"}})


def test_a_cursor_that_is_not_a_column_is_named_with_its_setting(elt_env, shop_url):
    execute(
        shop_url,
        "create table spaced (id bigint primary key, updated_at timestamptz default now())",
    )
    with pytest.raises(
        IdentifierError, match=r"sources\.shop\.tables\.spaced\.cursor: 'updated at' is not a"
    ):
        load(elt_env, {"spaced": {"primary_key": ["id"], "cursor": "updated at"}})


def test_a_quarantined_row_of_a_spaced_name_table_is_keyed_and_superseded_by_source_names(
    elt_env, warehouse, shop_url
):
    execute(
        shop_url,
        'create table "Odd Prices" ("Item Id" bigint primary key, "Unit Price" numeric,'
        " updated_at timestamptz not null default now());"
        """insert into "Odd Prices" values (1, 'NaN'), (2, 2.5)""",
    )
    tables = {"Odd Prices": {"primary_key": ["Item Id"], "cursor": "updated_at"}}
    report = load(elt_env, tables)
    assert report.counts["odd_prices"] == {"read": 2, "loaded": 1, "quarantined": 1}
    audit = "select row_key, column_name, status from elt_audit.quarantine"
    assert query(warehouse, audit) == [("Item Id=1", "Unit Price", "open")]
    execute(
        shop_url,
        """update "Odd Prices" set "Unit Price" = 1.25, updated_at = now() where "Item Id" = 1""",
    )
    load(elt_env, tables)
    assert query(warehouse, audit) == [("Item Id=1", "Unit Price", "superseded")]
    assert query(warehouse, "select unit_price from raw_shop.odd_prices order by item_id") == [
        ("1.25",),
        ("2.5",),
    ]
