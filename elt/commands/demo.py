"""`elt demo`: seed the demo shop, its payments and marketing files, run the demo payments
API, or simulate activity with --tick."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from elt import output
from elt.options import format_option
from elt.runtime import DEMO_SHOP_DATABASE, Runtime
from runtime.warehouse import ensure_database


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
    from demo import payments, payments_api, shop

    runtime = Runtime()
    if stop:
        _stop_api(payments_api.stop(runtime.home), fmt)
        return
    if not runtime.shop_credentials_configured():
        ensure_database(runtime.warehouse, DEMO_SHOP_DATABASE)
    url = runtime.shop_url()
    if tick:
        action, counts = "tick", shop.tick(url)
        if not payments.is_seeded(url):
            payments.seed(url)
        counts.update(payments.tick(url))
    elif reset or not shop.is_seeded(url):
        action, counts = "seeded", shop.seed(url, orders)
        counts.update(payments.seed(url))
    else:
        action, counts = "already seeded", shop.counts(url)
        counts.update(payments.counts(url) if payments.is_seeded(url) else payments.seed(url))
    files_action, files = _marketing_files(runtime, url, tick=tick, reset=reset)
    api = None
    if not runtime.payments_configured():
        state, started = payments_api.ensure_running(
            runtime.home, _reader_url(runtime, url), _identity(url)
        )
        api = {"url": state["url"], "pid": state["pid"], "started": started}
    if fmt == "json":
        payload = {
            "command": "demo",
            "status": "success",
            "action": action,
            **counts,
            "marketing": {"action": files_action, **files},
        }
        output.emit_json({**payload, **({"payments_api": api} if api else {})})
        return
    output.table(
        f"demo shop: {action}", ["what", "rows"], [(k, f"{v:,}") for k, v in counts.items()]
    )
    output.table(
        f"demo marketing files: {files_action}",
        ["what", "value"],
        [(k, f"{v:,}" if isinstance(v, int) else v) for k, v in files.items()],
    )
    if api:
        verb = "started" if api["started"] else "running"
        output.line(
            f"demo payments API {verb} at {api['url']} (pid {api['pid']});"
            " `elt demo --stop` stops it"
        )
    if action == "already seeded":
        output.log("use --reset to reseed, --tick to simulate activity")


def _reader_url(runtime: Runtime, url: str) -> str:
    """The demo API reads the shop as the loader on the embedded warehouse, never as its
    superuser (whose password would sit in the background process's environment)."""
    admin = runtime.admin_warehouse
    if not admin.embedded or url != admin.url_for(DEMO_SHOP_DATABASE):
        return url  # a shop the user configured: their credentials, their choice
    from runtime import roles

    roles.grant_source_read(admin, DEMO_SHOP_DATABASE)
    return admin.as_role("loader").url_for(DEMO_SHOP_DATABASE)


def _identity(url: str) -> str:
    """Which shop database the API serves, without the password: host:port/database."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def _stop_api(pid: int | None, fmt: str) -> None:
    if fmt == "json":
        output.emit_json({"command": "demo", "status": "success", "action": "stop", "pid": pid})
    elif pid:
        output.line(f"demo payments API stopped (pid {pid})")
    else:
        output.line("demo payments API was not running")


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
