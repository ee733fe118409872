"""One warehouse setting, two consumers.

`ELT_WAREHOUSE_URL` names the warehouse; dlt's destination and dbt's profile are both
derived from the `Warehouse` resolved here, so the two can never point at different
databases. Where the setting is unset, an embedded PostgreSQL under `.elt/` is used.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from runtime.errors import ConfigError
from runtime.secrets import redact

URL_ENV = "ELT_WAREHOUSE_URL"
DEFAULT_DATABASE = "warehouse"


@dataclass(frozen=True)
class Warehouse:
    """A resolved Postgres warehouse; `url` holds the password, `safe_url` never does."""

    host: str
    port: int
    user: str
    password: str
    database: str
    sslmode: str = "prefer"
    embedded: bool = False

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    @property
    def safe_url(self) -> str:
        auth = quote(self.user, safe="") + (":***" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}"

    def url_for(self, database: str, driver: str = "postgresql") -> str:
        """The URL of another database on the same server (the demo source lives there)."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        query = "" if self.sslmode == "prefer" else f"?sslmode={self.sslmode}"
        return f"{driver}://{auth}@{self.host}:{self.port}/{quote(database, safe='')}{query}"

    def dbt_env(self) -> dict[str, str]:
        """Environment read by `dbt/profiles.yml` (env_var only); the password as a dbt secret."""
        return {
            "ELT_WAREHOUSE_HOST": self.host,
            "ELT_WAREHOUSE_PORT": str(self.port),
            "ELT_WAREHOUSE_USER": self.user,
            "ELT_WAREHOUSE_DATABASE": self.database,
            "ELT_WAREHOUSE_SSLMODE": self.sslmode,
            "DBT_ENV_SECRET_WAREHOUSE_PASSWORD": self.password,
        }

    def connect(self, *, database: str | None = None, connect_timeout: int = 10):
        """A psycopg2 connection; errors name the warehouse without its password."""
        import psycopg2

        try:
            return psycopg2.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password or None,
                dbname=database or self.database,
                sslmode=self.sslmode,
                connect_timeout=connect_timeout,
                application_name="elt",
            )
        except psycopg2.OperationalError as exc:
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"warehouse {self.host}:{self.port}/{database or self.database}: cannot connect "
                f"({redact(cause)})",
                hint="check ELT_WAREHOUSE_URL, or unset it to use the embedded warehouse",
            ) from None


def parse_url(url: str) -> Warehouse:
    """Parse a `postgresql://` URL; a malformed one is a configuration error naming the key."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") and not parts.scheme.startswith(
        "postgresql+"
    ):
        raise ConfigError(
            f"{URL_ENV}: expected a postgresql:// URL, got scheme {parts.scheme!r}",
            hint="set it like postgresql://user:password@host:5432/warehouse",
        )
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigError(f"{URL_ENV}: the port is not a number") from None
    database = unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
    return Warehouse(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        database=database,
        sslmode=query.get("sslmode", "prefer"),
    )


def resolve(project_dir: Path, *, start: bool = True) -> Warehouse:
    """The configured warehouse, or the embedded one (started on demand when `start`)."""
    url = os.environ.get(URL_ENV, "").strip()
    if url:
        return parse_url(url)
    return embedded_warehouse(project_dir, start=start)


def embedded_warehouse(project_dir: Path, *, start: bool = True) -> Warehouse:
    """The embedded server under `.elt/`, whatever ELT_WAREHOUSE_URL names (the demo's
    source databases live there when the warehouse is another engine)."""
    from runtime import embedded

    port = embedded.ensure_running(project_dir) if start else embedded.port(project_dir)
    if port is None:
        raise ConfigError("embedded warehouse is not running", hint="run any elt command")
    return Warehouse(
        host="127.0.0.1",
        port=port,
        user="postgres",
        password="",
        database=DEFAULT_DATABASE,
        embedded=True,
    )


def ensure_database(warehouse: Warehouse, database: str) -> None:
    """Create `database` on the warehouse's server if it is missing (the demo needs two)."""
    import psycopg2.errors
    from psycopg2 import sql

    conn = warehouse.connect(database="postgres")
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (database,))
            if cur.fetchone() is None:
                # another process may create it between the check and here: it exists, fine
                with contextlib.suppress(psycopg2.errors.DuplicateDatabase):
                    cur.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    finally:
        conn.close()
