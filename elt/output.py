"""Rendering, kept apart from the work: results to stdout, logs and errors to stderr."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from runtime import runlog
from runtime.secrets import redact

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, default=_default, indent=2) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    grid = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    stdout.print(grid)


def line(message: str) -> None:
    stdout.print(message, highlight=False)


def log(message: str) -> None:
    stderr.print(redact(message), markup=False, highlight=False, style="dim")
    runlog.note(message, logger="stderr")


def error(message: str, hint: str | None = None) -> None:
    text = redact(f"error: {message}" + (f" (next: {hint})" if hint else ""))
    stderr.print(text, style="bold red", highlight=False, markup=False)
    runlog.note(text, level="error", logger="stderr")


def seconds(value: float) -> str:
    return f"{value:.1f}s"


class _ToStderr(logging.Handler):
    """runtime/ logs to the `elt` logger (it prints nothing itself); the CLI shows it here."""

    def emit(self, record: logging.LogRecord) -> None:
        log(record.getMessage())


def route_runtime_logs() -> None:
    logger = logging.getLogger("elt")
    if not any(isinstance(handler, _ToStderr) for handler in logger.handlers):
        logger.addHandler(_ToStderr())
        logger.propagate = False
