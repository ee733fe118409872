"""`elt stop`: stop what elt runs in the background, the embedded warehouse and the demo API."""

from __future__ import annotations

import click

from elt import output
from elt.options import format_option


@click.command(epilog="\b\nExamples:\n  elt stop\n  make clean    (calls it)")
@format_option()
def stop(fmt: str) -> None:
    """Stop the embedded warehouse and the demo payments API of this project (.elt/).
    Nothing is lost: the next elt command starts the warehouse again, `elt demo` the API."""
    from demo import payments_api
    from elt.runtime import Runtime
    from runtime import embedded

    runtime = Runtime()
    api_pid = payments_api.stop(runtime.home)
    warehouse = embedded.stop(runtime.project)
    if fmt == "json":
        output.emit_json(
            {
                "command": "stop",
                "status": "success",
                "payments_api_stopped": api_pid is not None,
                "payments_api_pid": api_pid,
                "warehouse_stopped": warehouse,
            }
        )
        return
    output.line(
        f"demo payments API: {'stopped (pid ' + str(api_pid) + ')' if api_pid else 'not running'}"
    )
    output.line(f"embedded warehouse: {'stopped' if warehouse else 'not running'}")
