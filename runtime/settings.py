"""elt's own settings (`[metrics]`, `[alerts]`, `[logs]`) found as dlt finds a source's.

The environment first (`ELT_<SECTION>__<KEY>`, e.g. `ELT_METRICS__TEXTFILE_DIR`), then
`.dlt/secrets.toml`, then `.dlt/config.toml`. A missing or broken file is skipped: these
settings only ever switch optional outputs on, and a run must not fail for them.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from runtime.project import project_dir


def setting(section: str, key: str, default: Any = None, project: Path | None = None) -> Any:
    """The value of `[section] key`, or `default` where no place sets it."""
    value = os.environ.get(f"ELT_{section.upper()}__{key.upper()}")
    if value is not None and value.strip():
        return value.strip()
    root = project or project_dir()
    for name in ("secrets.toml", "config.toml"):
        try:
            with (root / ".dlt" / name).open("rb") as handle:
                found = tomllib.load(handle).get(section, {}).get(key)
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if found is not None and found != "":
            return found
    return default


def number(section: str, key: str, default: float) -> float:
    """A numeric setting; an unparsable value falls back to the default."""
    try:
        return float(setting(section, key, default))
    except (TypeError, ValueError):
        return default


def url_list(section: str, key: str) -> list[str]:
    """A list of URLs: a TOML list, or in the environment a JSON list or comma-separated."""
    value = setting(section, key)
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                value = []
        else:
            value = text.split(",")
    if isinstance(value, str | bytes):
        value = [value]
    return [str(item).strip() for item in value if str(item).strip()]


def path(section: str, key: str, default: str | None = None) -> Path | None:
    """A folder setting; relative to the project, as `.elt/landing` is."""
    value = setting(section, key, default)
    if not value:
        return None
    found = Path(str(value)).expanduser()
    return found if found.is_absolute() else project_dir() / found
