"""The demo flow end to end, as cron runs it: elt load && elt transform && elt test.

One warehouse for the module: dbt runs are the slow part, so the scenarios build on
each other in file order (seed, load, transform, test, tick, killed load, rerun).
"""

from __future__ import annotations

import json

import pytest
from conftest import demo_payments_api, elt_environment, fresh_databases, landing_dir
from support import fetch, kill_a_load_midway, query, run_elt

from demo import marketing, payments, shop

STAGING_KEYS = {
    "stg_shop__customers": "customer_id",
    "stg_shop__products": "product_id",
    "stg_shop__orders": "order_id",
    "stg_shop__order_items": "order_item_id",
}


@pytest.fixture(scope="module")
def flow(server, tmp_path_factory):
    with fresh_databases(server) as (warehouse, shop_url):
        pipelines = tmp_path_factory.mktemp("pipelines")
        env = elt_environment(warehouse, shop_url, pipelines)
        shop.seed(shop_url, 2_000)
        marketing.seed(landing_dir(pipelines), shop_url)  # `elt test` checks its freshness too
        with demo_payments_api(shop_url, env) as env:
            yield warehouse, shop_url, env


def source_versions(shop_url: str, table: str, key: str) -> set[tuple]:
    import psycopg2

    conn = psycopg2.connect(shop_url)
    with conn.cursor() as cur:
        cur.execute(f"select {key}, updated_at from {table}")
        rows = set(cur.fetchall())
    conn.close()
    return rows


def paid_live(paid: dict, live: set[tuple]) -> dict:
    """Succeeded payment totals of the orders that are not soft-deleted."""
    live_ids = {row[0] for row in live}
    return {order: amount for order, amount in paid.items() if order in live_ids}


def assert_staging_matches_source(warehouse, shop_url) -> None:
    """Every source row exactly once in staging, at its latest version; a row gone from
    the source (hard-deleted by the tick) is in staging flagged deleted."""
    for model, key in STAGING_KEYS.items():
        table = model.removeprefix("stg_shop__")
        staged = query(warehouse, f"select {key}, updated_at, is_deleted from staging.{model}")
        assert len(staged) == len({row[0] for row in staged}), f"duplicates in {model}"
        source = source_versions(shop_url, table, key)
        source_keys = {row[0] for row in source}
        assert {row[:2] for row in staged if row[0] in source_keys} == source, model
        assert all(row[2] for row in staged if row[0] not in source_keys), model


def test_load_transform_and_test_pass_on_the_demo(flow):
    warehouse, shop_url, env = flow
    run_elt("load", env=env, check=True)
    transformed = run_elt("transform", "--format", "json", env=env, check=True)
    assert json.loads(transformed.stdout)["status"] == "success"
    tested = run_elt("test", "--format", "json", env=env, check=True)
    payload = json.loads(tested.stdout)
    assert payload["status"] == "success"
    kinds = {node["resource_type"] for node in payload["nodes"]}
    assert {"test", "unit_test", "source"} <= kinds
    orders = shop.counts(shop_url)["orders"]
    assert query(warehouse, "select count(*) from marts.fct_orders") == [(orders,)]


def test_doctor_is_healthy_after_load_transform_and_test(flow):
    _, _, env = flow
    result = run_elt("doctor", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert {c["section"] for c in payload["checks"]} == {"system", "config", "connectivity", "data"}
    checks = {c["id"]: c for c in payload["checks"]}
    for check_id in ("connectivity/warehouse", "connectivity/source/shop", "data/mart_keys"):
        assert checks[check_id]["status"] == "OK", checks[check_id]
    for name in ("last_load", "packages", "incomplete_loads", "cursor_state", "freshness"):
        assert checks[f"data/shop/{name}"]["status"] == "OK", checks[f"data/shop/{name}"]


def test_fct_orders_has_paid_refunded_and_unpaid_orders(flow):
    _, _, env = flow
    result = run_elt(
        "sql",
        "select payment_status, count(*) from marts.fct_orders group by 1",
        "--format",
        "csv",
        env=env,
        check=True,
    )
    statuses = {line.split(",")[0] for line in result.stdout.splitlines()[1:]}
    assert {"paid", "refunded", "unpaid"} <= statuses


def test_marketing_performance_shows_spend_beside_attributed_revenue(flow):
    warehouse, _, _ = flow
    totals = query(
        warehouse,
        "select sum(spend), sum(sessions), sum(orders), sum(revenue)"
        " from marts.rpt_marketing_performance",
    )
    spend, sessions, orders, revenue = totals[0]
    staged = query(warehouse, "select count(*) from staging.stg_marketing__web_sessions")
    assert spend > 0 and revenue > 0 and sessions == staged[0][0]
    # each order a session points to counts once, cancelled ones excluded
    attributed = query(
        warehouse,
        "select count(distinct s.order_id), sum(o.order_total)"
        " from (select distinct order_id from staging.stg_marketing__web_sessions) as s"
        " join marts.fct_orders as o on o.order_id = s.order_id where not o.is_cancelled",
    )
    assert (orders, revenue) == attributed[0]


def test_staging_has_no_duplicates_and_matches_the_source(flow):
    warehouse, shop_url, _ = flow
    assert_staging_matches_source(warehouse, shop_url)


def test_a_tick_reaches_the_marts_exactly(flow):
    warehouse, shop_url, env = flow
    changes = shop.tick(shop_url, hard_deletes=shop.TICK_HARD_DELETED_ORDERS)
    payment_changes = payments.tick(shop_url)
    loaded = json.loads(run_elt("load", "--format", "json", env=env, check=True).stdout)
    by_source = {source["source"]: source["rows"] for source in loaded["sources"]}
    by_deleted = {source["source"]: source["deleted"] for source in loaded["sources"]}
    shop_rows, payment_rows = by_source["shop"], by_source["payments"]
    assert shop_rows["orders"] == (
        changes["orders_inserted"] + changes["orders_updated"] + changes["orders_soft_deleted"]
    )
    assert by_deleted["shop"] == {
        "orders": changes["orders_hard_deleted"],
        "order_items": changes["order_items_hard_deleted"],
    }
    assert payment_rows["payments"] == (
        payment_changes["payments_inserted"] + payment_changes["payments_updated"]
    )
    run_elt("transform", env=env, check=True)
    assert_staging_matches_source(warehouse, shop_url)
    live = source_versions(shop_url, "orders where deleted_at is null", "order_id")
    marts = query(warehouse, "select order_id, amount_paid from marts.fct_orders")
    assert {row[0] for row in marts} == {row[0] for row in live}
    paid = dict(
        fetch(
            shop_url,
            "select order_id, sum(amount) / 100.0 from payments_api.payments"
            " where status = 'succeeded' group by order_id",
        )
    )
    assert {order: amount for order, amount in marts if amount} == paid_live(paid, live)


def test_a_load_killed_midway_is_finished_by_the_next_run(flow):
    warehouse, shop_url, env = flow
    shop.tick(shop_url)
    killed = kill_a_load_midway(env)
    assert killed.returncode == -9, killed.stderr
    shop.tick(shop_url)  # new data arrives while the package is pending
    rerun = json.loads(run_elt("load", "--format", "json", env=env, check=True).stdout)
    source = next(source for source in rerun["sources"] if source["source"] == "shop")
    assert len(source["resumed_load_ids"]) == 1
    assert source["rows"]["orders"] > 0
    run_elt("transform", env=env, check=True)
    assert_staging_matches_source(warehouse, shop_url)
    again = json.loads(run_elt("load", "--format", "json", env=env, check=True).stdout)
    assert {source["source"]: source["total_rows"] for source in again["sources"]} == {
        "shop": 0,
        "payments": 0,
        "marketing": 0,
    }


def test_a_failing_dbt_test_exits_1_naming_the_test_and_its_failing_rows(flow):
    _, shop_url, env = flow
    from support import execute

    execute(
        shop_url, "alter table order_items drop constraint if exists order_items_product_id_fkey"
    )
    execute(
        shop_url,
        "insert into order_items (order_item_id, order_id, product_id, quantity, unit_price,"
        " created_at) values (999999999, 1, 987654, 1, 1.00, now())",
    )
    run_elt("load", env=env, check=True)
    # transform is gated: the mart's failing test holds fct_order_items back (exit 1)
    transformed = run_elt("transform", env=env)
    assert transformed.returncode == 1, transformed.stderr
    assert "fct_order_items" in transformed.stderr.strip().splitlines()[-1]
    result = run_elt("test", "--format", "json", env=env)
    assert result.returncode == 1, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "failed"
    failed = [node for node in payload["nodes"] if node["status"] == "fail"]
    assert failed and all("product_id" in node["name"] for node in failed)
    assert all(node["failures"] == 1 for node in failed)
    error = result.stderr.strip().splitlines()[-1]
    assert "1 failing rows" in error and "product_id" in error


def test_every_run_of_the_flow_is_audited_with_its_rows_and_failures(flow):
    warehouse, _, env = flow
    listed = run_elt("runs", "--format", "json", env=env, check=True).stdout
    recorded = json.loads(listed)["runs"]
    assert {run["command"] for run in recorded} == {"load", "transform", "test"}
    assert all(run["ended_at"] is not None for run in recorded)
    first_load = recorded[-1]
    assert first_load["command"] == "load" and first_load["status"] == "success"
    tables = {model.removeprefix("stg_shop__") for model in STAGING_KEYS}
    shop_tables = {table for table in first_load["rows"] if table.startswith("raw_shop.")}
    assert shop_tables == {f"raw_shop.{table}" for table in tables}
    assert {"raw_payments.payments", "raw_marketing.ad_spend"} <= set(first_load["rows"])
    # newest first: the failing `elt test` above, with its test and failing-row count
    last_test = next(run for run in recorded if run["command"] == "test")
    assert (last_test["status"], last_test["exit_code"]) == ("failed", 1)
    assert {(f["status"], f["failures"]) for f in last_test["failures"]} == {("fail", 1)}
    assert all("product_id" in f["name"] for f in last_test["failures"])
    # dbt's node results, tied to each run that invoked dbt; dbt-expectations among them
    first_test = [run for run in recorded if run["command"] == "test"][-1]
    results = query(
        warehouse,
        "select name, status from elt_audit.dbt_results where run_id = %s",
        (first_test["run_id"],),
    )
    expectations = [status for name, status in results if name.startswith("dbt_expectations_")]
    assert len(expectations) >= 10 and set(expectations) == {"pass"}
    human = run_elt("runs", "--limit", "3", env=env, check=True).stdout
    assert "failed" in human and "test" in human
