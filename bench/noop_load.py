"""Benchmark the fixed cost of `elt load`: a load with nothing new, spawn to exit.

Every cron run pays it, whatever the data. One run seeds the demo (shop database, payments
API, marketing files) in a temporary `ELT_HOME` with its own embedded warehouse, loads it
once, then times `--repeat` no-op `elt load` runs of the sources as subprocesses (median).
The floor of the same run is measured beside it: `python -c pass` and `elt --help`.

    .venv/bin/python -m bench.noop_load --json noop.json --check
    .venv/bin/python -m bench.noop_load --home /path/to/seeded/home --sources shop

`--home` reuses an `ELT_HOME` already seeded (e.g. `elt demo --orders 1000000`): nothing
is seeded, stopped or removed there. Nothing printed or written carries a password.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.project import project_dir
from runtime.secrets import redact

GOAL_SECONDS = 2.0
SOURCES = ("shop", "payments", "marketing")


class BenchError(Exception):
    """A step failed; the message is free of secrets."""


def elt_script() -> list[str]:
    script = Path(sys.executable).with_name("elt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "elt"]


def bench_env(home: Path) -> dict[str, str]:
    """`elt` on the home's own embedded warehouse and landing folder, never the checkout's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "ELT_"))}
    env.update(
        ELT_HOME=str(home),
        ELT_PROJECT_DIR=str(project_dir()),
        SOURCES__MARKETING__BUCKET_URL=str(home / "landing"),
    )
    if env.get("PYTHONDONTWRITEBYTECODE"):  # an installed deployment has its bytecode cached
        env.pop("PYTHONDONTWRITEBYTECODE")
        env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    return env


def timed(command: list[str], env: dict[str, str], what: str) -> tuple[float, str]:
    """Seconds from spawn to exit, and stdout; a failure raises with stderr's last line."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["(no output)"]
        raise BenchError(f"{what}: exit {done.returncode}: {redact(lines[-1])}")
    return seconds, done.stdout


def noop_load(env: dict[str, str], sources: Sequence[str]) -> dict[str, Any]:
    seconds, stdout = timed([*elt_script(), "load", *sources, "--format", "json"], env, "no-op")
    payload = json.loads(stdout)
    return {
        "seconds": round(seconds, 3),
        "reported_seconds": payload["seconds"],
        "sources": {s["source"]: s["seconds"] for s in payload["sources"]},
        "rows": sum(sum(s["rows"].values()) for s in payload["sources"]),
    }


def median_spawn(command: list[str], env: dict[str, str], repeat: int) -> float:
    return statistics.median(timed(command, env, command[-1])[0] for _ in range(repeat))


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    env = bench_env(home)
    elt = elt_script()
    if args.home is None:
        timed([*elt, "demo", "--orders", str(args.orders)], env, "elt demo")
    first, _ = timed([*elt, "load", *args.sources, "--format", "json"], env, "first load")
    noops = [noop_load(env, args.sources) for _ in range(args.repeat)]
    python = median_spawn([sys.executable, "-c", "pass"], env, args.repeat)
    helps = median_spawn([*elt, "--help"], env, args.repeat)
    median = statistics.median(run["seconds"] for run in noops)
    loaded = max(run["rows"] for run in noops)
    name = f"no-op elt load of {len(args.sources)} source(s) ({', '.join(args.sources)})"
    return {
        "orders": args.orders if args.home is None else None,
        "first_load_seconds": round(first, 2),
        "noop_runs": noops,
        "noop_median_seconds": round(median, 3),
        "baseline": {"python_c_pass": round(python, 3), "elt_help": round(helps, 3)},
        "goals": [
            {
                "name": f"{name} <= {GOAL_SECONDS:g} s",
                "target": f"<= {GOAL_SECONDS:g} s wall, spawn to exit",
                "measured": f"{median:.2f} s (median of {args.repeat}; python -c pass"
                f" {python:.2f} s, elt --help {helps:.2f} s; {median / helps:.1f}x elt --help)",
                "met": median <= GOAL_SECONDS and loaded == 0,
            }
        ],
        "problems": [f"a no-op load loaded {loaded} rows"] if loaded else [],
    }


def stop(home: Path) -> None:
    env = bench_env(home)
    for command in (["demo", "--stop"], ["stop"]):
        subprocess.run([*elt_script(), *command], env=env, capture_output=True, check=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000, help="demo orders to seed")
    parser.add_argument("--repeat", type=int, default=5, help="no-op loads timed (median)")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated")
    parser.add_argument("--home", type=Path, help="an ELT_HOME already seeded: reuse it")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    args.sources = [name for name in args.sources.split(",") if name]
    return args


def print_table(report: dict[str, Any]) -> None:
    if report.get("error"):
        print(f"error: {report['error']}")
        return
    print(f"load average before: {report['load_average_before']}")
    print(f"first load: {report['first_load_seconds']:.2f} s")
    print(f"{'run':>4}  {'wall s':>7}  {'elt s':>6}  per source (elt s)")
    for index, noop in enumerate(report["noop_runs"], start=1):
        per = ", ".join(f"{k} {v:.2f}" for k, v in noop["sources"].items())
        print(f"{index:>4}  {noop['seconds']:>7.2f}  {noop['reported_seconds']:>6.2f}  {per}")
    for goal in report["goals"]:
        print(f"{'MET' if goal['met'] else 'MISSED'}: {goal['name']}: {goal['measured']}")
    for problem in report["problems"]:
        print(f"problem: {problem}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report: dict[str, Any] = {
        "bench": "noop_load",
        "command": " ".join([Path(sys.executable).name, "-m", "bench.noop_load", *sys.argv[1:]]),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "goals": [],
    }
    home = args.home or Path(tempfile.mkdtemp(prefix="elt-bench-noop-"))
    try:
        report.update(run(args, home))
    except BenchError as exc:
        report["error"] = str(exc)
    finally:
        if args.home is None:
            stop(home)
            shutil.rmtree(home, ignore_errors=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print_table(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if report.get("error"):
        return 2
    return 1 if args.check and not all(goal["met"] for goal in report["goals"]) else 0


if __name__ == "__main__":
    sys.exit(main())
