"""Benchmark the analyst loop: edit a mart, then `elt transform -s <mart>+` against a plain
`dbt build -s <mart>+` of the same selection, in the same run.

The goal (bench/README.md): edit to tested result in at most 1.3x plain dbt, and in 10 s.

    .venv/bin/python -m bench.analyst_loop --orders 10000 --repeat 3 --json loop.json

One run seeds the demo shop, its payments and marketing files in fresh databases
`bench_loop_wh` / `bench_loop_shop` (on the embedded warehouse or ELT_WAREHOUSE_URL's
server), copies the dbt side of the project to a temporary folder (the checkout is never
edited), loads everything and builds it once. Then, `--repeat` times and alternating which
goes first: append a comment to the mart's SQL (an edit dbt must re-parse), and time, as
subprocesses from spawn to exit, `elt transform -s <mart>+ --format json` and
`dbt build -s <mart>+` (the venv's dbt, its environment from `elt env`). Both build and
test the same nodes; the medians and their ratio are reported. Databases are dropped at
the end, also on failure. Nothing printed carries a secret.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.shop_load import drop_database, fresh_database, server_warehouse
from demo import marketing, payments, shop
from demo.payments_api import PaymentsAPI
from runtime.project import project_dir
from runtime.secrets import redact

WAREHOUSE_DB, SHOP_DB = "bench_loop_wh", "bench_loop_shop"
API_TOKEN = "bench-token"
GOAL_RATIO, GOAL_SECONDS = 1.3, 10.0
BIN = Path(sys.executable).parent


def copy_project(root: Path) -> Path:
    for name in ("dbt", "macros", "seeds", ".dlt", "tests/dbt"):
        shutil.copytree(
            project_dir() / name,
            root / name,
            ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "secrets.toml"),
        )
    return root


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    started = time.monotonic()
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800, check=False
    )
    return time.monotonic() - started, done.returncode, done.stderr + done.stdout


def edit(model: Path, step: int) -> None:
    model.write_text(model.read_text() + f"\n-- bench edit {step}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--mart", default="fct_orders")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    server = server_warehouse()
    for name in (WAREHOUSE_DB, SHOP_DB):
        fresh_database(server, name)
    warehouse = server.__class__(**{**server.__dict__, "database": WAREHOUSE_DB})
    shop_url = server.url_for(SHOP_DB)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp,
            contextlib.ExitStack() as stack,
        ):
            root = copy_project(Path(tmp) / "project")
            shop.seed(shop_url, args.orders)
            payments.seed(shop_url)
            marketing.seed(Path(tmp) / "landing", shop_url)
            api = stack.enter_context(PaymentsAPI(shop_url, API_TOKEN))
            env = {
                **os.environ,
                "ELT_WAREHOUSE_URL": warehouse.url,
                "SOURCES__SHOP__CREDENTIALS": shop_url,
                "SOURCES__PAYMENTS__BASE_URL": api.url,
                "SOURCES__PAYMENTS__TOKEN": API_TOKEN,
                "SOURCES__MARKETING__BUCKET_URL": str(Path(tmp) / "landing"),
                "ELT_PIPELINES_DIR": str(Path(tmp) / "pipelines"),
                "ELT_PROJECT_DIR": str(root),
                "DLT_PROJECT_DIR": str(root),
            }
            elt = [str(BIN / "elt")]
            for step in (["load"], ["transform"]):
                seconds, code, out = timed([*elt, *step, "--format", "json"], env, root)
                if code != 0:
                    print(redact(out[-2000:]), file=sys.stderr)
                    return 1
            dbt_env = {**env, **warehouse.dbt_env(), "DBT_PROFILES_DIR": str(root / "dbt")}
            model = next((root / "dbt" / "models").rglob(f"{args.mart}.sql"))
            selection = f"{args.mart}+"
            commands = {
                "elt transform": ([*elt, "transform", "-s", selection, "--format", "json"], env),
                "dbt build": ([str(BIN / "dbt"), "build", "-s", selection], dbt_env),
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            for step in range(args.repeat):
                order = list(commands) if step % 2 == 0 else list(reversed(commands))
                for name in order:
                    edit(model, step * 2 + order.index(name))
                    command, command_env = commands[name]
                    seconds, code, out = timed(command, command_env, root / "dbt")
                    if code != 0:
                        print(f"{name} exited {code}:\n{redact(out[-2000:])}", file=sys.stderr)
                        return 1
                    times[name].append(seconds)
    finally:
        for name in (WAREHOUSE_DB, SHOP_DB):
            drop_database(server, name)

    elt_median = statistics.median(times["elt transform"])
    dbt_median = statistics.median(times["dbt build"])
    ratio = elt_median / dbt_median
    report = {
        "orders": args.orders,
        "mart": args.mart,
        "repeat": args.repeat,
        "seconds": {name: [round(s, 2) for s in values] for name, values in times.items()},
        "median_elt_transform": round(elt_median, 2),
        "median_dbt_build": round(dbt_median, 2),
        "ratio": round(ratio, 2),
        "goal": {"ratio": GOAL_RATIO, "seconds": GOAL_SECONDS},
        "met": ratio <= GOAL_RATIO and elt_median <= GOAL_SECONDS,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    print(
        f"edit -> elt transform -s {selection}: {elt_median:.1f} s (median of {args.repeat});"
        f" plain dbt build -s {selection}: {dbt_median:.1f} s; ratio {ratio:.2f}"
        f" (goal <= {GOAL_RATIO}, <= {GOAL_SECONDS:.0f} s): {'met' if report['met'] else 'NOT met'}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
