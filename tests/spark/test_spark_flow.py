"""The demo flow on a real Spark standalone cluster (master and one worker on 127.0.0.1)
and on the embedded PostgreSQL, from the same sources: the marts must be identical
(runtime/fingerprint.py), and `elt test`, `elt sql`, `elt runs`, `elt doctor` must work
on Spark. Behind the `spark` marker: `make test-spark` installs the extra and runs it.

Small on purpose (the cluster and each dbt session take a minute on a busy machine): 500
orders, seed, load, transform, tick, load, transform, then the checks. Every Spark
command runs in its own `elt` process, as cron runs it; none runs in pytest's process, so
no JVM outlives the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cluster import local_cluster
from conftest import demo_payments_api, elt_environment, fresh_databases, landing_dir
from support import PROJECT, run_elt

from demo import marketing, payments, shop

pytestmark = pytest.mark.spark
SPARK_TIMEOUT = 1200


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with local_cluster(tmp_path_factory.mktemp("spark-cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def flow(server, cluster, tmp_path_factory):
    with fresh_databases(server) as (pg_warehouse, shop_url):
        root = tmp_path_factory.mktemp("spark-flow")
        landing = landing_dir(root / "pipelines")
        pg_env = {
            **elt_environment(pg_warehouse, shop_url, root / "pg-pipelines"),
            "SOURCES__MARKETING__BUCKET_URL": str(landing),
        }
        spark_env = {
            **pg_env,
            "ELT_WAREHOUSE_URL": cluster.url(root),
            "ELT_PIPELINES_DIR": str(root / "spark-pipelines"),
        }
        shop.seed(shop_url, 500)
        marketing.seed(landing, shop_url)
        with demo_payments_api(shop_url, pg_env) as api_env:
            api = {k: v for k, v in api_env.items() if k.startswith("SOURCES__PAYMENTS__")}
            envs = {"postgres": {**pg_env, **api}, "spark": {**spark_env, **api}}
            for step in ("seeded", "ticked"):
                if step == "ticked":
                    shop.tick(shop_url)
                    payments.tick(shop_url)
                    marketing.tick(landing, shop_url)
                for env in envs.values():
                    run_elt("load", env=env, check=True, timeout=SPARK_TIMEOUT)
                    run_elt("transform", env=env, check=True, timeout=SPARK_TIMEOUT)
            yield envs


def marts_fingerprint(env) -> dict:
    """`python -m runtime.fingerprint marts` in its own process (a JVM for Spark)."""
    done = subprocess.run(
        [sys.executable, "-m", "runtime.fingerprint", "marts"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=SPARK_TIMEOUT,
        cwd=PROJECT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_marts_are_identical_on_postgres_and_spark(flow):
    postgres, spark = marts_fingerprint(flow["postgres"]), marts_fingerprint(flow["spark"])
    assert set(postgres) >= {"fct_orders", "fct_order_items", "dim_customers", "rpt_daily_revenue"}
    assert all(table["rows"] > 0 for table in postgres.values())
    assert spark == postgres


def test_elt_test_passes_on_spark(flow):
    result = run_elt("test", env=flow["spark"], timeout=SPARK_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]


def test_sql_counts_the_same_orders_as_postgres_and_refuses_writes(flow):
    counts = {}
    for engine, env in flow.items():
        result = run_elt(
            "sql", "select count(*) as n from marts.fct_orders", "--format", "json",
            env=env, check=True, timeout=SPARK_TIMEOUT,
        )  # fmt: skip
        counts[engine] = json.loads(result.stdout)["rows"][0]["n"]
    assert counts["spark"] == counts["postgres"] > 500
    written = run_elt("sql", "create table marts.nope (n int)", env=flow["spark"], timeout=600)
    assert written.returncode == 2 and "read-only" in written.stderr.lower()


def test_runs_lists_the_spark_loads_and_transforms(flow):
    runs = json.loads(
        run_elt("runs", "--format", "json", env=flow["spark"], check=True, timeout=600).stdout
    )["runs"]
    statuses = {}
    for run in runs:
        statuses.setdefault(run["command"], []).append(run["status"])
    assert statuses["load"] == ["success", "success"]
    assert statuses["transform"][-2:] == ["success", "success"]


def test_rejected_rows_are_in_the_lake_and_quarantine_list_runs_on_spark(flow):
    """On Spark the rejected rows stay in the lake (`raw_marketing._elt_quarantine`,
    readable with `elt sql`); they are not published to elt_audit.quarantine (README)."""
    import pyarrow.parquet as pq

    from runtime.engines import spark

    postgres = run_elt("quarantine", "list", "--format", "json", "--status", "all",
                       env=flow["postgres"], check=True, timeout=600)  # fmt: skip
    published = {row["quarantine_id"] for row in json.loads(postgres.stdout)["rows"]}
    lake = spark.resolve(flow["spark"]["ELT_WAREHOUSE_URL"], PROJECT).lake
    files = sorted((lake / "raw_marketing" / "_elt_quarantine").glob("*.parquet"))
    in_lake = {i for f in files for i in pq.read_table(f).column("quarantine_id").to_pylist()}
    assert published and published <= in_lake  # list is capped by --limit
    listed = run_elt("quarantine", "list", "--format", "json", env=flow["spark"], timeout=600)
    assert listed.returncode == 0, listed.stderr[-2000:]


def test_doctor_on_spark_sees_the_master_its_worker_and_the_lake(flow, cluster):
    result = run_elt("doctor", "--format", "json", env=flow["spark"], timeout=SPARK_TIMEOUT)
    checks = {check["id"]: check for check in json.loads(result.stdout)["checks"]}
    warehouse = checks["connectivity/warehouse"]
    assert warehouse["status"] == "OK", warehouse
    assert cluster.master in warehouse["detail"] and "1 worker(s) alive" in warehouse["detail"]
    assert "lake" in warehouse["detail"]
