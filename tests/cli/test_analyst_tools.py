"""The analyst loop's tools: plain dbt with nothing exported, `elt env`, `elt dbt`,
`elt lint`, `elt docs`, and dbt's options passed through `elt transform`.

Each runs against a copy of the project (its own `.elt/`, `dbt/target/`) and a fresh
warehouse database: never the checkout's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import fresh_databases
from support import PROJECT, query, run_elt

from elt import tool_env
from elt.dbt_options import dbt_args

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def project(server, tmp_path_factory):
    """(project copy, warehouse, elt's environment for it)."""
    root = tmp_path_factory.mktemp("project")
    for name in ("dbt", "macros", "seeds", ".dlt", "tests/dbt"):
        shutil.copytree(
            PROJECT / name,
            root / name,
            ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "secrets.toml"),
        )
    for name in (".sqlfluff", ".sqlfluffignore"):
        shutil.copy(PROJECT / name, root / name)
    with fresh_databases(server) as (warehouse, _):
        env = {
            "ELT_WAREHOUSE_URL": warehouse.url,
            "ELT_PROJECT_DIR": str(root),
            "DLT_PROJECT_DIR": str(root),
        }
        yield root, warehouse, env


def without_settings() -> dict[str, str]:
    """The environment of a new shell: nothing of elt's or dbt's exported."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ELT_", "DBT_", "SOURCES__"))
    }


def test_plain_dbt_reads_the_warehouse_elt_wrote_with_nothing_exported(project):
    root, warehouse, _ = project
    written = tool_env.write(root / ".elt", warehouse.dbt_env())
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    result = subprocess.run(
        [str(BIN / "dbt"), "debug", "--no-use-colors"],
        cwd=root / "dbt",
        env=without_settings(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert "Connection test: [OK connection ok]" in result.stdout


def test_other_programs_in_the_venv_do_not_get_the_warehouse_settings(project):
    root, _, _ = project
    result = subprocess.run(
        [str(BIN / "python"), "-c", "import os; print(os.environ.get('ELT_WAREHOUSE_HOST'))"],
        cwd=root / "dbt",
        env=without_settings(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "None"


def test_elt_env_exports_the_password_only_as_a_dbt_secret(project):
    _, _, env = project
    url = "postgresql://analyst:s3cr%40t@db.example:6543/wh?sslmode=require"
    result = run_elt("env", env={**env, "ELT_WAREHOUSE_URL": url}, check=True)
    lines = result.stdout.splitlines()
    assert "export ELT_WAREHOUSE_HOST=db.example" in lines
    assert "export ELT_WAREHOUSE_PORT=6543" in lines
    assert "export ELT_WAREHOUSE_SSLMODE=require" in lines
    assert "export DBT_ENV_SECRET_WAREHOUSE_PASSWORD=s3cr@t" in lines
    assert [line for line in lines if "s3cr@t" in line] == [
        "export DBT_ENV_SECRET_WAREHOUSE_PASSWORD=s3cr@t"
    ]
    payload = json.loads(run_elt("env", "--format", "json", env=env, check=True).stdout)
    assert payload["variables"]["ELT_WAREHOUSE_DATABASE"]


def test_elt_dbt_runs_any_dbt_command_and_is_audited(project):
    _, warehouse, env = project
    result = run_elt("dbt", "--", "ls", "-s", "marts", "--resource-type", "model", env=env)
    assert result.returncode == 0, result.stderr
    assert "elt.marts.sales.fct_orders" in result.stdout
    audited = query(
        warehouse,
        "select status, args from elt_audit.runs where command = 'dbt'"
        " order by started_at desc limit 1",
    )
    assert audited[0][0] == "success" and audited[0][1]["args"][0] == "ls"


def test_transform_passes_dbt_options_through(project):
    _, warehouse, env = project
    args = ["-s", "country_codes", "--vars", "{lookback_days: 7}", "--threads", "2"]
    args += ["--target", "warehouse", "--fail-fast", "--exclude", "test_name:relationships"]
    result = run_elt("transform", *args, "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    names = {node["name"] for node in json.loads(result.stdout)["nodes"]}
    assert "country_codes" in names
    recorded = query(
        warehouse,
        "select args from elt_audit.runs where command = 'transform'"
        " order by started_at desc limit 1",
    )[0][0]
    assert recorded["vars"] == "{lookback_days: 7}" and recorded["threads"] == 2


def test_an_exclude_that_leaves_nothing_is_a_usage_error(project):
    _, _, env = project
    result = run_elt("transform", "-s", "country_codes", "--exclude", "country_codes", env=env)
    assert result.returncode == 2, result.stderr
    assert "selects no node" in result.stderr.strip().splitlines()[-1]


def test_dbt_args_spell_every_option_as_dbt_does():
    options = {
        "select": ("state:modified+",),
        "exclude": ("tag:marketing",),
        "vars": "{a: 1}",
        "target": "prod",
        "state": "prod-target",
        "defer": True,
        "threads": 8,
        "fail_fast": True,
        "full_refresh": True,
    }
    assert dbt_args(options) == [
        "--select", "state:modified+", "--exclude", "tag:marketing", "--vars", "{a: 1}",
        "--target", "prod", "--state", "prod-target", "--threads", "8", "--defer",
        "--fail-fast", "--full-refresh",
    ]  # fmt: skip


def test_elt_lint_exits_1_naming_the_rule_a_model_breaks(project):
    root, _, env = project
    model = root / "dbt" / "models" / "marts" / "lint_probe.sql"
    model.write_text("SELECT 1 AS one\n")
    try:
        result = run_elt("lint", "--processes", "1", str(model), env=env)
    finally:
        model.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CP01" in result.stdout and "lint_probe.sql" in result.stdout
    assert "violations" in result.stderr


def test_elt_docs_writes_the_site_with_its_catalog_and_says_where(project):
    root, _, env = project
    result = run_elt("docs", env=env)
    assert result.returncode == 0, result.stderr
    index = root / "dbt" / "target" / "index.html"
    assert str(index) in result.stdout
    assert index.exists() and (root / "dbt" / "target" / "catalog.json").exists()
