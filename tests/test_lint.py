"""Lint is part of the suite: ruff for Python, sqlfluff (dbt templater) for SQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import PROJECT

BIN = Path(sys.executable).parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_ruff_finds_nothing():
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_python_is_formatted():
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_sqlfluff_finds_nothing(server):
    # the dbt templater compiles the project: it needs a profile that resolves, and the
    # packages of packages.yml installed (elt installs the local subset where none is)
    from elt.dbt_packages import ensure_installed

    ensure_installed(PROJECT / "dbt")
    env = {**server.dbt_env(), "DBT_PROFILES_DIR": str(PROJECT / "dbt")}
    result = run(
        "sqlfluff", "lint", "--processes", "2", "dbt/models", "macros", "tests/dbt", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
