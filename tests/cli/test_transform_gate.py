"""`elt transform` is a gated `dbt build`: marts are written, audited, then published.

One small warehouse for the module, loaded and transformed once; the scenarios build on
each other in file order (a bad value in the source, a mart test failing on its own, a
reader's lock during the publish, a selection that matches nothing).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from conftest import demo_payments_api, elt_environment, fresh_databases, landing_dir
from support import execute, query, run_elt

from demo import marketing, shop

LOCK_TIMEOUT = 2


@pytest.fixture(scope="module")
def flow(server, tmp_path_factory):
    with fresh_databases(server) as (warehouse, shop_url):
        pipelines = tmp_path_factory.mktemp("pipelines")
        env = elt_environment(warehouse, shop_url, pipelines)
        shop.seed(shop_url, 300)
        marketing.seed(landing_dir(pipelines), shop_url)
        with demo_payments_api(shop_url, env) as env:
            run_elt("load", env=env, check=True)
            run_elt("transform", env=env, check=True)
            yield warehouse, shop_url, env


def published(warehouse, order_id: int):
    return query(
        warehouse, "select shipping_amount from marts.fct_orders where order_id = %s", (order_id,)
    )


def last_run(warehouse) -> tuple:
    return query(
        warehouse,
        "select status, exit_code, error, failures from elt_audit.runs"
        " where command = 'transform' order by started_at desc limit 1",
    )[0]


def test_a_negative_shipping_amount_fails_transform_and_never_reaches_the_marts(flow):
    warehouse, shop_url, env = flow
    before = published(warehouse, 1)
    execute(
        shop_url, "update orders set shipping_amount = -5, updated_at = now() where order_id = 1"
    )
    run_elt("load", "shop", env=env, check=True)
    result = run_elt("transform", "--format", "json", env=env)
    assert result.returncode == 1, result.stderr
    assert published(warehouse, 1) == before  # the previous contents stay
    payload = json.loads(result.stdout)
    assert "fct_orders" in payload["held_back"]
    error = result.stderr.strip().splitlines()[-1]
    assert "stg_shop__orders_shipping_amount" in error and "held back" in error
    assert "fct_orders" in error and "elt transform -s stg_shop__orders+" in error
    status, exit_code, _, failures = last_run(warehouse)
    assert (status, exit_code) == ("failed", 1)
    assert any("shipping_amount" in failure["name"] for failure in failures)


def test_a_failing_mart_test_holds_the_mart_back_in_its_audit_schema(flow):
    # staging now holds the negative amount: only the mart's own test stands in the way
    warehouse, _, env = flow
    before = published(warehouse, 1)
    result = run_elt("transform", "-s", "fct_orders+", "--format", "json", env=env)
    assert result.returncode == 1, result.stderr
    payload = json.loads(result.stdout)
    failed = [node["name"] for node in payload["nodes"] if node["status"] == "fail"]
    assert failed == [
        "dbt_expectations_expect_column_values_to_be_between_fct_orders_shipping_amount__0"
    ]
    assert "shipping_amount" in payload["held_back"]["fct_orders"]
    assert "marts.fct_orders" not in payload["published"]
    assert published(warehouse, 1) == before
    # the audited build stays beside it for inspection
    held = query(warehouse, "select shipping_amount from marts__wap.fct_orders where order_id = 1")
    assert float(held[0][0]) == -5


def test_once_fixed_the_mart_is_published_and_its_audit_schema_shows_it(flow):
    warehouse, shop_url, env = flow
    execute(
        shop_url, "update orders set shipping_amount = 7, updated_at = now() where order_id = 1"
    )
    run_elt("load", "shop", env=env, check=True)
    result = run_elt("transform", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert "marts.fct_orders" in json.loads(result.stdout)["published"]
    assert float(published(warehouse, 1)[0][0]) == 7

    def kinds(table: str) -> dict[str, str]:
        return dict(
            query(
                warehouse,
                "select table_schema, table_type from information_schema.tables"
                " where table_name = %s and table_schema like 'marts%%'",
                (table,),
            )
        )

    # a table mart moved into marts; its audit schema shows it through a view
    assert kinds("rpt_daily_revenue") == {"marts": "BASE TABLE", "marts__wap": "VIEW"}
    # an incremental mart keeps its build, the state its next build starts from, and the
    # publish copied the changed rows: both hold the fixed order
    assert kinds("fct_orders") == {"marts": "BASE TABLE", "marts__wap": "BASE TABLE"}
    held = query(warehouse, "select shipping_amount from marts__wap.fct_orders where order_id = 1")
    assert float(held[0][0]) == 7


def test_a_readers_lock_makes_the_publish_give_up_naming_the_reader_and_nobody_queues(flow):
    warehouse, shop_url, env = flow
    execute(
        shop_url, "update orders set shipping_amount = 8, updated_at = now() where order_id = 1"
    )
    run_elt("load", "shop", env=env, check=True)
    reader = warehouse.connect()
    pid = reader.get_backend_pid()
    # a table mart's publish renames it (ACCESS EXCLUSIVE); an incremental mart's publish
    # (delete and insert of its changed rows) waits for no reader
    reader.cursor().execute("select count(*) from marts.rpt_daily_revenue")  # ACCESS SHARE
    waits: list[float] = []
    stop = threading.Event()

    def poll() -> None:  # another reader, as a dashboard would
        conn = warehouse.connect()
        conn.autocommit = True
        while not stop.is_set():
            started = time.monotonic()
            conn.cursor().execute("select count(*) from marts.rpt_daily_revenue")
            waits.append(time.monotonic() - started)
            time.sleep(0.05)
        conn.close()

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        result = run_elt("transform", env={**env, "ELT_LOCK_TIMEOUT_SECONDS": str(LOCK_TIMEOUT)})
    finally:
        stop.set()
        poller.join()
        reader.rollback()
        reader.close()
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert f"pid {pid} " in error
    assert "holds a lock on marts.rpt_daily_revenue" in error
    assert "select count(*) from marts.rpt_daily_revenue" in error
    assert float(published(warehouse, 1)[0][0]) == 7  # as it was: one transaction
    # without lock_timeout they would queue until the reader ends: here after the transform
    assert waits and max(waits) < LOCK_TIMEOUT + 5
    status, exit_code, message, _ = last_run(warehouse)
    assert (status, exit_code) == ("error", 2) and "lock" in message


def test_a_selection_that_matches_nothing_is_a_usage_error_recorded_as_error(flow):
    warehouse, _, env = flow
    result = run_elt("transform", "-s", "nosuchmodel", env=env)
    assert result.returncode == 2, result.stderr
    assert "-s nosuchmodel selects no node" in result.stderr
    status, exit_code, message, _ = last_run(warehouse)
    assert (status, exit_code) == ("error", 2) and "nosuchmodel" in message
