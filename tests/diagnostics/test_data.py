"""Data checks per source against a real warehouse loaded by dlt: healthy, stale, pending,
incomplete, state out of line with raw, variant columns; mart keys."""

from __future__ import annotations

import contextlib

import psycopg2
import pytest
from conftest import PROJECT
from doctor_support import check, context
from support import execute, kill_a_load_midway, query

from demo import shop
from diagnostics import data, dbt_meta

pytest_plugins = ["doctor_servers"]

HEALTHY = ("last_load", "packages", "incomplete_loads", "cursor_state", "variant_columns")


@contextlib.contextmanager
def changed(warehouse_url: str, change: str, undo: str):
    """A change to the shared loaded warehouse, undone afterwards."""
    execute(warehouse_url, change)
    try:
        yield
    finally:
        execute(warehouse_url, undo)


def test_a_fresh_load_is_healthy_in_every_dlt_check(loaded):
    _, _, env = loaded
    for source in ("shop", "payments"):
        for name in (*HEALTHY, "freshness"):
            result = check(env, f"data/{source}/{name}")
            assert result.status == "OK", (source, name, result.detail)
    assert "4 cursor(s) match" in check(env, "data/shop/cursor_state").detail
    # the shop's freshness is load time (its sources YAML's loaded_at_query), computed for
    # every table: four tables and dlt's load log
    freshness = check(env, "data/shop/freshness")
    assert [t["status"] for t in freshness.facts["tables"]] == ["pass"] * 5, freshness.facts


def test_a_source_never_loaded_fails_last_load_with_the_load_command(elt_env):
    result = check(elt_env, "data/shop/last_load")
    assert result.status == "FAIL" and "no completed load yet" in result.detail
    assert result.hint == "`elt load shop`"


def test_a_stale_source_fails_last_load_and_freshness(loaded):
    warehouse, _, env = loaded
    tables = ("customers", "products", "orders", "order_items")

    def shift(sign: str) -> str:
        extracted = f"_elt_extracted_at = _elt_extracted_at {sign} interval '3 days'"
        return ";".join(
            [f"update raw_shop._dlt_loads set inserted_at = inserted_at {sign} interval '3 days'"]
            + [f"update raw_shop.{table} set {extracted}" for table in tables]
        )

    older, back = shift("-"), shift("+")
    with changed(warehouse.url, older, back):
        last_load = check(env, "data/shop/last_load")
        freshness = check(env, "data/shop/freshness")
    assert last_load.status == "FAIL" and "stale" in last_load.detail
    assert "dbt source shop freshness" in last_load.detail  # thresholds from the sources YAML
    assert last_load.hint == "`elt load shop`"
    assert freshness.status == "FAIL" and "orders 3.0 d old" in freshness.detail


def test_variant_columns_warn_naming_the_table_and_column(loaded):
    warehouse, _, env = loaded
    with changed(
        warehouse.url,
        "alter table raw_shop.orders add column shipping_amount__v_text varchar",
        "alter table raw_shop.orders drop column shipping_amount__v_text",
    ):
        result = check(env, "data/shop/variant_columns")
    assert result.status == "WARN"
    assert "orders.shipping_amount__v_text" in result.detail
    assert "elt sql" in result.hint


def test_state_ahead_of_raw_beyond_the_lag_window_fails(loaded):
    warehouse, _, env = loaded
    with changed(
        warehouse.url,
        "update raw_shop.orders set updated_at = updated_at - interval '2 days'",
        "update raw_shop.orders set updated_at = updated_at + interval '2 days'",
    ):
        result = check(env, "data/shop/cursor_state")
    assert result.status == "FAIL"
    assert "state ahead of raw" in result.detail and "orders.updated_at (2.0 d)" in result.detail
    (orders,) = [c for c in result.facts["cursors"] if c["resource"] == "orders"]
    assert orders["state_vs_raw"] == "ahead"


def test_state_behind_raw_warns(loaded):
    warehouse, _, env = loaded
    with changed(
        warehouse.url,
        "update raw_shop.customers set updated_at = updated_at + interval '1 hour'",
        "update raw_shop.customers set updated_at = updated_at - interval '1 hour'",
    ):
        result = check(env, "data/shop/cursor_state")
    assert result.status == "WARN" and "customers.updated_at (60 min)" in result.detail
    assert result.hint == "`elt load shop` moves the state on"


def test_state_decoding_matches_dlts_own_helper(loaded):
    from dlt.common.versioned_state import decompress_state

    warehouse, _, _ = loaded
    ((encoded,),) = query(warehouse, "select state from raw_shop._dlt_pipeline_state limit 1")
    assert data.decode_state(encoded) == decompress_state(encoded)


def test_a_package_with_failed_jobs_fails(loaded, tmp_path):
    _, _, env = loaded
    package = tmp_path / "elt_shop" / "load" / "loaded" / "1795000000.1"
    (package / "failed_jobs").mkdir(parents=True)
    (package / "failed_jobs" / "orders.1a2b.0.parquet").write_text("")
    result = check({**env, "ELT_PIPELINES_DIR": str(tmp_path)}, "data/shop/packages")
    assert result.status == "FAIL" and "1795000000.1" in result.detail
    assert "failed_jobs" in result.hint and "elt load shop" in result.hint


def test_a_killed_load_leaves_a_pending_package_that_warns(loaded, tmp_path):
    warehouse, shop_url, env = loaded
    # its own working dir: the package stays pending there
    env = {**env, "ELT_PIPELINES_DIR": str(tmp_path / "pipelines")}
    shop.tick(shop_url)
    try:
        assert kill_a_load_midway(env).returncode == -9
        result = check(env, "data/shop/packages")
        assert result.status == "WARN" and "1 pending load package(s)" in result.detail
        assert result.hint == "`elt load shop` finishes them first"
        assert len(result.facts["load_ids"]) == 1
    finally:
        # raw is an append-only log: the killed load's jobs wrote rows into the shared
        # warehouse; put it back (staging never saw them: their load is not in _dlt_loads)
        for table in ("customers", "products", "orders", "order_items"):
            execute(
                warehouse.url,
                f"delete from raw_shop.{table} where _dlt_load_id not in"
                " (select load_id from raw_shop._dlt_loads where status = 0)",
            )


def test_raw_rows_of_a_load_that_never_completed_warn(loaded):
    """Rows a load wrote before it died without recording itself in _dlt_loads."""
    warehouse, _, env = loaded
    with changed(
        warehouse.url,
        "insert into raw_shop.orders select * from raw_shop.orders limit 3;"
        " update raw_shop.orders set _dlt_load_id = '1795999999.5'"
        " where ctid in (select ctid from raw_shop.orders order by ctid desc limit 3)",
        "delete from raw_shop.orders where _dlt_load_id = '1795999999.5'",
    ):
        result = check(env, "data/shop/incomplete_loads")
    assert result.status == "WARN" and "3 raw row(s) of loads never completed" in result.detail
    assert "no pending package here" in result.detail
    assert result.hint.startswith("`elt compact shop` removes them")


def test_doctor_connections_are_read_only(loaded):
    _, _, env = loaded
    ctx = context(env)
    with ctx.warehouse_connection() as conn, pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        conn.cursor().execute("create table public.doctor_wrote_here (id int)")


# --- mart keys ----------------------------------------------------------------------------


@pytest.fixture
def marts(module_warehouse):
    """A warehouse of its own for the marts; each test rebuilds them."""
    return module_warehouse


def build_marts(warehouse, *, broken: str | None = None, missing: str | None = None) -> None:
    """The marts' key columns as tables with one clean row each; `broken` gets a duplicate
    and a null key; `missing` is not built."""
    keys, _ = dbt_meta.mart_keys(PROJECT)
    tables: dict[tuple[str, str], list[str]] = {}
    for key in keys:
        tables.setdefault((key.schema, key.table), []).append(key.column)
    statements = ["drop schema if exists marts cascade", "create schema marts"]
    for (schema, table), columns in tables.items():
        if table == missing:
            continue
        statements.append(f"create table {schema}.{table} ({' text, '.join(columns)} text)")
        values = ", ".join(["'1'"] * len(columns))
        statements.append(f"insert into {schema}.{table} values ({values})")
        if table == broken:
            statements.append(f"insert into {schema}.{table} ({columns[0]}) values ('1'), (null)")
    execute(warehouse.url, ";".join(statements))


def test_mart_keys_without_nulls_or_duplicates_are_ok(marts):
    warehouse, env = marts
    build_marts(warehouse)
    result = check(env, "data/mart_keys")
    assert result.status == "OK", result.detail
    assert "no nulls, no duplicates" in result.detail


def test_a_duplicate_and_a_null_mart_key_fail_naming_the_model(marts):
    warehouse, env = marts
    build_marts(warehouse, broken="fct_orders")
    result = check(env, "data/mart_keys")
    assert result.status == "FAIL"
    assert "fct_orders.order_id: 1 null(s), 1 duplicate(s)" in result.detail
    assert result.hint == "`elt test -s fct_orders`"


def test_marts_not_built_yet_warn_with_the_transform_command(marts):
    warehouse, env = marts
    build_marts(warehouse, missing="dim_customers")
    result = check(env, "data/mart_keys")
    assert result.status == "WARN" and "dim_customers" in result.detail
    assert result.hint == "`elt transform`"
