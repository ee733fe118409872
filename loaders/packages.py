"""A load package that fails for a data reason is moved aside, so it cannot wedge a source.

dlt retries a job whose COPY the warehouse refused (ADBC reports a value Postgres
rejects as retryable), and `run()` finishes pending packages before extracting: one
unloadable value would fail every later run until someone deleted the package folder by
hand. A failure whose cause is the data (SQLSTATE class 22 "data exception" or 23
"integrity constraint violation") instead moves the package to
`<pipelines_dir>/moved_aside/elt_<source>/<load_id>`, kept for inspection; the local
pipeline state (which the failed extract had moved forward) is dropped, so the next run
restores the state of the last completed load from the warehouse and extracts anew.
`elt doctor` reports every moved-aside package as FAIL with the commands that put it
back or delete it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

MOVED_ASIDE = "moved_aside"
_SQLSTATE = re.compile(r"SQLSTATE[: ]+(2[23][0-9A-Z]{3})")
_DATA_ERRORS = ("DataError", "IntegrityError")


class PackageMovedAside(Exception):
    """The package that could not load, where it went, and how to release it."""

    def __init__(self, source: str, load_id: str, table: str | None, cause: str, path: Path):
        self.source, self.load_id, self.table, self.path = source, load_id, table, path
        where = f"table {table}: " if table else ""
        super().__init__(
            f"package {load_id} cannot load ({where}{cause}); moved aside to {path},"
            " the next run extracts anew"
        )
        self.hint = release_hint(path, source)


def moved_aside_dir(pipelines_dir: Path, source: str) -> Path:
    return Path(pipelines_dir) / MOVED_ASIDE / f"elt_{source}"


def release_hint(path: Path, source: str) -> str:
    """Delete it, or put it back where dlt finishes pending packages (the doctor says it too)."""
    normalized = path.parent.parent.parent / f"elt_{source}" / "load" / "normalized"
    return (
        f"inspect it (`ls {path}/failed_jobs {path}/new_jobs`); delete it: `rm -rf {path}`;"
        f" or, once the warehouse accepts it, load it again: `mkdir -p {normalized} &&"
        f" mv {path} {normalized}/ && elt load {source}`"
    )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        pending += [current.__cause__, current.__context__, getattr(current, "exception", None)]
    return seen


def data_cause(exc: BaseException) -> str | None:
    """The first line of the data error behind a failed load, or None for other failures."""
    for error in _chain(exc):
        text = str(error)
        code = getattr(error, "pgcode", None) or ""
        match = _SQLSTATE.search(text)
        if match or code[:2] in ("22", "23") or type(error).__name__ in _DATA_ERRORS:
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            first = next((ln for ln in lines if "ERROR" in ln), lines[0] if lines else "")
            return first.split("ERROR:", 1)[-1].strip()[:300]
    return None


def failed_table(exc: BaseException) -> str | None:
    for error in _chain(exc):
        job_id = getattr(error, "job_id", None)
        if job_id:
            return str(job_id).split(".")[0]
    return None


def move_aside_if_data_failure(
    exc: BaseException, pipeline: Any, pipelines_dir: Path, source: str
) -> None:
    """Raise PackageMovedAside (from `exc`) when the failed load was refused for its data."""
    cause = data_cause(exc)
    load_id = getattr(exc, "load_id", None)
    if cause is None or not load_id:
        return
    package = Path(pipeline.working_dir) / "load" / "normalized" / str(load_id)
    if not package.is_dir():
        return
    target = moved_aside_dir(pipelines_dir, source) / str(load_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(package), str(target))
    if not pipeline.has_pending_data:
        # the failed extract moved the local state forward: start again from the warehouse
        pipeline.drop()
    raise PackageMovedAside(source, str(load_id), failed_table(exc), cause, target) from exc
