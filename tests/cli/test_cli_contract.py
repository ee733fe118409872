"""The CLI contract: exit codes 0/1/2, one-line errors, JSON and CSV shapes, no secrets."""

from __future__ import annotations

import json
import subprocess
import sys

from support import PROJECT, run_elt


def test_help_imports_neither_dlt_nor_dbt():
    code = (
        "import sys, elt.cli\n"
        "heavy = [m for m in ('dlt', 'dbt', 'dbt.cli') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT)


def test_help_lists_every_command_with_examples():
    result = run_elt("--help", env={})
    assert result.returncode == 0
    for command in ("load", "transform", "test", "sql", "demo", "quarantine"):
        assert command in result.stdout
    assert "Examples:" in result.stdout


def test_unknown_source_is_a_usage_error_exit_2(elt_env):
    result = run_elt("load", "nosuchsource", env=elt_env)
    assert result.returncode == 2
    assert "unknown source nosuchsource" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_warehouse_is_one_line_exit_2_without_the_password(elt_env):
    env = {**elt_env, "ELT_WAREHOUSE_URL": "postgresql://etl:s3cr3t-pw@127.0.0.1:1/warehouse"}
    result = run_elt("sql", "select 1", env=env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "warehouse 127.0.0.1:1/warehouse: cannot connect" in lines[0]
    assert "s3cr3t-pw" not in result.stderr + result.stdout


def test_debug_shows_the_traceback(elt_env):
    env = {**elt_env, "ELT_WAREHOUSE_URL": "postgresql://etl@127.0.0.1:1/warehouse"}
    result = run_elt("--debug", "sql", "select 1", env=env)
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_sql_csv_is_a_header_then_one_line_per_row(elt_env):
    result = run_elt(
        "sql",
        "select n as number, n * 2 as twice from (values (1), (2)) as t(n) order by n",
        "--format",
        "csv",
        env=elt_env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "number,twice\n1,2\n2,4\n"


def test_sql_json_rows_are_a_list_of_objects_in_the_envelope(elt_env):
    result = run_elt("sql", "select 1 as a, 'x' as b", "--format", "json", env=elt_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == [{"a": 1, "b": "x"}]


def test_sql_refuses_to_write(elt_env, warehouse):
    result = run_elt("sql", "create table public.should_not_exist (id int)", env=elt_env)
    assert result.returncode == 2
    assert "CREATE is not allowed" in result.stderr  # refused before it is sent


def test_bad_sql_is_one_line_naming_the_cause(elt_env):
    result = run_elt("sql", "select * from no_such_table", env=elt_env)
    assert result.returncode == 2
    assert 'relation "no_such_table" does not exist' in result.stderr
    assert "Traceback" not in result.stderr


def test_load_json_shape(elt_env, shop_url):
    from demo import shop

    shop.seed(shop_url, 50)
    result = run_elt("load", "shop", "--format", "json", env=elt_env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["command"] == "load" and payload["status"] == "success"
    (source,) = payload["sources"]
    assert source["source"] == "shop" and source["dataset"] == "raw_shop"
    assert set(source["rows"]) == {"customers", "products", "orders", "order_items"}
    assert source["total_rows"] == sum(source["rows"].values())
    assert isinstance(source["seconds"], float)


def test_load_of_an_unreachable_source_names_it_exit_2(elt_env):
    env = {**elt_env, "SOURCES__SHOP__CREDENTIALS": "postgresql://app:hunter22@127.0.0.1:1/shop"}
    result = run_elt("load", "shop", env=env)
    assert result.returncode == 2
    assert "load shop:" in result.stderr
    assert "hunter22" not in result.stderr + result.stdout
