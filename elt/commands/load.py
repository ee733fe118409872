"""`elt load [SOURCE...]`: run the dlt pipeline of each source into raw_<source>."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click

from elt import output
from elt.options import format_option, sources_argument, wait_option
from elt.runtime import Runtime
from loaders import SOURCES, dataset_name
from runtime import locks, signals
from runtime.audit import audited
from runtime.errors import ConfigError, DataError, EltError, UnavailableError
from runtime.retention import prune as prune_load_packages


@click.command(
    epilog="\b\nExamples:\n  elt load\n  elt load shop --format json",
)
@sources_argument
@click.option(
    "--drop-slot",
    metavar="SOURCE",
    help="Drop the replication slot of SOURCE (frees the WAL it holds) and load nothing.",
)
@wait_option
@format_option()
def load(sources: tuple[str, ...], drop_slot: str | None, wait: float, fmt: str) -> None:
    """Load raw data incrementally from SOURCES (all configured sources by default).

    Every source runs even when another fails or is locked by another run; the exit code
    is the worst of them.
    """
    if drop_slot is not None:
        return drop_replication_slot(drop_slot, fmt)
    runtime = Runtime()
    names = sources
    imports = SourceImports(names, runtime)  # dlt's imports beside the warehouse's set-up
    with audited(runtime.warehouse, "load", {"sources": list(names)}) as run:
        runtime.prepare_dlt()
        imports.wait()
        started = time.monotonic()
        outcomes = load_sources(names, runtime, run, fmt, wait)
        prune_load_packages(runtime.pipelines_dir)  # row values stay in the warehouse only
        reports = [outcome.report for outcome in outcomes if outcome.report is not None]
        for report in reports:
            for table, count in report.rows.items():
                run.rows[f"{report.dataset}.{table}"] = count
        breaches = quarantine_breaches(reports)
        for breach_source, breach_feed, breach in breaches:
            run.add_failure(
                f"{breach_source}.{breach_feed}",
                "quarantine",
                failures=breach["quarantined"],
                message=f"{breach['share']:.1%} of {breach['rows']:,} rows quarantined",
            )
        errors = [outcome.error for outcome in outcomes if outcome.error is not None]
        if breaches:
            errors.append(breach_error(breaches))
        render(outcomes, fmt, time.monotonic() - started, failed=bool(errors))
        if errors:
            raise overall_error(outcomes, errors)


@dataclass
class SourceOutcome:
    """How one source's load ended: loaded, failed (nothing new visible) or stopped early."""

    source: str
    status: str  # loaded | failed | stopped
    report: Any = None
    error: EltError | None = None

    def as_dict(self) -> dict[str, Any]:
        base = (
            self.report.as_dict()
            if self.report is not None
            else {"source": self.source, "dataset": dataset_name(self.source), "rows": {}}
        )
        error = None
        if self.error is not None:
            error = {
                "message": str(self.error),
                "hint": self.error.hint,
                "exit_code": self.error.exit_code,
            }
        return {**base, "status": self.status, "error": error}


def load_sources(
    names: tuple[str, ...], runtime: Runtime, run: Any, fmt: str, wait: float
) -> list[SourceOutcome]:
    """Load every source, each in a thread of its own on its own dlt pipeline, and record
    their outcomes in the run in the order named.

    The sources wait on their databases and APIs, not on each other, so a run takes about
    as long as its slowest source. An engine that admits one writer process (DuckDB,
    Spark's local metastore: ONE_PROCESS) loads them one after another. A signal stops
    each source at its next safe point; the run then raises `Stopped` once every source
    has stopped (what finished before is recorded).
    """
    from concurrent.futures import ThreadPoolExecutor

    from runtime import engines

    if len(names) < 2 or engines.of(runtime.warehouse).ONE_PROCESS:
        results = []
        for name in names:
            signals.checkpoint()  # a safe point: between sources
            results.append(load_source(name, runtime, run, fmt, wait))
            record(run, results[-1])
        return results
    with ThreadPoolExecutor(len(names), thread_name_prefix="elt-load") as pool:
        futures = [pool.submit(load_source, name, runtime, run, fmt, wait) for name in names]
        done: list[SourceOutcome] = []
        stopped: BaseException | None = None
        for future in futures:
            try:
                done.append(future.result())
            except BaseException as exc:  # a stop (or a bug) in that source's thread
                stopped = stopped or exc
    for outcome in done:
        record(run, outcome)
    if stopped is not None:
        raise stopped
    return done


class SourceImports:
    """The source modules (and dlt under them, about 0.7 s) imported in one background
    thread while the main thread connects to the warehouse and starts the audited run.

    One thread only, joined before any source starts: importing dlt from several threads
    at once can deadlock. The main thread imports nothing of dlt meanwhile. An import
    that fails is raised by `wait`, in the main thread.
    """

    def __init__(self, names: tuple[str, ...], runtime: Runtime) -> None:
        import threading

        runtime.point_dlt()  # dlt finds its project settings from its first import on
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(names,), name="elt-imports", daemon=True
        )
        self._thread.start()

    def _run(self, names: tuple[str, ...]) -> None:
        import importlib

        try:
            from loaders import compaction, pipeline  # noqa: F401

            for name in names:
                importlib.import_module(SOURCES[name].split(":")[0])
        except BaseException as exc:  # raised again in the main thread by wait()
            self._failure = exc

    def wait(self) -> None:
        self._thread.join()
        if self._failure is not None:
            raise self._failure


def record(run: Any, outcome: SourceOutcome) -> None:
    """A source's outcome in the audit run: its report or error, and its failure."""
    error = str(outcome.error) if outcome.error is not None else None
    run.source_done(outcome.source, outcome.report, error=error)
    if outcome.status == "failed":
        cause = "schema_contract" if isinstance(outcome.error, DataError) else "failed"
        run.add_failure(outcome.source, cause, message=error)
    elif outcome.status == "stopped":
        run.add_failure(outcome.source, outcome.report.stops[0].cause, message=error)


def load_source(name: str, runtime: Runtime, run: Any, fmt: str, wait: float) -> SourceOutcome:
    """Load one source under its load lock, then compact it when due; never raises for it
    but for a stop by signal.

    A failure of this source (configuration, an unreachable host, a panic in a driver)
    becomes its outcome, so the other sources still run.
    """
    from elt.progress import dlt_collector
    from loaders import compaction, pipeline

    signals.checkpoint()  # a safe point: before the source starts
    stage = StageLog(name, quiet=fmt != "human")
    stage("starting")
    try:
        unavailable = runtime.source_unavailable(name)
        if unavailable:
            raise ConfigError(f"load {name}: {unavailable[0]}", hint=unavailable[1])
        with locks.hold(runtime.warehouse, f"load:{name}", run=run, wait=wait):
            report = pipeline.run(
                name,
                destination_url=runtime.warehouse.url,
                pipelines_dir=runtime.pipelines_dir,
                progress=dlt_collector(name),
                on_stage=stage,
            )
            completed = [*report.resumed_load_ids, *report.load_ids]
            if compaction.due(runtime.warehouse.url, name, len(completed)):
                stage("compacting")
                report.compaction = compaction.compact(
                    name,
                    destination_url=runtime.warehouse.url,
                    pipelines_dir=runtime.pipelines_dir,
                    load_ids=completed,
                    had_rows=report.had_rows,
                ).as_dict()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # a driver's panic (connectorx) is a BaseException
        error = exc if isinstance(exc, EltError) else describe_failure(name, stage.current, exc)
        return SourceOutcome(name, "failed", error=error)
    if report.stops:
        return SourceOutcome(name, "stopped", report, describe_stop(report))
    return SourceOutcome(name, "loaded", report)


def overall_error(outcomes: list[SourceOutcome], errors: list[EltError]) -> EltError:
    """One line for the whole run: the first problem, every source left unloaded, the worst
    exit code (2 over 1)."""
    first = errors[0]
    unloaded = [outcome.source for outcome in outcomes if outcome.status != "loaded"]
    others = [source for source in unloaded if not str(first).startswith(f"load {source}:")]
    message = str(first)
    if others:
        message += f"; also not loaded: {', '.join(others)}"
    hint = first.hint or "fix the cause"
    if unloaded:
        hint += f"; then rerun `elt load {' '.join(unloaded)}`"
    error = type(first)(message, hint=hint)  # its kind (a lock, bad data) names the cause
    error.exit_code = max(each.exit_code for each in errors)
    return error


def breach_error(breaches: list[tuple[str, str, dict]]) -> DataError:
    source, feed, stats = breaches[0]
    return DataError(
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
        if stage != "bookkeeping":  # a safe point: before each dlt stage, not after a load
            signals.checkpoint()
        self.current = stage
        if not self.quiet:
            output.log(f"load {self.source}: {stage}")


def describe_failure(source: str, step: str, exc: BaseException) -> EltError:
    """One line naming the source, the failing step and the root cause.

    A source module's `explain_failure(cause)` may name the cause better (a timeout of
    the source database, for one) than the driver's own words.
    """
    from dlt.common.exceptions import DltException
    from dlt.common.schema.exceptions import DataValidationError
    from dlt.extract.exceptions import PipeException
    from dlt.pipeline.exceptions import PipelineStepFailed

    from loaders.pipeline import source_hook
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
    explain = source_hook(source, "explain_failure")
    explained = explain(cause) if explain is not None else None
    if explained is not None:
        return ConfigError(f"load {source}: {step} failed: {explained}", hint=explained.hint)
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


def render(
    outcomes: list[SourceOutcome], fmt: str, seconds: float, *, failed: bool = False
) -> None:
    reports = [outcome.report for outcome in outcomes if outcome.report is not None]
    stops = [stop for report in reports for stop in report.stops]
    if fmt == "json":
        output.emit_json(
            {
                "command": "load",
                "status": "failed" if stops or failed else "success",
                **({"cause": stops[0].cause} if stops else {}),
                "seconds": round(seconds, 3),
                "sources": [outcome.as_dict() for outcome in outcomes],
            }
        )
        return
    render_sources(outcomes)
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
        if report.compaction is not None:
            output.line(compaction_line(report.compaction))
    render_quarantine(reports)
    for report in reports:
        for note in report.notes:
            output.line(note)
    total = sum(report.total_rows for report in reports)
    output.line(f"load: {total:,} rows from {len(reports)} source(s) in {output.seconds(seconds)}")


def render_sources(outcomes: list[SourceOutcome]) -> None:
    """One row per source: how it ended and, when it did not load, why."""
    rows = [
        (
            outcome.source,
            outcome.status,
            f"{outcome.report.total_rows:,}" if outcome.report is not None else "-",
            str(outcome.error) if outcome.error is not None else "",
        )
        for outcome in outcomes
    ]
    output.table("sources", ["source", "status", "rows", "cause"], rows)


def compaction_line(compaction: dict[str, Any]) -> str:
    """What a compaction removed, per table: superseded versions and orphan rows."""
    removed = compaction["removed"]
    parts = [
        f"{table} {counts['superseded']:,} superseded + {counts['orphans']:,} orphan"
        for table, counts in sorted(removed.items())
    ]
    text = f"{compaction['source']}: compacted {compaction['total_removed']:,} row(s)"
    text += f" ({', '.join(parts)})" if parts else ""
    if compaction["kept_orphan_rows"]:
        text += (
            f"; kept {compaction['kept_orphan_rows']:,} row(s) of"
            f" {len(compaction['kept_orphan_loads'])} unfinished load(s) not yet superseded"
        )
    return text


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
