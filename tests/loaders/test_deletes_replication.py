"""The shop source in replication mode against the embedded server (wal_level = logical).

One warehouse and shop database for the module, the scenarios in file order: snapshot,
insert-update-delete between two loads, a hard delete reaching the marts, a load killed
before it is recorded, the doctor's slot check, a lost slot and its re-snapshot.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from conftest import (
    PROJECT,
    SERVER_ENV,
    demo_payments_api,
    elt_environment,
    fresh_databases,
    landing_dir,
)
from support import execute, fetch, kill_a_load_midway, query, run_elt

from demo import marketing, shop
from loaders.shop import replication
from runtime import embedded

# a whole transform: a fresh warehouse has no published marts for a selection to lean on
MARTS = ()
COMPLETED = "_dlt_load_id in (select load_id from raw_shop._dlt_loads where status = 0)"


@pytest.fixture(scope="module")
def logical_server(server):
    """The test server with wal_level = logical. An embedded server started before elt set
    it (runtime/embedded.py) is restarted once to take it; it keeps its port."""
    if query(server, "show wal_level") != [("logical",)]:
        if os.environ.get(SERVER_ENV):
            pytest.skip(f"{SERVER_ENV} names a server without wal_level = logical")
        embedded.stop(PROJECT)
        embedded.ensure_running(PROJECT)
    assert query(server, "show wal_level") == [("logical",)]
    return server


@pytest.fixture(scope="module")
def flow(logical_server, tmp_path_factory):
    server = logical_server
    slot = f"elt_test_{uuid.uuid4().hex[:8]}"  # slots are per server, tests share one
    with fresh_databases(server) as (warehouse, shop_url):
        pipelines = tmp_path_factory.mktemp("pipelines")
        env = elt_environment(warehouse, shop_url, pipelines)
        marketing.seed(landing_dir(pipelines), shop_url)  # a whole transform reads it too
        env.update(
            SOURCES__SHOP__MODE="replication",
            SOURCES__SHOP__SLOT_NAME=slot,
            SOURCES__SHOP__PUBLICATION=slot,
            # the versions stay in raw for the tests to see (compaction keeps the current one)
            SOURCES__SHOP__COMPACT_EVERY_LOADS="0",
        )
        shop.seed(shop_url, 300)
        try:
            with demo_payments_api(shop_url, env) as env:
                yield warehouse, shop_url, env, slot
        finally:
            replication.drop_slot(shop_url, slot)  # a database with a slot cannot be dropped


def load(env) -> dict:
    result = run_elt("load", "shop", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["sources"][0]


def confirmed_lsn(shop_url: str, slot: str) -> int:
    rows = fetch(
        shop_url,
        "select (confirmed_flush_lsn - '0/0')::bigint from pg_replication_slots"
        " where slot_name = %s",
        (slot,),
    )
    return rows[0][0]


def test_the_first_load_is_a_snapshot_consistent_with_the_new_slot(flow):
    warehouse, shop_url, env, slot = flow
    report = load(env)
    assert report["rows"] == shop.counts(shop_url)
    operations = query(warehouse, "select distinct _elt_operation from raw_shop.orders")
    assert operations == [("snapshot",)]
    assert fetch(
        shop_url, "select count(*) from pg_replication_slots where slot_name = %s", (slot,)
    ) == [(1,)]
    run_elt("load", "payments", "marketing", env=env, check=True)
    run_elt("transform", *MARTS, env=env, check=True)


def test_insert_update_delete_between_two_loads_are_three_versions(flow):
    warehouse, shop_url, env, slot = flow
    execute(
        shop_url,
        "insert into orders (order_id, customer_id, status, ordered_at, shipping_amount,"
        " created_at) values (5000, 1, 'placed', now(), 0, now())",
    )
    execute(shop_url, "update orders set status = 'paid' where order_id = 5000")
    execute(shop_url, "delete from orders where order_id = 5000")

    report = load(env)
    assert report["rows"] == {"orders": 2} and report["deleted"] == {"orders": 1}
    versions = query(
        warehouse,
        "select _elt_operation, status, _elt_deleted_at is not null from raw_shop.orders"
        f" where order_id = 5000 and {COMPLETED} order by _elt_lsn",
    )
    assert versions == [
        ("insert", "placed", False),
        ("update", "paid", False),
        ("delete", None, True),
    ]
    last = query(warehouse, "select max(_elt_lsn) from raw_shop.orders")[0][0]
    assert confirmed_lsn(shop_url, slot) > last  # the slot let go of what the load holds

    run_elt("transform", *MARTS, env=env, check=True)
    assert query(warehouse, "select count(*) from marts.fct_orders where order_id = 5000") == [(0,)]
    assert query(
        warehouse, "select is_deleted from staging.stg_shop__orders where order_id = 5000"
    ) == [(True,)]


def test_a_hard_delete_leaves_fct_orders_after_the_next_load(flow):
    warehouse, shop_url, env, _ = flow
    execute(shop_url, "delete from order_items where order_id = 42")
    execute(shop_url, "delete from orders where order_id = 42")
    report = load(env)
    assert report["deleted"]["orders"] == 1
    run_elt("transform", *MARTS, env=env, check=True)
    assert query(warehouse, "select count(*) from marts.fct_orders where order_id = 42") == [(0,)]
    live = fetch(shop_url, "select count(*) from orders where deleted_at is null")[0][0]
    assert query(warehouse, "select count(*) from marts.fct_orders") == [(live,)]


def test_a_load_killed_before_it_is_recorded_is_loaded_exactly_once(flow):
    warehouse, shop_url, env, slot = flow
    before = confirmed_lsn(shop_url, slot)
    execute(shop_url, "update orders set status = 'shipped' where order_id between 100 and 119")
    killed = kill_a_load_midway(env)
    assert killed.returncode == -9, killed.stderr
    assert confirmed_lsn(shop_url, slot) == before  # nothing recorded: the slot keeps it all

    rerun = load(env)
    assert rerun["resumed_load_ids"]  # the killed run's package, finished
    shipped = query(
        warehouse,
        "select count(*), count(distinct order_id) from raw_shop.orders"
        f" where _elt_operation = 'update' and status = 'shipped' and {COMPLETED}",
    )
    assert shipped == [(20, 20)]
    last = query(warehouse, "select max(_elt_lsn) from raw_shop.orders")[0][0]
    assert confirmed_lsn(shop_url, slot) > last
    assert load(env)["rows"] == {}  # nothing read twice


def test_doctor_reports_the_slot_ok_then_fail_over_its_threshold(flow):
    _, _, env, slot = flow
    healthy = doctor_slot(env)
    assert healthy["status"] == "OK" and healthy["facts"]["slot"] == slot
    strict = doctor_slot({**env, "DOCTOR__REPLICATION_RETAINED_WAL_FAIL_MB": "0"})
    assert strict["status"] == "FAIL"
    assert "elt load --drop-slot shop" in strict["hint"]


def doctor_slot(env) -> dict:
    result = run_elt("doctor", "--only", "data", "--source", "shop", "--format", "json", env=env)
    assert result.stdout, result.stderr
    checks = {check["id"]: check for check in json.loads(result.stdout)["checks"]}
    return checks["data/shop/replication_slot"]


def test_a_missing_slot_is_a_named_error_and_a_resnapshot_recovers(flow):
    _, shop_url, env, slot = flow
    dropped = run_elt("load", "--drop-slot", "shop", env=env)
    assert dropped.returncode == 0, dropped.stderr
    assert doctor_slot(env)["status"] == "FAIL"

    failed = run_elt("load", "shop", env=env)
    assert failed.returncode == 2
    assert f"replication slot {slot} of source shop is missing" in failed.stderr
    assert "SOURCES__SHOP__RESNAPSHOT=true elt load shop" in failed.stderr

    report = load({**env, "SOURCES__SHOP__RESNAPSHOT": "true"})
    assert report["rows"]["orders"] == fetch(shop_url, "select count(*) from orders")[0][0]
    assert confirmed_lsn(shop_url, slot) > 0
    assert load(env)["rows"] == {}
