"""`elt transform` and `elt test`: dbt build of models and seeds; dbt tests and freshness."""

from __future__ import annotations

from typing import Any

import click

from elt import output
from elt.dbt_runner import DbtRun, NodeResult, invoke, manifest_graph, parse
from elt.options import format_option, select_option, wait_option
from elt.runtime import Runtime
from runtime import locks
from runtime.audit import Run, audited
from runtime.errors import DataError

_FAILED = {"error", "fail", "runtime error"}
TRANSFORM_LOCK = "transform"  # one writer of staging and marts: transform and test share it


@click.command(
    epilog="\b\nExamples:\n  elt transform\n  elt transform -s stg_shop__orders+\n"
    "  elt transform --full-refresh",
)
@select_option
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@wait_option
@format_option()
def transform(select: tuple[str, ...], full_refresh: bool, wait: float, fmt: str) -> None:
    """Build the dbt seeds and models (staging, marts); tests run with `elt test`.

    A model reading a raw column whose type changed (a variant column it does not handle)
    is not built, nor is anything downstream of it: the rest is, and the exit code is 1.
    """
    runtime = Runtime()
    audit_args = {"select": list(select), "full_refresh": full_refresh}
    with (
        audited(runtime.warehouse, "transform", audit_args) as audit,
        locks.hold(runtime.warehouse, TRANSFORM_LOCK, run=audit, wait=wait),
    ):
        runtime.prepare_dbt()
        drift, manifest = unhandled_type_changes(runtime)
        args = ["build", "--resource-type", "seed", "--resource-type", "model"]
        args += ["--resource-type", "snapshot"]
        args += _selection(select) + (["--full-refresh"] if full_refresh else [])
        skipped = sorted({model for change in drift for model in change.models})
        if skipped:
            args += ["--exclude", *(f"{model}+" for model in skipped)]
        run = invoke(runtime.dbt_dir, args, quiet_progress=fmt == "json", manifest=manifest)
        _finish("transform", [run], fmt, audit, drift)


@click.command(
    epilog="\b\nExamples:\n  elt test\n  elt test -s fct_orders\n  elt test --format json",
)
@select_option
@wait_option
@format_option()
def test(select: tuple[str, ...], wait: float, fmt: str) -> None:
    """Run source freshness, dbt data tests and unit tests; exit 1 when any fails.

    Also fails while a raw column changed type and a model reading it does not handle the
    variant column that holds the new values.
    """
    runtime = Runtime()
    with (
        audited(runtime.warehouse, "test", {"select": list(select)}) as audit,
        locks.hold(runtime.warehouse, TRANSFORM_LOCK, run=audit, wait=wait),
    ):
        runtime.prepare_dbt()
        drift, manifest = unhandled_type_changes(runtime)
        runs = []
        if not select or any(s.startswith("source:") for s in select):
            freshness = [s for s in select if s.startswith("source:")]
            runs.append(
                invoke(
                    runtime.dbt_dir,
                    ["source", "freshness", *_selection(tuple(freshness))],
                    quiet_progress=fmt == "json",
                    manifest=manifest,
                )
            )
        runs.append(
            invoke(
                runtime.dbt_dir,
                ["test", *_selection(select)],
                quiet_progress=fmt == "json",
                manifest=manifest,
            )
        )
        _finish("test", runs, fmt, audit, drift)


def unhandled_type_changes(runtime: Runtime) -> tuple[list[Any], Any]:
    """Variant columns in raw_<source> tables that models read around, and dbt's manifest.

    The manifest (parsed only when a variant column exists) is handed on to the dbt run.
    """
    from diagnostics.schema_drift import unhandled_variants, variant_columns
    from loaders import SOURCES, dataset_name

    conn = runtime.warehouse.connect()
    try:
        variants = variant_columns(conn, [dataset_name(source) for source in SOURCES])
    finally:
        conn.close()
    if not variants:
        return [], None
    manifest = parse(runtime.dbt_dir)
    return unhandled_variants(variants, manifest_graph(manifest)), manifest


def _selection(select: tuple[str, ...]) -> list[str]:
    return ["--select", *select] if select else []


def _finish(command: str, runs: list[DbtRun], fmt: str, audit: Run, drift: list[Any]) -> None:
    nodes = [node for run in runs for node in run.nodes]
    failed = [node for node in nodes if node.status in _FAILED]
    warned = [node for node in nodes if node.status == "warn"]
    seconds = sum(run.seconds for run in runs)
    ok = not failed and not drift and all(run.success for run in runs)
    status = "success" if ok else "failed"
    for change in drift:
        audit.add_failure(
            change.variant.qualified, "unhandled_type_change", None, change.describe()
        )
    for node in failed:
        audit.add_failure(node.name, node.status, node.failures, node.message)
    if fmt == "json":
        output.emit_json(
            {
                "command": command,
                "status": status,
                "seconds": round(seconds, 3),
                "counts": _counts(nodes),
                "nodes": [node.as_dict() for node in nodes],
                "unhandled_type_changes": [change.as_dict() for change in drift],
            }
        )
    else:
        _render(command, nodes, failed, warned, seconds)
        for change in drift:
            output.line(f"unhandled type change: {change.describe()}")
    if status == "failed":
        raise _failure(command, nodes, failed, drift)


def _failure(command: str, nodes: list[NodeResult], failed: list[NodeResult], drift) -> DataError:
    """One line: the type change first (it explains later failures), else the first node."""
    parts = []
    if drift:
        parts.append(drift[0].describe())
        if command == "transform":
            parts.append(f"{', '.join(drift[0].models)} and downstream not built")
    if failed or not drift:
        first = failed[0] if failed else None
        parts.append(
            f"{len(failed)} of {len(nodes)} nodes failed"
            + (f"; first: {first.name} ({_cause(first)})" if first else "")
        )
    hint = "see the failures above; `elt test -s <name>` reruns one"
    if failed and "out of sync" in (failed[0].message or ""):  # on_schema_change: fail
        hint = f"rebuild it: `elt transform --full-refresh -s {failed[0].name}+`"
    if drift:
        hint = (
            f"handle {drift[0].variant.column} in {drift[0].models[0]} (coalesce it into"
            f" {drift[0].variant.base_column}: macros/coalesce_variant.sql), then `elt transform`"
        )
    return DataError(f"{command}: " + "; ".join(parts), hint=hint)


def _cause(node: NodeResult) -> str:
    if node.failures:
        return f"{node.failures} failing rows"
    return (node.message or node.status).splitlines()[0][:200]


def _counts(nodes: list[NodeResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node.status] = counts.get(node.status, 0) + 1
    return counts


def _render(command, nodes, failed, warned, seconds) -> None:
    shown = failed + warned if len(nodes) > 40 else nodes
    rows = [
        (
            node.resource_type,
            node.name,
            node.status,
            "" if node.rows_affected is None else f"{node.rows_affected:,}",
            _cause(node) if node in failed or node in warned else "",
            output.seconds(node.seconds),
        )
        for node in shown
    ]
    if rows:
        output.table(command, ["type", "name", "status", "rows", "detail", "time"], rows)
    counts = ", ".join(f"{count} {status}" for status, count in sorted(_counts(nodes).items()))
    output.line(f"{command}: {len(nodes)} nodes ({counts or 'none'}) in {output.seconds(seconds)}")
