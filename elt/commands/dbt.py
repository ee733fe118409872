"""`elt dbt -- ARGS...`: any dbt command, in-process, with elt's environment and audit.

For what `elt transform` / `elt test` do not wrap (`show`, `compile`, `ls`, `retry`,
`run-operation`, ...): dbt's own output, elt's warehouse and packages, one audit row.
"""

from __future__ import annotations

import click

from elt.runtime import Runtime
from runtime.audit import audited
from runtime.errors import ConfigError, DataError


@click.command(
    name="dbt",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    epilog="\b\nExamples:\n  elt dbt -- ls -s marts\n  elt dbt -- show -s fct_orders --limit 5\n"
    "  elt dbt -- compile -s rpt_daily_revenue\n  elt dbt -- retry",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, required=True)
def dbt(args: tuple[str, ...]) -> None:
    """Run dbt with ARGS against the project and elt's warehouse; exit 1 when dbt fails."""
    from dbt.cli.main import dbtRunner

    runtime = Runtime()
    argv = list(args)
    for flag, value in (("--project-dir", runtime.dbt_dir), ("--profiles-dir", runtime.dbt_dir)):
        if flag not in argv and argv[0] not in ("init", "--version", "--help", "-h"):
            argv += [flag, str(value)]
    with audited(runtime.warehouse, "dbt", {"args": list(args)}):
        runtime.prepare_dbt()
        result = dbtRunner().invoke(argv)
        if result.exception is not None:
            from elt.dbt_runner import root_cause

            raise ConfigError(
                f"dbt {args[0]}: {root_cause(str(result.exception))}",
                hint="see dbt's output above; dbt's log is dbt/logs/dbt.log",
            )
        if not result.success:
            raise DataError(f"dbt {args[0]} failed", hint="see dbt's output above")
