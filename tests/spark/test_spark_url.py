"""`ELT_WAREHOUSE_URL=spark://...`: what the URL names, and one clear line (exit 2) where
it is wrong or the optional Spark packages are missing. No cluster needed: these run in
the default suite."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from support import PROJECT

from runtime.engines import engine_for_url
from runtime.engines import spark as engine
from runtime.errors import ConfigError

needs_extra = pytest.mark.skipif(
    importlib.util.find_spec("pyspark") is None, reason="the spark extra is not installed"
)


@needs_extra
def test_a_spark_url_names_master_lake_warehouse_and_metastore(tmp_path):
    url = f"spark://127.0.0.1:7077?lake={tmp_path / 'lake'}&spark.executor.memory=2g"
    warehouse = engine.resolve(url, None)
    assert engine_for_url(url) == "spark"
    assert warehouse.master == "spark://127.0.0.1:7077"
    assert warehouse.lake == tmp_path / "lake"
    assert warehouse.warehouse_dir == tmp_path / "warehouse"
    assert warehouse.metastore == tmp_path / "metastore"
    assert engine.session_config(warehouse)["spark.executor.memory"] == "2g"


@needs_extra
def test_a_relative_lake_is_under_the_project(tmp_path):
    warehouse = engine.resolve("spark://h:7077?lake=data/lake&warehouse=data/wh", tmp_path)
    assert (warehouse.lake, warehouse.warehouse_dir) == (
        tmp_path / "data/lake",
        tmp_path / "data/wh",
    )


@needs_extra
@pytest.mark.parametrize(
    "url", ["spark://127.0.0.1:7077", "spark://:7077?lake=/x", "spark://h:7077?lake=/x&oops=1"]
)
def test_a_spark_url_without_master_or_lake_or_with_unknown_parameters_is_refused(url):
    with pytest.raises(ConfigError) as raised:
        engine.resolve(url, None)
    assert "ELT_WAREHOUSE_URL" in str(raised.value) and raised.value.hint


def test_without_the_extra_a_spark_url_says_how_to_install_in_one_line(tmp_path: Path):
    # pyspark made unimportable in that process, as where the extra was never installed
    code = "import sys; sys.modules['pyspark'] = None; from elt.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "sql", "select 1"],
        env={"PATH": "/usr/bin:/bin", "ELT_WAREHOUSE_URL": f"spark://h:7077?lake={tmp_path}"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT,
    )
    assert done.returncode == 2
    assert "uv sync --extra spark" in done.stderr
    assert "Traceback" not in done.stderr
