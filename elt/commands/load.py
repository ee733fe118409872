"""`elt load [SOURCE...]`: run the dlt pipeline of each source into raw_<source>."""

from __future__ import annotations

import time

import click

from elt import output
from elt.errors import ConfigError, DataError, EltError
from elt.options import format_option
from elt.runtime import Runtime
from loaders import SOURCES


@click.command(
    epilog="\b\nExamples:\n  elt load\n  elt load shop --format json",
)
@click.argument("sources", nargs=-1)
@format_option()
def load(sources: tuple[str, ...], fmt: str) -> None:
    """Load raw data incrementally from SOURCES (all configured sources by default)."""
    unknown = [name for name in sources if name not in SOURCES]
    if unknown:
        raise click.UsageError(
            f"unknown source {', '.join(unknown)}; known: {', '.join(sorted(SOURCES))}"
        )
    runtime = Runtime()
    runtime.prepare_dlt()
    from elt.progress import dlt_collector
    from loaders import pipeline

    started = time.monotonic()
    reports = []
    for name in sources or tuple(SOURCES):
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
            raise describe_failure(name, stage.current, exc) from exc
        reports.append(report)
    breaches = quarantine_breaches(reports)
    render(reports, fmt, time.monotonic() - started, failed=bool(breaches))
    if breaches:
        source, feed, stats = breaches[0]
        raise DataError(
            f"load {source}: feed {feed} quarantined {stats['quarantined']:,} of "
            f"{stats['rows']:,} rows ({stats['share']:.1%}), above max_quarantine_share "
            f"{stats['max_share']:.1%}"
            + (f" (and {len(breaches) - 1} more feed(s))" if len(breaches) > 1 else ""),
            hint=f"elt quarantine list --feed {feed}; fix the file or the feed's rules, "
            f"then elt quarantine replay --feed {feed}",
        )


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
    from dlt.pipeline.exceptions import PipelineStepFailed

    cause: BaseException = exc
    if isinstance(exc, PipelineStepFailed):
        step = exc.step
        cause = exc.exception
    while cause.__cause__ is not None and isinstance(cause, DltException):
        cause = cause.__cause__
    lines = [ln for ln in str(cause).strip().splitlines() if ln.strip()]
    message = f"load {source}: {step} failed: {type(cause).__name__}: {lines[0] if lines else ''}"
    hint = f"fix the cause, then rerun `elt load {source}` (pending data is finished first)"
    if "contract" in type(cause).__name__.lower():
        return DataError(message, hint=hint)
    return ConfigError(message, hint=hint)


def render(reports: list, fmt: str, seconds: float, *, failed: bool = False) -> None:
    if fmt == "json":
        output.emit_json(
            {
                "command": "load",
                "status": "failed" if failed else "success",
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
        if report.resumed_load_ids:
            output.line(
                f"{report.source}: finished {len(report.resumed_load_ids)} pending package(s)"
                " left by an earlier run"
            )
    render_quarantine(reports)
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
        for change in report.type_changes:
            output.line(
                f"type change in {change['feed']} file {change['file']}: column "
                f"{change['column']} declared {change['declared']}, file has {change['found']}"
            )
