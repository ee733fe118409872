"""What `elt demo` does, kept with the demo so the CLI knows no demo source by name:
seed (or tick) the shop database, its payments and the marketing files, and run the
payments API in the background. Returns plain data; `elt demo` renders it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from demo import defaults
from demo.defaults import shop_url


@dataclass
class DemoResult:
    payload: dict[str, Any]  # the JSON document's body
    tables: list[tuple[str, list[str], list[tuple]]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)


def run(
    project: Path,
    warehouse: Any,
    setting: Callable[[str, str], Any],
    *,
    orders: int,
    tick: bool,
    reset: bool,
    landing: Path | None,
) -> DemoResult:
    """Seed or tick the demo. `setting(source, key)`: the user's setting, or None."""
    from demo import payments, payments_api, shop

    url = setting("shop", "credentials") or defaults.ensure_shop_database(project, warehouse)
    if tick:
        action, counts = "tick", shop.tick(url, hard_deletes=shop.TICK_HARD_DELETED_ORDERS)
        if not payments.is_seeded(url):
            payments.seed(url)
        counts.update(payments.tick(url))
    elif reset or not shop.is_seeded(url):
        action, counts = "seeded", shop.seed(url, orders)
        counts.update(payments.seed(url))
    else:
        action, counts = "already seeded", shop.counts(url)
        counts.update(payments.counts(url) if payments.is_seeded(url) else payments.seed(url))
    files_action, files = _marketing_files(landing, url, tick=tick, reset=reset)
    api = None
    if setting("payments", "base_url") is None:
        reader = shop_url(warehouse, "loader") if url == _demo_url(project, warehouse) else url
        state, started = payments_api.ensure_running(home(project), reader, _identity(url))
        api = {"url": state["url"], "pid": state["pid"], "started": started}
    result = DemoResult(
        payload={
            "action": action,
            **counts,
            "marketing": {"action": files_action, **files},
            **({"payments_api": api} if api else {}),
        }
    )
    result.tables.append(
        (f"demo shop: {action}", ["what", "rows"], [(k, f"{v:,}") for k, v in counts.items()])
    )
    result.tables.append(
        (
            f"demo marketing files: {files_action}",
            ["what", "value"],
            [(k, f"{v:,}" if isinstance(v, int) else v) for k, v in files.items()],
        )
    )
    if api:
        verb = "started" if api["started"] else "running"
        result.lines.append(
            f"demo payments API {verb} at {api['url']} (pid {api['pid']});"
            " `elt demo --stop` stops it"
        )
    if action == "already seeded":
        result.hints.append("use --reset to reseed, --tick to simulate activity")
    return result


def stop(project: Path) -> DemoResult:
    """Stop the demo payments API running in the background."""
    from demo import payments_api

    pid = payments_api.stop(home(project))
    line = f"demo payments API stopped (pid {pid})" if pid else "demo payments API was not running"
    return DemoResult(payload={"action": "stop", "pid": pid}, lines=[line])


def landing_source() -> str:
    """The files source the demo writes its drops for."""
    return "marketing"


def home(project: Path) -> Path:
    from runtime import embedded

    return embedded.home(project)


def _demo_url(project: Path, warehouse: Any) -> str | None:
    """The demo shop's admin URL (None: the shop is not on a server elt runs)."""
    server = defaults.shop_server(project, warehouse, start=False)
    return server.url_for(defaults.SHOP_DATABASE) if server is not None else None


def _identity(url: str) -> str:
    """Which shop database the API serves, without the password: host:port/database."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def _marketing_files(landing: Path | None, shop_url: str, *, tick: bool, reset: bool) -> tuple:
    """Write the demo's marketing drops into the landing folder (a local one only)."""
    from demo import marketing

    if landing is None:
        return "skipped (the landing folder is not local)", {}
    if reset:
        marketing.reset(landing)
    if tick and marketing.is_seeded(landing):
        return "tick", marketing.tick(landing, shop_url)
    if not marketing.is_seeded(landing):
        return "written", {"folder": str(landing), **marketing.seed(landing, shop_url)}
    return "already written", {"folder": str(landing), "last_day": str(marketing.last_day(landing))}
