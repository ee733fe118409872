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


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_runs_show_metrics_and_lineage_read_each_engine(flow, engine):
    """The observability commands read the audit and raw of either engine alike: the last
    load's rows per source, the audit summed into metrics, a mart row traced to its load."""
    from prometheus_client.parser import text_string_to_metric_families

    _, envs = flow
    env = envs[engine]
    runs = json.loads(run_elt("runs", "--format", "json", env=env, check=True).stdout)["runs"]
    loads = [run for run in runs if run["command"] == "load"]
    shown = run_elt("runs", "show", loads[0]["run_id"], "--format", "json", env=env, check=True)
    shop = next(s for s in json.loads(shown.stdout)["run"]["sources"] if s["source"] == "shop")
    assert shop["status"] == "success" and shop["rows"]["orders"] > 0 and shop["load_ids"]

    families = text_string_to_metric_families(run_elt("metrics", env=env, check=True).stdout)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }
    assert samples[("elt_audit_up", ())] == 1
    loaded = samples[("elt_rows_loaded_total", (("source", "shop"), ("table", "orders")))]
    assert loaded == sum(_shop_rows(load["run_id"], env)["orders"] for load in loads)

    sql = "select max(order_id) as id from marts.fct_orders"
    order_id = json.loads(run_elt("sql", sql, "--format", "json", env=env, check=True).stdout)
    traced = run_elt(
        "lineage", "fct_orders", str(order_id["rows"][0]["id"]), "--format", "json", env=env
    )
    assert traced.returncode == 0, traced.stderr[-2000:]
    lineage = json.loads(traced.stdout)
    assert lineage["rows"] and lineage["loads"]
    assert {load["run"]["command"] for load in lineage["loads"] if load["run"]} == {"load"}
    assert any(load["completed"] for load in lineage["loads"])


def _shop_rows(run_id: str, env: dict) -> dict[str, int]:
    shown = run_elt("runs", "show", run_id, "--format", "json", env=env, check=True)
    return next(s for s in json.loads(shown.stdout)["run"]["sources"] if s["source"] == "shop")[
        "rows"
    ]
