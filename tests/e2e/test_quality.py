"""Data quality end to end: audit, freshness, schema contracts and type changes in a source.

One small warehouse for the module (dbt runs are the slow part): the scenarios build on
each other in file order; the destructive ones (freshness, a type change) come last.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import demo_payments_api, elt_environment, fresh_databases, landing_dir
from support import PROJECT, execute, query, run_elt

from demo import marketing, shop


def project_copy(root: Path) -> Path:
    """The project's dbt side and configuration, for a scenario that edits a model."""
    for name in ("dbt", "macros", "seeds", ".dlt", "tests/dbt"):
        shutil.copytree(
            PROJECT / name,
            root / name,
            ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "secrets.toml"),
        )
    return root


@pytest.fixture(scope="module")
def flow(server, tmp_path_factory):
    """A small shop, loaded and transformed once, with its own copy of the dbt project."""
    with fresh_databases(server) as (warehouse, shop_url):
        pipelines = tmp_path_factory.mktemp("pipelines")
        env = elt_environment(warehouse, shop_url, pipelines)
        project = project_copy(tmp_path_factory.mktemp("project"))
        env |= {"ELT_PROJECT_DIR": str(project), "DLT_PROJECT_DIR": str(project)}
        shop.seed(shop_url, 300)
        marketing.seed(landing_dir(pipelines), shop_url)  # `elt test` checks its freshness too
        with demo_payments_api(shop_url, env) as env:
            run_elt("load", env=env, check=True)
            run_elt("transform", env=env, check=True)
            yield warehouse, shop_url, env


def runs(env, *args: str) -> list[dict]:
    result = run_elt("runs", "--format", "json", *args, env=env, check=True)
    return json.loads(result.stdout)["runs"]


def last_run(warehouse, command: str) -> dict:
    rows = query(
        warehouse,
        "select status, exit_code, failures, ended_at from elt_audit.runs"
        " where command = %s order by started_at desc limit 1",
        (command,),
    )
    return dict(zip(("status", "exit_code", "failures", "ended_at"), rows[0], strict=True))


def test_a_run_killed_midway_is_running_until_the_next_command_marks_it_abandoned(flow):
    warehouse, _, env = flow
    started = time.time()
    process = subprocess.Popen(
        [sys.executable, "-m", "elt", "load"],
        env={**__import__("os").environ, **env},
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        running = []
        while not running and process.poll() is None and time.time() - started < 60:
            running = query(
                warehouse,
                "select run_id from elt_audit.runs where status = 'running' and command = 'load'",
            )
            time.sleep(0.02)
        process.kill()
    finally:
        process.wait()
    assert process.returncode == -9, "the load ended before it could be killed"
    ((run_id,),) = running
    assert query(
        warehouse, "select status, ended_at from elt_audit.runs where run_id = %s", (run_id,)
    ) == [("running", None)]
    (killed,) = [run for run in runs(env) if run["run_id"] == run_id]
    assert killed["status"] == "abandoned" and killed["ended_at"] is not None


def test_a_frozen_source_stops_on_a_type_change_naming_it_without_row_values(flow):
    warehouse, shop_url, env = flow
    execute(shop_url, "alter table products alter column unit_price type text")
    execute(shop_url, "update products set unit_price = 'secret-price-42' where product_id = 7")
    try:
        result = run_elt("load", env={**env, "SOURCES__SHOP__SCHEMA_CONTRACT__DATA_TYPE": "freeze"})
    finally:
        execute(shop_url, "update products set unit_price = '9.99' where product_id = 7")
        execute(
            shop_url,
            "alter table products alter column unit_price type numeric(12, 2)"
            " using unit_price::numeric",
        )
    assert result.returncode == 1, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "schema contract violated" in error
    assert "raw_shop.products.unit_price (decimal -> text)" in error
    assert "secret-price-42" not in result.stdout + result.stderr
    failed = last_run(warehouse, "load")
    assert (failed["status"], failed["exit_code"]) == ("failed", 1)
    assert failed["failures"][0]["status"] == "schema_contract"
    assert query(warehouse, "select count(*) from raw_shop.products where product_id = 7") == [(1,)]


def test_freshness_errors_on_a_stale_table_and_on_an_empty_one(flow):
    warehouse, _, env = flow
    # orders last loaded three days ago (error_after: 48 hours); customers emptied
    execute(
        warehouse.url,
        "insert into raw_shop._dlt_loads (load_id, schema_name, status, inserted_at)"
        " values ('1000000000.000001', 'shop', 0, now() - interval '3 days')",
    )
    execute(warehouse.url, "update raw_shop.orders set _dlt_load_id = '1000000000.000001'")
    execute(warehouse.url, "delete from raw_shop.customers")
    result = run_elt("test", "-s", "source:shop", "--format", "json", env=env)
    assert result.returncode == 1, result.stderr
    freshness = {
        node["name"]: node["status"]
        for node in json.loads(result.stdout)["nodes"]
        if node["resource_type"] == "source"
    }
    assert freshness == {
        "shop.customers": "error",
        "shop.orders": "error",
        "shop.order_items": "pass",
        "shop.products": "pass",
        "shop._dlt_loads": "pass",
    }


def test_a_type_change_in_the_source_fails_test_naming_the_column_and_keeps_marts_clean(flow):
    warehouse, shop_url, env = flow
    marts = "select order_id, shipping_amount from marts.fct_orders order by order_id"
    marts_before = query(warehouse, marts)
    execute(shop_url, "alter table orders alter column shipping_amount type text")
    execute(shop_url, "update orders set shipping_amount = 'free' where order_id in (1, 2)")

    loaded = json.loads(run_elt("load", "--format", "json", env=env, check=True).stdout)
    assert loaded["sources"][0]["type_changes"] == [
        {
            "table": "orders",
            "column": "shipping_amount",
            "old_type": "decimal",
            "new_type": "text",
            "variant_column": "shipping_amount__v_text",
        }
    ]
    assert query(
        warehouse,
        "select order_id, shipping_amount, shipping_amount__v_text from raw_shop.orders"
        " where order_id in (1, 2) order by order_id",
    ) == [(1, None, "free"), (2, None, "free")]

    # the check covers every raw table whatever the selection: a small one keeps this fast
    tested = run_elt("test", "-s", "stg_shop__products", env=env)
    assert tested.returncode == 1, tested.stderr
    error = tested.stderr.strip().splitlines()[-1]
    assert "raw_shop.orders.shipping_amount changed type" in error
    assert "shipping_amount__v_text" in error and "stg_shop__orders" in error

    transformed = run_elt("transform", "--format", "json", env=env)
    assert transformed.returncode == 1, transformed.stderr
    built = {node["name"] for node in json.loads(transformed.stdout)["nodes"]}
    assert "stg_shop__orders" not in built and "fct_orders" not in built
    assert "stg_shop__customers" in built
    assert query(warehouse, marts) == marts_before

    recorded = {run["command"]: run for run in runs(env, "--limit", "2")}
    for command in ("test", "transform"):
        assert (recorded[command]["status"], recorded[command]["exit_code"]) == ("failed", 1)
        assert recorded[command]["failures"][0] == {
            "name": "raw_shop.orders.shipping_amount__v_text",
            "status": "unhandled_type_change",
            "failures": None,
            "message": recorded[command]["failures"][0]["message"],
        }


def test_once_staging_handles_the_variant_transform_carries_its_values_to_the_marts(flow):
    warehouse, shop_url, env = flow
    # the freshness scenario emptied raw customers, which the gated transform would not
    # publish (orders without customers fail their tests): the source sends them again
    execute(shop_url, "update customers set updated_at = now()")
    run_elt("load", "shop", env=env, check=True)
    model = Path(env["ELT_PROJECT_DIR"]) / "dbt/models/staging/shop/stg_shop__orders.sql"
    reading = "{{ dbt.cast('shipping_amount', dbt.type_numeric()) }} as shipping_amount"
    handling = (
        "{{ dbt.cast(coalesce_variant(source('shop', 'orders'), 'shipping_amount',"
        " 'shipping_amount__v_text', \"case shipping_amount__v_text when 'free' then 0 end\"),"
        " dbt.type_numeric()) }} as shipping_amount"
    )
    assert reading in model.read_text()
    model.write_text(model.read_text().replace(reading, handling))
    run_elt("transform", env=env, check=True)
    assert query(
        warehouse,
        "select order_id, shipping_amount from marts.fct_orders where order_id in (1, 2)"
        " or shipping_amount is null order by order_id",
    ) == [(1, 0), (2, 0)]
