"""`elt sql QUERY`: a read-only query of the warehouse."""

from __future__ import annotations

import csv
import sys

import click

from elt import output
from elt.options import format_option
from elt.runtime import Runtime
from runtime.errors import ConfigError


@click.command(
    epilog='\b\nExamples:\n  elt sql "select count(*) from marts.fct_orders" --format csv\n'
    '  elt sql "select * from marts.rpt_daily_revenue limit 5"',
)
@click.argument("query")
@format_option(
    ("table", "human", "json", "csv"),
    default="table",
    help="table (human), json (the envelope, rows as a list of objects) or csv (header, then"
    " one line per row).",
)
@click.option("--timeout", default=60, show_default=True, help="Statement timeout in seconds.")
def sql(query: str, fmt: str, timeout: int) -> None:
    """Run QUERY in a read-only transaction and print the rows."""
    import psycopg2

    warehouse = Runtime().warehouse
    conn = warehouse.connect()
    try:
        conn.set_session(readonly=True, autocommit=False)
        with conn.cursor() as cur:
            cur.execute("set local statement_timeout = %s", (timeout * 1000,))
            try:
                cur.execute(query)
            except psycopg2.Error as exc:
                first = (exc.pgerror or str(exc)).strip().splitlines()
                raise ConfigError(
                    f"sql: {first[0] if first else type(exc).__name__}",
                    hint="elt sql is read-only; check the query",
                ) from None
            columns = [d.name for d in cur.description] if cur.description else []
            rows = cur.fetchall() if cur.description else []
        conn.rollback()
    finally:
        conn.close()
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
