"""dbt's run options, passed through by `elt transform` and `elt test` as dbt spells them.

Defined once and stacked as decorators; `dbt_args()` turns the values back into dbt's
arguments, so what an analyst types to dbt works unchanged after `elt transform`.
"""

from __future__ import annotations

from typing import Any

import click

from elt.options import select_option

_PASSED = [
    click.option(
        "--exclude",
        multiple=True,
        callback=lambda _c, _p, value: tuple(p for item in value for p in item.split()),
        help="dbt nodes to leave out (any selector method), e.g. --exclude tag:marketing.",
    ),
    click.option("--vars", help="dbt vars as YAML or JSON, e.g. --vars '{lookback_days: 7}'."),
    click.option("--target", "-t", help="dbt target of dbt/profiles.yml."),
    click.option(
        "--state",
        type=click.Path(file_okay=False),
        help="Artifacts of another run (state:modified, --defer), e.g. prod's target/.",
    ),
    click.option(
        "--defer/--no-defer",
        default=None,
        help="Read unbuilt upstream models from the --state run's relations.",
    ),
    click.option("--threads", type=click.IntRange(1), help="dbt threads (default: profile's)."),
    click.option(
        "--fail-fast", "-x", is_flag=True, default=None, help="Stop at the first failure."
    ),
    click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch."),
]


def dbt_run_options(command):
    """`-s/--select` plus the dbt options above, in that order in `--help`."""
    for option in reversed(_PASSED):
        command = option(command)
    return select_option(command)


def dbt_args(options: dict[str, Any], *, full_refresh: bool = True) -> list[str]:
    """dbt's arguments for the values of `dbt_run_options` (unset ones left out)."""
    args: list[str] = []
    if options.get("select"):
        args += ["--select", *options["select"]]
    if options.get("exclude"):
        args += ["--exclude", *options["exclude"]]
    for name in ("vars", "target", "state", "threads"):
        if options.get(name) is not None:
            args += [f"--{name}", str(options[name])]
    if options.get("defer") is not None:
        args.append("--defer" if options["defer"] else "--no-defer")
    if options.get("fail_fast"):
        args.append("--fail-fast")
    if full_refresh and options.get("full_refresh"):
        args.append("--full-refresh")
    return args


def audit_args(options: dict[str, Any]) -> dict[str, Any]:
    """What `elt_audit.runs.args` records: the options set, lists as lists."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in options.items()
        if value not in (None, (), False)
    }
