"""Adding a source is a package under loaders/, a block in .dlt/config.toml and staging
models: nothing under elt/ or diagnostics/ changes. Proven on a copy of the project with a
toy fourth source, `inventory`, a second Postgres database, into a DuckDB warehouse."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import PROJECT, _drop_database
from support import execute

from runtime.warehouse import ensure_database

PACKAGE = '''"""The `inventory` source: the stock table of a warehouse-management database."""
import dlt
from dlt.sources.sql_database import sql_table


@dlt.source(name="inventory", max_table_nesting=0)
def inventory(credentials: str = dlt.secrets.value):
    url = "postgresql+psycopg2://" + credentials.split("://", 1)[1]
    yield sql_table(credentials=url, table="stock", backend="pyarrow").apply_hints(
        primary_key="sku", write_disposition="merge"
    )
'''
SOURCES_YML = """version: 2
sources:
  - name: inventory
    schema: raw_inventory
    tables:
      - name: stock
"""
MODEL = "select sku, quantity from {{ source('inventory', 'stock') }}\n"
CONFIG = '\n[sources.inventory]\nkind = "postgres"\ntables = { stock = {} }\n'


def tree_digest(root: Path, folder: str) -> str:
    digest = hashlib.sha256()
    for path in sorted((root / folder).rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def inventory_url(server):
    name = f"elt_test_inv_{uuid.uuid4().hex[:8]}"
    ensure_database(server, name)
    url = server.url_for(name)
    execute(url, "create table stock (sku text primary key, quantity integer not null)")
    execute(url, "insert into stock values ('A-1', 3), ('B-2', 0), ('C-3', 41)")
    yield url
    _drop_database(server, name)


@pytest.fixture
def project_copy(tmp_path):
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    copy = tmp_path / "elt"
    for name in files:
        if (PROJECT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / name, copy / name)
    return copy


def test_a_fourth_source_needs_no_change_under_elt_or_diagnostics(
    project_copy, inventory_url, tmp_path
):
    copy = project_copy
    before = {folder: tree_digest(copy, folder) for folder in ("elt", "diagnostics")}
    (copy / "loaders" / "inventory").mkdir()
    (copy / "loaders" / "inventory" / "__init__.py").write_text(PACKAGE)
    registry = copy / "loaders" / "__init__.py"
    registry.write_text(
        registry.read_text().replace(
            '"marketing": "loaders.marketing:marketing",',
            '"marketing": "loaders.marketing:marketing",\n'
            '    "inventory": "loaders.inventory:inventory",',
        )
    )
    with (copy / ".dlt" / "config.toml").open("a") as handle:
        handle.write(CONFIG)
    models = copy / "dbt" / "models" / "staging" / "inventory"
    models.mkdir(parents=True)
    (models / "_inventory__sources.yml").write_text(SOURCES_YML)
    (models / "stg_inventory__stock.sql").write_text(MODEL)

    env = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "ELT_PROJECT_DIR": str(copy),
        "DLT_PROJECT_DIR": str(copy),
        "ELT_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'four.duckdb'}",
        "ELT_PIPELINES_DIR": str(tmp_path / "pipelines"),
        "SOURCES__INVENTORY__CREDENTIALS": inventory_url,
    }

    def elt(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "elt", *args],
            env=env,
            cwd=copy,
            capture_output=True,
            text=True,
            timeout=600,
        )

    loaded = elt("load", "inventory", "--format", "json")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert json.loads(loaded.stdout)["sources"][0]["rows"] == {"stock": 3}
    built = elt("transform", "-s", "stg_inventory__stock")
    assert built.returncode == 0, built.stderr[-2000:]
    rows = elt(
        "sql",
        "select sku, quantity from staging.stg_inventory__stock order by sku",
        "--format",
        "csv",
    )
    assert rows.stdout.splitlines() == ["sku,quantity", "A-1,3", "B-2,0", "C-3,41"]
    doctor = elt("doctor", "--only", "config", "--only", "connectivity", "--format", "json")
    checks = {c["id"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["config/source/inventory"]["status"] == "OK"
    assert checks["connectivity/source/inventory"]["status"] == "OK"
    assert {folder: tree_digest(copy, folder) for folder in before} == before
