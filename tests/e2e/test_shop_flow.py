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
from conftest import elt_environment, fresh_databases
from support import PROJECT, fetch, query, run_elt

from demo import payments, shop
from demo.payments_api import PaymentsAPI

STAGING_KEYS = {
    "stg_shop__customers": "customer_id",
    "stg_shop__products": "product_id",
    "stg_shop__orders": "order_id",
    "stg_shop__order_items": "order_item_id",
}


@pytest.fixture(scope="module")
def flow(server, tmp_path_factory):
    with fresh_databases(server) as (warehouse, shop_url):
        env = elt_environment(warehouse, shop_url, tmp_path_factory.mktemp("pipelines"))
        shop.seed(shop_url, 2_000)
        payments.seed(shop_url)
        with PaymentsAPI(shop_url, "e2e-token") as api:
            env.update(SOURCES__PAYMENTS__BASE_URL=api.url, SOURCES__PAYMENTS__TOKEN="e2e-token")
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


def test_staging_has_no_duplicates_and_matches_the_source(flow):
    warehouse, shop_url, _ = flow
    assert_staging_matches_source(warehouse, shop_url)


def test_a_tick_reaches_the_marts_exactly(flow):
    warehouse, shop_url, env = flow
    changes = shop.tick(shop_url)
    payment_changes = payments.tick(shop_url)
    loaded = json.loads(run_elt("load", "--format", "json", env=env, check=True).stdout)
    shop_rows, payment_rows = (source["rows"] for source in loaded["sources"])
    assert shop_rows["orders"] == (
        changes["orders_inserted"] + changes["orders_updated"] + changes["orders_soft_deleted"]
    )
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
    source = next(source for source in rerun["sources"] if source["source"] == "shop")
    assert len(source["resumed_load_ids"]) == 1
    assert source["rows"]["orders"] > 0
    run_elt("transform", env=env, check=True)
    assert_staging_matches_source(warehouse, shop_url)
    again = json.loads(run_elt("load", "--format", "json", env=env, check=True).stdout)
    assert [source["total_rows"] for source in again["sources"]] == [0, 0]


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
