"""`elt lint [--fix] [PATHS]`: sqlfluff with the dbt templater over the project's SQL.

The same rules as `sqlfluff lint` from the root (.sqlfluff), with the warehouse elt uses
and the dbt packages installed, on every core.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

from elt.options import format_option
from elt.runtime import Runtime
from runtime.errors import ConfigError, DataError

DEFAULT_PATHS = ("dbt/models", "macros", "tests/dbt")


@click.command(
    epilog="\b\nExamples:\n  elt lint\n  elt lint dbt/models/marts\n  elt lint --fix",
)
@click.option("--fix", is_flag=True, help="Fix what sqlfluff can (`sqlfluff fix`).")
@click.option(
    "--processes",
    type=click.IntRange(1),
    default=os.cpu_count() or 1,
    show_default="cores",
    help="Files linted in parallel.",
)
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@format_option()
def lint(fix: bool, processes: int, paths: tuple[str, ...], fmt: str) -> None:
    """Lint (or fix) SQL models, macros and data tests; exit 1 when anything is left.

    With --format json, stdout is sqlfluff's JSON report (one entry per file)."""
    runtime = Runtime()
    runtime.prepare_dbt()
    command = ["fix"] if fix else ["lint"]
    if fmt == "json":
        command += ["--format", "json"]
    argv = [sys.executable, "-m", "sqlfluff", *command, "--processes", str(processes)]
    result = subprocess.run(
        [*argv, *(paths or DEFAULT_PATHS)],
        cwd=runtime.project,
        env={**os.environ, "DBT_PROFILES_DIR": str(runtime.dbt_dir)},
        check=False,
    )
    if result.returncode == 1:
        left = "left after fixing" if fix else "found"
        raise DataError(
            f"lint: sqlfluff {left} violations (listed above)",
            hint="`elt lint --fix` fixes most; the rest name the rule to follow",
        )
    if result.returncode:
        raise ConfigError(f"lint: sqlfluff exited {result.returncode}", hint="see its output")
