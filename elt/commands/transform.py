"""`elt transform` and `elt test`: dbt build of models and seeds; dbt tests and freshness."""

from __future__ import annotations

import click

from elt import output
from elt.dbt_runner import DbtRun, NodeResult, invoke
from elt.errors import DataError
from elt.options import format_option, select_option
from elt.runtime import Runtime

_FAILED = {"error", "fail", "runtime error"}


@click.command(
    epilog="\b\nExamples:\n  elt transform\n  elt transform -s stg_shop__orders+\n"
    "  elt transform --full-refresh",
)
@select_option
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@format_option()
def transform(select: tuple[str, ...], full_refresh: bool, fmt: str) -> None:
    """Build the dbt seeds and models (staging, marts); tests run with `elt test`."""
    runtime = Runtime()
    runtime.prepare_dbt()
    args = ["build", "--resource-type", "seed", "--resource-type", "model"]
    args += ["--resource-type", "snapshot"]
    args += _selection(select) + (["--full-refresh"] if full_refresh else [])
    run = invoke(runtime.dbt_dir, args, quiet_progress=fmt == "json")
    _finish("transform", [run], fmt)


@click.command(
    epilog="\b\nExamples:\n  elt test\n  elt test -s fct_orders\n  elt test --format json",
)
@select_option
@format_option()
def test(select: tuple[str, ...], fmt: str) -> None:
    """Run source freshness, dbt data tests and unit tests; exit 1 when any fails."""
    runtime = Runtime()
    runtime.prepare_dbt()
    runs = []
    if not select or any(s.startswith("source:") for s in select):
        freshness = [s for s in select if s.startswith("source:")]
        runs.append(
            invoke(
                runtime.dbt_dir,
                ["source", "freshness", *_selection(tuple(freshness))],
                quiet_progress=fmt == "json",
            )
        )
    runs.append(
        invoke(runtime.dbt_dir, ["test", *_selection(select)], quiet_progress=fmt == "json")
    )
    _finish("test", runs, fmt)


def _selection(select: tuple[str, ...]) -> list[str]:
    return ["--select", *select] if select else []


def _finish(command: str, runs: list[DbtRun], fmt: str) -> None:
    nodes = [node for run in runs for node in run.nodes]
    failed = [node for node in nodes if node.status in _FAILED]
    warned = [node for node in nodes if node.status == "warn"]
    seconds = sum(run.seconds for run in runs)
    status = "failed" if failed or not all(run.success for run in runs) else "success"
    if fmt == "json":
        output.emit_json(
            {
                "command": command,
                "status": status,
                "seconds": round(seconds, 3),
                "counts": _counts(nodes),
                "nodes": [node.as_dict() for node in nodes],
            }
        )
    else:
        _render(command, nodes, failed, warned, seconds)
    if status == "failed":
        first = failed[0] if failed else None
        raise DataError(
            f"{command}: {len(failed)} of {len(nodes)} nodes failed"
            + (f"; first: {first.name} ({_cause(first)})" if first else ""),
            hint="see the failures above; `elt test -s <name>` reruns one",
        )


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
