"""Run the doctor as cron and on-call do (the CLI, JSON) or one check in-process."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from unittest import mock

from support import PROJECT, run_elt

from diagnostics.results import Result
from diagnostics.runner import run_checks

API_TOKEN = "tok-4f1e9b27c3"  # what the test API accepts; tests assert it is never printed
PASSWORD = "rightpw-93b1"  # of the password server

# the audit tables as AUDIT.md defines them, and the quarantine as the marketing loader
# writes it (elt creates them; these tests create them to read them)
AUDIT_DDL = """
create schema if not exists elt_audit;
create table elt_audit.runs (
    run_id text primary key, command text not null, args jsonb,
    started_at timestamptz not null, ended_at timestamptz, status text not null,
    exit_code integer, rows jsonb, failures jsonb, error text
);
create table elt_audit.dbt_results (
    invocation_id text, run_id text, unique_id text, name text, resource_type text,
    status text, failures integer, rows_affected bigint, execution_time double precision,
    message text, finished_at timestamptz
);
create table elt_audit.quarantine (
    quarantine_id text primary key, source text not null, feed text not null,
    file text not null, line bigint, reason text not null, raw_text text, load_id text not null,
    quarantined_at timestamptz not null default now(), status text not null default 'open',
    resolved_at timestamptz
);
"""


def rest_env(base_url: str, token: str = API_TOKEN) -> dict[str, str]:
    """A REST source `payments` configured the dlt way, by environment variables."""
    return {
        "SOURCES__PAYMENTS__BASE_URL": base_url,
        "SOURCES__PAYMENTS__TOKEN": token,
        # the first endpoint, as dlt's rest_api configures it: the path the doctor probes
        "SOURCES__PAYMENTS__RESOURCES__PAYMENTS__ENDPOINT__PATH": "payments",
    }


def landing(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("a,b\n1,2\n")
    return folder


def doctor(env: dict[str, str], *args: str) -> tuple[int, dict, str]:
    """`elt doctor --format json ARGS`: exit code, payload, stderr."""
    result = run_elt("doctor", "--format", "json", *args, env=env, timeout=120)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def by_id(payload: dict) -> dict[str, dict]:
    return {check["id"]: check for check in payload["checks"]}


def check(env: dict[str, str], check_id: str, timeout: float = 5) -> Result:
    """One check, run in-process the way the CLI runs it, under `env`."""
    from diagnostics.plan import plan
    from elt.commands.doctor import build_context

    with mock.patch.dict(os.environ, env):
        ctx = build_context(timeout)
        (found,) = [c for c in plan(ctx) if c.id == check_id]
        (result,) = run_checks([found], timeout=ctx.timeout)
    return result


def context(env: dict[str, str], timeout: float = 5):
    from elt.commands.doctor import build_context

    with mock.patch.dict(os.environ, env):
        return build_context(timeout)


def copy_project(tmp_path: Path) -> Path:
    """A copy of the project's configuration and dbt project (no build artefacts)."""
    copy = tmp_path / "project"
    (copy / ".dlt").mkdir(parents=True)
    shutil.copy(PROJECT / ".dlt" / "config.toml", copy / ".dlt" / "config.toml")
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "package-lock.yml")
    shutil.copytree(PROJECT / "dbt", copy / "dbt", ignore=ignore)
    shutil.copytree(PROJECT / "macros", copy / "macros")
    return copy
