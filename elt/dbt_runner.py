"""dbt, invoked in-process through its Python entry point (`dbtRunner`).

Not through dlt's dbt runner, which reruns `dbt deps` and full-refreshes on its own.
dbt's own console output is silenced; node results reach stderr as one line each and
the caller gets plain data back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elt import output
from runtime.errors import ConfigError

# dbt events worth a line on stderr while a command runs
_PROGRESS_EVENTS = {
    "LogModelResult",
    "LogTestResult",
    "LogSeedResult",
    "LogSnapshotResult",
    "LogFreshnessResult",
    "LogNodeResult",
}


@dataclass
class NodeResult:
    name: str
    resource_type: str
    status: str
    seconds: float
    rows_affected: int | None = None
    failures: int | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class DbtRun:
    command: str
    success: bool
    nodes: list[NodeResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def invoke(
    dbt_dir: Path, args: list[str], *, quiet_progress: bool = False, manifest: Any = None
) -> DbtRun:
    """Run `dbt <args>` against `dbt_dir`; raises ConfigError when dbt itself cannot run.

    `manifest` (from `parse`) spares dbt parsing the project a second time.
    """
    from dbt.cli.main import dbtRunner

    from runtime import runlog

    def on_event(event: Any) -> None:
        runlog.dbt_event(event)  # every run's log keeps dbt's own events
        if quiet_progress:
            return
        name = event.info.name
        if name == "LogTestResult" and getattr(event.data, "status", "") == "pass":
            return  # a hundred PASS lines hide the one that matters; the summary counts them
        if name in _PROGRESS_EVENTS or event.info.level == "error":
            message = event.info.msg.strip()
            if message:
                output.log(message)

    started = time.monotonic()
    argv = [
        *args,
        "--project-dir",
        str(dbt_dir),
        "--profiles-dir",
        str(dbt_dir),
        "--log-level",
        "none",
        "--no-use-colors",
        "--no-send-anonymous-usage-stats",
    ]
    result = dbtRunner(manifest=manifest, callbacks=[on_event]).invoke(argv)
    run = DbtRun(command=args[0], success=bool(result.success), seconds=time.monotonic() - started)
    if result.exception is not None:
        cause = str(result.exception).strip().splitlines()
        raise ConfigError(
            f"dbt {args[0]}: {cause[0] if cause else type(result.exception).__name__}",
            hint="run `elt doctor` or check dbt/logs/dbt.log",
        )
    results = getattr(result.result, "results", None) or []
    # on-run-start/end hooks come back as "operation" nodes: not the user's models or tests
    run.nodes = [_node(r) for r in results if _resource_type(r.node) != "operation"]
    return run


def parse(dbt_dir: Path) -> Any:
    """dbt's parsed manifest of the project (a `Manifest` object, reusable by `invoke`)."""
    from dbt.cli.main import dbtRunner

    argv = ["parse", "--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir)]
    result = dbtRunner().invoke([*argv, "--log-level", "none", "--no-send-anonymous-usage-stats"])
    if not result.success or result.result is None:
        cause = str(result.exception or "parse failed").strip().splitlines()
        raise ConfigError(f"dbt parse: {cause[0]}", hint="check dbt/logs/dbt.log")
    return result.result


def manifest_graph(manifest: Any) -> dict[str, Any]:
    """The part of a `Manifest` the diagnostics read, shaped as in target/manifest.json."""
    return {
        "sources": {
            unique_id: {"schema": node.schema, "identifier": node.identifier, "name": node.name}
            for unique_id, node in manifest.sources.items()
        },
        "nodes": {
            unique_id: {
                "name": node.name,
                "resource_type": _resource_type(node),
                "raw_code": getattr(node, "raw_code", "") or "",
                "depends_on": {"nodes": list(getattr(node.depends_on, "nodes", []) or [])},
            }
            for unique_id, node in manifest.nodes.items()
        },
    }


def _node(result: Any) -> NodeResult:
    node = result.node
    rows = None
    adapter_response = getattr(result, "adapter_response", None) or {}
    if isinstance(adapter_response, dict):
        rows = adapter_response.get("rows_affected")
    status = str(getattr(result.status, "value", result.status))
    return NodeResult(
        name=_display_name(node),
        resource_type=_resource_type(node),
        status=status,
        seconds=round(float(getattr(result, "execution_time", 0.0) or 0.0), 3),
        rows_affected=rows if isinstance(rows, int) and rows >= 0 else None,
        failures=getattr(result, "failures", None),
        message=(getattr(result, "message", None) or None) if status not in _OK else None,
    )


_OK = {"success", "pass"}


def _resource_type(node: Any) -> str:
    return str(getattr(node.resource_type, "value", node.resource_type))


def _display_name(node: Any) -> str:
    if (
        getattr(node, "resource_type", None) is not None
        and str(getattr(node.resource_type, "value", "")) == "source"
    ):
        return f"{node.source_name}.{node.name}"
    return node.name
