"""`elt demo`: seed the demo sources, run what they need in the background, or simulate
activity with --tick. What the demo is lives in `demo/run.py`; this renders it."""

from __future__ import annotations

import click

from elt import output
from elt.options import format_option
from elt.runtime import Runtime


@click.command(
    epilog="\b\nExamples:\n  elt demo\n  elt demo --orders 1000000 --reset\n"
    "  elt demo --tick && elt load && elt transform\n  elt demo --stop",
)
@click.option(
    "--orders",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Orders to seed.",
)
@click.option(
    "--tick",
    is_flag=True,
    help="Simulate activity: new orders, updates, a soft delete, payments; the next day of"
    " marketing files.",
)
@click.option("--reset", is_flag=True, help="Drop and reseed the demo shop database and files.")
@click.option("--stop", is_flag=True, help="Stop the demo payments API running in the background.")
@format_option()
def demo(orders: int, tick: bool, reset: bool, stop: bool, fmt: str) -> None:
    """Seed the demo shop database (on the warehouse's server unless configured elsewhere),
    its payments and a few days of marketing files, and run the demo payments API in the
    background."""
    from demo import run

    runtime = Runtime()
    if stop:
        result = run.stop(runtime.project)
    else:
        warehouse = runtime.warehouse
        result = run.run(
            runtime.project,
            warehouse,
            runtime.source_setting,
            orders=orders,
            tick=tick,
            reset=reset,
            landing=runtime.landing_dir(run.landing_source()),
        )
    if fmt == "json":
        output.emit_json({"command": "demo", "status": "success", **result.payload})
        return
    for title, headers, rows in result.tables:
        output.table(title, headers, rows)
    for line in result.lines:
        output.line(line)
    for hint in result.hints:
        output.log(hint)
