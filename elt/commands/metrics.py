"""`elt metrics [--serve PORT]`: the run metrics of `elt_audit` for Prometheus."""

from __future__ import annotations

import signal
import sys
import threading

import click

from elt import output
from elt.options import format_option
from elt.runtime import Runtime
from runtime.errors import ConfigError


@click.command(
    epilog="\b\nExamples:\n  elt metrics                   print them once (Prometheus text)\n"
    "  elt metrics --serve 9464      serve them at http://127.0.0.1:9464/metrics\n"
    "  elt metrics --serve 9464 --bind 0.0.0.0\n  elt metrics --format json",
)
@click.option(
    "--serve",
    "port",
    type=click.IntRange(min=0, max=65535),
    envvar="ELT_METRICS_PORT",
    help="Serve /metrics on this port until stopped (0: any free port), read anew per scrape.",
)
@click.option(
    "--bind",
    default="127.0.0.1",
    show_default=True,
    envvar="ELT_METRICS_BIND",
    help="Address to serve on.",
)
@format_option()
def metrics(port: int | None, bind: str, fmt: str) -> None:
    """Print (or serve) the metrics of elt's runs, read from elt_audit.

    Runs, their status and duration per command; rows loaded and quarantined per source
    and table; each source's last successful load; the last transform's models and the
    last test run's tests. The same metrics each run writes to `[metrics] textfile_dir`
    and pushes to `[metrics] pushgateway_url`.
    """
    from runtime import metrics as run_metrics

    registry = run_metrics.registry_for(run_metrics.AuditCollector(Runtime().warehouse))
    if port is None:
        if fmt == "json":
            output.emit_json(
                {"command": "metrics", "status": "success", "metrics": _as_json(registry)}
            )
        else:
            sys.stdout.write(run_metrics.exposition(registry).decode())
        return
    _serve(registry, bind, port)


def _serve(registry, bind: str, port: int) -> None:
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, addr=bind, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"metrics: cannot listen on {bind}:{port} ({exc.strerror})",
            hint="choose another port with --serve, or stop what listens there",
        ) from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    host, bound = server.server_address[:2]
    output.log(f"serving metrics on http://{host}:{bound}/metrics (Ctrl-C stops)")
    stop.wait()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _as_json(registry) -> list[dict]:
    return [
        {
            "name": family.name,
            "type": family.type,
            "help": family.documentation,
            "samples": [
                {"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples
            ],
        }
        for family in registry.collect()
    ]
