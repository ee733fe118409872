"""Read-only PostgreSQL connections for the doctor, and one-line causes of their failures."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runtime.engines import ident as ident  # re-exported: the checks quote names with it
from runtime.engines import qualified as qualified
from runtime.secrets import redact


def io_timeout(budget: float) -> float:
    """Seconds for one connect or statement: inside the check's deadline, so the check
    reports the precise cause itself (libpq's connect timeout is at least 2 s)."""
    return max(2.0, budget * 0.6)


def libpq_url(url: str) -> str:
    """SQLAlchemy-style `postgresql+psycopg2://` URLs as plain libpq ones."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    return urlunsplit((scheme, *parts[1:]))


def connect(dsn: str | None = None, *, timeout: float, **params: Any):
    """A connection whose every transaction is read-only and every statement bounded."""
    import psycopg2

    options = (
        f"-c default_transaction_read_only=on -c statement_timeout={int(timeout * 1000)}"
        f" -c lock_timeout={int(timeout * 1000)}"
    )
    conn = psycopg2.connect(
        libpq_url(dsn) if dsn else "",
        connect_timeout=max(2, math.ceil(timeout)),
        options=options,
        application_name="elt doctor",
        **params,
    )
    conn.set_session(readonly=True, autocommit=True)
    return conn


@contextlib.contextmanager
def connection(dsn: str | None = None, *, timeout: float, **params: Any) -> Iterator[Any]:
    conn = connect(dsn, timeout=timeout, **params)
    try:
        yield conn
    finally:
        conn.close()


def rows(conn: Any, sql: str, params: tuple | dict = ()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def cause(exc: BaseException) -> str:
    """The first line of a driver error, without the password."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    # libpq prefixes 'connection to server at "host" (addr), port N failed: '
    if " failed: " in text:
        text = text.split(" failed: ", 1)[1]
    return redact(text.replace("FATAL:  ", ""))


def classify(exc: BaseException) -> str:
    """refused | timeout | auth | missing database | other: drives the hint."""
    text = str(exc).lower()
    if "password authentication failed" in text or "no password supplied" in text:
        return "auth"
    if "connection refused" in text or "could not connect" in text:
        return "refused"
    if "timeout expired" in text or "timed out" in text:
        return "timeout"
    if "does not exist" in text and "database" in text:
        return "missing database"
    return "other"


def relation_exists(conn: Any, schema: str, table: str) -> bool:
    """Whether the table exists (to_regclass on Postgres: also where the doctor's role may
    not read it; information_schema on the other engines)."""
    if not type(conn).__module__.startswith("psycopg2"):
        from runtime import engines

        with conn.cursor() as cur:
            return engines.relation_exists(cur, schema, table)
    sql = "select to_regclass(format('%%I.%%I', %s, %s)) is not null"
    return rows(conn, sql, (schema, table))[0][0]
