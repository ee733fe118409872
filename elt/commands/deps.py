"""`elt deps`: install the dbt packages, from the dbt hub when it answers, else the local subset."""

from __future__ import annotations

import click

from elt import dbt_packages, output
from elt.options import format_option
from elt.runtime import Runtime
from runtime.errors import EltError


@click.command(
    epilog="\b\nExamples:\n  elt deps\n  elt deps --offline\n  elt deps --format json",
)
@click.option("--offline", is_flag=True, help="Do not try the dbt hub: install the local subset.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds to wait for the dbt hub.",
)
@format_option()
def deps(offline: bool, timeout: float, fmt: str) -> None:
    """Install dbt/packages.yml's packages; where the hub does not answer, the local subset.

    `elt transform` and `elt test` never call the hub: they install the local subset
    themselves when no package is installed. Run this once to switch to the hub versions.
    """
    runtime = Runtime()
    dbt_dir = runtime.dbt_dir
    hub = not offline and dbt_packages.hub_reachable(timeout)
    note = "offline" if offline else ("hub answered" if hub else "hub did not answer")
    if hub:
        from elt.dbt_runner import invoke

        dbt_packages.remove_local_copies(dbt_dir)
        try:
            installed = invoke(dbt_dir, ["deps"], quiet_progress=fmt == "json").success
        except EltError as exc:
            output.log(f"deps: dbt deps failed ({exc}); falling back to the local subset")
            installed = False
        if not installed:
            note = "dbt deps failed"
    packages = dbt_packages.ensure_installed(dbt_dir)
    if fmt == "json":
        output.emit_json(
            {
                "command": "deps",
                "status": "success",
                "hub": dbt_packages.hub_url(),
                "note": note,
                "packages": [package.as_dict() for package in packages],
            }
        )
        return
    output.table(
        f"dbt packages ({note})",
        ["package", "installed from"],
        [
            (
                package.name,
                "dbt hub" if package.source == "hub" else "local subset (dbt/packages_local)",
            )
            for package in packages
        ],
    )
