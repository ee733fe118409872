"""`elt demo`: create and seed the demo shop database, or simulate activity with --tick."""

from __future__ import annotations

import click

from elt import output
from elt.options import format_option
from elt.runtime import DEMO_SHOP_DATABASE, Runtime
from elt.warehouse import ensure_database


@click.command(
    epilog="\b\nExamples:\n  elt demo\n  elt demo --orders 1000000 --reset\n"
    "  elt demo --tick && elt load && elt transform",
)
@click.option(
    "--orders",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Orders to seed.",
)
@click.option("--tick", is_flag=True, help="Simulate activity: new orders, updates, a soft delete.")
@click.option("--reset", is_flag=True, help="Drop and reseed the demo shop database.")
@format_option()
def demo(orders: int, tick: bool, reset: bool, fmt: str) -> None:
    """Seed the demo shop database (on the warehouse's server unless configured elsewhere)."""
    from demo import shop

    runtime = Runtime()
    if not runtime.shop_credentials_configured():
        ensure_database(runtime.warehouse, DEMO_SHOP_DATABASE)
    url = runtime.shop_url()
    if tick:
        action, counts = "tick", shop.tick(url)
    elif reset or not shop.is_seeded(url):
        action, counts = "seeded", shop.seed(url, orders)
    else:
        action, counts = "already seeded", shop.counts(url)
    if fmt == "json":
        output.emit_json({"command": "demo", "status": "success", "action": action, **counts})
        return
    output.table(
        f"demo shop: {action}", ["what", "rows"], [(k, f"{v:,}") for k, v in counts.items()]
    )
    if action == "already seeded":
        output.log("use --reset to reseed, --tick to simulate activity")
