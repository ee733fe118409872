"""What the demo's sources fall back on when the user configured nothing: the hook the
runtime calls (`ELT_SOURCE_DEFAULTS`, default `demo.defaults:source_defaults`).

The runtime knows no source by name; it applies what this returns to the settings a
source lacks. A fork with real sources points `ELT_SOURCE_DEFAULTS` elsewhere, or at
nothing (an empty value).

- shop: the demo `shop` database on the embedded PostgreSQL, or on the warehouse's
  server when the warehouse is PostgreSQL (the demo shop stays on Postgres whatever the
  warehouse engine);
- payments: the demo API `elt demo` runs in the background (its URL and token);
- marketing: the landing folder under `.elt/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHOP_DATABASE = "shop"
LANDING = ".elt/landing"


def shop_server(project: Path, warehouse: Any, *, start: bool) -> Any | None:
    """The Postgres server the demo shop database lives on (None: not running, not started)."""
    from runtime import warehouse as wh
    from runtime.errors import ConfigError

    if getattr(warehouse, "engine", "postgres") == "postgres" and warehouse is not None:
        return warehouse
    try:
        return wh.embedded_warehouse(project, start=start)
    except ConfigError:
        return None


def ensure_shop_database(project: Path, warehouse: Any) -> str:
    """Create the demo shop database if needed; its URL."""
    from runtime import warehouse as wh

    server = shop_server(project, warehouse, start=True)
    wh.ensure_database(server, SHOP_DATABASE)
    return server.url_for(SHOP_DATABASE)


def source_defaults(
    project: Path, warehouse: Any, *, start: bool, is_set: Callable[[str, str], bool]
) -> dict[str, dict[str, Any]]:
    """Per source: `settings` it falls back on, and `unavailable` (message, hint) when the
    demo cannot serve it right now. `start`: a command that loads (start what is needed);
    otherwise (the doctor) report what was last known, starting nothing. Sources whose
    setting the user set (`is_set(source, key)`) get no default for it, and nothing is
    started for them."""
    from demo import payments_api

    defaults: dict[str, dict[str, Any]] = {}
    if not is_set("marketing", "bucket_url"):
        defaults["marketing"] = {"settings": {"bucket_url": LANDING}}
    if not is_set("shop", "credentials"):
        server = shop_server(project, warehouse, start=start) if warehouse is not None else None
        defaults["shop"] = {
            "settings": {"credentials": server.url_for(SHOP_DATABASE)} if server else {}
        }
    if is_set("payments", "base_url"):
        return defaults
    home = project / ".elt"
    state = payments_api.running(home) if start else _last_state(home)
    defaults["payments"] = {
        "settings": {"base_url": state["url"], "token": state["token"]} if state else {},
        "unavailable": None
        if state
        else (
            "no API configured and the demo payments API is not running",
            "run `elt demo` to start it, or set SOURCES__PAYMENTS__BASE_URL"
            " and SOURCES__PAYMENTS__TOKEN",
        ),
    }
    return defaults


def _last_state(home: Path) -> dict[str, Any] | None:
    """The demo API's last state file (URL, token), alive or not: a dead demo API is a
    doctor connectivity FAIL, not a configuration one."""
    from demo import payments_api

    try:
        return json.loads(payments_api.state_path(home).read_text())
    except (OSError, ValueError):
        return None
