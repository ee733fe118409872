"""The project's configuration as dlt would see it, read without importing dlt.

`.dlt/config.toml`, then `.dlt/secrets.toml`, then environment variables in dlt's
convention (`SOURCES__SHOP__LAG_SECONDS` overrides `[sources.shop] lag_seconds`). Parse
errors are collected, not raised: a broken file is a finding of the configuration checks.
The merged mapping holds secrets: checks read from it and never print its values.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# environment sections overlaid on the files (dlt reads many more; the doctor needs these)
ENV_SECTIONS = ("SOURCES", "DOCTOR")

# the doctor's thresholds: `[doctor]` in .dlt/config.toml, or DOCTOR__<KEY> in the environment
DOCTOR_DEFAULTS: dict[str, float] = {
    "timeout_seconds": 5,  # per check; `elt doctor --timeout` wins
    "cpu_busy_warn_percent": 95,
    "disk_free_warn_percent": 15,
    "disk_free_fail_percent": 5,
    "memory_available_warn_percent": 10,
    "load_per_cpu_warn": 2.0,
    "warehouse_latency_warn_ms": 250,
    "load_age_warn_hours": 24,  # used where the dbt source declares no _dlt_loads freshness
    "load_age_fail_hours": 48,
    "row_count_change_factor": 10,  # a load bringing 10x more or fewer rows than usual
    "row_count_min_history": 3,  # successful loads needed before a change is judged
    "rate_limit_warn_percent": 10,  # REST: fewer requests than this left in the window
    "running_stale_hours": 6,  # an audit run still `running` after this was probably killed
}


@dataclass
class ProjectConfig:
    project: Path
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # file -> one-line parse error
    files: list[Path] = field(default_factory=list)  # the files read

    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        found = self.values.get("sources", {})
        return {k: v for k, v in found.items() if isinstance(v, dict)}

    def doctor(self, key: str) -> float:
        configured = self.values.get("doctor", {}).get(key)
        try:
            return float(configured) if configured is not None else DOCTOR_DEFAULTS[key]
        except (TypeError, ValueError):
            return DOCTOR_DEFAULTS[key]


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _env_overlay(environ: Mapping[str, str]) -> dict[str, Any]:
    overlay: dict[str, Any] = {}
    for key, value in environ.items():
        parts = key.split("__")
        if len(parts) < 2 or parts[0] not in ENV_SECTIONS or not all(parts):
            continue
        node = overlay
        for part in parts[:-1]:
            node = node.setdefault(part.lower(), {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1].lower()] = value
    return overlay


def load(project: Path, environ: Mapping[str, str] | None = None) -> ProjectConfig:
    config = ProjectConfig(project=project)
    for name in ("config.toml", "secrets.toml"):
        path = project / ".dlt" / name
        if not path.exists():
            continue
        config.files.append(path)
        try:
            with path.open("rb") as handle:
                _merge(config.values, tomllib.load(handle))
        except (tomllib.TOMLDecodeError, OSError) as exc:
            config.errors[f".dlt/{name}"] = str(exc).splitlines()[0]
    _merge(config.values, _env_overlay(os.environ if environ is None else environ))
    return config
