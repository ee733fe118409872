"""`elt sql QUERY`: a read-only query of the warehouse."""

from __future__ import annotations

import csv
import sys

import click

from elt import output
from elt.options import format_option
from elt.runtime import Runtime


@click.command(
    epilog='\b\nExamples:\n  elt sql "select count(*) from marts.fct_orders" --format csv\n'
    '  elt sql "select * from marts.rpt_daily_revenue limit 5"\n'
    '  elt sql --role doctor "select status, count(*) from elt_audit.runs group by 1"',
)
@click.argument("query")
@format_option(
    ("table", "human", "json", "csv"),
    default="table",
    help="table (human), json (the envelope, rows as a list of objects) or csv (header, then"
    " one line per row).",
)
@click.option("--timeout", default=60, show_default=True, help="Statement timeout in seconds.")
@click.option(
    "--role",
    type=click.Choice(["analyst", "doctor"]),
    default="analyst",
    show_default=True,
    help="analyst reads staging and marts; doctor (on-call) also raw_* and elt_audit.",
)
def sql(query: str, fmt: str, timeout: int, role: str) -> None:
    """Run QUERY, one read-only statement, as the analyst (or the doctor) and print the rows."""
    from runtime import readonly

    runtime = Runtime()
    warehouse = runtime.warehouse if role == "analyst" else runtime.admin_warehouse.as_role(role)
    columns, rows = readonly.run(warehouse, query, timeout)
    if fmt == "json":
        output.emit_json(
            {"columns": columns, "rows": [dict(zip(columns, row, strict=True)) for row in rows]}
        )
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        output.table(None, columns, rows)
        output.log(f"{len(rows)} row(s)")
