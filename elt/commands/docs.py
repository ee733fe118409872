"""`elt docs [--serve]`: dbt's documentation site, catalog included, and where it is."""

from __future__ import annotations

import click

from elt import output
from elt.dbt_runner import invoke
from elt.options import format_option
from elt.runtime import Runtime


@click.command(
    epilog="\b\nExamples:\n  elt docs\n  elt docs --serve --port 8080",
)
@click.option("--serve", is_flag=True, help="Then serve the site (Ctrl-C stops it).")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@format_option()
def docs(serve: bool, port: int, fmt: str) -> None:
    """Generate dbt's docs (models, tests, lineage and the warehouse catalog)."""
    runtime = Runtime()
    runtime.prepare_dbt()
    invoke(runtime.dbt_dir, ["docs", "generate"], quiet_progress=fmt == "json", rerun="docs")
    index = runtime.dbt_dir / "target" / "index.html"
    catalog = runtime.dbt_dir / "target" / "catalog.json"
    if fmt == "json":
        output.emit_json(
            {"command": "docs", "status": "success", "index": str(index), "catalog": str(catalog)}
        )
    else:
        output.line(f"docs: {index} (catalog: {catalog})")
    if serve:
        from dbt.cli.main import dbtRunner

        output.log(f"docs: serving on http://127.0.0.1:{port}/ (Ctrl-C stops it)")
        dbtRunner().invoke(
            [
                "docs",
                "serve",
                "--project-dir",
                str(runtime.dbt_dir),
                "--profiles-dir",
                str(runtime.dbt_dir),
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--no-browser",
            ]
        )
