"""`elt compact [SOURCE...]`: drop superseded versions and orphan rows of unfinished loads.

Raw is an append-only log; `elt load` compacts each source after a load that completed
something (`[sources.<name>] compact_every_loads`), so this command is for the rest:
orphans the doctor reports, a source whose compaction is switched off, a first cleanup.
"""

from __future__ import annotations

import click

from elt import output
from elt.options import format_option, sources_argument
from elt.runtime import Runtime
from runtime import locks
from runtime.audit import audited
from runtime.errors import ConfigError, EltError


@click.command(
    epilog="\b\nExamples:\n  elt compact\n  elt compact shop --format json",
)
@sources_argument
@format_option()
def compact(sources: tuple[str, ...], fmt: str) -> None:
    """Remove superseded versions and orphan rows from raw (all sources by default).

    Each source is compacted in its own transaction under its load lock: never while a
    load of it runs. Staging and marts read the same data before and after.
    """
    runtime = Runtime()
    names = sources
    with audited(runtime.warehouse, "compact", {"sources": list(names)}) as run:
        runtime.prepare_dlt()
        from loaders import compaction

        reports, errors = [], []
        for name in names:
            try:
                with locks.hold(runtime.warehouse, f"load:{name}", run=run):
                    report = compaction.compact(
                        name,
                        destination_url=runtime.warehouse.url,
                        pipelines_dir=runtime.pipelines_dir,
                    )
            except locks.LockHeld as exc:
                held = str(exc).split(": ", 1)[-1]  # `load shop: locked by ...`: who holds it
                errors.append(ConfigError(f"compact {name}: {held}", hint=exc.hint))
                run.add_failure(name, "locked", message=str(exc))
                continue
            reports.append(report)
            for table, counts in report.removed.items():
                run.rows[f"{report.dataset}.{table}"] = sum(counts.values())
        render(reports, errors, fmt)
        if errors:
            first = errors[0]
            left = [str(error).split(":")[0].removeprefix("compact ") for error in errors]
            raise EltError(
                str(first) + (f"; also not compacted: {', '.join(left[1:])}" if left[1:] else ""),
                hint=f"{first.hint}; then rerun `elt compact {' '.join(left)}`",
            )


def render(reports: list, errors: list[EltError], fmt: str) -> None:
    if fmt == "json":
        output.emit_json(
            {
                "command": "compact",
                "status": "failed" if errors else "success",
                "sources": [report.as_dict() for report in reports],
                "errors": [{"message": str(error), "hint": error.hint} for error in errors],
            }
        )
        return
    rows = [
        (report.source, f"{report.dataset}.{table}", f"{c['superseded']:,}", f"{c['orphans']:,}")
        for report in reports
        for table, c in sorted(report.removed.items())
    ]
    output.table("removed", ["source", "table", "superseded", "orphans"], rows)
    for report in reports:
        line = f"{report.source}: removed {report.total_removed:,} row(s)"
        line += f" in {output.seconds(report.seconds)}"
        if report.kept_orphan_rows:
            line += (
                f"; kept {report.kept_orphan_rows:,} row(s) of"
                f" {len(report.kept_orphan_loads)} unfinished load(s): no later load completed"
                f" yet (`elt load {report.source}` supersedes them)"
            )
        output.line(line)
