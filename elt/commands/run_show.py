"""`elt runs show RUN_ID`: one run in full, from the audit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import click

from elt import output
from elt.options import format_option
from elt.runtime import Runtime


def unless_subcommand(listing: Callable[..., None]) -> Callable[..., None]:
    """`elt runs` lists the runs only when no subcommand (`show`) follows it."""

    @functools.wraps(listing)
    def wrapper(*args, **kwargs) -> None:
        if click.get_current_context().invoked_subcommand is None:
            listing(*args, **kwargs)

    return wrapper


@click.command(
    epilog="\b\nExamples:\n  elt runs show 3f2a9c1e\n  elt runs show 3f2a9c1e --format json",
)
@click.argument("run_id")
@format_option()
def show(run_id: str, fmt: str) -> None:
    """Show one run (RUN_ID: its id from `elt runs`, or the first characters of it).

    Its arguments, host and project commit; per source the rows of each table and the
    dlt load ids; each dbt node's status, time and failures; the rows it quarantined and
    the schema changes it met; the error line; and the run's log file.
    """
    from runtime.run_detail import find_run

    run = find_run(Runtime().warehouse, run_id)
    if fmt == "json":
        output.emit_json({"command": "runs show", "status": "success", "run": describe(run)})
        return
    render(run)


def describe(run: dict[str, Any]) -> dict[str, Any]:
    """The run as JSON: the audit row, its sources, nodes and quarantine."""
    sources = run.get("sources") or {}
    log_path = run.get("log_path")
    return {
        "run_id": run["run_id"],
        "command": run["command"],
        "args": run["args"],
        "status": run["status"],
        "exit_code": run["exit_code"],
        "started_at": run["started_at"],
        "ended_at": run["ended_at"],
        "seconds": _seconds(run),
        "host": run.get("host"),
        "commit": run.get("commit"),
        "error": run["error"],
        "failures": run["failures"] or [],
        "rows": run["rows"] or {},
        "load_ids": run.get("load_ids") or {},
        "sources": [
            {
                "source": name,
                "status": source.get("status"),
                "seconds": source.get("seconds"),
                "rows": source.get("rows") or {},
                "load_ids": source.get("load_ids") or [],
                "resumed_load_ids": source.get("resumed_load_ids") or [],
                "error": source.get("error"),
                "stops": source.get("stops") or [],
                "schema_changes": _schema_changes(source),
            }
            for name, source in sorted(sources.items())
        ],
        "dbt_nodes": run["dbt_nodes"],
        "quarantine": run["quarantine"],
        "log_path": log_path,
        "log_on_this_machine": bool(log_path) and Path(log_path).is_file(),
    }


def _schema_changes(source: dict[str, Any]) -> list[str]:
    changes = [f"new table {t}" for t in source.get("new_tables") or []]
    changes += [
        f"new column {c['table']}.{c['column']} ({c['data_type']})"
        for c in source.get("new_columns") or []
    ]
    changes += [
        f"type change {c['table']}.{c['column']}: {c.get('old_type')} -> {c.get('new_type')}"
        for c in source.get("type_changes") or []
    ]
    changes += [
        f"type change in {c['feed']} file {c['file']}: column {c['column']} declared"
        f" {c['declared']}, file has {c['found']}"
        for c in source.get("file_type_changes") or []
    ]
    return changes


def _seconds(run: dict[str, Any]) -> float | None:
    if run["ended_at"] is None:
        return None
    return round((run["ended_at"] - run["started_at"]).total_seconds(), 3)


def render(run: dict[str, Any]) -> None:
    doc = describe(run)
    took = output.seconds(doc["seconds"]) if doc["seconds"] is not None else "no end recorded"
    output.line(
        f"run {doc['run_id']}: elt {doc['command']} {doc['status']}"
        + ("" if doc["exit_code"] is None else f" (exit {doc['exit_code']})")
        + f", started {doc['started_at'].astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, {took}"
    )
    output.line(f"arguments: {_arguments(doc['args'])}")
    output.line(f"host: {doc['host'] or '-'}   commit: {doc['commit'] or '-'}")
    if doc["error"]:
        output.line(f"error: {doc['error']}")
    rows = []
    for source in doc["sources"]:
        tables = sorted(source["rows"].items()) or [("", 0)]
        for table, count in tables:
            rows.append(
                (source["source"], source["status"], table or "(nothing new)", f"{count:,}")
            )
        if source["error"]:
            rows.append((source["source"], "failed", "", source["error"]))
    if rows:
        output.table("sources", ["source", "status", "table", "rows"], rows)
    loads = [(s["source"], load_id) for s in doc["sources"] for load_id in s["load_ids"]]
    if loads:
        output.table("dlt loads", ["source", "load id"], loads)
    changes = [(s["source"], change) for s in doc["sources"] for change in s["schema_changes"]]
    if changes:
        output.table("schema changes", ["source", "change"], changes)
    if doc["quarantine"]:
        output.table(
            "quarantined",
            ["source", "feed", "status", "rows", "files"],
            [
                (q["source"], q["feed"], q["status"], q["rows"], q["files"])
                for q in doc["quarantine"]
            ],
        )
    if doc["dbt_nodes"]:
        output.table(
            "dbt nodes",
            ["type", "name", "status", "time", "failures", "message"],
            [
                (
                    n["resource_type"],
                    n["name"],
                    n["status"],
                    output.seconds(n["seconds"] or 0),
                    "" if n["failures"] is None else n["failures"],
                    n["message"] or "",
                )
                for n in doc["dbt_nodes"]
            ],
        )
    for failure in doc["failures"]:
        if failure.get("status") in ("quarantine", "schema_contract", "unhandled_type_change"):
            output.line(f"{failure['status']}: {failure['name']}: {failure.get('message') or ''}")
    where = doc["log_path"] or "none recorded"
    if doc["log_path"] and not doc["log_on_this_machine"]:
        where += " (not on this machine)"
    output.line(f"log: {where}")


def _arguments(args: dict[str, Any] | None) -> str:
    parts = []
    for key, value in (args or {}).items():
        if isinstance(value, list):
            value = " ".join(value) if value else "(all)"
        parts.append(f"{key}={value}")
    return ", ".join(parts) or "-"
