"""`elt stop`: stop what elt runs in the background: the demo's servers and the embedded
warehouse."""

from __future__ import annotations

import click

from elt import output
from elt.options import format_option


@click.command(epilog="\b\nExamples:\n  elt stop\n  make clean    (calls it)")
@format_option()
def stop(fmt: str) -> None:
    """Stop the demo's background servers and the embedded warehouse of this project.
    Nothing is lost: the next elt command starts the warehouse again, `elt demo` the demo."""
    from demo import run
    from elt.runtime import Runtime
    from runtime import embedded

    runtime = Runtime()
    demo = run.stop(runtime.project)
    warehouse = embedded.stop(runtime.project)
    if fmt == "json":
        output.emit_json(
            {
                "command": "stop",
                "status": "success",
                "demo": demo.payload,
                "warehouse_stopped": warehouse,
            }
        )
        return
    for line in demo.lines:
        output.line(line)
    output.line(f"embedded warehouse: {'stopped' if warehouse else 'not running'}")
