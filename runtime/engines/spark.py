"""Spark: a standalone (or real) cluster, `spark://HOST:PORT?lake=/path[&warehouse=/path]`.

Where the data lives:
- the **lake** (`lake=`): dlt's `filesystem` destination writes every `raw_<source>`
  table, and its `_dlt_loads`, as parquet files under `<lake>/raw_<source>/<table>/`;
- the **warehouse** (`warehouse=`, default `<lake>/../warehouse`): dbt-spark writes
  staging and marts there as parquet Spark tables (`<warehouse>/<schema>.db/<table>`);
- the **catalog**: a Hive metastore on Derby (`metastore=`, default
  `<lake>/../metastore`), so tables and views survive between elt invocations. The raw
  tables are external tables over the lake folders, dropped and created again at the
  start of every session (the columns a new load added appear; dropping an external
  table leaves its files);
- the **audit** (`elt_audit.runs`): a DuckDB file beside the lake
  (`<lake>/../audit.duckdb`), written by one elt process at a time. Spark tables are
  append-only parquet (no UPDATE without Delta), and starting a Spark session for every
  `elt load` would cost a minute; a DuckDB file costs nothing and has the same SQL the
  audit writers use. Statements naming `elt_audit` go there; all others go to Spark.

One SparkSession per process (the one dbt-spark's `session` method also finds: it calls
`getOrCreate()`), configured here: the master from the URL, small shuffle partitions,
bounded driver and executor memory, UTC. Any other `spark.*` setting can be appended to
the URL as a query parameter (`&spark.executor.memory=4g`).

What Spark cannot do that elt does elsewhere: a Derby metastore admits one process at a
time (a second elt command waits for nothing: it fails in one line); `elt sql` is
read-only by statement kind (no roles); dbt node results are not copied to
`elt_audit.dbt_results` (they stay in dbt/target/run_results.json); rejected rows stay in
the lake (`raw_<source>._elt_quarantine`), not published to `elt_audit.quarantine`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from runtime.engines import first_line as _first_line
from runtime.engines.duckdb import Column  # one description column shape for both
from runtime.errors import ConfigError

SCHEMES = ("spark",)
DBT_TARGET = "spark"
EXTRA_HINT = "install the Spark extra: `uv sync --extra spark` (or `pip install 'elt[spark]'`)"
NO_SERVER: dict[str, str] = {
    "tls": "Spark standalone: the master's RPC is not TLS here (a real cluster's is its own)",
    "roles": "Spark has no roles here: `elt sql` is read-only by statement kind",
    "connections": "Spark: one driver per elt process, no pooled connections to count",
}
# the Derby metastore and the audit file admit one elt process at a time (runtime/locks.py)
ONE_PROCESS = True
# no row of a parquet lake can be deleted without Delta: raw keeps every version, staging
# dedupes, and compaction does not run (loaders/compaction.py)
ROW_ID = None
SESSION_ENV = {"TZ": "UTC"}  # pyspark renders instants in the process's zone: UTC
AUDIT_SCHEMA = "elt_audit"
# what elt sql may run on Spark (read-only by statement kind: Spark has no roles here)
_READ_ONLY = re.compile(r"^\s*(select|with|show|describe|desc|explain|values)\b", re.I)
_AUDIT = re.compile(rf"\b{AUDIT_SCHEMA}\b", re.I)
_NAMED = re.compile(r"%\((\w+)\)s")
_URL_HINT = "use spark://HOST:7077?lake=/path/to/lake (optionally &warehouse=/path&webui=8080)"


class SparkError(Exception):
    """A Spark statement failed (pyspark's exception, cut to its first line)."""


@dataclass(frozen=True)
class SparkWarehouse:
    """A Spark cluster with its lake, warehouse and metastore folders; no password."""

    host: str
    port: int
    lake: Path
    warehouse_dir: Path
    metastore: Path
    webui_port: int = 8080
    conf: tuple[tuple[str, str], ...] = field(default=())
    engine: str = "spark"
    embedded: bool = False

    password = ""
    database = "spark"

    @property
    def master(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        query = [f"lake={self.lake}", f"warehouse={self.warehouse_dir}"]
        query += [f"metastore={self.metastore}", f"webui={self.webui_port}"]
        query += [f"{k}={v}" for k, v in self.conf]
        return f"{self.master}?{'&'.join(query)}"

    @property
    def safe_url(self) -> str:
        return self.url

    @property
    def audit_path(self) -> Path:
        return self.lake.parent / "audit.duckdb"

    def as_role(self, role: str) -> SparkWarehouse:
        """One user: Spark here has no roles (runtime/roles.py applies to PostgreSQL)."""
        return self

    def dbt_env(self) -> dict[str, str]:
        """dbt-spark's session finds this process's SparkSession: create and prepare it."""
        session(self)
        return {"ELT_SPARK_MASTER": self.master}

    def connect(self, **_ignored: Any) -> Any:
        """The audit writer's connection (the DuckDB file beside the lake)."""
        return _audit(self).connect()


def resolve(url: str, project_dir: Path | None, *, start: bool = True) -> SparkWarehouse:
    require_extra()
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if not parts.hostname or not parts.port or not query.get("lake"):
        raise ConfigError(
            f"ELT_WAREHOUSE_URL: a Spark URL names the master and the lake, got {url!r}",
            hint=_URL_HINT,
        )

    def folder(value: str) -> Path:
        path = Path(unquote(value)).expanduser()
        if not path.is_absolute() and project_dir is not None:
            path = project_dir / path
        return path.resolve()

    lake = folder(query.pop("lake"))
    warehouse_dir = folder(query.pop("warehouse", str(lake.parent / "warehouse")))
    metastore = folder(query.pop("metastore", str(lake.parent / "metastore")))
    webui = query.pop("webui", "8080")
    unknown = [key for key in query if not key.startswith("spark.")]
    if unknown:
        raise ConfigError(
            f"ELT_WAREHOUSE_URL: unknown Spark URL parameter {unknown[0]!r}",
            hint="known: lake, warehouse, metastore, webui, and spark.* settings",
        )
    if not webui.isdigit():
        raise ConfigError(f"ELT_WAREHOUSE_URL: webui={webui!r} is not a port", hint=_URL_HINT)
    return SparkWarehouse(
        host=parts.hostname,
        port=parts.port,
        lake=lake,
        warehouse_dir=warehouse_dir,
        metastore=metastore,
        webui_port=int(webui),
        conf=tuple(sorted(query.items())),
    )


def require_extra() -> None:
    """A one-line error, not a traceback, when the optional Spark packages are missing."""
    for module in ("pyspark", "dbt.adapters.spark"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"a spark:// warehouse needs {module}, which is not installed", hint=EXTRA_HINT
            ) from None


def dlt_destination(warehouse: SparkWarehouse) -> Any:
    """dlt's filesystem destination on the lake: parquet files, one folder per table."""
    import dlt

    warehouse.lake.mkdir(parents=True, exist_ok=True)
    return dlt.destinations.filesystem(bucket_url=warehouse.lake.as_uri())


def error_class() -> Any:
    """Spark's errors and the audit file's (a tuple works in `except`)."""
    import duckdb

    return (SparkError, duckdb.Error)


def read_only(warehouse: SparkWarehouse, *, timeout: float) -> Connection:
    return Connection(warehouse, timeout=timeout)


def probe(warehouse: SparkWarehouse, timeout: float) -> dict[str, Any]:
    """The doctor's warehouse check without starting a session (a minute on a busy
    machine): the master's JSON status page (workers alive, cores) and the lake folder."""
    import urllib.request

    where = f"{warehouse.master} (web UI :{warehouse.webui_port})"
    page = f"http://{warehouse.host}:{warehouse.webui_port}/json/"
    try:
        with urllib.request.urlopen(page, timeout=timeout) as response:
            status = json.load(response)
    except (OSError, ValueError) as exc:
        return {
            "ok": False,
            "detail": f"{where}: master unreachable ({_first_line(exc)})",
            "hint": "start the master, or fix host, port and webui= in ELT_WAREHOUSE_URL",
        }
    workers = [w for w in status.get("workers", []) if w.get("state") == "ALIVE"]
    cores = sum(int(w.get("cores", 0)) for w in workers)
    detail = f"{where}: {status.get('status', '?')}, {len(workers)} worker(s) alive, {cores} cores"
    version = _version()
    if status.get("status") != "ALIVE" or not workers:
        return {"ok": False, "detail": detail, "hint": "start a worker for the master"}
    if not os.access(warehouse.lake, os.R_OK | os.X_OK) and warehouse.lake.exists():
        return {"ok": False, "detail": f"{detail}; lake {warehouse.lake} not readable",
                "hint": "fix the lake folder's permissions"}  # fmt: skip
    return {"ok": True, "detail": f"{detail}, lake {warehouse.lake}", "version": version}


def _version() -> str:
    import pyspark

    return f"Spark {pyspark.__version__}"


# ---- the session: configured here, the lake registered --------------------------------

_session_guard = threading.Lock()


def session_config(warehouse: SparkWarehouse) -> dict[str, str]:
    """Settings of the one SparkSession (small and bounded: a laptop-sized cluster)."""
    derby = f"jdbc:derby:;databaseName={warehouse.metastore / 'metastore_db'};create=true"
    return {
        "spark.master": warehouse.master,
        "spark.app.name": "elt",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": warehouse.warehouse_dir.as_uri(),
        "spark.hadoop.javax.jdo.option.ConnectionURL": derby,
        "spark.driver.extraJavaOptions": (
            f"-Duser.timezone=UTC -Dderby.system.home={warehouse.metastore}"
        ),
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.driver.memory": "768m",
        "spark.executor.memory": "512m",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.ansi.enabled": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.network.timeout": "600s",
        "spark.scheduler.mode": "FAIR",  # dbt's threads submit models side by side
        **dict(warehouse.conf),
    }


def session(warehouse: SparkWarehouse) -> Any:
    """This process's SparkSession on the cluster, the lake's raw tables registered."""
    from pyspark.sql import SparkSession

    with _session_guard:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        warehouse.metastore.mkdir(parents=True, exist_ok=True)
        warehouse.warehouse_dir.mkdir(parents=True, exist_ok=True)
        if warehouse.host in ("127.0.0.1", "localhost"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the driver on loopback too
        builder = SparkSession.builder
        for key, value in session_config(warehouse).items():
            builder = builder.config(key, value)
        try:
            spark = builder.enableHiveSupport().getOrCreate()
        except Exception as exc:
            raise ConfigError(
                f"Spark master {warehouse.master}: no session ({_first_line(exc)})",
                hint="is the master running? `elt doctor` checks it and its workers",
            ) from None
        spark.sparkContext.setLogLevel("ERROR")
        register_lake(spark, warehouse)
        return spark


# dlt's filesystem destination writes its load log as JSON lines, whatever the data's format
_DLT_LOADS = (
    "load_id string, schema_name string, status bigint, inserted_at timestamp,"
    " schema_version_hash string"
)


def lake_tables(warehouse: SparkWarehouse) -> dict[str, dict[str, Path]]:
    """{dataset: {table: folder}}: the parquet tables dlt wrote under the lake, and each
    dataset's `_dlt_loads`."""
    found: dict[str, dict[str, Path]] = {}
    if not warehouse.lake.is_dir():
        return found
    for dataset in sorted(warehouse.lake.glob("raw_*")):
        for table in sorted(p for p in dataset.iterdir() if p.is_dir()):
            if table.name == "_dlt_loads" or any(table.glob("*.parquet")):
                found.setdefault(dataset.name, {})[table.name] = table
    return found


def register_lake(spark: Any, warehouse: SparkWarehouse) -> None:
    """Each lake folder as an external table `raw_<source>.<table>`, created again (new
    columns appear; the files stay: external tables own none)."""
    for dataset, tables in lake_tables(warehouse).items():
        spark.sql(f"create database if not exists {dataset}")
        for table, folder in tables.items():
            name = f"{dataset}.`{table}`"
            spark.sql(f"drop table if exists {name}")
            if table == "_dlt_loads":
                source = f"({_DLT_LOADS}) using json"
            else:
                source = "using parquet options (mergeSchema 'true')"
            spark.sql(f"create table {name} {source} location '{folder.as_uri()}'")


def _audit(warehouse: SparkWarehouse) -> Any:
    from runtime.engines.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(path=warehouse.audit_path)


def bound(conn: Connection, seconds: float) -> None:
    """Spark has no statement_timeout: the connection's timer cancels the session's jobs."""
    conn.timeout = seconds
    if conn._audit is not None:
        conn._audit.timeout = seconds


# ---- connections with psycopg2's surface ------------------------------------------


class Connection:
    """Spark SQL through the session, `elt_audit` statements through the audit file;
    read-only (by statement kind), each statement bounded by `timeout` seconds."""

    engine = "spark"  # what code shared by engines asks (runtime/engines.bound, locks)

    def __init__(self, warehouse: SparkWarehouse, *, timeout: float | None = None) -> None:
        self.warehouse, self.timeout, self.autocommit = warehouse, timeout, True
        self._audit: Any = None

    @property
    def spark(self) -> Any:
        return session(self.warehouse)

    @property
    def audit(self) -> Any:
        if self._audit is None:
            from runtime.engines import duckdb as engine

            self._audit = engine.read_only(_audit(self.warehouse), timeout=self.timeout or 60)
        return self._audit

    def set_session(self, **_ignored: Any) -> None:
        """Read-only is what this connection always is."""

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        """Spark commits each statement."""

    def rollback(self) -> None:
        """Nothing to undo: no statement here writes."""

    def close(self) -> None:
        if self._audit is not None:
            self._audit.close()
            self._audit = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Cursor:
    def __init__(self, conn: Connection) -> None:
        self.conn, self.description, self.rowcount = conn, None, -1
        self._rows: list[tuple] = []
        self._audit_cursor: Any = None

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._rows = []

    def execute(self, sql: str, params: Any = None) -> Cursor:
        if _AUDIT.search(sql) or _names_audit(params):
            self._audit_cursor = self.conn.audit.cursor().execute(sql, params)
            self.description = self._audit_cursor.description
            self._rows = []
            return self
        self._audit_cursor = None
        if not _READ_ONLY.match(sql):
            raise SparkError("Spark: elt sql is read-only (select, with, show, describe)")
        sql = _information_schema(self.conn.spark, _backquoted(sql), params)
        frame = self._run(_bind(sql, params))
        self.description = [Column(f.name, f.dataType.typeName()) for f in frame.schema.fields]
        self._rows = [_row(row) for row in frame]
        self._rows.reverse()  # popped from the end
        return self

    def _run(self, sql: str) -> list:
        spark = self.conn.spark
        timer = None
        if self.conn.timeout:
            timer = threading.Timer(self.conn.timeout, spark.sparkContext.cancelAllJobs)
            timer.start()
        try:
            result = spark.sql(sql)
            return _Frame(result.schema, result.collect())
        except Exception as exc:
            raise SparkError(f"Spark: {_first_line(exc)}") from None
        finally:
            if timer:
                timer.cancel()

    def fetchone(self) -> tuple | None:
        if self._audit_cursor is not None:
            return self._audit_cursor.fetchone()
        return self._rows.pop() if self._rows else None

    def fetchmany(self, size: int = 1) -> list[tuple]:
        if self._audit_cursor is not None:
            return self._audit_cursor.fetchmany(size)
        batch = [self._rows.pop() for _ in range(min(size, len(self._rows)))]
        return batch

    def fetchall(self) -> list[tuple]:
        if self._audit_cursor is not None:
            return self._audit_cursor.fetchall()
        rows, self._rows = list(reversed(self._rows)), []
        return rows

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row


@dataclass(frozen=True)
class _Frame:
    schema: Any
    rows: list

    def __iter__(self):
        return iter(self.rows)


def _row(row: Any) -> tuple:
    """Instants as aware UTC datetimes (pyspark gives naive ones in the process's zone)."""
    return tuple(
        value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo is None else value
        for value in row
    )


def _names_audit(params: Any) -> bool:
    values = params.values() if isinstance(params, dict) else (params or ())
    return any(value == AUDIT_SCHEMA for value in values)


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list):
        value = json.dumps(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _bind(sql: str, params: Any) -> str:
    """psycopg2-style parameters as Spark SQL literals (Spark's own markers differ)."""
    if params is None:
        return sql
    if isinstance(params, dict):
        return _NAMED.sub(lambda m: _literal(params[m.group(1)]), sql).replace("%%", "%")
    values = iter(params)
    return re.sub(r"%s", lambda _m: _literal(next(values)), sql).replace("%%", "%")


_QUOTED_SELECT = re.compile(r'^select ("[^"]+"(, )?)+ from "[^"]+"\."[^"]+"$')


def _backquoted(sql: str) -> str:
    """`select "a", "b" from "s"."t"` (runtime/fingerprint.py) in Spark's identifier
    quotes: Spark reads double quotes as strings."""
    return sql.replace("`", "``").replace('"', "`") if _QUOTED_SELECT.match(sql) else sql


_INFO = re.compile(r"\binformation_schema\.(tables|columns)\b", re.I)


def _information_schema(spark: Any, sql: str, params: Any) -> str:
    """Spark has no information_schema: the two views callers read (tables, columns),
    built from the catalog as temporary views, of the schemas named in the parameters
    where one is (a catalog lookup per table: the raw schemas are many tables)."""
    if not _INFO.search(sql):
        return sql
    values = params.values() if isinstance(params, dict) else (params or ())
    databases = [d.name for d in spark.catalog.listDatabases()]
    named = [d for d in databases if d in values] or databases
    tables, columns = [], []
    for database in named:
        for table in spark.catalog.listTables(database):
            if table.isTemporary:
                continue
            tables.append((database, table.name, table.tableType))
            for column in spark.catalog.listColumns(table.name, database):
                columns.append((database, table.name, column.name, column.dataType))
    spark.createDataFrame(
        tables or [("", "", "")], "table_schema string, table_name string, table_type string"
    ).where("table_name != ''").createOrReplaceTempView("elt_information_schema_tables")
    spark.createDataFrame(
        columns or [("", "", "", "")],
        "table_schema string, table_name string, column_name string, data_type string",
    ).where("table_name != ''").createOrReplaceTempView("elt_information_schema_columns")
    return _INFO.sub(lambda m: f"elt_information_schema_{m.group(1).lower()}", sql)
