"""Plain `dbt` and `sqlfluff` find the embedded warehouse with nothing exported.

`dbt/profiles.yml` reads only environment variables (`env_var()`), and dbt's Jinja cannot
read a file, while the embedded warehouse's port (and, with a password, its password) is
only known at run time. So each time elt resolves the embedded warehouse it writes the
variables the profile reads to `.elt/dbt.env` (git-ignored, mode 600), and the venv's
interpreter applies them at start-up as defaults (`elt_tool_env.pth`, installed with the
package) when the program is `dbt` or `sqlfluff`: anything exported wins, a configured
`ELT_WAREHOUSE_URL` is used as elt uses it, and other programs are left alone (the test
suite never reads the checkout's `.elt/`). Outside the venv: `eval "$(elt env)"`.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

ENV_FILE = "dbt.env"
TOOLS = {"dbt", "sqlfluff"}
PROFILE_KEY = "ELT_WAREHOUSE_HOST"


def write(home: Path, env: dict[str, str]) -> Path:
    """`.elt/dbt.env`: `KEY=value` lines (shell-quoted), readable by its owner only."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / ENV_FILE
    text = "".join(f"{key}={shlex.quote(value)}\n" for key, value in sorted(env.items()))
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(path.with_suffix(".tmp"), path)
    return path


def read(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            env[key.strip()] = " ".join(shlex.split(value))
    return env


def find(start: Path) -> Path | None:
    """The nearest `.elt/dbt.env` at or above `start` (dbt runs from `dbt/`)."""
    for folder in (start, *start.parents):
        candidate = folder / ".elt" / ENV_FILE
        if candidate.is_file():
            return candidate
        if (folder / "dbt" / "dbt_project.yml").is_file():
            return None  # the project's root: it has no warehouse yet
    return None


def apply_defaults() -> None:
    """At interpreter start-up (from the .pth): set the profile's variables for dbt and
    sqlfluff where they are not set. Never raises: a broken file leaves dbt's own error."""
    try:
        program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
        if program not in TOOLS or os.environ.get(PROFILE_KEY):
            return
        url = os.environ.get("ELT_WAREHOUSE_URL", "").strip()
        if url:
            from runtime.warehouse import parse_url

            env = parse_url(url).dbt_env()
        else:
            home = os.environ.get("ELT_HOME", "").strip()
            path = Path(home) / ENV_FILE if home else find(Path.cwd())
            path = path if path and path.is_file() else None
            env = read(path) if path else {}
        for key, value in env.items():
            os.environ.setdefault(key, value)
    except Exception:
        return
