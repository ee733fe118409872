"""PII: staging marks it (`meta: {pii: true}`), no mart carries it unhashed, and the
doctor warns when one does."""

from __future__ import annotations

import json

import pytest
from support import execute, query, run_elt

from diagnostics.dbt_meta import pii_columns
from runtime.project import project_dir

PROJECT = project_dir()


@pytest.fixture(scope="module")
def built(server, tmp_path_factory):
    """A demo shop loaded and transformed into a warehouse of its own."""
    from conftest import demo_payments_api, elt_environment, fresh_databases, landing_dir

    from demo import marketing, shop

    with fresh_databases(server) as (warehouse, shop_url):
        pipelines = tmp_path_factory.mktemp("pii")
        env = elt_environment(warehouse, shop_url, pipelines / "pipelines")
        shop.seed(shop_url, 200)
        marketing.seed(landing_dir(pipelines / "pipelines"), shop_url)
        with demo_payments_api(shop_url, env) as env:
            run_elt("load", env=env, check=True)
            run_elt("transform", env=env, check=True)
            yield warehouse, env


def test_staging_marks_the_customers_email_and_name_as_pii():
    marked = pii_columns(PROJECT)
    assert {"email", "full_name"} <= set(marked)
    assert marked["email"] == ["stg_shop__customers"]


def test_no_pii_column_reaches_a_mart_unhashed(built):
    warehouse, _ = built
    names = sorted(pii_columns(PROJECT))
    exposed = query(
        warehouse,
        "select table_name, column_name from information_schema.columns"
        " where table_schema = 'marts' and lower(column_name) = any(%s)",
        (names,),
    )
    assert exposed == []
    # by value too, whatever a column is called: no mart text holds a staging PII value
    values = {
        value
        for (value,) in query(
            warehouse,
            "select email from staging.stg_shop__customers union all"
            " select full_name from staging.stg_shop__customers",
        )
        if value
    }
    assert values
    text_columns = query(
        warehouse,
        "select table_name, column_name from information_schema.columns where table_schema ="
        " 'marts' and data_type in ('text', 'character varying')",
    )
    for table, column in text_columns:
        found = query(warehouse, f'select distinct "{column}"::text from marts."{table}"')
        leaked = values & {value for (value,) in found}
        assert not leaked, f"marts.{table}.{column} holds PII values"
    hashed = query(
        warehouse,
        "select count(*) from marts.dim_customers d join staging.stg_shop__customers s"
        " using (customer_id) where d.email_hash = md5(lower(s.email))",
    )
    assert hashed == query(warehouse, "select count(*) from marts.dim_customers")


def test_the_doctor_warns_when_a_mart_exposes_a_pii_column(built):
    warehouse, env = built
    execute(
        warehouse.url,
        "create table marts.leaky as select customer_id, email from staging.stg_shop__customers",
    )
    try:
        result = run_elt("doctor", "--only", "data", "--format", "json", env=env)
        checks = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
        check = checks["data/mart_pii"]
        assert check["status"] == "WARN"
        assert "leaky.email" in check["detail"] and "dim_customers" not in check["detail"]
    finally:
        execute(warehouse.url, "drop table marts.leaky")
    result = run_elt("doctor", "--only", "data", "--format", "json", env=env)
    checks = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["data/mart_pii"]["status"] == "OK"
