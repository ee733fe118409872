"""The shop loader against real Postgres servers: incremental, lag window, versions, state."""

from __future__ import annotations

import shutil

import psycopg2
import pytest
from raw_log import counts, visible
from support import execute, query

from demo import shop
from loaders import compaction, pipeline


@pytest.fixture
def seeded(elt_env, shop_url):
    shop.seed(shop_url, 300)
    return elt_env


def load(env, **overrides) -> pipeline.LoadReport:
    from pathlib import Path

    return pipeline.run(
        "shop",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
        source_overrides=overrides or None,
    )


def source_rows(url: str, table: str, key: str) -> dict:
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute(f"select {key}, updated_at, deleted_at from {table}")
        rows = {row[0]: row[1:] for row in cur.fetchall()}
    conn.close()
    return rows


def raw_rows(warehouse, table: str, key: str) -> dict:
    """The current version of each key, as staging reads it."""
    rows = visible(warehouse, "raw_shop", table, key, f"{key}, updated_at, deleted_at")
    return {row[0]: row[1:] for row in rows}


def compact(env) -> compaction.CompactionReport:
    from pathlib import Path

    return compaction.compact(
        "shop",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
    )


def test_first_load_brings_every_row_with_load_metadata(seeded, warehouse, shop_url):
    report = load(seeded)
    counts = shop.counts(shop_url)
    assert report.rows == counts
    assert sorted(report.new_tables) == sorted(counts)
    missing = query(
        warehouse,
        "select count(*) from raw_shop.orders o where o._elt_source <> 'shop'"
        " or o._elt_extracted_at is null"
        " or not exists (select 1 from raw_shop._dlt_loads l"
        " where l.load_id = o._dlt_load_id and l.status = 0)",
    )
    assert missing == [(0,)]


def test_backends_that_do_not_yield_arrow_are_refused_naming_the_setting(seeded):
    with pytest.raises(Exception, match=r"sources\.shop\.backend: 'sqlalchemy' is not supported"):
        load(seeded, backend="sqlalchemy")


def test_second_load_with_no_source_changes_loads_nothing(seeded):
    load(seeded)
    report = load(seeded)
    assert report.rows == {}
    assert report.load_ids == []


def test_inserts_updates_and_soft_deletes_arrive(seeded, warehouse, shop_url):
    load(seeded)
    changes = shop.tick(shop_url, hard_deletes=2)
    report = load(seeded)
    assert report.rows["orders"] == (
        changes["orders_inserted"] + changes["orders_updated"] + changes["orders_soft_deleted"]
    )
    assert report.rows["order_items"] == changes["order_items_inserted"]
    assert report.rows["customers"] == changes["customers_updated"]
    for table, key in (("orders", "order_id"), ("customers", "customer_id")):
        source, raw = source_rows(shop_url, table, key), raw_rows(warehouse, table, key)
        assert {k: v for k, v in raw.items() if k in source} == source
        # a hard-deleted key's current version is its tombstone (loaders/shop/deletes.py)
        assert len(raw) - len(source) == changes.get(f"{table}_hard_deleted", 0)
    assert report.deleted.get("orders") == changes["orders_hard_deleted"] == 2
    # raw is a log: the updated keys now have two versions each, staging reads one
    total, distinct = counts(warehouse, "raw_shop", "customers", "customer_id")
    assert total - distinct == changes["customers_updated"]
    deleted = [row for row in raw_rows(warehouse, "orders", "order_id").values() if row[1]]
    assert len(deleted) == changes["orders_soft_deleted"]


def test_compaction_leaves_one_version_per_key_and_staging_unchanged(seeded, warehouse, shop_url):
    load(seeded)
    changes = shop.tick(shop_url)
    load(seeded)
    before = {t: raw_rows(warehouse, t, k) for t, k in (("orders", "order_id"),)}
    report = compact(seeded)
    assert report.removed["customers"] == {"superseded": changes["customers_updated"], "orphans": 0}
    for table, key in (("orders", "order_id"), ("customers", "customer_id")):
        total, distinct = counts(warehouse, "raw_shop", table, key)
        assert total == distinct
        assert raw_rows(warehouse, table, key) == source_rows(shop_url, table, key)
    assert {"orders": raw_rows(warehouse, "orders", "order_id")} == before
    assert compact(seeded).total_removed == 0


def test_a_load_records_which_tables_held_rows_before_it_and_compaction_still_finds_versions(
    seeded, warehouse, shop_url
):
    """A first load's tables were empty: compaction skips their scans. A later load's tables
    held rows: its superseded versions go as without the hint."""
    from pathlib import Path

    first = load(seeded)
    assert first.had_rows == frozenset()
    assert compaction.versioning("shop")["orders"].one_version_per_load
    changes = shop.tick(shop_url)
    second = load(seeded)
    assert second.had_rows == frozenset(shop.counts(shop_url))
    report = compaction.compact(
        "shop",
        destination_url=seeded["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(seeded["ELT_PIPELINES_DIR"]),
        load_ids=second.load_ids,
        had_rows=second.had_rows,
    )
    assert report.removed["customers"] == {"superseded": changes["customers_updated"], "orphans": 0}
    assert counts(warehouse, "raw_shop", "customers", "customer_id")[0] == len(
        source_rows(shop_url, "customers", "customer_id")
    )


def _late_commit_scenario(env, shop_url, **overrides):
    """A row whose transaction began before a load and committed after it."""
    load(env, **overrides)
    late = psycopg2.connect(shop_url)
    with late.cursor() as cur:  # the transaction starts now: updated_at = now() is old
        cur.execute("update customers set full_name = 'Late Commit' where customer_id = 1")
    execute(shop_url, "update customers set full_name = 'On Time' where customer_id = 2")
    first = load(env, **overrides)
    late.commit()
    late.close()
    second = load(env, **overrides)
    return first, second


def test_row_committed_late_within_lag_window_is_captured_exactly_once(seeded, warehouse, shop_url):
    first, second = _late_commit_scenario(seeded, shop_url)
    assert first.rows == {"customers": 1}
    assert second.rows == {"customers": 1}
    names = [
        (name,)
        for key, name in visible(
            warehouse, "raw_shop", "customers", "customer_id", "customer_id, full_name"
        )
        if key in (1, 2)
    ]
    assert sorted(names) == [("Late Commit",), ("On Time",)]
    assert load(seeded).rows == {}


def test_without_a_lag_window_the_late_row_is_missed(seeded, warehouse, shop_url):
    _, second = _late_commit_scenario(seeded, shop_url, lag_seconds=0)
    assert second.rows == {}
    names = visible(warehouse, "raw_shop", "customers", "customer_id", "customer_id, full_name")
    assert (1, "Late Commit") not in names


def test_state_is_restored_from_the_warehouse_on_an_ephemeral_runner(seeded, shop_url):
    from pathlib import Path

    load(seeded)
    shutil.rmtree(Path(seeded["ELT_PIPELINES_DIR"]))
    assert load(seeded).rows == {}
    shop.tick(shop_url)
    assert load(seeded).rows["orders"] > 0


def test_a_new_source_column_is_added_and_reported(seeded, warehouse, shop_url):
    load(seeded)
    execute(shop_url, "alter table products add column weight_grams integer")
    execute(shop_url, "update products set weight_grams = 250 where product_id = 1")
    report = load(seeded)
    assert report.new_columns == [
        {"table": "products", "column": "weight_grams", "data_type": "bigint"}
    ]
    current = visible(warehouse, "raw_shop", "products", "product_id", "product_id, weight_grams")
    assert current[0] == (1, 250)
