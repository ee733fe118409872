"""`elt doctor`: system, configuration, connectivity and data diagnostics in one report.

The checks live in `diagnostics/` and return data; this renders them (a table per
section, or JSON), maps them to an exit code and writes the incident bundle.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

import click

from elt import output
from elt.options import format_option
from runtime import metrics
from runtime.errors import ConfigError, DataError

SECTIONS = ("system", "config", "connectivity", "data")
JSON_SHAPE_VERSION = 1
STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red", "SKIP": "dim"}


@click.command(
    epilog="\b\nExamples:\n  elt doctor\n  elt doctor --only connectivity --only data\n"
    "  elt doctor --source shop --format json\n  elt doctor --strict        (WARN fails too)\n"
    "  elt doctor --bundle incident.tar.gz",
)
@click.option(
    "--only",
    type=click.Choice(SECTIONS),
    multiple=True,
    envvar="ELT_DOCTOR_ONLY",
    help="Run only these sections (repeatable).",
)
@click.option(
    "--source", "source", envvar="ELT_DOCTOR_SOURCE", help="Only the checks of this source."
)
@click.option("--strict", is_flag=True, envvar="ELT_DOCTOR_STRICT", help="Exit 1 on WARN too.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    envvar="ELT_DOCTOR_TIMEOUT",
    help="Seconds each check may take (default: [doctor] timeout_seconds, 5).",
)
@click.option(
    "--bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write an incident bundle (.tar.gz or .zip) without secrets.",
)
@format_option()
@click.pass_context
def doctor(
    click_ctx: click.Context,
    only: tuple[str, ...],
    source: str | None,
    strict: bool,
    timeout: float | None,
    bundle: Path | None,
    fmt: str,
) -> None:
    """Check the system, configuration, connectivity and data; say what to do next.

    Exit 0 when nothing FAILs, 1 when a check FAILs (or WARNs, with --strict), 2 when a
    configuration check FAILs.
    """
    from diagnostics.plan import plan
    from diagnostics.runner import run_checks

    if bundle is not None and not bundle.name.endswith((".tar.gz", ".tgz", ".zip")):
        raise click.BadParameter("name it .tar.gz or .zip", param_hint="--bundle")
    started = time.monotonic()
    ctx = build_context(timeout)
    known = [spec.name for spec in ctx.sources]
    if source is not None and source not in known:
        raise click.UsageError(f"unknown source {source}; known: {', '.join(known)}")
    results = run_checks(plan(ctx, only=only, source=source), timeout=ctx.timeout)
    code = exit_code(results, strict=strict)
    doc = payload(results, code=code, strict=strict, seconds=time.monotonic() - started)
    metrics.publish_doctor(results, doc["seconds"])  # [metrics] textfile / Pushgateway
    if (click_ctx.obj or {}).get("debug"):
        for result in results:
            if result.error is not None:
                output.log(f"{result.id}:")
                traceback.print_exception(result.error)
    if fmt == "json":
        output.emit_json(doc)
    else:
        render(results, doc)
    if bundle is not None:
        write_bundle(ctx, doc, bundle)
    if code:
        first = next(
            r for r in results if r.status == ("FAIL" if doc["counts"]["FAIL"] else "WARN")
        )
        counts = ", ".join(f"{doc['counts'][s]} {s}" for s in ("FAIL", "WARN") if doc["counts"][s])
        error = ConfigError if code == 2 else DataError
        raise error(f"doctor: {counts}; first: {first.id}: {first.detail}", hint=first.hint)


def build_context(timeout: float | None):
    """The checks' shared inputs; resolving them starts nothing and writes nothing."""
    from diagnostics import project_config
    from diagnostics.context import Context
    from diagnostics.sources import configured_sources
    from elt.runtime import Runtime
    from runtime import engines

    runtime = Runtime()
    config = project_config.load(runtime.project)
    warehouse, problem, misconfigured = None, None, False
    url_set = bool(os.environ.get(engines.URL_ENV, "").strip())
    try:
        warehouse = engines.resolve(runtime.project, start=False)
    except ConfigError as exc:
        misconfigured = url_set
        hint = exc.hint or "check ELT_WAREHOUSE_URL"
        if not misconfigured:
            hint = 'start it: `elt sql "select 1"` (any elt command starts the embedded warehouse)'
        problem = (str(exc), hint)
    # unset settings fall back on the defaults hook's (the demo's), started or not: a dead
    # demo API is a connectivity FAIL, not a configuration one
    defaults = runtime.defaults_for_unset(start=False, warehouse=warehouse)
    return Context(
        project=runtime.project,
        config=config,
        sources=configured_sources(config.sources),
        pipelines_dir=runtime.pipelines_dir,
        timeout=timeout or config.doctor("timeout_seconds"),
        warehouse=warehouse,
        warehouse_problem=problem,
        warehouse_misconfigured=misconfigured,
        warehouse_data_dir=_data_dir(runtime.project, warehouse, url_set),
        source_defaults=defaults,
    )


def _data_dir(project, warehouse, url_set: bool):
    """Where the warehouse keeps its data on this machine (for disk space), if it does."""
    from runtime import embedded

    file = getattr(warehouse, "path", None)  # a file engine (DuckDB)
    if file is not None:
        return file.parent
    return embedded.pgdata(project) if not url_set else None


def exit_code(results: list, *, strict: bool) -> int:
    statuses = {(r.section, str(r.status)) for r in results}
    if ("config", "FAIL") in statuses:
        return 2
    if any(status == "FAIL" for _, status in statuses):
        return 1
    if strict and any(status == "WARN" for _, status in statuses):
        return 1
    return 0


def payload(results: list, *, code: int, strict: bool, seconds: float) -> dict[str, Any]:
    """The documented JSON shape (README: `elt doctor --format json`)."""
    from diagnostics.results import Status, worst

    counts = {str(status): 0 for status in Status}
    for result in results:
        counts[str(result.status)] += 1
    return {
        "command": "doctor",
        "version": JSON_SHAPE_VERSION,
        "status": "success" if code == 0 else "failed",
        "exit_code": code,
        "worst": str(worst(results)),
        "strict": strict,
        "seconds": round(seconds, 3),
        "counts": counts,
        "checks": [result.as_dict() for result in results],
    }


def render(results: list, doc: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    for section in SECTIONS:
        rows = [r for r in results if r.section == section]
        if not rows:
            continue
        grid = Table(title=section, title_justify="left", show_edge=False, header_style="bold")
        for column in ("status", "check", "detail", "next"):
            grid.add_column(column, overflow="fold")
        for r in rows:
            status = str(r.status)
            name = f"{r.source}: {r.name}" if r.source and section == "data" else r.name
            grid.add_row(
                f"[{STYLE[status]}]{status}[/]",
                escape(name),
                escape(r.detail),
                escape(r.hint or ""),
            )
        output.stdout.print(grid)
    counts = ", ".join(f"{n} {s}" for s, n in doc["counts"].items() if n)
    output.line(f"doctor: {counts} in {output.seconds(doc['seconds'])}")


def write_bundle(ctx, doc: dict[str, Any], target: Path) -> None:
    from diagnostics import bundle

    files = bundle.collect(ctx, doc)
    try:
        bundle.write(files, target)
    except OSError as exc:
        raise ConfigError(
            f"doctor: cannot write the bundle {target}: {exc.strerror}",
            hint="choose a writable path for --bundle",
        ) from None
    output.log(f"bundle: {target} ({len(files)} files, secrets masked)")
