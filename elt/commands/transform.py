"""`elt transform` and `elt test`: one gated dbt build; dbt tests and freshness."""

from __future__ import annotations

from typing import Any

import click

from elt import output
from elt.blockers import lock_holders
from elt.dbt_options import audit_args, dbt_args, dbt_run_options
from elt.dbt_runner import (
    DbtRun,
    NodeResult,
    invoke,
    manifest_graph,
    parse,
    root_cause,
    split_cause,
)
from elt.options import format_option, wait_option
from elt.runtime import Runtime
from runtime import locks
from runtime.audit import Run, audited
from runtime.errors import ConfigError, DataError, UnavailableError

_FAILED = {"error", "fail", "runtime error"}
TRANSFORM_LOCK = "transform"  # one writer of staging and marts: transform and test share it


@click.command(
    epilog="\b\nExamples:\n  elt transform\n  elt transform -s fct_orders+\n"
    "  elt transform -s state:modified+ --state prod-target --defer\n"
    "  elt transform -s stg_shop__orders+ --vars '{lookback_days: 7}' --full-refresh",
)
@dbt_run_options
@wait_option
@format_option()
def transform(fmt: str, wait: float, **options: Any) -> None:
    """Build and test seeds, models and snapshots in DAG order: one gated `dbt build`.

    A model downstream of a failing test is skipped and keeps its previous contents. Marts
    are write-audit-publish: built and tested in `marts__wap`, moved into `marts` (one
    transaction) only when their tests pass, so readers never see a build that failed them.
    A model reading a raw column whose type changed (a variant column it does not handle)
    is not built, nor is anything downstream of it. Exit 1 names the failing tests and the
    models held back; an empty selection is a usage error (exit 2).
    """
    runtime = Runtime()
    with (
        audited(runtime.warehouse, "transform", audit_args(options)) as audit,
        locks.hold(runtime.warehouse, TRANSFORM_LOCK, run=audit, wait=wait),
    ):
        runtime.prepare_dbt()
        drift, manifest = unhandled_type_changes(runtime)
        skipped = sorted({model for change in drift for model in change.models})
        if skipped:
            options["exclude"] = (*options["exclude"], *(f"{model}+" for model in skipped))
        try:
            run = invoke(
                runtime.dbt_dir,
                ["build", *dbt_args(options)],
                quiet_progress=fmt == "json",
                manifest=manifest,
                rerun=rerun_command("transform", options),
            )
        except ConfigError as exc:
            if "lock timeout" not in str(exc):
                raise
            raise _blocked_publish(runtime, options) from None
        _require_selection("transform", [run], options)
        _finish("transform", [run], fmt, audit, drift, options, runtime)


@click.command(
    epilog="\b\nExamples:\n  elt test\n  elt test -s fct_orders\n  elt test -s test_type:unit\n"
    "  elt test --format json",
)
@dbt_run_options
@wait_option
@format_option()
def test(fmt: str, wait: float, **options: Any) -> None:
    """Run source freshness, dbt data tests and unit tests; exit 1 when any fails.

    Also fails while a raw column changed type and a model reading it does not handle the
    variant column that holds the new values.
    """
    select = options["select"]
    runtime = Runtime()
    with (
        audited(runtime.warehouse, "test", audit_args(options)) as audit,
        locks.hold(runtime.warehouse, TRANSFORM_LOCK, run=audit, wait=wait),
    ):
        runtime.prepare_dbt()
        drift, manifest = unhandled_type_changes(runtime)
        runs = []
        if not select or any(s.startswith("source:") for s in select):
            freshness = [s for s in select if s.startswith("source:")]
            fresh_args = ["source", "freshness", *(["--select", *freshness] if freshness else [])]
            for name in ("vars", "target", "threads"):
                if options.get(name) is not None:
                    fresh_args += [f"--{name}", str(options[name])]
            runs.append(
                invoke(runtime.dbt_dir, fresh_args, quiet_progress=fmt == "json", manifest=manifest)
            )
        runs.append(
            invoke(
                runtime.dbt_dir,
                ["test", *dbt_args(options, full_refresh=False)],
                quiet_progress=fmt == "json",
                manifest=manifest,
                rerun=rerun_command("test", options),
            )
        )
        _require_selection("test", runs, options)
        _finish("test", runs, fmt, audit, drift, options, runtime)


def _blocked_publish(runtime: Runtime, options: dict[str, Any]) -> UnavailableError:
    """The publish gave up on a reader's lock (lock_timeout): name who holds it."""
    holders = lock_holders(runtime.warehouse, ["marts"])
    who = "; ".join(holder.describe() for holder in holders[:2]) or "another session"
    return UnavailableError(
        "transform: publishing the marts gave up waiting for a lock (lock_timeout_seconds):"
        f" {who}; the marts are as they were",
        hint=f"rerun `elt {rerun_command('transform', options)}` once it is released"
        " (pg_terminate_backend(pid) ends it)",
    )


def rerun_command(command: str, options: dict[str, Any]) -> str:
    """The elt command that reruns this selection, for hints."""
    from shlex import join

    return join([command, *dbt_args(options, full_refresh=False)])


def _require_selection(command: str, runs: list[DbtRun], options: dict[str, Any]) -> None:
    """A selection that matches nothing is a typo, not a success (cron would stay green)."""
    if not options["select"] and not options["exclude"]:
        return
    if any(run.nodes for run in runs):
        return
    selected = " ".join(options["select"]) or "(all)"
    raise ConfigError(
        f"{command}: -s {selected} selects no node"
        + (f" (after --exclude {' '.join(options['exclude'])})" if options["exclude"] else ""),
        hint=f"`elt dbt -- ls -s {selected}` lists what it matches; check the model's name",
    )


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


def _finish(
    command: str,
    runs: list[DbtRun],
    fmt: str,
    audit: Run,
    drift: list[Any],
    options: dict[str, Any],
    runtime: Runtime,
) -> None:
    nodes = [node for run in runs for node in run.nodes]
    failed = [node for node in nodes if node.status in _FAILED]
    warned = [node for node in nodes if node.status == "warn"]
    held_back = _held_back(runs, nodes)
    seconds = sum(run.seconds for run in runs)
    ok = not failed and not drift and all(run.success for run in runs)
    status = "success" if ok else "failed"
    for change in drift:
        audit.add_failure(
            change.variant.qualified, "unhandled_type_change", None, change.describe()
        )
    for node in failed:
        audit.add_failure(node.name, node.status, node.failures, node.message)
    published = [relation for run in runs for relation in run.published]
    if fmt == "json":
        output.emit_json(
            {
                "command": command,
                "status": status,
                "seconds": round(seconds, 3),
                "counts": _counts(nodes),
                "nodes": [node.as_dict() for node in nodes],
                "published": published,
                "held_back": held_back,
                "unhandled_type_changes": [change.as_dict() for change in drift],
            }
        )
    else:
        _render(command, nodes, failed, warned, seconds)
        for change in drift:
            output.line(f"unhandled type change: {change.describe()}")
    if status == "failed":
        raise _failure(command, nodes, failed, drift, held_back, options, runtime)


def _held_back(runs: list[DbtRun], nodes: list[NodeResult]) -> dict[str, str]:
    """Models whose readers keep the previous contents, and why: skipped by dbt (upstream
    failed) or built but not published (their own test failed)."""
    held = {
        node.name: "skipped: upstream failed"
        for node in nodes
        if node.status == "skipped" and node.resource_type in ("model", "snapshot", "seed")
    }
    for run in runs:
        held.update(run.held_back)
    return held


def _failure(
    command: str,
    nodes: list[NodeResult],
    failed: list[NodeResult],
    drift: list[Any],
    held_back: dict[str, str],
    options: dict[str, Any],
    runtime: Runtime,
) -> DataError:
    """One line: the type change first (it explains later failures), then what failed (tests
    by name, models with their file and cause), then the models held back."""
    parts = []
    if drift:
        parts.append(drift[0].describe())
        if command == "transform":
            parts.append(f"{', '.join(drift[0].models)} and downstream not built")
    # a unit test that errors (not fails) found its model broken: name the model
    broken = [n for n in failed if n.resource_type == "unit_test" and n.status == "error"]
    tests = [n for n in failed if n.resource_type in ("test", "unit_test") and n not in broken]
    others = [node for node in failed if node not in tests and node not in broken]
    if tests:
        named = ", ".join(f"{node.name} ({_cause(node)})" for node in tests[:3])
        more = f" and {len(tests) - 3} more" if len(tests) > 3 else ""
        parts.append(f"{len(tests)} test{'s' * (len(tests) != 1)} failed: {named}{more}")
    for node in others[:2]:
        parts.append(_cause(node) if node.path else f"{node.name}: {_cause(node)}")
    for node in broken[:2]:
        parts.append(_broken_model(node, runtime))
    if not failed and not drift:
        parts.append("dbt reported a failure (see the lines above)")
    if any("lock timeout" in (node.message or "") for node in failed):
        holders = lock_holders(runtime.warehouse, ["marts", "staging"])
        parts.append(
            "gave up waiting for a lock"
            + (f": {holders[0].describe()}" if holders else "")
            + "; the marts are as they were"
        )
    if held_back:
        names = sorted(held_back)
        parts.append(
            f"held back (readers keep the previous contents): {', '.join(names[:6])}"
            + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        )
    first = (broken or others or tests or [None])[0]
    model = _model_of(first) if first is not None else None
    rerun = f"elt transform -s {model}+" if model else f"elt {rerun_command(command, options)}"
    hint = f"fix it, then `{rerun}`"
    if failed and "out of sync" in (failed[0].message or ""):  # on_schema_change: fail
        hint = f"rebuild it: `elt transform --full-refresh -s {failed[0].name}+`"
    if drift:
        hint = (
            f"handle {drift[0].variant.column} in {drift[0].models[0]} (coalesce it into"
            f" {drift[0].variant.base_column}: macros/coalesce_variant.sql), then `elt transform`"
        )
    return DataError(f"{command}: " + "; ".join(parts), hint=hint)


def _broken_model(node: NodeResult, runtime: Runtime) -> str:
    """`model (its .sql): cause (unit test name)` for a unit test that could not run its model."""
    _, cause = split_cause(node.message or node.status)
    model = node.attached_to or node.name
    found = sorted((runtime.dbt_dir / "models").rglob(f"{model}.sql"))
    path = found[0].relative_to(runtime.dbt_dir) if found else node.path
    return f"{model} ({path}): {cause} (unit test {node.name})"


def _model_of(node: NodeResult) -> str | None:
    """The model a failing node is about: itself, or the model a test is attached to."""
    if node.resource_type in ("model", "snapshot", "seed"):
        return node.name
    return node.attached_to


def _cause(node: NodeResult) -> str:
    if node.failures:
        return f"{node.failures} failing rows"
    return root_cause(node.message or node.status)[:300]


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
