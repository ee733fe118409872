"""Helpers shared by the tests: run elt as cron does, query the warehouse and the source."""

from __future__ import annotations

import os
import subprocess
import sys

from elt.project import project_dir
from elt.warehouse import Warehouse

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
