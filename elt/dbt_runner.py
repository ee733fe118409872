"""dbt, invoked in-process through its Python entry point (`dbtRunner`).

Not through dlt's dbt runner, which reruns `dbt deps` and full-refreshes on its own.
dbt's own console output is silenced; node results, dbt's warnings and the
write-audit-publish decisions (macros/write_audit_publish.sql) reach stderr as one line
each, dbt's debug log goes to dbt/logs/dbt.log, and the caller gets plain data back.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elt import output
from runtime import signals
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

_STOP_NOISE = {"MainEncounteredError", "MainStackTrace"}


@dataclass
class NodeResult:
    name: str
    resource_type: str
    status: str
    seconds: float
    rows_affected: int | None = None
    failures: int | None = None
    message: str | None = None
    path: str | None = None  # the file that defines it, relative to dbt/
    attached_to: str | None = None  # a test's model

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class DbtRun:
    command: str
    success: bool
    nodes: list[NodeResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    # write-audit-publish: `schema.table` published, and held back with the reason
    published: list[str] = field(default_factory=list)
    held_back: dict[str, str] = field(default_factory=dict)


LOG_FILE = "dbt/logs/dbt.log"
_PUBLISH = "publish: "
_LOUD = {"warn", "error"}


def common_args(dbt_dir: Path) -> list[str]:
    """Where the project and its profile are; dbt's console silenced, its debug log kept."""
    return [
        "--project-dir",
        str(dbt_dir),
        "--profiles-dir",
        str(dbt_dir),
        "--log-path",
        str(dbt_dir / "logs"),
        "--log-level",
        "none",
        "--log-level-file",
        "debug",
        "--no-use-colors",
        "--no-send-anonymous-usage-stats",
    ]


def invoke(
    dbt_dir: Path,
    args: list[str],
    *,
    quiet_progress: bool = False,
    manifest: Any = None,
    rerun: str | None = None,
) -> DbtRun:
    """Run `dbt <args>` against `dbt_dir`; raises ConfigError when dbt itself cannot run.

    `manifest` (from `parse`) spares dbt parsing the project a second time; `rerun` is the
    elt command the error's hint suggests.
    """
    from dbt.cli.main import dbtRunner

    from runtime import runlog

    run = DbtRun(command=args[0], success=False)

    def on_event(event: Any) -> None:
        runlog.dbt_event(event)  # every run's log keeps dbt's own events
        name, message = event.info.name, event.info.msg.strip()
        if name == "JinjaLogInfo" and message.startswith(_PUBLISH):
            _note_publish(run, message.removeprefix(_PUBLISH))
        if quiet_progress or not message:
            return
        if name in _STOP_NOISE and signals.requested() is not None:
            return  # dbt's traceback of the signal: the CLI says "stopped by signal" once
        if name == "LogTestResult" and getattr(event.data, "status", "") == "pass":
            return  # a hundred PASS lines hide the one that matters; the summary counts them
        if name in _PROGRESS_EVENTS or name == "JinjaLogInfo" or event.info.level in _LOUD:
            output.log(message)

    started = time.monotonic()
    result = dbtRunner(manifest=manifest, callbacks=[on_event]).invoke(
        [*args, *common_args(dbt_dir)]
    )
    run.success, run.seconds = bool(result.success), time.monotonic() - started
    if result.exception is not None:
        cause = root_cause(str(result.exception)) or type(result.exception).__name__
        raise ConfigError(
            f"dbt {args[0]}: {cause}",
            hint=f"fix it, then rerun `elt {rerun or 'dbt -- ' + ' '.join(args)}`"
            f" (dbt's log: {LOG_FILE})",
        )
    results = getattr(result.result, "results", None) or []
    # on-run-start/end hooks come back as "operation" nodes: not the user's models or tests,
    # unless one failed (the write-audit-publish hook that could not get its lock)
    run.nodes = [
        _node(r)
        for r in results
        if _resource_type(r.node) != "operation" or str(r.status) in ("error", "fail")
    ]
    return run


def parse(dbt_dir: Path) -> Any:
    """dbt's parsed manifest of the project (a `Manifest` object, reusable by `invoke`)."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(["parse", *common_args(dbt_dir)])
    if not result.success or result.result is None:
        raise ConfigError(
            f"dbt parse: {root_cause(str(result.exception or 'parse failed'))}",
            hint=f"fix it, then rerun the command (dbt's log: {LOG_FILE})",
        )
    return result.result


def _note_publish(run: DbtRun, decision: str) -> None:
    if decision.startswith("published "):
        run.published.append(decision.removeprefix("published "))
    elif decision.startswith("held back "):
        relation, _, reason = decision.removeprefix("held back ").partition(" ")
        run.held_back[relation.rsplit(".", 1)[-1]] = reason.strip("()")


# dbt's boilerplate around a cause: headings, pointers to compiled code, blank lines
_NOISE = re.compile(r"^(compiled code at|LINE \d+:|\^|HINT:)", re.IGNORECASE)
_HEADING = re.compile(
    r"^(?P<kind>Compilation|Database|Runtime|Parsing) Error"
    r"(?: in (?P<type>\w+) (?P<name>\S+) \((?P<path>[^)]+)\))?\s*:?\s*(?P<rest>.*)$"
)
_MISSING_REF = re.compile(
    r"depends on a node named '(?P<ref>[^']+)'.*which (?:was not|is not) found"
)
_NODE_IN = re.compile(r"(?:Model|node) '(?:\w+\.)+(?P<name>[^']+)' \((?P<path>[^)]+)\)")


def root_cause(message: str) -> str:
    """dbt's multi-line error as one line: the node, its file and the cause.

    `Database Error in model fct_orders (models/.../fct_orders.sql)\n  column "x" does not
    exist\n  LINE 3: ...` becomes `fct_orders (models/.../fct_orders.sql): column "x" does not
    exist`; a missing ref becomes `stg_x (models/...): ref 'y' not found`.
    """
    where, cause = split_cause(message)
    return f"{where}: {cause}" if where else cause


def split_cause(message: str) -> tuple[str, str]:
    """(`node (file)` or '', the root cause): the database's words where dbt wraps them."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    where, causes = "", []
    for line in lines:
        heading = _HEADING.match(line)
        if heading:
            if heading["name"]:
                where = f"{heading['name']} ({heading['path']})"
            elif heading["kind"] == "Database":
                causes = []  # a wrapped database error: its words are the root cause
            if heading["rest"]:
                causes.append(heading["rest"])
            continue
        if not _NOISE.match(line):
            causes.append(line)
    text = " ".join(causes)
    missing = _MISSING_REF.search(text)
    node = _NODE_IN.search(text)
    if node and not where:
        where = f"{node['name']} ({node['path']})"
    if missing:
        return where, f"ref '{missing['ref']}' not found"
    return where, causes[0] if causes else (lines[0] if lines else "")


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
    attached = getattr(node, "attached_node", None) or (
        f"model.{node.model}" if isinstance(getattr(node, "model", None), str) else None
    )
    return NodeResult(
        name=_display_name(node),
        resource_type=_resource_type(node),
        status=status,
        seconds=round(float(getattr(result, "execution_time", 0.0) or 0.0), 3),
        rows_affected=rows if isinstance(rows, int) and rows >= 0 else None,
        failures=getattr(result, "failures", None),
        message=(getattr(result, "message", None) or None) if status not in _OK else None,
        path=getattr(node, "original_file_path", None),
        attached_to=attached.rsplit(".", 1)[-1] if attached else None,
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
