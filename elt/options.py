"""Options defined once and stacked as decorators; each can be set by an ELT_* variable."""

from __future__ import annotations

import click

FORMATS = ("human", "json")


def format_option(choices: tuple[str, ...] = FORMATS, default: str = "human"):
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=default,
        show_default=True,
        envvar="ELT_FORMAT",
        help="Output: human (tables) or json (stable shape, for CI).",
    )


select_option = click.option(
    "-s",
    "--select",
    "select",
    multiple=True,
    envvar="ELT_SELECT",
    help="dbt node selection, e.g. -s stg_shop__orders+ (repeatable).",
)
