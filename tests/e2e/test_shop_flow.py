"""The demo flow end to end, as cron runs it: elt load && elt transform && elt test.

One warehouse for the module: dbt runs are the slow part, so the scenarios build on
each other in file order (seed, load, transform, test, tick, killed load, rerun).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import elt_environment, fresh_databases, landing_dir
from support import PROJECT, query, run_elt

from demo import marketing, shop

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
        yield warehouse, shop_url, env


def source_versions(shop_url: str, table: str, key: str) -> set[tuple]:
    import psycopg2

    conn = psycopg2.connect(shop_url)
    with conn.cursor() as cur:
        cur.execute(f"select {key}, updated_at from {table}")
        rows = set(cur.fetchall())
    conn.close()
    return rows


def assert_staging_matches_source(warehouse, shop_url) -> None:
    """Every source row exactly once in staging, at its latest version."""
    for model, key in STAGING_KEYS.items():
        table = model.removeprefix("stg_shop__")
        staged = query(warehouse, f"select {key}, updated_at from staging.{model}")
        assert len(staged) == len(set(staged)), f"duplicates in {model}"
        assert set(staged) == source_versions(shop_url, table, key), model


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
    changes = shop.tick(shop_url)
    loaded = json.loads(run_elt("load", "--format", "json", env=env, check=True).stdout)
    assert loaded["sources"][0]["rows"]["orders"] == (
        changes["orders_inserted"] + changes["orders_updated"] + changes["orders_soft_deleted"]
    )
    run_elt("transform", env=env, check=True)
    assert_staging_matches_source(warehouse, shop_url)
    live = source_versions(shop_url, "orders where deleted_at is null", "order_id")
    marts = query(warehouse, "select order_id from marts.fct_orders")
    assert {row[0] for row in marts} == {row[0] for row in live}


KILL_DURING_LOAD = textwrap.dedent(
    """
    import os, sys, threading, time
    from pathlib import Path
    from elt.runtime import Runtime
    from loaders import pipeline

    runtime = Runtime()
    runtime.prepare_dlt()
    jobs = Path(os.environ["ELT_PIPELINES_DIR"]) / "elt_shop" / "load" / "normalized"

    def kill_after_first_completed_job():
        while True:
            if any(jobs.glob("*/completed_jobs/*")):
                os.kill(os.getpid(), 9)
            time.sleep(0.001)

    threading.Thread(target=kill_after_first_completed_job, daemon=True).start()
    pipeline.run("shop", destination_url=runtime.warehouse.url,
                 pipelines_dir=runtime.pipelines_dir)
    sys.exit(3)  # the load finished before it could be killed: the scenario did not happen
    """
)


def test_a_load_killed_midway_is_finished_by_the_next_run(flow):
    warehouse, shop_url, env = flow
    shop.tick(shop_url)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_DURING_LOAD],
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr
    shop.tick(shop_url)  # new data arrives while the package is pending
    rerun = json.loads(run_elt("load", "--format", "json", env=env, check=True).stdout)
    (source,) = [s for s in rerun["sources"] if s["source"] == "shop"]
    assert len(source["resumed_load_ids"]) == 1
    assert source["rows"]["orders"] > 0
    run_elt("transform", env=env, check=True)
    assert_staging_matches_source(warehouse, shop_url)
    again = json.loads(run_elt("load", "--format", "json", env=env, check=True).stdout)
    assert again["sources"][0]["total_rows"] == 0


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
    run_elt("transform", env=env, check=True)
    result = run_elt("test", "--format", "json", env=env)
    assert result.returncode == 1, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "failed"
    failed = [node for node in payload["nodes"] if node["status"] == "fail"]
    assert failed and all("product_id" in node["name"] for node in failed)
    assert all(node["failures"] == 1 for node in failed)
    error = result.stderr.strip().splitlines()[-1]
    assert "1 failing rows" in error and "product_id" in error
