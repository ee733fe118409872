"""The demo flow on the embedded PostgreSQL and on DuckDB, from the same sources: the marts
must be identical (runtime/fingerprint.py), and `elt test` must pass on both.

One shop database, one payments API and one landing folder feed both warehouses, so the
two see the very same source rows (seed, load, transform, tick, load, transform); each
warehouse has its own dlt working directory and state. The elt processes run in a time
zone far from UTC, so a date taken in the session's zone would show.
"""

from __future__ import annotations

import json

import pytest
from conftest import demo_payments_api, elt_environment, fresh_databases, landing_dir
from support import run_elt

from demo import marketing, payments, shop
from runtime import engines, fingerprint


@pytest.fixture(scope="module")
def flow(server, tmp_path_factory):
    with fresh_databases(server) as (pg_warehouse, shop_url):
        root = tmp_path_factory.mktemp("engines")
        landing = landing_dir(root / "pipelines")
        pg_env = {
            **elt_environment(pg_warehouse, shop_url, root / "pg-pipelines"),
            "SOURCES__MARKETING__BUCKET_URL": str(landing),
            # a machine far from UTC: dates in marts must come from UTC instants anyway
            "TZ": "Pacific/Auckland",
            "PGTZ": "Pacific/Auckland",
        }
        duck_env = {
            **pg_env,
            "ELT_WAREHOUSE_URL": f"duckdb:///{root / 'warehouse.duckdb'}",
            "ELT_PIPELINES_DIR": str(root / "duck-pipelines"),
        }
        shop.seed(shop_url, 600)
        marketing.seed(landing, shop_url)
        with demo_payments_api(shop_url, pg_env) as api_env:
            api = {k: v for k, v in api_env.items() if k.startswith("SOURCES__PAYMENTS__")}
            envs = {"postgres": {**pg_env, **api}, "duckdb": {**duck_env, **api}}
            for env in envs.values():
                run_elt("load", env=env, check=True)
                run_elt("transform", env=env, check=True)
            shop.tick(shop_url)
            payments.tick(shop_url)
            marketing.tick(landing, shop_url)
            for env in envs.values():
                run_elt("load", env=env, check=True)
                run_elt("transform", env=env, check=True)
            yield {"postgres": pg_warehouse, "duckdb": duck_env}, envs


def marts_fingerprint(warehouse) -> dict:
    conn = engines.read_only(warehouse)
    try:
        return fingerprint.fingerprint(conn, "marts")
    finally:
        conn.close()


def test_marts_are_identical_on_postgres_and_duckdb(flow, monkeypatch):
    warehouses, envs = flow
    monkeypatch.setenv("ELT_WAREHOUSE_URL", envs["duckdb"]["ELT_WAREHOUSE_URL"])
    duck = engines.resolve(None)
    postgres, duckdb = marts_fingerprint(warehouses["postgres"]), marts_fingerprint(duck)
    engines.engine_module("duckdb").release_lock(duck)
    assert set(postgres) >= {"fct_orders", "fct_order_items", "dim_customers", "rpt_daily_revenue"}
    assert all(table["rows"] > 0 for table in postgres.values())
    assert fingerprint.differences(postgres, duckdb) == []


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_elt_test_passes_on_each_engine(flow, engine):
    _, envs = flow
    result = run_elt("test", env=envs[engine])
    assert result.returncode == 0, result.stderr[-2000:]


def test_doctor_on_duckdb_finds_nothing_failing(flow):
    _, envs = flow
    result = run_elt("doctor", "--format", "json", env=envs["duckdb"])
    checks = {check["id"]: check for check in json.loads(result.stdout)["checks"]}
    failing = {key: check["detail"] for key, check in checks.items() if check["status"] == "FAIL"}
    assert failing == {}
    assert "duckdb" in checks["connectivity/warehouse"]["detail"]
    assert checks["data/mart_keys"]["status"] == "OK"


def test_runs_sql_and_quarantine_read_the_duckdb_warehouse(flow):
    _, envs = flow
    env = envs["duckdb"]
    runs = json.loads(run_elt("runs", "--format", "json", env=env, check=True).stdout)["runs"]
    assert [run["status"] for run in runs if run["command"] == "load"] == ["success", "success"]
    count = run_elt(
        "sql", "select count(*) as n from marts.fct_orders", "--format", "json", env=env, check=True
    )
    assert json.loads(count.stdout)["rows"][0]["n"] > 600
    listed = run_elt("quarantine", "list", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    written = run_elt("sql", "create table marts.nope (n integer)", env=env)
    assert written.returncode == 2 and "read-only" in written.stderr.lower()
