"""`make bench`: every goal of bench/, one after another, in one table.

Each benchmark is a module run as a subprocess with `--json FILE`; its JSON carries a
`goals` list (name, target, measured, met) and the load average before it started. This
runs them in order, prints one table (markdown, pasteable into bench/README.md) with the
command of each, and with `--check` exits 1 when any goal was missed or a benchmark
failed. A machine busier than load average 1.5 per the issue's "quiet machine" is named in
the table, since its ratios then mean less.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUIET_LOAD = 1.5
MAX_MINUTES = 15


@dataclass(frozen=True)
class Step:
    """One benchmark module and the arguments `make bench` gives it."""

    module: str
    args: tuple[str, ...]

    def argv(self, json_path: Path) -> list[str]:
        return [sys.executable, "-m", f"bench.{self.module}", *self.args, "--json", str(json_path)]

    @property
    def command(self) -> str:
        return shlex.join(["python", "-m", f"bench.{self.module}", *self.args])


STEPS = (
    Step("noop_load", ()),
    Step("marketing_csv", ("--rows", "1000000,10000000")),
    Step("shop_load", ("--orders", "1000000,10000000", "--repeat", "3,1")),
    Step("transform_delta", ("--orders", "1000000")),
)


def run_step(step: Step, workdir: Path) -> dict[str, Any]:
    """Run one benchmark; its JSON, or a failed goal naming why it produced none."""
    out = workdir / f"{step.module}.json"
    load = [round(value, 2) for value in os.getloadavg()]
    started = time.monotonic()
    print(f"bench: {step.command}", flush=True)
    finished = subprocess.run(step.argv(out), check=False)
    seconds = time.monotonic() - started
    if finished.returncode not in (0, 1) or not out.exists():
        return {
            "bench": step.module,
            "command": step.command,
            "load_average_before": load,
            "seconds": seconds,
            "goals": [
                {
                    "name": step.module,
                    "target": "runs",
                    "measured": f"failed (exit {finished.returncode})",
                    "met": False,
                }
            ],
        }
    result = json.loads(out.read_text())
    result.setdefault("command", step.command)
    result.setdefault("load_average_before", load)
    result["seconds"] = seconds
    return result


def duration_goal(minutes: float, load: tuple[float, ...]) -> dict[str, Any]:
    """The issue's bound on `make bench` itself."""
    return {
        "bench": "all",
        "command": "make bench",
        "load_average_before": list(load),
        "goals": [
            {
                "name": "every benchmark above",
                "target": f"<= {MAX_MINUTES} min",
                "measured": f"{minutes:.1f} min",
                "met": minutes <= MAX_MINUTES,
            }
        ],
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| goal | target | measured | met | load avg before | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        load = result.get("load_average_before") or []
        load_text = " / ".join(f"{value:.2f}" for value in load[:3]) or "?"
        if load and load[0] >= QUIET_LOAD:
            load_text += " (not quiet)"
        for goal in result.get("goals", []):
            lines.append(
                f"| {goal['name']} | {goal['target']} | {goal['measured']} |"
                f" {'met' if goal['met'] else '**missed**'} | {load_text} |"
                f" `{result['command']}` |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.all", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 on a missed goal")
    parser.add_argument("--json", type=Path, help="write every benchmark's JSON here")
    parser.add_argument("--only", default="", help="comma-separated modules to run (default: all)")
    args = parser.parse_args(argv)
    wanted = {name for name in args.only.split(",") if name}
    steps = [step for step in STEPS if not wanted or step.module in wanted]
    load = os.getloadavg()
    if load[0] >= QUIET_LOAD:
        print(
            f"bench: load average {load[0]:.2f} before the run (quiet is under {QUIET_LOAD}):"
            " ratios are noisier than the goals assume",
            flush=True,
        )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="elt-bench-") as tmp:
        results = [run_step(step, Path(tmp)) for step in steps]
    minutes = (time.monotonic() - started) / 60
    if not wanted:
        results.append(duration_goal(minutes, load))
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"minutes": minutes, "results": results}, indent=2))
    missed = [g["name"] for r in results for g in r.get("goals", []) if not g["met"]]
    if missed:
        print(f"missed: {', '.join(missed)}")
    say_what_is_left_running()
    return 1 if args.check and missed else 0


def say_what_is_left_running() -> None:
    """The shop and CSV benches start the checkout's embedded warehouse on demand and leave
    it up (as `make demo` does: another elt command would start it again); say so."""
    from runtime import embedded
    from runtime.project import project_dir

    if embedded.port(project_dir()) is not None:
        print("left running: the embedded warehouse (.elt/pgdata); `.venv/bin/elt stop` stops it")


if __name__ == "__main__":
    sys.exit(main())
