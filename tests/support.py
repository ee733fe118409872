"""Helpers shared by the tests: run elt as cron does, query the warehouse and the source."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from runtime.project import project_dir
from runtime.warehouse import Warehouse

PROJECT = project_dir()


def run_elt(*args: str, env: dict[str, str], check: bool = False, timeout: int = 600):
    """`elt` in a subprocess, as cron runs it; returns the CompletedProcess."""
    result = subprocess.run(
        [sys.executable, "-m", "elt", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"elt {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def query(warehouse: Warehouse, sql: str, params: tuple = ()) -> list[tuple]:
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def execute(url: str, sql: str, params: tuple = ()) -> None:
    """Run a statement on the source database (psycopg2, autocommit)."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql, params)
    conn.close()


KILL_DURING_LOAD = textwrap.dedent(
    """
    import os, sys, threading, time
    from pathlib import Path
    from elt.runtime import Runtime
    from loaders import pipeline

    runtime = Runtime()
    runtime.prepare_dlt()
    jobs = Path(os.environ["ELT_PIPELINES_DIR"]) / "elt_shop" / "load" / "normalized"

    def kill_after_first_completed_job():
        while True:
            if any(jobs.glob("*/completed_jobs/*")):
                os.kill(os.getpid(), 9)
            time.sleep(0.001)

    threading.Thread(target=kill_after_first_completed_job, daemon=True).start()
    pipeline.run("shop", destination_url=runtime.warehouse.url,
                 pipelines_dir=runtime.pipelines_dir)
    sys.exit(3)  # the load finished before it could be killed: the scenario did not happen
    """
)


def kill_a_load_midway(env: dict[str, str]) -> subprocess.CompletedProcess:
    """A shop load killed (-9) after its first job completed: it leaves a pending package
    and raw rows of a load that never completed. Returncode -9 when that happened."""
    return subprocess.run(
        [sys.executable, "-c", KILL_DURING_LOAD],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=300,
    )


def fetch(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of a query on the source database (psycopg2)."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()
