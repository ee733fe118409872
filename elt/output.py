"""Rendering, kept apart from the work: results to stdout, logs and errors to stderr.

In JSON mode (`--format json` or ELT_FORMAT=json) stdout carries exactly one document,
the envelope `{command, version, elt_version, status, exit_code, ...results, error}`,
written by the CLI's `main()` once the command ended, however it ended. Commands hand
their results to `emit_json`, which collects them; anything else written to stdout
meanwhile (a library's print) is sent to stderr.
"""

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


ENVELOPE_VERSION = 1  # the JSON shape's version (doctor's documented `version: 1`)


class _Envelope:
    """The JSON document of one command: its results until `main()` writes it."""

    def __init__(self, command: str, active: bool) -> None:
        self.command = command
        self.results: dict[str, Any] = {}
        self.stdout = sys.stdout
        self.active = False
        self.activate(active)

    def activate(self, active: bool) -> None:
        if active and not self.active:
            sys.stdout = sys.stderr  # nothing but the envelope on stdout
        elif not active and self.active:
            sys.stdout = self.stdout
        self.active = active


_envelope: _Envelope | None = None


def start_envelope(command: str, *, active: bool) -> None:
    global _envelope
    _envelope = _Envelope(command, active)


def envelope_format(fmt: str) -> None:
    """The command's parsed `--format` decides whether its output is the envelope."""
    if _envelope is not None:
        _envelope.activate(fmt == "json")


def json_mode() -> bool:
    return _envelope is not None and _envelope.active


def emit_json(payload: Any) -> None:
    """A command's JSON results: into the envelope (a list goes under `rows`)."""
    if json_mode():
        if isinstance(payload, dict):
            _envelope.results.update(payload)
        else:
            _envelope.results["rows"] = payload
        return
    _write_json(sys.stdout, payload)


def finish_envelope(
    exit_code: int, status: str, error: dict[str, Any] | None, version: str
) -> None:
    """Write the one document (JSON mode only) and give stdout back."""
    global _envelope
    envelope, _envelope = _envelope, None
    if envelope is None:
        return
    active = envelope.active
    envelope.activate(False)
    if not active:
        return
    head = {
        "command": envelope.command,
        "version": ENVELOPE_VERSION,
        "elt_version": version,
        "status": status,
        "exit_code": exit_code,
    }
    document = {**head, **envelope.results, **head, "error": error}  # the envelope's keys win
    _write_json(envelope.stdout, document)


def _write_json(stream: Any, payload: Any) -> None:
    stream.write(json.dumps(payload, default=_default, indent=2) + "\n")
    stream.flush()


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
