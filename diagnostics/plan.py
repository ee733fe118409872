"""Which checks run: driven by what is configured, narrowed by --only and --source.

Sources come from `diagnostics.sources` (registered or configured, with their kind); the
connectivity check of each is chosen by kind here, in one table.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from diagnostics import audit, configuration, connectivity, data, dbt_checks, replication, system
from diagnostics.context import HEAVY, Context
from diagnostics.dbt_meta import source_tables
from diagnostics.results import Outcome
from diagnostics.runner import Check
from diagnostics.sources import SourceSpec

# kind -> the connectivity check of a source of that kind
CONNECTIVITY: dict[str, Callable[[Context, SourceSpec], Outcome]] = {
    "postgres": connectivity.postgres_source,
    "rest": connectivity.rest_source,
    "files": connectivity.files_source,
}

# per source, in report order: (id suffix, name, check, heavy)
PER_SOURCE_DATA: tuple[tuple[str, str, Callable[[Context, SourceSpec], Outcome], bool], ...] = (
    ("last_load", "last load", data.last_load, False),
    ("packages", "load packages", data.packages, False),
    ("incomplete_loads", "rows of unfinished loads", data.incomplete_loads, True),
    ("cursor_state", "cursor state", data.cursor_state, True),
    ("variant_columns", "variant columns", data.variant_columns, False),
    ("quarantine", "quarantine", audit.quarantine, False),
    ("row_counts", "row counts", audit.row_counts, False),
)


def _check(
    ctx: Context, id: str, section: str, name: str, run, source=None, heavy=False, hint=None
):
    return Check(
        id=id,
        section=section,
        name=name,
        run=run,
        source=source,
        timeout=ctx.timeout * HEAVY if heavy else None,
        timeout_hint=hint,
    )


def system_checks(ctx: Context) -> list[Check]:
    checks = [
        _check(ctx, "system/cpu", "system", "cpu", partial(system.cpu, ctx)),
        _check(ctx, "system/memory", "system", "memory", partial(system.memory, ctx)),
        _check(ctx, "system/load", "system", "load average", partial(system.load, ctx)),
    ]
    if ctx.warehouse_data_dir is not None:
        checks.append(
            _check(
                ctx,
                "system/disk/warehouse",
                "system",
                "disk: warehouse data",
                partial(system.disk, ctx, "warehouse data", ctx.warehouse_data_dir),
            )
        )
    checks.append(
        _check(
            ctx,
            "system/disk/pipelines",
            "system",
            "disk: dlt working dir",
            partial(system.disk, ctx, "dlt working dir", ctx.pipelines_dir),
        )
    )
    return checks


def config_checks(ctx: Context) -> list[Check]:
    checks = [
        _check(
            ctx, "config/files", "config", "files parse", partial(configuration.files_parse, ctx)
        ),
        _check(
            ctx,
            "config/warehouse",
            "config",
            "warehouse setting",
            partial(configuration.warehouse_setting, ctx),
        ),
    ]
    for spec in ctx.sources:
        checks.append(
            _check(
                ctx,
                f"config/source/{spec.name}",
                "config",
                f"source {spec.name}",
                partial(configuration.source_settings, ctx, spec),
                source=spec.name,
            )
        )
    checks += [
        _check(
            ctx,
            "config/secrets",
            "config",
            "no committed secrets",
            partial(configuration.no_committed_secrets, ctx),
        ),
        _check(
            ctx,
            "config/dbt_project",
            "config",
            "dbt project",
            partial(configuration.dbt_project, ctx),
        ),
        _check(
            ctx,
            "config/dbt_packages",
            "config",
            "dbt packages",
            partial(configuration.dbt_packages, ctx),
        ),
    ]
    return checks


def connectivity_checks(ctx: Context) -> list[Check]:
    checks = [
        _check(
            ctx,
            "connectivity/warehouse",
            "connectivity",
            "warehouse",
            partial(connectivity.warehouse, ctx),
            hint="the warehouse accepts but does not answer: check the server",
        )
    ]
    for spec in ctx.sources:
        check = CONNECTIVITY.get(spec.kind or "")
        if check is None:
            continue  # the configuration check reports a source of unknown kind
        checks.append(
            _check(
                ctx,
                f"connectivity/source/{spec.name}",
                "connectivity",
                f"{spec.name} ({spec.kind})",
                partial(check, ctx, spec),
                source=spec.name,
                hint=f"the {spec.name} source does not answer: check it, then"
                f" `elt doctor --source {spec.name}`",
            )
        )
    return checks


def data_checks(ctx: Context) -> list[Check]:
    checks = []
    freshness: dict[str, list] = {}
    for table in source_tables(ctx.project):
        freshness.setdefault(table.source, []).append(table)
    for spec in ctx.sources:
        if not spec.registered:
            continue  # `elt load` cannot load it: the configuration check says so
        for suffix, name, run, heavy in PER_SOURCE_DATA:
            checks.append(
                _check(
                    ctx,
                    f"data/{spec.name}/{suffix}",
                    "data",
                    name,
                    partial(run, ctx, spec),
                    spec.name,
                    heavy,
                )
            )
        if replication.applies(ctx, spec):
            checks.append(
                _check(
                    ctx,
                    f"data/{spec.name}/replication_slot",
                    "data",
                    "replication slot",
                    partial(replication.slot, ctx, spec),
                    spec.name,
                )
            )
        for dbt_source, tables in list(freshness.items()):
            if tables[0].schema == spec.dataset:
                checks.append(_freshness(ctx, dbt_source, freshness.pop(dbt_source), spec.name))
    checks += [
        _freshness(ctx, dbt_source, tables, None) for dbt_source, tables in freshness.items()
    ]
    checks += [
        _check(
            ctx,
            "data/transform",
            "data",
            "last transform",
            partial(audit.last_run, ctx, "transform"),
        ),
        _check(ctx, "data/test", "data", "last test", partial(audit.last_run, ctx, "test")),
        _check(
            ctx,
            "data/mart_keys",
            "data",
            "mart keys",
            partial(dbt_checks.mart_keys, ctx),
            heavy=True,
        ),
        _check(ctx, "data/mart_pii", "data", "mart PII", partial(dbt_checks.mart_pii, ctx)),
    ]
    return checks


def _freshness(ctx: Context, dbt_source: str, tables: list, elt_source: str | None) -> Check:
    """dbt source freshness, attributed to the elt source loading its schema if any."""
    return _check(
        ctx,
        f"data/{elt_source}/freshness" if elt_source else f"data/dbt_source/{dbt_source}/freshness",
        "data",
        "freshness" if elt_source else f"freshness of dbt source {dbt_source}",
        partial(dbt_checks.freshness, ctx, dbt_source, tables, elt_source),
        source=elt_source,
    )


SECTION_CHECKS = {
    "system": system_checks,
    "config": config_checks,
    "connectivity": connectivity_checks,
    "data": data_checks,
}


def plan(ctx: Context, *, only: tuple[str, ...] = (), source: str | None = None) -> list[Check]:
    """The checks to run, in report order (sections, then sources in registration order)."""
    checks = []
    for section, build in SECTION_CHECKS.items():
        if only and section not in only:
            continue
        checks += build(ctx)
    if source is not None:
        checks = [check for check in checks if check.source == source]
    return checks
