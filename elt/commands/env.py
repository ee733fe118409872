"""`elt env`: the shell exports that point dbt (and anything reading its profile) at the
warehouse elt uses, for tools run outside the venv: `eval "$(elt env)"`."""

from __future__ import annotations

import shlex
import sys

import click

from elt import output
from elt.options import format_option
from elt.runtime import Runtime

SECRET_PREFIX = "DBT_ENV_SECRET_"


@click.command(
    name="env",
    epilog='\b\nExamples:\n  eval "$(elt env)"\n  elt env --format json',
)
@format_option()
def env(fmt: str) -> None:
    """Print `export` lines for dbt/profiles.yml: the configured ELT_WAREHOUSE_URL, or the
    embedded warehouse (started if needed).

    The password is exported only as DBT_ENV_SECRET_WAREHOUSE_PASSWORD, which dbt never
    prints; on a terminal (and in JSON) it is shown as ***.
    """
    runtime = Runtime()
    variables = {
        **runtime.warehouse.dbt_env(),
        "DBT_PROFILES_DIR": str(runtime.dbt_dir),
    }
    runtime.prepare_dbt()  # refreshes .elt/dbt.env for the embedded warehouse
    shown = {
        key: "***" if key.startswith(SECRET_PREFIX) and value else value
        for key, value in variables.items()
    }
    if fmt == "json":
        output.emit_json({"command": "env", "status": "success", "variables": shown})
        return
    values = shown if sys.stdout.isatty() else variables
    sys.stdout.write("".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items()))
    if sys.stdout.isatty():
        output.log('the password is hidden on a terminal: eval "$(elt env)" sets it')
