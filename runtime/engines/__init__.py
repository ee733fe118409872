"""The warehouse engines: `ELT_WAREHOUSE_URL` → one engine module, everything else from it.

Each engine is one small module here (postgres.py, duckdb.py, spark.py) holding all of its
Python-side SQL differences; dbt-side differences are macros dispatched by adapter
(macros/*.sql). Callers never branch on the engine: they ask this package.

An engine module provides:
- `SCHEMES`: the URL schemes it takes; `resolve(url, project_dir, start)` → warehouse
- `dlt_destination(warehouse)`: dlt's destination for the raw datasets
- `DBT_TARGET`: the output of dbt/profiles.yml it runs under (env from `warehouse.dbt_env()`)
- `read_only(warehouse, timeout)`: a DB-API connection for sql/runs/doctor/quarantine list
- `bound(conn, seconds)`: bound each later statement of a connection it made
- `Error`: the driver's base exception; `relation_exists(cur, schema, table)`
- `NO_SERVER`: doctor checks that need a server (version, TLS, roles, disk of pgdata)
- `SESSION_ENV`: environment the dbt it invokes needs (sessions in UTC)
- `ROW_ID`: the pseudo-column naming a row (compaction deletes superseded versions by it)
- `ONE_PROCESS`: the engine admits one elt process at a time (elt's locks have nothing
  left to serialise there)
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from runtime.errors import ConfigError

URL_ENV = "ELT_WAREHOUSE_URL"
# engine name -> module; adding an engine is a module here and a line in this table
ENGINES: dict[str, str] = {
    "postgres": "runtime.engines.postgres",
    "duckdb": "runtime.engines.duckdb",
    "spark": "runtime.engines.spark",
}


def engine_module(name: str) -> ModuleType:
    return importlib.import_module(ENGINES[name])


def engine_for_url(url: str) -> str:
    """The engine a warehouse URL names; an unknown scheme is a configuration error."""
    scheme = urlsplit(url).scheme.split("+")[0]
    for name in ENGINES:
        if scheme in engine_module(name).SCHEMES:
            return name
    raise ConfigError(
        f"{URL_ENV}: unknown warehouse scheme {scheme!r}",
        hint="use postgresql://user:password@host:5432/warehouse, duckdb:///path/to/file.duckdb"
        " or spark://host:7077?lake=/path/to/lake",
    )


def configured_engine() -> str:
    """The engine of `ELT_WAREHOUSE_URL` (postgres, the embedded server, where unset)."""
    url = os.environ.get(URL_ENV, "").strip()
    return engine_for_url(url) if url else "postgres"


def resolve(project_dir: Path, *, start: bool = True) -> Any:
    """The configured warehouse (the embedded PostgreSQL where the URL is unset)."""
    url = os.environ.get(URL_ENV, "").strip()
    return engine_module(configured_engine()).resolve(url, project_dir, start=start)


def of(warehouse: Any) -> ModuleType:
    """The engine module of a resolved warehouse."""
    return engine_module(getattr(warehouse, "engine", "postgres"))


def warehouse_for_url(url: str) -> Any:
    """The warehouse a URL names, as it is (loaders are handed URLs, not warehouses)."""
    return engine_module(engine_for_url(url)).resolve(url, None, start=False)


def dlt_destination(destination_url: str) -> Any:
    """dlt's destination for a warehouse URL (what `loaders/pipeline.py` is handed)."""
    warehouse = warehouse_for_url(destination_url)
    return of(warehouse).dlt_destination(warehouse)


def dbt_target(warehouse: Any) -> str:
    return of(warehouse).DBT_TARGET


def errors(warehouse: Any) -> type[BaseException]:
    """The driver's base exception class, for `except engines.errors(w)`."""
    return of(warehouse).error_class()


def read_only(warehouse: Any, *, timeout: float = 60) -> Any:
    """A read-only DB-API connection, each statement bounded by `timeout` seconds."""
    return of(warehouse).read_only(warehouse, timeout=timeout)


def bound(conn: Any, seconds: float) -> None:
    """Bound each later statement of `conn` to `seconds`, on whichever engine it talks to."""
    engine_module(getattr(conn, "engine", "postgres")).bound(conn, seconds)


def ident(name: str) -> str:
    """A quoted identifier for SQL text (names come from configuration or the catalog)."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{ident(schema)}.{ident(table)}"


def is_data_error(exc: BaseException) -> bool:
    """A value the statement could not take (a key of the wrong type): SQLSTATE class 22 on
    PostgreSQL, a conversion error on DuckDB; not a connection or syntax failure."""
    if str(getattr(exc, "pgcode", "") or "").startswith("22"):
        return True
    return type(exc).__name__ in ("ConversionException", "InvalidInputException", "DataError")


def first_line(exc: BaseException) -> str:
    """The driver's message without its `ERROR:` prefix, context lines or hint."""
    text = str(getattr(exc, "pgerror", None) or exc).strip()
    lines = text.splitlines()
    return lines[0].removeprefix("ERROR:").strip() if lines else type(exc).__name__


def relation_exists(cursor: Any, schema: str, table: str) -> bool:
    """Whether schema.table exists, asked of information_schema (every engine has it)."""
    cursor.execute(
        "select count(*) from information_schema.tables"
        " where table_schema = %s and table_name = %s",
        (schema, table),
    )
    return bool(cursor.fetchone()[0])
