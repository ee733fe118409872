"""`elt`: load, transform, test and inspect the warehouse.

Exit codes: 0 success; 1 the data or checks failed; 2 usage, configuration or internal error.
"""

from __future__ import annotations

import sys
import traceback

import click

from elt import output
from elt.commands.demo import demo
from elt.commands.deps import deps
from elt.commands.doctor import doctor
from elt.commands.lineage import lineage
from elt.commands.load import load
from elt.commands.metrics import metrics
from elt.commands.quarantine import quarantine
from elt.commands.runs import runs
from elt.commands.sql import sql
from elt.commands.transform import test, transform
from runtime.errors import EltError

EPILOG = """\b
Examples:
  elt demo                      seed the demo shop database
  elt load && elt transform     what cron and CI run
  elt test                      dbt tests, unit tests and source freshness
  elt runs                      recent runs from the audit (elt_audit.runs)
  elt runs show RUN_ID          one run: sources, load ids, dbt nodes, error, log file
  elt lineage fct_orders 42     the raw rows, loads, runs and files a mart row came from
  elt metrics --serve 9464      Prometheus metrics of the runs
  elt transform -s stg_shop__orders+
  elt sql "select count(*) from marts.fct_orders" --format csv
  elt doctor                    what is down, stale or failing, and what to do next
  elt quarantine list           rows a load could not parse, with file, line and reason
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.option("--debug", is_flag=True, envvar="ELT_DEBUG", help="Show tracebacks on errors.")
@click.version_option(package_name="elt")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """A dbt-centric ELT: dlt loads raw data, dbt models it, elt runs and checks both."""
    ctx.obj = {"debug": debug}
    output.route_runtime_logs()


for command in (load, transform, test, sql, demo, runs, deps, doctor, quarantine):
    cli.add_command(command)
for command in (metrics, lineage):  # observability (README, Monitoring)
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every failure becomes one line on stderr and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = cli.main(args=argv, prog_name="elt", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.Abort:
        output.error("aborted")
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = 2 if exc.exit_code not in (0, 1) else exc.exit_code
    except EltError as exc:
        if debug:
            traceback.print_exc()
        output.error(str(exc), exc.hint)
        code = exc.exit_code
    except Exception as exc:  # an internal error still gets one line, not a traceback
        if debug:
            traceback.print_exc()
        cause = str(exc).strip().splitlines()
        output.error(
            f"internal error: {type(exc).__name__}: {cause[0] if cause else ''}",
            "rerun with --debug for the traceback",
        )
        code = 2
    sys.exit(code if isinstance(code, int) else 0)
