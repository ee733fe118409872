"""The run log: one JSON-lines file per audited run under `.elt/logs/`.

stderr scrolls away and cron mails it to nobody; this file stays, and `elt runs show`
names it. It holds what the run said on stderr (the `elt` logger included), dlt's logger, dbt's own
events (info and above) and a closing summary, each line one JSON object:
`{"ts", "level", "logger", "message", ...}`. Every message goes through
runtime/secrets.py `redact` first.

Bounded: a file stops growing at `[logs] max_file_mb` (one `truncated` record says so),
and starting a run removes the oldest files beyond `[logs] max_files` and
`[logs] max_total_mb`. Settings: `[logs] dir` (`.elt/logs`) etc., or `ELT_LOGS__<KEY>`.
A log that cannot be written is skipped: it never fails the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime import settings
from runtime.secrets import redact

MB = 1024 * 1024
_lock = threading.Lock()
_current: RunLog | None = None


class RunLog:
    """An open run log: appends records until `max_bytes`, then one `truncated` record."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        self.written, self.truncated = 0, False
        self._handle = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(_redacted(record), default=str, ensure_ascii=False) + "\n"
        with _lock:
            if self._handle.closed or self.truncated:
                return
            if self.written + len(line.encode()) > self.max_bytes:
                self.truncated = True
                line = json.dumps({**_base("warning", "elt"), "message": "log truncated"}) + "\n"
            try:
                self._handle.write(line)
                self._handle.flush()
            except (OSError, ValueError):  # disk full, file gone: the run goes on, unlogged
                self.truncated = True
                return
            self.written += len(line.encode())

    def close(self) -> None:
        with _lock, contextlib.suppress(OSError):
            self._handle.close()


class _ToRunLog(logging.Handler):
    """dlt's logger, copied into the open run log (the `elt` logger reaches it through
    elt/output.py, which shows it on stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        note(record.getMessage(), level=record.levelname.lower(), logger=record.name)


_HANDLER = _ToRunLog()
_LOGGERS = ("dlt",)


def log_dir() -> Path:
    """`[logs] dir`, or `logs/` beside the embedded server's data (`.elt/`, or ELT_HOME)."""
    from runtime import embedded
    from runtime.project import project_dir

    return settings.path("logs", "dir") or embedded.home(project_dir()) / "logs"


def start(run_id: str, command: str, **fields: Any) -> Path | None:
    """Open the log of this run (and close any earlier one); its path, or None."""
    global _current
    finish({})
    folder = log_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _rotate(folder)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = folder / f"{stamp}_{command}_{run_id}.jsonl"
        opened = RunLog(path, int(settings.number("logs", "max_file_mb", 20) * MB))
    except OSError as exc:
        logging.getLogger("elt").warning(f"run log: not written ({exc.strerror or exc})")
        return None
    _current = opened
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)
    opened.write(
        {
            **_base("info", "elt"),
            "message": f"{command} started",
            "run_id": run_id,
            "command": command,
            **fields,
        }
    )
    return path


def note(message: str, *, level: str = "info", logger: str = "elt", **fields: Any) -> None:
    """One record in the open run log (nothing when no run is logging)."""
    current = _current
    if current is not None:
        current.write({**_base(level, logger), "message": str(message), **fields})


def dbt_event(event: Any) -> None:
    """A dbt event from dbtRunner's callback: kept when at info level or above."""
    info = event.info
    if _current is None or info.level in ("debug", "none"):
        return
    node = getattr(getattr(event.data, "node_info", None), "unique_id", None)
    note(
        info.msg.strip(),
        level=info.level,
        logger="dbt",
        event=info.name,
        **({"node": node} if node else {}),
    )


def finish(summary: dict[str, Any]) -> None:
    """Write the closing record (when given one) and close the log."""
    global _current
    current, _current = _current, None
    if current is None:
        return
    for name in _LOGGERS:
        logging.getLogger(name).removeHandler(_HANDLER)
    if summary:
        current.write({**_base("info", "elt"), "message": "run ended", **summary})
    current.close()


def _redacted(value: Any) -> Any:
    """Every string of a record, at any depth, through `redact`."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def _base(level: str, logger: str) -> dict[str, Any]:
    return {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
    }


def _rotate(folder: Path) -> None:
    """Remove the oldest logs beyond `max_files - 1` files or `max_total_mb` (this run's
    file is about to be the newest)."""
    max_files = int(settings.number("logs", "max_files", 50))
    max_total = settings.number("logs", "max_total_mb", 200) * MB
    logs = sorted(folder.glob("*.jsonl"), key=_mtime, reverse=True)
    total = 0.0
    for index, path in enumerate(logs):
        try:
            total += path.stat().st_size
            if index >= max_files - 1 or total > max_total:
                path.unlink()
        except OSError:
            continue  # removed by a concurrent run


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
