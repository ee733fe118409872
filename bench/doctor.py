"""Benchmark `elt doctor` wall time: healthy, and with one source that never answers.

The goal (bench/README_doctor.md): on-call gets the report in seconds. Healthy, the whole
report in under 2 s; with a source (or the warehouse) that accepts connections and never
answers, at most the per-check timeout more, and the rest of the report still complete.

    .venv/bin/python -m bench.doctor --runs 5 --timeout 5 --json doctor.json

One run seeds a small demo shop and its payments in a fresh database `bench_doctor_shop`,
serves the payments on the demo payments API (in this process), loads both sources into
`bench_doctor_wh` (on the embedded warehouse, or the server of `ELT_WAREHOUSE_URL`), then
times `elt doctor --format json` as a subprocess (spawn to exit) in each scenario:

- healthy: warehouse, shop and payments API answer;
- shop blackholed: the shop source's port accepts and never answers (a socket in here);
- rest blackholed: the REST source `payments` pointed at such a port, the rest healthy;
- warehouse blackholed: the warehouse itself never answers.

Both databases are dropped at the end, also on failure. Nothing printed carries a secret.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.shop_load import drop_database, fresh_database
from demo import payments, shop
from demo.payments_api import PaymentsAPI
from runtime import warehouse as wh
from runtime.project import project_dir
from runtime.secrets import redact

WAREHOUSE_DB, SHOP_DB = "bench_doctor_wh", "bench_doctor_shop"
API_TOKEN = "bench-token"
GOAL_HEALTHY_SECONDS = 2.0
GOAL_BLACKHOLE_EXTRA_SECONDS = 1.5  # over the per-check timeout


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    server.settimeout(0.2)
    held, stop = [], threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def server() -> wh.Warehouse:
    return wh.resolve(project_dir())


@contextlib.contextmanager
def databases(warehouse: wh.Warehouse) -> Iterator[tuple[wh.Warehouse, str]]:
    for name in (WAREHOUSE_DB, SHOP_DB):
        fresh_database(warehouse, name)
    try:
        yield dataclasses.replace(warehouse, database=WAREHOUSE_DB), warehouse.url_for(SHOP_DB)
    finally:
        for name in (WAREHOUSE_DB, SHOP_DB):
            drop_database(warehouse, name)


def elt(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "elt", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project_dir(),
    )
    return time.monotonic() - started, result


def measure(name: str, env: dict[str, str], runs: int, timeout: float) -> dict[str, Any]:
    walls, inside, codes, slowest = [], [], set(), None
    for _ in range(runs):
        wall, result = elt(env, "doctor", "--format", "json", "--timeout", str(timeout))
        payload = json.loads(result.stdout)
        walls.append(wall)
        inside.append(payload["seconds"])
        codes.add(result.returncode)
        slowest = max(payload["checks"], key=lambda c: c["seconds"])
        complete = {c["section"] for c in payload["checks"]}
    return {
        "scenario": name,
        "runs": runs,
        "wall_median": round(statistics.median(walls), 3),
        "wall_max": round(max(walls), 3),
        "doctor_seconds_median": round(statistics.median(inside), 3),
        "exit_codes": sorted(codes),
        "slowest_check": f"{slowest['id']} {slowest['status']} {slowest['seconds']:.2f}s",
        "sections": sorted(complete),
        "checks": len(payload["checks"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="doctor runs per scenario")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-check timeout (s)")
    parser.add_argument("--orders", type=int, default=2000, help="demo orders to load")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)

    # an installed deployment has bytecode; where PYTHONDONTWRITEBYTECODE is set, give the
    # subprocesses a private, warmed cache so start-up is not recompilation (bench/README.md)
    cache = tempfile.TemporaryDirectory(prefix="bench-doctor-pyc-")
    with (
        cache,
        tempfile.TemporaryDirectory(prefix="bench-doctor-") as tmp,
        databases(server()) as (warehouse, shop_url),
        blackhole() as silent,
        contextlib.ExitStack() as stack,  # the demo API: stopped before the databases go
    ):
        shop.seed(shop_url, args.orders)
        payments.seed(shop_url)
        api = stack.enter_context(PaymentsAPI(shop_url, API_TOKEN))
        base = {
            "ELT_WAREHOUSE_URL": warehouse.url,
            "SOURCES__SHOP__CREDENTIALS": shop_url,
            "SOURCES__PAYMENTS__BASE_URL": api.url,
            "SOURCES__PAYMENTS__TOKEN": API_TOKEN,
            "ELT_PIPELINES_DIR": str(Path(tmp) / "pipelines"),
            "ELT_PROJECT_DIR": str(project_dir()),
            "PYTHONPYCACHEPREFIX": cache.name,
        }
        _, loaded = elt(base, "load", "--format", "json")  # every registered source
        if loaded.returncode != 0:
            print(redact(loaded.stderr), file=sys.stderr)
            return 1
        elt(base, "doctor", "--format", "json")  # warms the bytecode cache
        scenarios = {
            "healthy": base,
            "shop blackholed": {
                **base,
                "SOURCES__SHOP__CREDENTIALS": f"postgresql://app@127.0.0.1:{silent}/shop",
            },
            "rest blackholed": {
                **base,
                "SOURCES__PAYMENTS__BASE_URL": f"http://127.0.0.1:{silent}/api",
            },
            "warehouse blackholed": {
                **base,
                "ELT_WAREHOUSE_URL": f"postgresql://postgres@127.0.0.1:{silent}/{WAREHOUSE_DB}",
            },
        }
        startup = statistics.median(elt(base, "--help")[0] for _ in range(args.runs))
        results = [measure(n, env, args.runs, args.timeout) for n, env in scenarios.items()]

    print(f"elt doctor, {args.runs} runs per scenario, --timeout {args.timeout:g}s")
    print(f"start-up alone (`elt --help`): {startup:.2f}s median; load average {os.getloadavg()}")
    print(f"{'scenario':<22} {'wall median':>11} {'wall max':>9} {'in doctor':>10}  exit  slowest")
    missed = []
    for r in results:
        goal = GOAL_HEALTHY_SECONDS
        if r["scenario"] != "healthy":
            goal = args.timeout + GOAL_BLACKHOLE_EXTRA_SECONDS
        r["goal_seconds"] = goal
        expected = [0] if r["scenario"] == "healthy" else [1]  # a healthy run is all OK
        r["goal_met"] = (
            r["wall_median"] <= goal and len(r["sections"]) == 4 and r["exit_codes"] == expected
        )
        if not r["goal_met"]:
            missed.append(r["scenario"])
        print(
            f"{r['scenario']:<22} {r['wall_median']:>10.2f}s {r['wall_max']:>8.2f}s"
            f" {r['doctor_seconds_median']:>9.2f}s  {','.join(map(str, r['exit_codes'])):>4}"
            f"  {r['slowest_check']}  (goal {goal:g}s: {'met' if r['goal_met'] else 'MISSED'})"
        )
    if args.json:
        machine = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "platform": platform.platform(),
        }
        document = {
            "machine": machine,
            "orders": args.orders,
            "startup_seconds_median": round(startup, 3),
            "results": results,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
