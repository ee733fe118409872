"""What a load leaves on disk: nothing it does not need.

dlt keeps every completed load package (parquet of every row loaded, customer emails
included) under `<pipelines>/<pipeline>/load/loaded/` and a pickled trace of the last
run (`trace.pickle`, which holds the configuration the run resolved) beside it, both
with the process umask. Neither is needed again: state is restored from the warehouse.
After a successful load they are deleted; `ELT_KEEP_LOAD_PACKAGES=1` keeps them (for
debugging a load), readable by their owner only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

KEEP_ENV = "ELT_KEEP_LOAD_PACKAGES"


def keep_packages() -> bool:
    return os.environ.get(KEEP_ENV, "").strip().lower() in ("1", "true", "yes")


def prune(pipelines_dir: Path, *, keep: bool | None = None) -> list[Path]:
    """Delete completed packages and traces under `pipelines_dir` (or make them private
    when kept); the paths deleted. Pending and failed packages are never touched."""
    keep = keep_packages() if keep is None else keep
    if not pipelines_dir.is_dir():
        return []
    found = [
        *pipelines_dir.glob("*/load/loaded/*"),
        *pipelines_dir.glob("*/trace.pickle"),
    ]
    if keep:
        for path in found:
            _private(path)
        return []
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


def _private(path: Path) -> None:
    if path.is_dir():
        path.chmod(0o700)
        for child in path.rglob("*"):
            child.chmod(0o700 if child.is_dir() else 0o600)
    else:
        path.chmod(0o600)
