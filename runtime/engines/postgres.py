"""PostgreSQL: a server (the embedded one under `.elt/` where ELT_WAREHOUSE_URL is unset).

The connection itself lives in runtime/warehouse.py; this module adds what the engine
layer asks of every engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCHEMES = ("postgresql", "postgres")
ROW_ID = "ctid"
ONE_PROCESS = False
DBT_TARGET = "warehouse"
NO_SERVER: dict[str, str] = {}  # every doctor check applies
# dbt's sessions in UTC from the first statement: unit tests run no pre-hook, and a
# PGTZ far from UTC would otherwise move the dates they derive from instants
SESSION_ENV = {"PGTZ": "UTC"}


def resolve(url: str, project_dir: Path | None, *, start: bool = True) -> Any:
    from runtime import warehouse as wh

    if url:
        return wh.parse_url(url)
    assert project_dir is not None, "the embedded warehouse needs the project directory"
    return wh.resolve(project_dir, start=start)


def dlt_destination(warehouse: Any) -> Any:
    import dlt
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    credentials = PostgresCredentials(warehouse.url)
    if credentials.password is None:
        credentials.password = ""  # trust auth (the embedded warehouse): dlt wants a value
    return dlt.destinations.postgres(credentials=credentials)


def error_class() -> type[BaseException]:
    import psycopg2

    return psycopg2.Error


def read_only(warehouse: Any, *, timeout: float) -> Any:
    conn = warehouse.connect()
    conn.set_session(readonly=True, autocommit=True)
    bound(conn, timeout)
    with conn.cursor() as cur:
        cur.execute("set lock_timeout = %s", (int(timeout * 1000),))
    return conn


def bound(conn: Any, seconds: float) -> None:
    with conn.cursor() as cur:
        cur.execute("set statement_timeout = %s", (int(seconds * 1000),))
