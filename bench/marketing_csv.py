"""Benchmark `elt load marketing` of one large CSV against Postgres `COPY FROM` the same file.

One run, one server (the embedded warehouse, or the server of `ELT_WAREHOUSE_URL`):

1. writes a CSV of `--rows` ad_spend rows (the demo feed's columns) into a temporary
   landing folder;
2. baseline: `COPY raw_marketing.ad_spend FROM STDIN (FORMAT csv, HEADER)` of that file
   through psycopg2 (the client streams the file, as `psql \\copy` does) into a fresh
   database, into a table with the feed's declared types and no keys or indexes;
3. `elt load marketing --format json` as a subprocess into another fresh database with an
   empty dlt working dir, as a first run on a new runner: wall time (Python start and
   imports included), the seconds elt reports, peak RSS of the process tree; then a
   second, no-op load;
4. with `--bad-every N`, the same file with every Nth row malformed, loaded by elt (COPY
   cannot load it at all): the price of the quarantine path.

Ratio = elt wall seconds / COPY seconds. The `bench_marketing_*` databases are dropped at
the end, also on failure. Nothing printed carries a password.

    .venv/bin/python -m bench.marketing_csv --rows 1000000 --bad-every 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil

from bench.shop_load import PeakRss, drop_database, fresh_database, settle
from runtime import warehouse as wh
from runtime.project import project_dir

COPY_DB, ELT_DB, WARMUP_DB = "bench_marketing_copy", "bench_marketing_elt", "bench_marketing_warm"
HEADER = "spend_date,campaign_id,channel,impressions,clicks,spend,currency"
TABLE_DDL = """
create schema raw_marketing;
create table raw_marketing.ad_spend (
    spend_date date, campaign_id text, channel text, impressions bigint, clicks bigint,
    spend numeric(12,2), currency text
)
"""
CHANNELS = ("search", "social", "display", "affiliate", "email")
MIB = 1024 * 1024


def write_csv(path: Path, rows: int, bad_every: int = 0) -> int:
    """`rows` ad_spend rows with unique (spend_date, campaign_id); returns the bad rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    start = date(2020, 1, 1)
    bad = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER + "\n")
        batch = []
        for i in range(rows):
            day = start + timedelta(days=i % 1500)
            line = (
                f"{day},C{i // 1500:06d},{CHANNELS[i % 5]},{1000 + i % 9000},{i % 97},"
                f"{(i % 50000) / 100:.2f},EUR"
            )
            if bad_every and i % bad_every == bad_every - 1:
                line = line.rsplit(",", 2)[0] if bad % 2 else line.replace(",EUR", ",EUR,x")
                bad += 1
            batch.append(line)
            if len(batch) == 50_000:
                out.write("\n".join(batch) + "\n")
                batch = []
        if batch:
            out.write("\n".join(batch) + "\n")
    return bad


def copy_baseline(server: wh.Warehouse, csv_path: Path) -> tuple[float, int]:
    fresh_database(server, COPY_DB)
    conn = server.connect(database=COPY_DB)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(TABLE_DDL)
        settle(server)
        started = time.perf_counter()
        with conn, conn.cursor() as cur, csv_path.open("rb") as data:
            cur.copy_expert(
                "copy raw_marketing.ad_spend from stdin with (format csv, header true)", data
            )
            rows = cur.rowcount
        return time.perf_counter() - started, rows
    finally:
        conn.close()


def elt_load(server: wh.Warehouse, database: str, landing: Path, work: Path, cache: Path) -> dict:
    """`elt load marketing --format json` in a subprocess: wall time, peak RSS, its report."""
    env = {
        **os.environ,
        "ELT_PROJECT_DIR": str(project_dir()),
        "ELT_WAREHOUSE_URL": server.url_for(database),
        "SOURCES__MARKETING__BUCKET_URL": str(landing),
        "ELT_PIPELINES_DIR": str(work),
        # no .pyc writes on some machines: every start would recompile ~1000 modules
        "PYTHONPYCACHEPREFIX": str(cache),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    script = Path(sys.executable).with_name("elt")
    command = [str(script) if script.exists() else sys.executable]
    command += [] if script.exists() else ["-m", "elt"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "load", "marketing", "--format", "json"], env=env, stdout=out, stderr=err
        )
        with PeakRss(process.pid) as rss:
            process.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if process.returncode not in (0, 1):  # 1: the quarantine threshold, expected when dirty
        last = stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"elt load marketing exited {process.returncode}: {last[0]}")
    (report,) = json.loads(stdout)["sources"]
    return {
        "wall_seconds": round(seconds, 2),
        "reported_seconds": report["seconds"],
        "peak_rss_mib": round(rss.peak / MIB),
        "rows": report["rows"].get("ad_spend", 0),
        "quarantined": report["quarantine"].get("ad_spend", {}).get("quarantined", 0),
    }


def raw_rows(server: wh.Warehouse, database: str) -> int:
    conn = server.connect(database=database)
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from raw_marketing.ad_spend")
            return cur.fetchone()[0]
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bad-every", type=int, default=0, help="also load a dirty variant")
    parser.add_argument("--repeat", type=int, default=1, help="COPY and full loads N times")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)

    server = wh.resolve(project_dir())
    results: dict[str, Any] = {"rows": args.rows, "machine": machine(server)}
    with tempfile.TemporaryDirectory(prefix="elt-bench-marketing-") as tmp:
        root = Path(tmp)
        clean = root / "clean" / "ad_spend" / "bench.csv"
        started = time.perf_counter()
        write_csv(clean, args.rows)
        results["csv_mib"] = round(clean.stat().st_size / MIB, 1)
        results["write_seconds"] = round(time.perf_counter() - started, 2)
        try:
            write_csv(root / "warm" / "ad_spend" / "warm.csv", 1000)
            fresh_database(server, WARMUP_DB)
            elt_load(server, WARMUP_DB, root / "warm", root / "work-warm", root / "pycache")

            copies, firsts = [], []
            for attempt in range(args.repeat):  # the machines we share are noisy: medians
                settle(server)
                copies.append(copy_baseline(server, clean))
                fresh_database(server, ELT_DB)
                settle(server)
                work = root / f"work-{attempt}"
                firsts.append(elt_load(server, ELT_DB, root / "clean", work, root / "pycache"))
                firsts[-1]["raw_rows"] = raw_rows(server, ELT_DB)
            copy_seconds = statistics.median(seconds for seconds, _ in copies)
            results["copy"] = {"seconds": round(copy_seconds, 2), "rows": copies[0][1]}
            results["copy_runs"] = [round(seconds, 2) for seconds, _ in copies]
            first = min(firsts, key=lambda run: abs(run["wall_seconds"] - _median_wall(firsts)))
            results["elt"] = {**first, "wall_seconds": _median_wall(firsts)}
            results["elt_runs"] = [run["wall_seconds"] for run in firsts]
            results["elt_noop"] = elt_load(server, ELT_DB, root / "clean", work, root / "pycache")
            results["ratio"] = round(results["elt"]["wall_seconds"] / copy_seconds, 2)
            results["ratio_reported"] = round(first["reported_seconds"] / copy_seconds, 2)

            if args.bad_every:
                dirty = root / "dirty" / "ad_spend" / "bench.csv"
                bad = write_csv(dirty, args.rows, args.bad_every)
                fresh_database(server, ELT_DB)
                settle(server)
                run = elt_load(
                    server, ELT_DB, root / "dirty", root / "work-dirty", root / "pycache"
                )
                results["elt_dirty"] = {**run, "bad_rows_written": bad}
        finally:
            for name in (COPY_DB, ELT_DB, WARMUP_DB):
                with suppress(Exception):
                    drop_database(server, name)
    report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def _median_wall(runs: list[dict]) -> float:
    return round(statistics.median(run["wall_seconds"] for run in runs), 2)


def machine(server: wh.Warehouse) -> dict[str, Any]:
    from importlib.metadata import version

    conn = server.connect(database="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("show server_version")
            postgres = cur.fetchone()[0]
    finally:
        conn.close()
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "postgres": postgres,
        "embedded": server.embedded,
        "dlt": version("dlt"),
        "pyarrow": version("pyarrow"),
    }


def report(results: dict[str, Any]) -> None:
    copy, elt, noop = results["copy"], results["elt"], results["elt_noop"]
    print(f"{results['rows']:,} CSV rows ({results['csv_mib']} MiB)")
    print(f"  COPY FROM (baseline)      {copy['seconds']:>7.2f} s  {copy['rows']:,} rows")
    print(
        f"  elt load marketing        {elt['wall_seconds']:>7.2f} s  {elt['rows']:,} rows"
        f" (elt reports {elt['reported_seconds']:.2f} s), peak RSS {elt['peak_rss_mib']} MiB"
    )
    print(f"  ratio elt / COPY          {results['ratio']:>7.2f}x  ({results['ratio_reported']}x)")
    if len(results["elt_runs"]) > 1:
        print(f"  runs: COPY {results['copy_runs']}, elt {results['elt_runs']} (medians above)")
    print(f"  no-op load                {noop['wall_seconds']:>7.2f} s")
    if "elt_dirty" in results:
        dirty = results["elt_dirty"]
        print(
            f"  elt, {dirty['bad_rows_written']:,} bad rows     {dirty['wall_seconds']:>7.2f} s"
            f"  {dirty['rows']:,} loaded, {dirty['quarantined']:,} quarantined,"
            f" peak RSS {dirty['peak_rss_mib']} MiB"
        )


if __name__ == "__main__":
    main()
