"""Hard deletes of cursor-read tables, found by reconcile, against the embedded server.

The flow test runs the CLI as cron does (load, then transform) on the demo shop; the
memory test drives loaders/shop/reconcile.py directly on 200,000 keys, enough for every
bucket to differ and for keys held in Python to break the bound (~25 MiB for 200,000);
`ELT_TEST_RECONCILE_KEYS=1000000` runs it at the size README.md quotes.
"""

from __future__ import annotations

import json
import os
import threading
import time
import tomllib
from functools import partial
from pathlib import Path

import psutil
import pytest
from conftest import PROJECT, demo_payments_api, elt_environment, fresh_databases, landing_dir
from support import execute, fetch, query, run_elt

from demo import marketing, shop
from loaders import pipeline
from loaders.shop import reconcile

KEYS = int(os.environ.get("ELT_TEST_RECONCILE_KEYS", "200000"))
MEMORY_BOUND_MIB = 10  # streaming grows ~2 MiB at any size
# what the sales marts need; marketing files play no part here
# a whole transform: a fresh warehouse has no published marts for a selection to lean on
MARTS = ()


@pytest.fixture(scope="module")
def flow(server, tmp_path_factory):
    with fresh_databases(server) as (warehouse, shop_url):
        pipelines = tmp_path_factory.mktemp("pipelines")
        env = elt_environment(warehouse, shop_url, pipelines)
        shop.seed(shop_url, 400)
        marketing.seed(landing_dir(pipelines), shop_url)  # a whole transform reads it too
        with demo_payments_api(shop_url, env) as env:
            run_elt("load", env=env, check=True)
            run_elt("transform", *MARTS, env=env, check=True)
            yield warehouse, shop_url, env


def mart_orders(warehouse) -> set[int]:
    return {row[0] for row in query(warehouse, "select order_id from marts.fct_orders")}


def test_a_hard_deleted_order_leaves_fct_orders_after_the_next_load(flow):
    warehouse, shop_url, env = flow
    gone = 17
    items = fetch(shop_url, "select count(*) from order_items where order_id = %s", (gone,))[0][0]
    assert gone in mart_orders(warehouse)
    execute(shop_url, "delete from orders where order_id = %s", (gone,))  # items cascade

    loaded = json.loads(run_elt("load", "shop", "--format", "json", env=env, check=True).stdout)
    report = loaded["sources"][0]
    assert report["deleted"] == {"orders": 1, "order_items": items}
    assert "orders" not in report["rows"]  # a tombstone is not a loaded row
    run_elt("transform", *MARTS, env=env, check=True)

    assert gone not in mart_orders(warehouse)
    staged = query(
        warehouse,
        "select is_deleted, deleted_at is not null, customer_id from staging.stg_shop__orders"
        " where order_id = %s",
        (gone,),
    )
    assert staged == [(True, True, None)]
    assert query(
        warehouse, "select count(*) from marts.fct_order_items where order_id = %s", (gone,)
    ) == [(0,)]
    live = fetch(shop_url, "select count(*) from orders where deleted_at is null")[0][0]
    assert query(warehouse, "select count(*) from marts.fct_orders") == [(live,)]


def test_a_key_once_deleted_gets_one_tombstone_not_one_per_load(flow):
    warehouse, _, env = flow
    loaded = json.loads(run_elt("load", "shop", "--format", "json", env=env, check=True).stdout)
    assert loaded["sources"][0]["deleted"] == {}
    assert query(
        warehouse, "select count(*) from raw_shop.orders where _elt_deleted_at is not null"
    ) == [(1,)]


def test_a_deleted_key_inserted_again_is_live_again(flow):
    warehouse, shop_url, env = flow
    execute(
        shop_url,
        "insert into orders (order_id, customer_id, status, ordered_at, shipping_amount,"
        " created_at) values (17, 1, 'placed', now(), 0, now())",
    )
    run_elt("load", "shop", env=env, check=True)
    run_elt("transform", *MARTS, env=env, check=True)
    assert 17 in mart_orders(warehouse)
    assert query(
        warehouse, "select is_deleted from staging.stg_shop__orders where order_id = 17"
    ) == [(False,)]


def test_raw_columns_created_not_null_by_an_earlier_elt_accept_tombstones(flow):
    warehouse, shop_url, env = flow
    # raw is an append-only log: no `raw_shop_staging` dataset since merges are gone
    execute(warehouse.url, "alter table raw_shop.orders alter column customer_id set not null")
    execute(shop_url, "delete from order_items where order_id = 18")
    execute(shop_url, "delete from orders where order_id = 18")
    loaded = json.loads(run_elt("load", "shop", "--format", "json", env=env, check=True).stdout)
    assert loaded["sources"][0]["deleted"]["orders"] == 1
    nullable = query(
        warehouse,
        "select table_schema, is_nullable from information_schema.columns"
        " where table_name = 'orders' and column_name = 'customer_id' order by 1",
    )
    assert nullable == [("raw_shop", "YES")]


def test_deletes_none_leaves_a_hard_deleted_row_live(flow, monkeypatch):
    warehouse, shop_url, env = flow
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    load = partial(
        pipeline.run,
        "shop",
        destination_url=warehouse.url,
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
    )
    execute(
        shop_url,
        "insert into customers (customer_id, email, full_name, country_code, created_at)"
        " values (100000, 'x@example.com', 'X', 'DE', now())",
    )
    load()
    execute(shop_url, "delete from customers where customer_id = 100000")
    tables = tomllib.loads((PROJECT / ".dlt" / "config.toml").read_text())["sources"]["shop"]
    tables = {name: dict(spec) for name, spec in tables["tables"].items()}
    tables["customers"]["deletes"] = "none"
    assert load(source_overrides={"tables": tables}).deleted == {}
    tombstones = (  # the column appears with the table's first tombstone
        "select count(*) from raw_shop.customers as c"
        " where to_jsonb(c) ->> '_elt_deleted_at' is not null"
    )
    assert query(warehouse, tombstones) == [(0,)]
    assert load().deleted == {"customers": 1}


def _peak_rss_growth(work) -> tuple[int, object]:
    """(peak resident-set growth in bytes while `work()` ran, its result), sampled every 5 ms."""
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak, done = [baseline], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
    return max(peak[0], process.memory_info().rss) - baseline, result


@pytest.fixture(scope="module")
def million(server):
    """A source table of KEYS keys and a raw copy of it in completed loads."""
    with fresh_databases(server) as (warehouse, source_url):
        execute(
            source_url,
            "create table big (id bigint primary key, updated_at timestamptz not null);"
            " insert into big select g, now() - interval '1 day'"
            " from generate_series(1, %s) as g",
            (KEYS,),
        )
        execute(
            warehouse.url,
            "create schema raw_big;"
            " create table raw_big._dlt_loads (load_id text, status int);"
            " insert into raw_big._dlt_loads values ('1', 0);"
            " create table raw_big.big as select id, updated_at, '1'::text as _dlt_load_id"
            " from generate_series(1, %s) as id,"
            " (select now() - interval '1 day' as updated_at) as t",
            (KEYS,),
        )
        yield warehouse.url, source_url


@pytest.mark.parametrize(
    "deleted_every",
    [1000, 10],  # 0.1% of the keys (few buckets differ); 10% (every bucket differs)
)
def test_reconcile_of_many_keys_stays_within_its_memory_bound(million, deleted_every):
    raw_url, source_url = million
    execute(source_url, "delete from big where id %% %s = 0", (deleted_every,))
    try:

        def run():
            found = 0
            for _, keys in reconcile.reconcile(
                source_url,
                raw_url,
                reconcile.TableRef("public", "big", ("id",)),
                reconcile.TableRef("raw_big", "big", ("id",)),
                "updated_at",
                has_tombstones=False,
            ):
                assert all(key[0] % deleted_every == 0 for key in keys)
                found += len(keys)
            return found

        started = time.monotonic()
        growth, found = _peak_rss_growth(run)
        seconds = time.monotonic() - started
        print(
            f"reconcile {KEYS:,} keys, {found:,} gone: {seconds:.1f} s,"
            f" peak RSS +{growth / 2**20:.1f} MiB"
        )
        assert found == KEYS // deleted_every
        assert growth < MEMORY_BOUND_MIB * 2**20
    finally:
        execute(
            source_url,
            "insert into big select g, now() - interval '1 day' from generate_series(1, %s) g"
            " where g %% %s = 0",
            (KEYS, deleted_every),
        )


@pytest.fixture
def checked(server):
    """A quiet source of keys 1..10 (cursors a day old); raw holds them in completed load
    '1', with key 12 (gone from the source) in load '1' and key 11 (gone too) in load '2'."""
    with fresh_databases(server) as (warehouse, source_url):
        execute(
            source_url,
            "create table t (id bigint primary key, updated_at timestamptz not null);"
            " insert into t select g, now() - interval '1 day' from generate_series(1, 10) g",
        )
        execute(
            warehouse.url,
            "create schema raw_t;"
            " create table raw_t._dlt_loads (load_id text, status int);"
            " insert into raw_t._dlt_loads values ('1700000000.5', 0), ('1700000100.25', 0);"
            " create table raw_t.t as select g as id, now() - interval '1 day' as updated_at,"
            " '1700000000.5'::text as _dlt_load_id from generate_series(1, 10) as g;"
            " insert into raw_t.t values (12, now() - interval '1 day', '1700000000.5'),"
            " (11, now() - interval '1 hour', '1700000100.25')",
        )
        yield warehouse.url, source_url


def _reconcile(raw_url: str, source_url: str, last: reconcile.Check | None):
    checks = []
    found = [
        key
        for _, keys in reconcile.reconcile(
            source_url,
            raw_url,
            reconcile.TableRef("public", "t", ("id",)),
            reconcile.TableRef("raw_t", "t", ("id",)),
            "updated_at",
            has_tombstones=False,
            source_cursor="updated_at",
            lag_seconds=60,
            last=last,
            on_checked=checks.append,
        )
        for key in keys
    ]
    return sorted(found), checks[0]


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_an_unchanged_source_compares_only_the_keys_of_loads_since_the_last_check(checked):
    raw_url, source_url = checked
    last = reconcile.Check(10, _now(), "1700000000.5", _now())
    found, check = _reconcile(raw_url, source_url, last)
    # key 12 sits in a load the last check compared: an unchanged source still holds it
    assert found == [(11,)]
    assert not check.full
    assert (check.source_count, check.verified_through) == (10, "1700000100.25")
    assert check.full_at == last.full_at and check.since > last.since


def test_a_check_with_nothing_loaded_since_finds_nothing(checked):
    raw_url, source_url = checked
    found, check = _reconcile(
        raw_url, source_url, reconcile.Check(10, _now(), "1700000100.25", _now())
    )
    assert found == []
    assert not check.full


@pytest.mark.parametrize(
    "change",
    [
        "a row updated since the check",
        "a row with a NULL cursor",
        "another row count",
        "no full comparison for a day",
        "no check yet",
    ],
)
def test_a_source_that_may_have_changed_is_compared_in_full(checked, change):
    from datetime import timedelta

    raw_url, source_url = checked
    last = reconcile.Check(10, _now(), "1700000100.25", _now())
    if change == "a row updated since the check":
        execute(source_url, "update t set updated_at = now() where id = 3")
    elif change == "a row with a NULL cursor":
        execute(
            source_url,
            "alter table t alter column updated_at drop not null;"
            " update t set updated_at = null where id = 3",
        )
    elif change == "another row count":
        last = reconcile.Check(11, _now(), "1700000100.25", _now())
    elif change == "no full comparison for a day":
        last = reconcile.Check(10, _now(), "1700000100.25", _now() - timedelta(days=1))
    else:
        last = None
    found, check = _reconcile(raw_url, source_url, last)
    assert found == [(11,), (12,)]
    assert check.full
    assert (check.source_count, check.verified_through) == (10, "1700000100.25")


def test_a_check_is_saved_and_read_back(checked):
    raw_url, _ = checked
    import psycopg2

    check = reconcile.Check(10, _now(), "1700000100.25", _now())
    conn = psycopg2.connect(raw_url)
    try:
        conn.autocommit = True
        assert reconcile.last_check(conn, "raw_t", "t") is None
        reconcile.save_check(conn, "raw_t", "t", check)
        reconcile.save_check(conn, "raw_t", "t", check)  # an upsert
        assert reconcile.last_check(conn, "raw_t", "t") == check
    finally:
        conn.close()
