"""Options defined once and stacked as decorators; each can be set by an ELT_* variable."""

from __future__ import annotations

import click

from elt import output

FORMATS = ("human", "json")


def format_option(
    choices: tuple[str, ...] = FORMATS,
    default: str = "human",
    help: str = "Output: human (tables) or json (one JSON document, for CI).",
):
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=default,
        show_default=True,
        envvar="ELT_FORMAT",
        callback=_json_envelope,
        help=help,
    )


def _json_envelope(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """The parsed format decides: json puts the command's results in the envelope."""
    output.envelope_format(value)
    return value


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


wait_option = click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    envvar="ELT_WAIT",
    metavar="SECONDS",
    help="When another run holds the lock, wait up to SECONDS for it (default: exit 2 at once).",
)


def _known_sources(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]):
    """The named sources, all configured ones when none is named; an unknown name is a
    usage error listing the known ones."""
    from loaders import SOURCES

    unknown = [name for name in value if name not in SOURCES]
    if unknown:
        raise click.UsageError(
            f"unknown source {', '.join(unknown)}; known: {', '.join(sorted(SOURCES))}"
        )
    return value or tuple(SOURCES)


sources_argument = click.argument("sources", nargs=-1, callback=_known_sources)
