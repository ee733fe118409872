"""Benchmark `elt transform` after a 1% delta against a full build of the same project.

    .venv/bin/python -m bench.transform_delta --orders 1000000 --json delta.json --check

The goal (issue 16, deliverable 5; bench/README.md, "transform_delta"): after 1% of the
orders changed in the shop (inserted or updated) and `elt load` brought them in,
`elt transform` takes at most 25% of a full build.

Everything comes up in a temporary ELT_HOME (its own embedded PostgreSQL), with a copy
of the project's dbt side (the checkout's `dbt/target` is never touched). The demo's
shop, payments and marketing files are seeded as `elt demo --orders N` does, and the
payments API is served from this process without the demo's rate limit (10 requests/s
would make the first load of 1M orders' payments take minutes); `elt load`, then
`elt transform` (the first build on a fresh warehouse, timed). Then `--deltas` times: a
shop tick sized to 1% of the orders (half new orders, half status updates of open ones,
one soft delete, two hard deletes, `demo.shop.tick`) plus the payments that follow
it, `elt load` (not timed; compaction off: the loaders' cost), `elt transform` (timed).
Last, `elt transform` once more with nothing new: the floor under any delta (dbt's start,
parse and per-node cost), printed beside the goal.

The baseline is the first build: a full build of the same project over 99% of the same
rows, which every deployment runs once, at no extra cost to the bench's time budget. It
also pays dbt's full parse (no partial parse yet): seconds at most, against minutes of
building at 1M orders. `--full-refresh` adds `elt transform --full-refresh` on the same
data as the baseline (the same rows, a warm partial parse: the strictest comparison) and
checks that the incremental runs left exactly the marts it makes (runtime/fingerprint.py).
Each transform is a subprocess timed from spawn to exit; dbt's run_results.json gives
the slowest nodes of each. Nothing printed carries a secret.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.analyst_loop import copy_project
from runtime.secrets import redact

GOAL_RATIO = 0.25
API_TOKEN = "bench-token"
DELTA_SHARE = 0.01
BIN = Path(sys.executable).parent


class BenchError(Exception):
    pass


def elt(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """One `elt ...` subprocess: wall seconds from spawn to exit and its stdout."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "elt"), *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-3:]
        raise BenchError(
            f"elt {' '.join(args)} exited {done.returncode}: {redact(' | '.join(tail))}"
        )
    return seconds, done.stdout


def slowest_nodes(dbt_dir: Path, count: int | None = 8) -> list[dict[str, Any]]:
    """The slowest nodes of the last dbt run (dbt's run_results.json); None: all."""
    results = json.loads((dbt_dir / "target" / "run_results.json").read_text())["results"]
    nodes = [
        {
            "node": r["unique_id"].split(".", 2)[-1],
            "status": r["status"],
            "seconds": r["execution_time"],
        }
        for r in results
    ]
    return sorted(nodes, key=lambda node: -node["seconds"])[:count]


def dbt_seconds(dbt_dir: Path) -> float:
    return json.loads((dbt_dir / "target" / "run_results.json").read_text())["elapsed_time"]


def seconds_by_type(dbt_dir: Path) -> dict[str, float]:
    """Node seconds summed per resource type (model, test, unit_test, seed)."""
    results = json.loads((dbt_dir / "target" / "run_results.json").read_text())["results"]
    sums: dict[str, float] = {}
    for result in results:
        kind = result["unique_id"].split(".", 1)[0]
        sums[kind] = round(sums.get(kind, 0.0) + result["execution_time"], 2)
    return sums


def transform(
    args: list[str], env: dict[str, str], root: Path, *, detail: bool = False
) -> dict[str, Any]:
    seconds, _ = elt(["transform", *args, "--format", "json"], env, root)
    return {
        "seconds": round(seconds, 2),
        "dbt_seconds": round(dbt_seconds(root / "dbt"), 2),
        "by_type": seconds_by_type(root / "dbt"),
        "slowest": slowest_nodes(root / "dbt", None if detail else 8),
    }


def marts_fingerprint(root: Path) -> dict[str, Any]:
    from runtime import engines, fingerprint

    conn = engines.read_only(engines.resolve(root), timeout=600)
    try:
        return fingerprint.fingerprint(conn, "marts")
    finally:
        conn.close()


def fingerprint_differences(left: dict[str, Any], right: dict[str, Any]) -> list[Any]:
    from runtime import fingerprint

    return fingerprint.differences(left, right)


def tick(shop_url: str, orders: int) -> dict[str, int]:
    """1% of the orders: half inserted, half updated (status moves), and their payments."""
    from demo import payments, shop

    changed = max(2, round(orders * DELTA_SHARE))
    counts = shop.tick(
        shop_url,
        new_orders=changed // 2,
        updated_orders=changed - changed // 2,
        hard_deletes=shop.TICK_HARD_DELETED_ORDERS,
    )
    counts.update(payments.tick(shop_url))
    return counts


def seed(root: Path, tmp: Path, orders: int) -> str:
    """The demo's shop, payments and marketing files; the shop's admin URL."""
    from demo import defaults, marketing, payments, shop
    from runtime import warehouse as wh

    server = wh.embedded_warehouse(root, start=True)
    shop_url = defaults.ensure_shop_database(root, server)
    shop.seed(shop_url, orders)
    payments.seed(shop_url)
    marketing.seed(tmp / "landing", shop_url)
    return shop_url


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from demo.payments_api import PaymentsAPI

    root = copy_project(tmp / "project")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ELT_", "SOURCES__", "DESTINATION__", "DBT_"))
    }
    env.update(
        ELT_HOME=str(tmp / "home"),
        ELT_PROJECT_DIR=str(root),
        DLT_PROJECT_DIR=str(root),
        ELT_PIPELINES_DIR=str(tmp / "pipelines"),
        SOURCES__MARKETING__BUCKET_URL=str(tmp / "landing"),
        SOURCES__PAYMENTS__TOKEN=API_TOKEN,
        # compaction after each load is the loaders' cost, not the transform's (untimed here)
        SOURCES__SHOP__COMPACT_EVERY_LOADS="0",
        SOURCES__PAYMENTS__COMPACT_EVERY_LOADS="0",
        SOURCES__MARKETING__COMPACT_EVERY_LOADS="0",
    )
    os.environ.pop("ELT_WAREHOUSE_URL", None)
    os.environ.update(ELT_HOME=env["ELT_HOME"], ELT_PROJECT_DIR=env["ELT_PROJECT_DIR"])
    steps: dict[str, Any] = {}
    try:
        progress(f"seeding {args.orders:,} orders")
        started = time.perf_counter()
        shop_url = seed(root, tmp, args.orders)
        steps["seed_seconds"] = round(time.perf_counter() - started, 2)
        # the demo's API limits the rate (10 requests/s); a bench waits for nothing
        with PaymentsAPI(shop_url, API_TOKEN) as api:
            env["SOURCES__PAYMENTS__BASE_URL"] = api.url
            progress("first load")
            steps["first_load_seconds"] = round(elt(["load"], env, root)[0], 2)
            progress("first build")
            steps["first_build"] = transform([], env, root)
            steps["deltas"] = []
            for number in range(args.deltas):
                changes = tick(shop_url, args.orders)
                load_seconds, _ = elt(["load"], env, root)
                progress(f"delta {number + 1}: {changes}; load {load_seconds:.1f} s; transform")
                result = transform([], env, root, detail=args.detail)
                steps["deltas"].append(
                    {"changes": changes, "load_seconds": round(load_seconds, 2), **result}
                )
            # the floor under any delta: the same build with nothing new (dbt's fixed cost)
            progress("no change")
            steps["no_change"] = transform([], env, root)
            incremental = marts_fingerprint(root) if args.full_refresh else None
            if args.full_refresh:
                progress("full refresh")
                steps["full_refresh"] = transform(["--full-refresh"], env, root, detail=args.detail)
                # the incremental runs must leave the marts a full rebuild makes
                steps["marts_differ"] = fingerprint_differences(
                    incremental, marts_fingerprint(root)
                )
    finally:
        subprocess.run(
            [str(BIN / "elt"), "stop"], env=env, cwd=root, capture_output=True, check=False
        )
    return {"steps": steps}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--deltas", type=int, default=2, help="delta runs (median taken)")
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="also time `elt transform --full-refresh` as the baseline, and check that the"
        " incremental runs left the marts it makes",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--detail", action="store_true", help="every node's seconds in the JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    load_before = list(os.getloadavg())
    try:
        with tempfile.TemporaryDirectory(prefix="bench-delta-") as tmp:
            report = run(args, Path(tmp))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    steps = report["steps"]
    if steps.get("marts_differ"):
        print(f"error: the incremental marts differ from a full rebuild: {steps['marts_differ']}")
        return 2
    delta = statistics.median(d["seconds"] for d in steps["deltas"])
    baseline = "full_refresh" if args.full_refresh else "first_build"
    full = steps[baseline]["seconds"]
    ratio = delta / full
    met = ratio <= GOAL_RATIO
    floor = steps["no_change"]["seconds"]
    report = {
        "bench": "transform_delta",
        "command": shlex.join(
            [Path(sys.executable).name, "-m", "bench.transform_delta", *(argv or sys.argv[1:])]
        ),
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "orders": args.orders,
        "goals": [
            {
                "name": f"elt transform after a 1% delta, {args.orders:,} orders",
                "target": f"<= {GOAL_RATIO:.0%} of a full build ({baseline.replace('_', ' ')})",
                "measured": f"{ratio:.0%} (delta {delta:.1f} s, median of {len(steps['deltas'])};"
                f" {baseline.replace('_', ' ')} {full:.1f} s; with nothing new {floor:.1f} s,"
                f" {floor / full:.0%})",
                "met": met,
            }
        ],
        **report,
    }
    print(f"\n{'run':<16} {'wall s':>8} {'dbt s':>8}  slowest nodes")
    rows = [("first build", steps["first_build"])]
    rows += [(f"delta {i + 1}", d) for i, d in enumerate(steps["deltas"])]
    rows.append(("no change", steps["no_change"]))
    if args.full_refresh:
        rows.append(("full refresh", steps["full_refresh"]))
    for name, result in rows:
        slowest = ", ".join(
            f"{n['node'].split('.')[-1]} {n['seconds']:.1f}" for n in result["slowest"][:4]
        )
        print(f"{name:<16} {result['seconds']:>8.1f} {result['dbt_seconds']:>8.1f}  {slowest}")
    goal = report["goals"][0]
    verdict = "met" if met else "NOT met"
    print(f"\n{goal['name']}: {goal['measured']}, goal {goal['target']}: {verdict}")
    print(f"load average before {load_before[0]:.2f}, after {report['load_average_after'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
