"""`elt sql QUERY`: a read-only query of the warehouse."""

from __future__ import annotations

import csv
import sys

import click

from elt import output
from elt.runtime import Runtime
from runtime.errors import ConfigError


@click.command(
    epilog='\b\nExamples:\n  elt sql "select count(*) from marts.fct_orders" --format csv\n'
    '  elt sql "select * from marts.rpt_daily_revenue limit 5"',
)
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "human", "json", "csv"]),
    default="table",
    show_default=True,
    envvar="ELT_FORMAT",
    help="table (human), json (a list of objects) or csv (header, then one line per row).",
)
@click.option("--timeout", default=60, show_default=True, help="Statement timeout in seconds.")
def sql(query: str, fmt: str, timeout: int) -> None:
    """Run QUERY in a read-only transaction and print the rows."""
    from runtime import engines

    warehouse = Runtime().warehouse
    conn = engines.read_only(warehouse, timeout=timeout)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(query)
            except engines.errors(warehouse) as exc:
                first = (getattr(exc, "pgerror", None) or str(exc)).strip().splitlines()
                raise ConfigError(
                    f"sql: {first[0] if first else type(exc).__name__}",
                    hint="elt sql is read-only; check the query",
                ) from None
            columns = [d.name for d in cur.description] if cur.description else []
            rows = cur.fetchall() if cur.description else []
    finally:
        conn.close()
    if fmt == "json":
        output.emit_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        output.table(None, columns, rows)
        output.log(f"{len(rows)} row(s)")
