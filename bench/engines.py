"""The demo flow on PostgreSQL and on DuckDB, same run, same sources: load, transform and
test seconds and peak RSS per engine, and the marts' fingerprints compared.

    .venv/bin/python -m bench.engines --orders 1000000

One shop database (seeded once, on the embedded server or ELT_WAREHOUSE_URL's), one demo
payments API and one landing folder feed both warehouses: a fresh Postgres database and
a fresh DuckDB file, each with its own empty dlt working directory, as a first run on a
new runner. Each `elt` step is a subprocess timed from spawn to exit, its process tree's
RSS polled every 50 ms (bench/shop_load.py). Results: bench/README.md, "engines".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.shop_load import PeakRss, drop_database, fresh_database, server_warehouse
from demo import marketing, payments, shop
from runtime import engines, fingerprint
from runtime.project import project_dir

SOURCE_DB, WAREHOUSE_DB = "bench_engines_shop", "bench_engines_wh"
STEPS = ("load", "transform", "test")
MIB = 1024 * 1024


def elt(step: str, env: dict[str, str]) -> dict[str, float]:
    command = [str(Path(sys.executable).with_name("elt")), step]
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        with PeakRss(process.pid) as rss:
            process.wait()
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
            raise SystemExit(f"elt {step} exited {process.returncode}: {tail}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(rss.peak / MIB, 1)}


def marts(warehouse) -> dict:
    conn = engines.read_only(warehouse, timeout=600)
    try:
        return fingerprint.fingerprint(conn, "marts")
    finally:
        conn.close()


def seed_sources(orders: int, source_db: str, warehouse_db: str) -> tuple[Any, str]:
    """The bench server, with fresh databases `source_db` (the demo shop, `orders` orders and
    their payments) and `warehouse_db` (empty); the shop's URL."""
    server = server_warehouse()
    fresh_database(server, source_db)
    fresh_database(server, warehouse_db)
    shop_url = server.url_for(source_db)
    started = time.perf_counter()
    shop.seed(shop_url, orders)
    payments.seed(shop_url)
    print(f"seeded {orders:,} orders in {time.perf_counter() - started:.1f}s", flush=True)
    return server, shop_url


def sources_env(shop_url: str, api: Any, root: Path) -> dict[str, str]:
    """The environment of an elt run reading the three demo sources (the landing folder
    seeded under `root`)."""
    marketing.seed(root / "landing", shop_url)
    return {
        **os.environ,
        "ELT_PROJECT_DIR": str(project_dir()),
        "SOURCES__SHOP__CREDENTIALS": shop_url,
        "SOURCES__PAYMENTS__BASE_URL": api.url,
        "SOURCES__PAYMENTS__TOKEN": "bench-token",
        "SOURCES__MARKETING__BUCKET_URL": str(root / "landing"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)
    from demo.payments_api import PaymentsAPI

    server, shop_url = seed_sources(args.orders, SOURCE_DB, WAREHOUSE_DB)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, PaymentsAPI(shop_url, "bench-token") as api:
        root = Path(tmp)
        base = sources_env(shop_url, api, root)
        urls = {
            "postgres": server.url_for(WAREHOUSE_DB),
            "duckdb": f"duckdb:///{root / 'bench.duckdb'}",
        }
        warehouses = {}
        for engine, url in urls.items():
            env = {**base, "ELT_WAREHOUSE_URL": url, "ELT_PIPELINES_DIR": str(root / engine)}
            results[engine] = {step: elt(step, env) for step in STEPS}
            print(engine, json.dumps(results[engine]), flush=True)
            os.environ["ELT_WAREHOUSE_URL"] = url
            warehouses[engine] = engines.resolve(project_dir())
        prints = {engine: marts(w) for engine, w in warehouses.items()}
        engines.engine_module("duckdb").release_lock(warehouses["duckdb"])
    drop_database(server, WAREHOUSE_DB)
    drop_database(server, SOURCE_DB)
    differences = fingerprint.differences(prints["postgres"], prints["duckdb"])
    print(
        f"\n{'step':<10} {'postgres s':>11} {'duckdb s':>9} {'ratio':>6}"
        f" {'pg MiB':>8} {'duck MiB':>9}"
    )
    for step in STEPS:
        pg, duck = results["postgres"][step], results["duckdb"][step]
        print(
            f"{step:<10} {pg['seconds']:>11.1f} {duck['seconds']:>9.1f}"
            f" {duck['seconds'] / pg['seconds']:>6.2f} {pg['peak_rss_mib']:>8.0f}"
            f" {duck['peak_rss_mib']:>9.0f}"
        )
    print("marts identical" if not differences else f"marts differ: {differences}")
    if args.json:
        args.json.write_text(
            json.dumps({"orders": args.orders, "results": results, "differences": differences})
        )


if __name__ == "__main__":
    main()
