"""Incremental marts (macros/incremental_marts.sql): after a delta, `elt transform`
rebuilds and publishes only the changed keys of fct_orders and fct_order_items, and the
marts it leaves are exactly those a full rebuild makes, on PostgreSQL and on DuckDB.

The delta touches every input of the two facts: new orders and items, status updates, a
customer's profile, a soft delete, hard deletes (tombstones), payments settled and
refunds. One shop database and payments API per engine, a small demo (400 orders).
"""

from __future__ import annotations

import re

import pytest
from conftest import demo_payments_api, elt_environment, fresh_databases, landing_dir
from support import execute, fetch, run_elt

from demo import marketing, payments, shop
from runtime import engines, fingerprint
from runtime.project import project_dir

FACTS = ("fct_orders", "fct_order_items")


@pytest.fixture(scope="module", params=["postgres", "duckdb"])
def flow(request, server, tmp_path_factory):
    with fresh_databases(server) as (warehouse, shop_url):
        root = tmp_path_factory.mktemp(f"incremental-{request.param}")
        env = elt_environment(warehouse, shop_url, root / "pipelines")
        if request.param == "duckdb":
            env["ELT_WAREHOUSE_URL"] = f"duckdb:///{root / 'warehouse.duckdb'}"
        shop.seed(shop_url, 400)
        marketing.seed(landing_dir(root / "pipelines"), shop_url)
        with demo_payments_api(shop_url, env) as env:
            run_elt("load", env=env, check=True)
            run_elt("transform", env=env, check=True)
            yield request.param, warehouse, shop_url, env


def reading(engine: str, warehouse, env, read):
    """`read(conn)` on the engine's warehouse; on DuckDB its file, released again for the
    next elt run."""
    duckdb = engines.engine_module("duckdb")
    if engine == "duckdb":
        warehouse = duckdb.resolve(env["ELT_WAREHOUSE_URL"], project_dir())
    conn = engines.read_only(warehouse)
    try:
        return read(conn)
    finally:
        conn.close()
        if engine == "duckdb":
            duckdb.release_lock(warehouse)


def marts(engine: str, warehouse, env) -> dict:
    """The marts' fingerprint."""
    return reading(engine, warehouse, env, lambda conn: fingerprint.fingerprint(conn, "marts"))


def marks(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("select model, upstream from elt_audit.incremental_marks order by 1, 2")
        return [tuple(row) for row in cur.fetchall()]


def test_a_delta_run_leaves_the_marts_a_full_rebuild_makes(flow):
    engine, warehouse, shop_url, env = flow
    for _ in range(2):  # the second delta builds on an incremental run's marks
        changes = shop.tick(shop_url, hard_deletes=2, new_orders=6, updated_orders=6)
        assert changes["orders_hard_deleted"] == 2 and changes["orders_soft_deleted"] == 1
        payments.tick(shop_url)
        run_elt("load", env=env, check=True)
        run_elt("transform", env=env, check=True)
    incremental = marts(engine, warehouse, env)
    run_elt("transform", "--full-refresh", env=env, check=True)
    assert fingerprint.differences(incremental, marts(engine, warehouse, env)) == []


def test_the_marks_name_every_upstream_of_an_incremental_mart_and_every_tested_table(flow):
    engine, warehouse, _, env = flow
    rows = reading(engine, warehouse, env, marks)
    assert rows == [
        ("fct_order_items", "stg_shop__order_items"),
        ("fct_order_items", "stg_shop__orders"),
        ("fct_orders", "dim_customers"),
        ("fct_orders", "stg_payments__payments"),
        ("fct_orders", "stg_payments__refunds"),
        ("fct_orders", "stg_shop__order_items"),
        ("fct_orders", "stg_shop__orders"),
        # raw tables whose key tests name the load: the loads completed when this run began,
        # and those tested (later runs' key tests read newer loads only)
        *(
            (f"source:shop.{table}", upstream)
            for table in ("customers", "order_items", "orders", "products")
            for upstream in ("__pending", f"source:shop.{table}")
        ),
        # incremental staging models whose tests all passed: later runs test newer rows only
        ("stg_payments__payments", "stg_payments__payments"),
        ("stg_payments__refunds", "stg_payments__refunds"),
        ("stg_shop__order_items", "stg_shop__order_items"),
        ("stg_shop__orders", "stg_shop__orders"),
    ]


def test_indexes_serve_the_lookups_of_incremental_runs_on_postgres_alone(flow):
    """PostgreSQL: incremental staging models have an index on the key (each run deletes
    and re-inserts by it), the order (fct_orders looks up a changed order's aggregates by
    it) and the load id as the filters compare it; incremental marts on the key, in the
    build and in the published table, which a full publish (the first module test ends with
    one) makes anew. DuckDB: none (they slow its inserts, and its full refresh races on
    them across threads)."""
    engine, warehouse, _, env = flow

    def indexes(conn):
        with conn.cursor() as cur:
            if engine == "duckdb":
                cur.execute(
                    "select schema_name || '.' || table_name, sql from duckdb_indexes()"
                    " where schema_name in ('staging', 'marts', 'marts__wap')"
                )
                return dict(cur.fetchall())
            cur.execute(
                "select schemaname || '.' || tablename, indexdef from pg_indexes"
                " where schemaname in ('staging', 'marts', 'marts__wap')"
            )
            found: dict[str, list[str]] = {}
            for table, definition in cur.fetchall():
                found.setdefault(table, []).append(definition.partition(" USING btree ")[2])
            return {table: sorted(columns) for table, columns in found.items()}

    load = "(((dlt_load_id)::numeric(28,6)))"
    expected = {
        "staging.stg_shop__orders": sorted(["(order_id)", load]),
        "staging.stg_shop__order_items": sorted(["(order_item_id)", "(order_id)", load]),
        "staging.stg_payments__payments": sorted(["(payment_id)", "(order_id)", load]),
        "staging.stg_payments__refunds": sorted(["(refund_id)", "(order_id)", load]),
        "marts__wap.fct_orders": ["(order_id)"],
        "marts__wap.fct_order_items": ["(order_item_id)"],
        "marts.fct_orders": ["(order_id)"],
        "marts.fct_order_items": ["(order_item_id)"],
    }
    found = reading(engine, warehouse, env, indexes)
    assert found == (expected if engine == "postgres" else {})


def test_a_new_line_repeating_a_verified_ones_order_and_product_fails_the_key_test(flow):
    """Key tests read only the rows sharing key values with rows this run rebuilt: the new
    line alone is unique; with the verified line of the same order and product it is not.
    The fact is held back, and publishes again once the line is fixed in the shop."""
    engine, warehouse, shop_url, env = flow
    ((order_id, product_id, price, new_id),) = fetch(
        shop_url,
        "select order_id, product_id, unit_price, (select max(order_item_id) + 1 from order_items)"
        " from order_items order by order_item_id limit 1",
    )
    execute(
        shop_url,
        "insert into order_items (order_item_id, order_id, product_id, quantity, unit_price,"
        " discount_amount, created_at, updated_at) values (%s, %s, %s, 1, %s, 0, now(), now())",
        (new_id, order_id, product_id, price),
    )
    run_elt("load", "shop", env=env, check=True)
    failed = run_elt("transform", env=env)
    assert failed.returncode == 1, failed.stderr
    assert "expect_compound_columns_to_be_unique_fct_order_items_order_id__product_id" in (
        failed.stderr
    )

    def published(conn):
        with conn.cursor() as cur:
            cur.execute(
                f"select count(*) from marts.fct_order_items where order_item_id = {new_id:d}"
            )
            return cur.fetchone()[0]

    assert reading(engine, warehouse, env, published) == 0
    # fixed in the shop (an update: hard deletes reach raw on PostgreSQL only)
    execute(
        shop_url,
        "update order_items set product_id = (select min(product_id) from products where"
        " product_id not in (select product_id from order_items where order_id = %s))"
        " where order_item_id = %s",
        (order_id, new_id),
    )
    run_elt("load", "shop", env=env, check=True)
    run_elt("transform", env=env, check=True)
    assert reading(engine, warehouse, env, published) == 1


def writing(engine: str, warehouse, env, sql: str) -> None:
    """`sql` (statements) run on the engine's warehouse as its owner."""
    if engine != "duckdb":
        execute(warehouse.url, sql)
        return
    duckdb = engines.engine_module("duckdb")
    target = duckdb.resolve(env["ELT_WAREHOUSE_URL"], project_dir())
    conn = target.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()
        duckdb.release_lock(target)


def test_a_raw_key_test_reads_the_loads_after_the_run_that_last_passed_it(flow):
    """A raw table's key test (a customer once per load and cursor) reads the loads
    completed after the start of the last run in which the table's tests passed: a
    duplicate in a new load fails the run; one slipped under a load already tested is not
    read, until --full-refresh tests every raw row again."""
    engine, warehouse, shop_url, env = flow
    failing = "source_expect_compound_columns_to_be_unique_shop_customers_customer_id"
    tests = ("-s", "source:shop.customers")  # the table's tests alone: a short dbt run

    def duplicate(newest: bool) -> str:
        load = f"(select {'max' if newest else 'min'}(_dlt_load_id) from raw_shop.customers)"
        return (
            "insert into raw_shop.customers select * from raw_shop.customers"
            f" where customer_id = (select min(customer_id) from raw_shop.customers"
            f" where _dlt_load_id = {load}) and _dlt_load_id = {load}"
        )

    # one copy of each (customer, load, cursor) again
    repair = (
        "create temporary table kept as select distinct * from raw_shop.customers;"
        " delete from raw_shop.customers;"
        " insert into raw_shop.customers select * from kept;"
        " drop table kept"
    )
    execute(  # a customer changes: the next load brings a version of it
        shop_url,
        "update customers set full_name = full_name || '.', updated_at = now()"
        " where customer_id = (select min(customer_id) from customers)",
    )
    run_elt("load", "shop", env=env, check=True)
    writing(engine, warehouse, env, duplicate(newest=True))
    failed = run_elt("transform", *tests, env=env)
    assert failed.returncode == 1 and failing in failed.stderr, failed.stderr
    writing(engine, warehouse, env, repair)
    run_elt("transform", *tests, env=env, check=True)

    writing(engine, warehouse, env, duplicate(newest=False))
    run_elt("transform", *tests, env=env, check=True)  # the first load passed long ago
    failed = run_elt("transform", "--full-refresh", *tests, env=env)
    assert failed.returncode == 1 and failing in failed.stderr, failed.stderr
    writing(engine, warehouse, env, repair)
    run_elt("transform", "--full-refresh", *tests, env=env, check=True)


def rows_sharing_keys(env: dict[str, str], unverified: str) -> tuple[int, int]:
    """(rows, rows with a NULL key) that `elt_rows_sharing_keys` reads of the case table
    for a compound key (a, b), the rows matching `unverified` being the unverified ones."""
    shown = run_elt(
        "dbt",
        "--",
        "show",
        "--inline",
        "select count(*) as n, sum(case when b is null then 1 else 0 end) as null_keys from ("
        "{{ elt_rows_sharing_keys(api.Relation.create(schema='elt_null_keys', identifier="
        f"'cases'), ['a', 'b'], \"{unverified}\") }}}}) as read_rows",
        env=env,
        check=True,
    )
    ((rows, null_keys),) = re.findall(r"^\| *(\d+) *\| *(\d+) *\|$", shown.stdout, re.M)
    return int(rows), int(null_keys)


def test_a_compound_key_test_reads_null_keyed_rows_only_when_an_unverified_row_has_one(flow):
    """A row groups only with rows of its own NULL pattern: with no NULL in an unverified
    row's key, the verified rows with one cannot have gained a duplicate and are not read;
    an unverified row with a NULL brings them back, so a NULL-keyed duplicate still fails."""
    engine, warehouse, _shop_url, env = flow
    writing(
        engine,
        warehouse,
        env,
        "create schema if not exists elt_null_keys;"
        " drop table if exists elt_null_keys.cases;"
        " create table elt_null_keys.cases (a integer, b integer, new_row integer);"
        " insert into elt_null_keys.cases values"
        " (1, null, 0), (null, 7, 0), (2, 2, 0), (3, 3, 0), (2, 2, 1), (4, 4, 2), (1, null, 2)",
    )
    # the verified (2, 2) and the new one; no verified row with a NULL
    assert rows_sharing_keys(env, "new_row = 1") == (2, 0)
    # a new (1, NULL): the rows with a NULL in the key are read again, (1, NULL) twice
    assert rows_sharing_keys(env, "new_row = 2") == (4, 2)


# PostgreSQL's planner statistics: DuckDB keeps its own as it writes, and is not asked
@pytest.mark.parametrize("flow", ["postgres"], indirect=True)
def test_a_full_build_of_an_incremental_model_gathers_its_statistics_on_postgres(flow):
    """The next run's lookups and scoped tests are planned with statistics, not in the
    minute before autovacuum first analyzes the new table (`elt_analyze_full_build`)."""
    _engine, warehouse, _shop_url, env = flow
    run_elt("transform", "--full-refresh", env=env, check=True)
    analyzed = fetch(
        warehouse.url,
        "select relname from pg_stat_user_tables where last_analyze is not null"
        " and relname in ('stg_shop__orders', 'stg_shop__order_items', 'stg_payments__payments',"
        " 'stg_payments__refunds', 'fct_orders', 'fct_order_items') and schemaname <> 'marts'",
    )
    assert sorted(name for (name,) in analyzed) == sorted(
        [
            "fct_order_items",
            "fct_orders",
            "stg_payments__payments",
            "stg_payments__refunds",
            "stg_shop__order_items",
            "stg_shop__orders",
        ]
    )
