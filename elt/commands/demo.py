"""`elt demo`: create and seed the demo shop database and marketing files, or simulate
activity with --tick."""

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
@click.option(
    "--tick",
    is_flag=True,
    help="Simulate activity: new orders, updates, a soft delete; the next day of marketing files.",
)
@click.option("--reset", is_flag=True, help="Drop and reseed the demo shop database and files.")
@format_option()
def demo(orders: int, tick: bool, reset: bool, fmt: str) -> None:
    """Seed the demo shop database (on the warehouse's server unless configured elsewhere)
    and write a few days of marketing files into the landing folder."""
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
    files_action, files = _marketing_files(runtime, url, tick=tick, reset=reset)
    if fmt == "json":
        output.emit_json(
            {
                "command": "demo",
                "status": "success",
                "action": action,
                **counts,
                "marketing": {"action": files_action, **files},
            }
        )
        return
    output.table(
        f"demo shop: {action}", ["what", "rows"], [(k, f"{v:,}") for k, v in counts.items()]
    )
    output.table(
        f"demo marketing files: {files_action}",
        ["what", "value"],
        [(k, f"{v:,}" if isinstance(v, int) else v) for k, v in files.items()],
    )
    if action == "already seeded":
        output.log("use --reset to reseed, --tick to simulate activity")


def _marketing_files(runtime: Runtime, shop_url: str, *, tick: bool, reset: bool) -> tuple:
    """Write the demo's marketing drops into the landing folder (a local one only)."""
    from demo import marketing

    landing = runtime.landing_dir()
    if landing is None:
        return "skipped (the landing folder is not local)", {}
    if reset:
        marketing.reset(landing)
    if tick and marketing.is_seeded(landing):
        return "tick", marketing.tick(landing, shop_url)
    if not marketing.is_seeded(landing):
        return "written", {"folder": str(landing), **marketing.seed(landing, shop_url)}
    return "already written", {"folder": str(landing), "last_day": str(marketing.last_day(landing))}
