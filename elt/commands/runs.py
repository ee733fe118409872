"""`elt runs`: recent load, transform and test runs from elt_audit.runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from elt import output
from elt.commands.run_show import show, unless_subcommand
from elt.options import format_option
from elt.runtime import Runtime
from runtime.audit import recent_runs


@click.group(
    invoke_without_command=True,  # `elt runs` lists; `elt runs show RUN_ID` shows one
    epilog="\b\nExamples:\n  elt runs\n  elt runs --command load --limit 5\n"
    "  elt runs --format json\n  elt runs show 3f2a9c1e     one run in full",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Runs to list."
)
@click.option(
    "--command",
    "command_name",
    type=click.Choice(["load", "transform", "test"]),
    help="Only runs of this command.",
)
@format_option()
@unless_subcommand
def runs(limit: int, command_name: str | None, fmt: str) -> None:
    """List recent runs, newest first: status, duration, rows loaded, failures."""
    found = recent_runs(Runtime().warehouse, limit=limit, command=command_name)
    if fmt == "json":
        output.emit_json(found)
        return
    if not found:
        output.line(
            "no runs recorded yet: `elt load`, `elt transform` and `elt test` record theirs"
        )
        return
    output.table(
        "runs",
        ["started (UTC)", "run id", "command", "status", "exit", "time", "rows", "detail"],
        [
            (
                f"{run['started_at'].astimezone(UTC):%m-%d %H:%M:%S}",
                run["run_id"][:8],
                run["command"],
                run["status"],
                "" if run["exit_code"] is None else run["exit_code"],
                _duration(run["started_at"], run["ended_at"]),
                f"{sum((run['rows'] or {}).values()):,}" if run["rows"] else "",
                _detail(run),
            )
            for run in found
        ],
    )


def _duration(started: datetime, ended: datetime | None) -> str:
    return output.seconds((ended - started).total_seconds()) if ended else "-"


def _detail(run: dict[str, Any]) -> str:
    if run["error"]:
        return run["error"][:120]
    failures = run["failures"] or []
    if failures:
        first = failures[0]
        count = f", {first['failures']} rows" if first.get("failures") else ""
        more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        return f"{first['name']} {first['status']}{count}{more}"
    if run["status"] == "running" and run["ended_at"] is None:
        return "no end recorded: still running, or killed"
    return ""


runs.add_command(show)
