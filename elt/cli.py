"""`elt`: load, transform, test and inspect the warehouse.

Exit codes: 0 success; 1 the data or checks failed; 2 usage, configuration or internal
error, a source that refused service for now, a lock held by another run, or a stop by
signal (SIGTERM/SIGINT: "stopped by signal: rerun resumes").
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import Any

import click

from elt import output
from elt.commands.compact import compact
from elt.commands.dbt import dbt
from elt.commands.demo import demo
from elt.commands.deps import deps
from elt.commands.docs import docs
from elt.commands.doctor import doctor
from elt.commands.env import env
from elt.commands.lineage import lineage
from elt.commands.lint import lint
from elt.commands.load import load
from elt.commands.metrics import metrics
from elt.commands.quarantine import quarantine
from elt.commands.roles import roles
from elt.commands.runs import runs
from elt.commands.sql import sql
from elt.commands.stop import stop
from elt.commands.transform import test, transform
from runtime import signals
from runtime.errors import DataError, EltError, UnavailableError
from runtime.secrets import redact

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
  elt roles apply --dry-run     the least-privilege roles each command connects as
  elt stop                      stop the embedded warehouse and the demo's servers

\b
Exit codes:
  0  success
  1  the data or checks failed (a failing test, a stale source, a doctor FAIL)
  2  usage, configuration or internal error; a source that refused service for now;
     a lock held by another run (--wait SECONDS waits); a stop by SIGTERM/SIGINT at
     the next safe point ("stopped by signal: rerun resumes"; a second signal exits
     at once)
With --format json (or ELT_FORMAT=json) stdout is one JSON document, errors included:
{command, version, elt_version, status, exit_code, ...results, error}.
"""

# commands that write raw data stop at their own safe points (between sources, dlt's
# stages); every other command stops at once (dbt cancels its queries itself)
DEFERRED_STOP = {"load", "compact"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.option("--debug", is_flag=True, envvar="ELT_DEBUG", help="Show tracebacks on errors.")
@click.version_option(package_name="elt")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """A dbt-centric ELT: dlt loads raw data, dbt models it, elt runs and checks both."""
    ctx.obj = {"debug": debug}
    output.route_runtime_logs()


COMMANDS = (
    # cron and CI
    load, transform, test, compact,
    # the analyst loop
    dbt, lint, docs, env, sql,
    # on-call and monitoring
    doctor, runs, metrics, lineage, quarantine,
    # set-up and the demo
    demo, deps, roles, stop,
)  # fmt: skip
for command in COMMANDS:
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every way out (errors, panics, signals) becomes one line on
    stderr, an exit code and, in JSON mode, one JSON document on stdout."""
    args = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in args
    os.umask(0o077)  # what elt writes (dlt's packages, dbt's logs, bundles) is its user's only
    if not debug:  # a native panic (connectorx) is one line here, not a Rust backtrace
        os.environ["RUST_BACKTRACE"] = "0"
    command = command_path(args)
    output.start_envelope(command or "elt", active=json_requested(args))
    signals.install(defer=command.split(" ")[0] in DEFERRED_STOP)
    stopped = {"message": signals.MESSAGE, "hint": "rerun the same command", "cause": "signal"}
    with signals.last_words(lambda: output.finish_envelope(2, "stopped", stopped, _version())):
        try:
            code = cli.main(args=args, prog_name="elt", standalone_mode=False)
            code, error = (code if isinstance(code, int) else 0), None
            if code == 0:  # a signal after the last safe point: the run ends as stopped
                signals.checkpoint()
        except BaseException as exc:  # panics of native libraries are BaseExceptions
            signals.defer_stops()
            code, error = _failure(exc, debug)
        signals.defer_stops()  # the outcome is known: a late signal must not cut it short
    status = {0: "success", 1: "failed"}.get(code, "error")
    if error is not None and error["cause"] == "signal":
        status = "stopped"
    output.finish_envelope(code, status, error, _version())
    exit_now(code)


def exit_now(code: int) -> None:
    """Exit with `code` as soon as the output is out and the exit handlers have run.

    The interpreter's own teardown (freeing dlt's, arrow's and the drivers' modules and
    thread pools) takes 0.3-3 s after a load and does nothing a caller can see, so it is
    skipped: threads that are not daemons are waited for, atexit handlers run, streams are
    flushed, then the process ends.
    """
    import atexit
    import threading

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _failure(exc: BaseException, debug: bool) -> tuple[int, dict[str, Any] | None]:
    """Render `exc` as one line on stderr; its exit code and the envelope's error."""
    if signals.requested() is not None or isinstance(exc, KeyboardInterrupt | click.Abort):
        output.stderr.print(signals.MESSAGE, style="bold red", highlight=False, markup=False)
        return signals.EXIT_CODE, _error(signals.MESSAGE, "rerun the same command", "signal")
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code, None
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        return code, None if code == 0 else _error(f"exited with code {code}", None, "exit")
    if debug:  # the traceback without frame locals, every secret in it masked
        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    if isinstance(exc, click.ClickException):
        exc.show()
        code = exc.exit_code if exc.exit_code in (0, 1) else 2
        return code, _error(exc.format_message(), "see --help", "usage")
    if isinstance(exc, EltError):
        output.error(str(exc), exc.hint)
        return exc.exit_code, _error(str(exc), exc.hint, _cause(exc))
    from runtime.audit import internal_error

    message = internal_error(exc)
    output.error(message, "rerun with --debug for the traceback")
    return 2, _error(message, "rerun with --debug for the traceback", "internal")


def _cause(exc: EltError) -> str:
    """A stable token for the kind of failure (a lock, bad data, a source's refusal...)."""
    explicit = getattr(exc, "cause", None)
    if explicit:
        return explicit
    if isinstance(exc, DataError):
        return "data"
    if isinstance(exc, UnavailableError):
        return "unavailable"
    return "config"


def _error(message: str, hint: str | None, cause: str) -> dict[str, Any]:
    return {"message": redact(message), "hint": redact(hint) if hint else None, "cause": cause}


def json_requested(args: list[str]) -> bool:
    """JSON mode as the arguments and ELT_FORMAT ask, before click parses them (a usage
    error gets the envelope too); the parsed --format has the last word."""
    if {"-h", "--help", "--version"} & set(args):
        return False
    fmt = os.environ.get("ELT_FORMAT", "")
    for index, arg in enumerate(args):
        if arg == "--format" and index + 1 < len(args):
            fmt = args[index + 1]
        elif arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
    return fmt == "json"


def command_path(args: list[str]) -> str:
    """`load`, `quarantine list`: the command the arguments name ('' when none)."""
    group: click.Group = cli
    path: list[str] = []
    for arg in args:
        if arg.startswith("-"):
            continue
        found = group.commands.get(arg)
        if found is None:
            break
        path.append(arg)
        if not isinstance(found, click.Group):
            break
        group = found
    return " ".join(path)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # ~0.1 s: only when asked

    try:
        return version("elt")
    except PackageNotFoundError:
        return "unknown"
