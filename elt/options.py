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


def _split_selectors(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]):
    """dbt takes `-s a b`; click options take one value, so accept `-s "a b"` and `-s a -s b`."""
    return tuple(part for item in value for part in item.split())


select_option = click.option(
    "-s",
    "--select",
    "select",
    multiple=True,
    envvar="ELT_SELECT",
    callback=_split_selectors,
    help='dbt node selection, e.g. -s stg_shop__orders+ or -s "model_a model_b" (repeatable).',
)
