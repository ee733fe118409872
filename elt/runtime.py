"""What every command shares: the project, its warehouse and the environment dlt and dbt read.

Resolved once per invocation and lazily, so `elt --help` touches nothing.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from elt import dbt_packages, output
from runtime import embedded, roles
from runtime import warehouse as wh
from runtime.errors import ConfigError
from runtime.project import project_dir
from runtime.secrets import encode_url_password

DEMO_SHOP_DATABASE = "shop"
PAYMENTS_URL_ENV = "SOURCES__PAYMENTS__BASE_URL"
PAYMENTS_TOKEN_ENV = "SOURCES__PAYMENTS__TOKEN"
DEFAULT_LANDING = ".elt/landing"


@dataclass
class Runtime:
    project: Path = field(default_factory=project_dir)

    @property
    def dbt_dir(self) -> Path:
        return self.project / "dbt"

    @property
    def pipelines_dir(self) -> Path:
        """dlt's working directory; disposable, state is restored from the warehouse."""
        configured = os.environ.get("ELT_PIPELINES_DIR")
        return Path(configured) if configured else self.home / "pipelines"

    @cached_property
    def admin_warehouse(self) -> wh.Warehouse:
        """The warehouse as the configured user (the embedded server's superuser), started
        on demand when embedded, its database and elt's roles created if missing."""
        warehouse = wh.resolve(self.project)
        if warehouse.embedded:
            wh.ensure_database(warehouse, warehouse.database)
            roles.ensure_applied(warehouse)
        return warehouse

    @cached_property
    def warehouse(self) -> wh.Warehouse:
        """The warehouse as the running command's role (runtime/roles.py COMMANDS)."""
        return self.admin_warehouse.as_role(roles.for_command(_command_name()))

    def prepare_dlt(self) -> None:
        """Point dlt at this project's `.dlt/` and the shop source at the demo by default."""
        os.environ.setdefault("DLT_PROJECT_DIR", str(self.project))
        for key, value in list(os.environ.items()):
            if key.startswith("SOURCES__") and key.endswith("__CREDENTIALS") and "://" in value:
                # an un-encoded password would reach the driver in fragments (and its errors)
                os.environ[key] = encode_url_password(value)
        if not self.shop_credentials_configured():
            if self.admin_warehouse.embedded:
                with contextlib.suppress(ConfigError):  # no demo database: nothing to grant
                    roles.grant_source_read(self.admin_warehouse, DEMO_SHOP_DATABASE)
            os.environ["SOURCES__SHOP__CREDENTIALS"] = self.warehouse.url_for(DEMO_SHOP_DATABASE)
        self._use_demo_payments_api()

    def prepare_dbt(self) -> None:
        """dbt's environment, and its packages: the local subsets where none is installed."""
        os.environ.update(self.warehouse.dbt_env())
        for package in dbt_packages.ensure_installed(self.dbt_dir):
            if package.installed_now:
                output.log(
                    f"dbt package {package.name}: installed the local subset "
                    "(no hub version installed; `elt deps` tries the dbt hub)"
                )

    def source_setting(self, source: str, key: str) -> str | None:
        """A source's setting as dlt finds it: environment, then `.dlt/secrets.toml`, then
        `.dlt/config.toml`. A missing or broken file is skipped: the command reading it
        reports the error."""
        value = os.environ.get(f"SOURCES__{source.upper()}__{key.upper()}")
        if value:
            return value
        for name in ("secrets.toml", "config.toml"):
            try:
                with (self.project / ".dlt" / name).open("rb") as handle:
                    section = tomllib.load(handle).get("sources", {}).get(source, {})
            except (OSError, tomllib.TOMLDecodeError):
                continue
            if section.get(key):
                return section[key]
        return None

    def shop_credentials_configured(self) -> bool:
        return self.source_setting("shop", "credentials") is not None

    def landing_url(self) -> str:
        """The marketing source's `bucket_url`, or the default landing folder."""
        return self.source_setting("marketing", "bucket_url") or DEFAULT_LANDING

    def landing_dir(self) -> Path | None:
        """The landing folder when it is local (the demo writes there), else None."""
        url = self.landing_url()
        if "://" in url and not url.startswith("file://"):
            return None
        path = Path(url.removeprefix("file://")).expanduser()
        return path if path.is_absolute() else self.project / path

    def shop_url(self) -> str:
        """The shop source's URL: configured, or the demo database beside the warehouse."""
        self.prepare_dlt()
        return self.source_setting("shop", "credentials")

    # ---- the payments source: the demo API `elt demo` runs, unless configured ----

    @property
    def home(self) -> Path:
        """The project's private working directory (embedded warehouse, demo API state)."""
        return embedded.home(self.project)

    def payments_configured(self) -> bool:
        """True when the user set the payments API's base_url (environment, secrets, config);
        decided once, before the demo API's URL is put in the environment."""
        return self._payments_configured

    def payments_api_known(self) -> bool:
        """After prepare_dlt: the payments source has an API to read, configured or the demo."""
        return self.payments_configured() or bool(os.environ.get(PAYMENTS_URL_ENV))

    @cached_property
    def _payments_configured(self) -> bool:
        return self.source_setting("payments", "base_url") is not None

    def _use_demo_payments_api(self) -> None:
        """Point the payments source at the running demo API (its URL and its token)."""
        if self.payments_configured():
            return
        from demo import payments_api

        state = payments_api.running(self.home)
        if state:
            os.environ[PAYMENTS_URL_ENV] = state["url"]
            os.environ.setdefault(PAYMENTS_TOKEN_ENV, state["token"])


def _command_name() -> str | None:
    """The `elt` subcommand being run (`quarantine` for `elt quarantine list`), if any."""
    import click

    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None and ctx.parent.parent is not None:
        ctx = ctx.parent
    return ctx.info_name if ctx is not None and ctx.parent is not None else None
