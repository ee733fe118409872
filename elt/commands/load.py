"""`elt load [SOURCE...]`: run the dlt pipeline of each source into raw_<source>."""

from __future__ import annotations

import time
from typing import Any

import click

from elt import output
from elt.options import format_option
from elt.runtime import Runtime
from loaders import SOURCES, dataset_name
from runtime.audit import audited
from runtime.errors import ConfigError, DataError, EltError, UnavailableError


@click.command(
    epilog="\b\nExamples:\n  elt load\n  elt load shop --format json",
)
@click.argument("sources", nargs=-1)
@click.option(
    "--drop-slot",
    metavar="SOURCE",
    help="Drop the replication slot of SOURCE (frees the WAL it holds) and load nothing.",
)
@format_option()
def load(sources: tuple[str, ...], drop_slot: str | None, fmt: str) -> None:
    """Load raw data incrementally from SOURCES (all configured sources by default)."""
    if drop_slot is not None:
        return drop_replication_slot(drop_slot, fmt)
    unknown = [name for name in sources if name not in SOURCES]
    if unknown:
        raise click.UsageError(
            f"unknown source {', '.join(unknown)}; known: {', '.join(sorted(SOURCES))}"
        )
    runtime = Runtime()
    names = sources or tuple(SOURCES)
    with audited(runtime.warehouse, "load", {"sources": list(names)}) as run:
        runtime.prepare_dlt()
        for name in names:
            unavailable = runtime.source_unavailable(name)
            if unavailable:
                raise ConfigError(f"load {name}: {unavailable[0]}", hint=unavailable[1])
        from elt.progress import dlt_collector
        from loaders import pipeline

        started = time.monotonic()
        reports = []
        for name in names:
            stage = StageLog(name, quiet=fmt != "human")
            stage("starting")
            try:
                report = pipeline.run(
                    name,
                    destination_url=runtime.warehouse.url,
                    pipelines_dir=runtime.pipelines_dir,
                    progress=dlt_collector(),
                    on_stage=stage,
                )
            except Exception as exc:
                error = describe_failure(name, stage.current, exc)
                run.source_done(name, error=str(error))
                if isinstance(error, DataError):
                    run.add_failure(name, "schema_contract", message=str(error))
                raise error from exc
            reports.append(report)
            run.source_done(name, report)
            for table, count in report.rows.items():
                run.rows[f"{report.dataset}.{table}"] = count
        breaches = quarantine_breaches(reports)
        render(reports, fmt, time.monotonic() - started, failed=bool(breaches))
        stopped = [report for report in reports if report.stops]
        if stopped:
            raise describe_stop(stopped[0])
        if breaches:
            for breach_source, breach_feed, breach in breaches:
                run.add_failure(
                    f"{breach_source}.{breach_feed}",
                    "quarantine",
                    failures=breach["quarantined"],
                    message=f"{breach['share']:.1%} of {breach['rows']:,} rows quarantined",
                )
            source, feed, stats = breaches[0]
            raise DataError(
                f"load {source}: feed {feed} quarantined {stats['quarantined']:,} of "
                f"{stats['rows']:,} rows ({stats['share']:.1%}), above max_quarantine_share "
                f"{stats['max_share']:.1%}"
                + (f" (and {len(breaches) - 1} more feed(s))" if len(breaches) > 1 else ""),
                hint=f"elt quarantine list --feed {feed}; fix the file or the feed's rules, "
                f"then elt quarantine replay --feed {feed}",
            )


def drop_replication_slot(source: str, fmt: str) -> None:
    from loaders.pipeline import source_hook

    hook = source_hook(source, "drop_slot") if source in SOURCES else None
    if hook is None:
        raise click.UsageError(f"--drop-slot: source {source} has no replication slot")
    Runtime().prepare_dlt()
    name = hook()
    if fmt == "json":
        output.emit_json({"command": "load", "status": "success", "dropped_slot": name})
    else:
        output.line(f"dropped replication slot {name}" if name else f"{source}: no slot to drop")


def quarantine_breaches(reports: list) -> list[tuple[str, str, dict]]:
    """(source, feed, stats) of each feed whose quarantined share passed its threshold."""
    return [
        (report.source, feed, stats)
        for report in reports
        for feed, stats in sorted(report.quarantine.items())
        if stats.get("exceeded")
    ]


class StageLog:
    """Logs each stage of a source's load and remembers it, so a failure can name it."""

    def __init__(self, source: str, *, quiet: bool) -> None:
        self.source, self.quiet, self.current = source, quiet, "starting"

    def __call__(self, stage: str) -> None:
        self.current = stage
        if not self.quiet:
            output.log(f"load {self.source}: {stage}")


def describe_failure(source: str, step: str, exc: Exception) -> EltError:
    """One line naming the source, the failing step and the root cause."""
    from dlt.common.exceptions import DltException
    from dlt.common.schema.exceptions import DataValidationError
    from dlt.extract.exceptions import PipeException
    from dlt.pipeline.exceptions import PipelineStepFailed

    from loaders.schema_evolution import (
        ContractConfigError,
        FrozenDroppedColumn,
        FrozenTypeChange,
    )

    if isinstance(exc, ContractConfigError):
        return ConfigError(f"load {source}: {exc}", hint="fix it in .dlt/config.toml")
    if isinstance(exc, FrozenTypeChange):
        change = exc.changes[0]
        what = (
            f"type change of {dataset_name(source)}.{change.table}.{change.column}"
            f" ({change.old_type} -> {change.new_type})"
        )
        return _contract_error(source, what, "data_type", "freeze")
    from loaders.packages import PackageMovedAside

    if isinstance(exc, PackageMovedAside):
        return DataError(f"load {source}: {exc}", hint=exc.hint)
    if isinstance(exc, FrozenDroppedColumn):
        column = exc.dropped[0]
        what = f"column {dataset_name(source)}.{column.table}.{column.column} disappeared"
        return _contract_error(source, what, "columns", "freeze")
    cause: BaseException = exc
    if isinstance(exc, PipelineStepFailed):
        step = exc.step
        cause = exc.exception
    if isinstance(cause, DataValidationError):
        return contract_violation(source, cause)
    resource = None
    while cause.__cause__ is not None and isinstance(cause, DltException):
        if isinstance(cause, PipeException):
            resource = cause.pipe_name
        cause = cause.__cause__
    if resource and step == "extract":
        step = f"extract of `{resource}`"
    lines = [ln for ln in str(cause).strip().splitlines() if ln.strip()]
    message = f"load {source}: {step} failed: {type(cause).__name__}: {lines[0] if lines else ''}"
    hint = getattr(cause, "hint", None) or (
        f"fix the cause, then rerun `elt load {source}` (pending data is finished first)"
    )
    if "contract" in type(cause).__name__.lower() or getattr(cause, "data_error", False):
        return DataError(message, hint=hint)
    return ConfigError(message, hint=hint)


def contract_violation(source: str, exc: Any) -> DataError:
    """A schema contract violation, named without a single value of the offending rows.

    dlt's own message may quote the offending item's keys; it is not used.
    """
    table = f"{dataset_name(source)}.{exc.table_name}"
    existing = (exc.table_schema or {}).get("columns", {}) if hasattr(exc, "table_schema") else {}
    if exc.schema_entity == "tables":
        what = f"new table {table}"
    elif exc.schema_entity == "columns":
        what = f"new column {table}.{exc.column_name}"
    else:
        old_type = (existing.get(exc.column_name) or {}).get("data_type", "?")
        what = f"type change of {table}.{exc.column_name} (was {old_type})"
    return _contract_error(source, what, exc.schema_entity, exc.contract_mode)


def _contract_error(source: str, what: str, entity: str, mode: str) -> DataError:
    return DataError(
        f"load {source}: schema contract violated: {what}, but"
        f" [sources.{source}.schema_contract] {entity} = {mode!r}",
        hint=f"undo the change in the source, or allow it in [sources.{source}.schema_contract]"
        " and rerun `elt load`",
    )


def describe_stop(report) -> UnavailableError:
    """One line for a source that stopped early on purpose: its cause token comes first."""
    first = report.stops[0]
    return UnavailableError(
        f"load {report.source}: {first.cause}: `{first.resource}` {first.detail};"
        f" kept the {report.total_rows:,} rows read before, the cursor stops at them",
        hint=f"rerun `elt load {report.source}` later: it resumes where this run stopped",
    )


def render(reports: list, fmt: str, seconds: float, *, failed: bool = False) -> None:
    stops = [stop for report in reports for stop in report.stops]
    if fmt == "json":
        output.emit_json(
            {
                "command": "load",
                "status": "failed" if stops or failed else "success",
                **({"cause": stops[0].cause} if stops else {}),
                "seconds": round(seconds, 3),
                "sources": [report.as_dict() for report in reports],
            }
        )
        return
    rows = []
    for report in reports:
        for table, count in sorted(report.rows.items()):
            rows.append((report.source, f"{report.dataset}.{table}", f"{count:,}"))
        if not report.rows:
            rows.append((report.source, report.dataset, "0 (nothing new)"))
    output.table("loaded", ["source", "table", "rows"], rows)
    for report in reports:
        for table in report.new_tables:
            output.line(f"new table {report.dataset}.{table}")
        for column in report.new_columns:
            output.line(
                f"new column {report.dataset}.{column['table']}.{column['column']}"
                f" ({column['data_type']})"
            )
        for change in report.type_changes:
            output.line(
                f"type change {report.dataset}.{change.table}.{change.column}:"
                f" {change.old_type} -> {change.new_type}; new values go to"
                f" {change.variant_column} (`elt test` fails until staging handles it)"
            )
        for stop in report.stops:
            output.line(
                f"{report.source}: stopped early, {stop.cause}: `{stop.resource}` {stop.detail}"
            )
        if report.resumed_load_ids:
            output.line(
                f"{report.source}: finished {len(report.resumed_load_ids)} pending package(s)"
                " left by an earlier run"
            )
    render_quarantine(reports)
    for report in reports:
        for note in report.notes:
            output.line(note)
    total = sum(report.total_rows for report in reports)
    output.line(f"load: {total:,} rows from {len(reports)} source(s) in {output.seconds(seconds)}")


def render_quarantine(reports: list) -> None:
    """Per feed of the sources that quarantine: rows read, loaded, quarantined; and warnings."""
    rows = [
        (
            report.source,
            feed,
            f"{stats['files']:,}",
            f"{stats['rows']:,}",
            f"{stats['loaded']:,}",
            f"{stats['quarantined']:,}",
            f"{stats['share']:.1%}" + (" > max" if stats["exceeded"] else ""),
        )
        for report in reports
        for feed, stats in sorted(report.quarantine.items())
    ]
    if rows:
        output.table(
            "files", ["source", "feed", "files", "rows", "loaded", "quarantined", "share"], rows
        )
    for report in reports:
        for skipped in report.skipped_files:
            output.line(f"skipped {skipped['feed']} file {skipped['file']}: {skipped['reason']}")
        for change in report.file_type_changes:
            output.line(
                f"type change in {change['feed']} file {change['file']}: column "
                f"{change['column']} declared {change['declared']}, file has {change['found']}"
            )
