"""DuckDB allows one writer: a second elt process on the same file gets one line and exit 2,
never a half-written file; a killed holder frees the file (the kernel drops its lock)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from conftest import PROJECT
from support import run_elt

HOLDER = """
import sys, time
from runtime import engines
warehouse = engines.resolve(None)
conn = warehouse.connect()
conn.cursor().execute("create table if not exists held (n integer)")
print("holding", flush=True)
time.sleep(600)
"""


@pytest.fixture
def duck_env(tmp_path):
    return {
        "ELT_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'one-writer.duckdb'}",
        "ELT_PIPELINES_DIR": str(tmp_path / "pipelines"),
        "ELT_PROJECT_DIR": str(PROJECT),
        "ELT_SOURCE_DEFAULTS": "",  # no demo: nothing but the warehouse file is involved
    }


@pytest.fixture
def holder(duck_env):
    """Another process writing the warehouse file, the way every elt writer opens it."""
    import os

    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        env={**os.environ, **duck_env},
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "holding"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def test_a_second_writer_gets_one_line_naming_the_holder_and_exit_2(duck_env, holder):
    result = run_elt("runs", env=duck_env, timeout=60)
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, result.stderr
    assert "in use by another elt process" in error[0]
    assert f"pid {holder.pid}" in error[0]
    assert "Traceback" not in result.stderr


def test_the_file_is_whole_and_usable_after_the_holder_is_killed(duck_env, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    deadline = time.monotonic() + 10
    while True:
        result = run_elt("sql", "select count(*) from held", "--format", "csv", env=duck_env)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["count_star()", "0"]
