"""What every command shares: the project, its warehouse and the environment dlt and dbt read.

Resolved once per invocation and lazily, so `elt --help` touches nothing. It knows no
source by name: what a source falls back on when unconfigured (the demo's databases, API
and folders) comes from the defaults hook `ELT_SOURCE_DEFAULTS` names ("module:function",
default the demo's; empty: none).
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from elt import output, tool_env
from runtime import embedded, engines, roles
from runtime.project import project_dir
from runtime.secrets import encode_url_password

DEFAULTS_HOOK_ENV = "ELT_SOURCE_DEFAULTS"
DEFAULTS_HOOK = "demo.defaults:source_defaults"
_OWN = object()  # "the runtime's own warehouse" (None: there is none, start nothing)


def source_env(source: str, key: str) -> str:
    """dlt's environment variable for a source's setting."""
    return f"SOURCES__{source.upper()}__{key.upper()}"


def defaults_hook() -> Any | None:
    """The function giving sources their fallback settings, or None where disabled."""
    target = os.environ.get(DEFAULTS_HOOK_ENV, DEFAULTS_HOOK).strip()
    if not target:
        return None
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


@dataclass
class Runtime:
    project: Path = field(default_factory=project_dir)

    @property
    def dbt_dir(self) -> Path:
        return self.project / "dbt"

    @property
    def home(self) -> Path:
        """The project's private working directory (embedded warehouse, demo state):
        `ELT_HOME`, else `.elt/` of the project."""
        return embedded.home(self.project)

    @property
    def pipelines_dir(self) -> Path:
        """dlt's working directory; disposable, state is restored from the warehouse."""
        configured = os.environ.get("ELT_PIPELINES_DIR")
        return Path(configured) if configured else self.home / "pipelines"

    @cached_property
    def admin_warehouse(self) -> Any:
        """The warehouse as the configured user (the embedded server's superuser), started
        on demand when embedded, its database and elt's roles created if missing."""
        warehouse = engines.resolve(self.project)
        if warehouse.embedded:
            from runtime import warehouse as wh

            wh.ensure_database(warehouse, warehouse.database)
            roles.ensure_applied(warehouse)
        return warehouse

    @cached_property
    def warehouse(self) -> Any:
        """The warehouse as the running command's role (runtime/roles.py COMMANDS); engines
        without roles (DuckDB) have one user."""
        return self.admin_warehouse.as_role(roles.for_command(_command_name()))

    @property
    def engine(self) -> str:
        return engines.configured_engine()

    # ---- sources: configured settings, else the defaults hook's ----

    def source_setting(self, source: str, key: str) -> str | None:
        """A source's setting as dlt finds it: environment, then `.dlt/secrets.toml`, then
        `.dlt/config.toml`. A missing or broken file is skipped: the command reading it
        reports the error."""
        value = os.environ.get(source_env(source, key))
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

    def configured(self, source: str, key: str) -> bool:
        """True when the user set the setting (decided before any default is applied)."""
        return self._configured.get((source, key), self.source_setting(source, key) is not None)

    @cached_property
    def _configured(self) -> dict[tuple[str, str], bool]:
        return {}

    def source_defaults(self, *, start: bool = True, warehouse: Any = _OWN) -> dict[str, dict]:
        """The hook's fallbacks per source: {"settings": {...}, "unavailable": (msg, hint)}."""
        hook = defaults_hook()
        if hook is None:
            return {}
        warehouse = self.admin_warehouse if warehouse is _OWN else warehouse
        role = roles.for_command(_command_name())
        return hook(self.project, warehouse, start=start, is_set=self.configured, role=role) or {}

    def defaults_for_unset(self, *, start: bool = True, warehouse: Any = _OWN) -> dict[str, dict]:
        """Per source the hook knows, the fallback settings of the keys the user did not set
        (empty: the hook has none now, e.g. the server they live on is not running)."""
        found: dict[str, dict[str, Any]] = {}
        for source, default in self.source_defaults(start=start, warehouse=warehouse).items():
            found[source] = {}
            for key, value in (default.get("settings") or {}).items():
                if not self.configured(source, key):
                    found[source][key] = value
        return found

    def point_dlt(self) -> None:
        """Point dlt at this project's `.dlt/` (before dlt is first imported)."""
        os.environ.setdefault("DLT_PROJECT_DIR", str(self.project))

    def prepare_dlt(self) -> None:
        """Point dlt at this project's `.dlt/`, and unset settings at their defaults."""
        self.point_dlt()
        for key, value in list(os.environ.items()):
            if key.startswith("SOURCES__") and key.endswith("__CREDENTIALS") and "://" in value:
                # an un-encoded password would reach the driver in fragments (and its errors)
                os.environ[key] = encode_url_password(value)
        if self._prepared is not None:
            return
        defaults = self.source_defaults()
        self._prepared = defaults
        for source, default in defaults.items():
            for key, value in (default.get("settings") or {}).items():
                if not self.configured(source, key):
                    self._configured[(source, key)] = False
                    os.environ[source_env(source, key)] = str(value)

    _prepared: dict | None = field(default=None, repr=False)

    def source_unavailable(self, source: str) -> tuple[str, str] | None:
        """After prepare_dlt: why an unconfigured source cannot be read now (message, hint)."""
        unavailable = ((self._prepared or {}).get(source) or {}).get("unavailable")
        return tuple(unavailable) if unavailable else None

    def prepare_dbt(self) -> None:
        """dbt's environment (the engine's profile target), and its packages: the local
        subsets where none is installed.

        For the embedded warehouse the environment is also written to `.elt/dbt.env`, which
        plain `dbt` and `sqlfluff` in the venv read (elt/tool_env.py)."""
        env = {
            **self.warehouse.dbt_env(),
            "DBT_TARGET": engines.dbt_target(self.warehouse),
            **engines.of(self.warehouse).SESSION_ENV,
        }
        os.environ.update(env)
        if getattr(self.warehouse, "embedded", False):
            tool_env.write(self.home, env)
        from elt import dbt_packages

        for package in dbt_packages.ensure_installed(self.dbt_dir):
            if package.installed_now:
                output.log(
                    f"dbt package {package.name}: installed the local subset "
                    "(no hub version installed; `elt deps` tries the dbt hub)"
                )

    def landing_dir(self, source: str) -> Path | None:
        """A files source's `bucket_url` when it is a local folder, else None."""
        url = self.source_setting(source, "bucket_url")
        if url is None:
            default = self.source_defaults(start=False, warehouse=None).get(source) or {}
            url = (default.get("settings") or {}).get("bucket_url")
        if not url or ("://" in url and not url.startswith("file://")):
            return None
        path = Path(url.removeprefix("file://")).expanduser()
        return path if path.is_absolute() else self.project / path


def _command_name() -> str | None:
    """The `elt` subcommand being run (`quarantine` for `elt quarantine list`), if any."""
    import click

    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None and ctx.parent.parent is not None:
        ctx = ctx.parent
    return ctx.info_name if ctx is not None and ctx.parent is not None else None
