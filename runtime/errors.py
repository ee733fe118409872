"""Errors the CLI turns into one line and an exit code (README: 1 data, 2 usage/config)."""

from __future__ import annotations


class EltError(Exception):
    """A failure with a one-line cause and the next step; never carries a secret."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(EltError):
    """Configuration, connection or usage problem: exit 2."""


class DataError(EltError):
    """The data or the checks failed (a failing test, a stale source): exit 1."""

    exit_code = 1


class UnavailableError(EltError):
    """A source refused service for now (rate limited): exit 2, an environment condition,
    not bad data. What was loaded stays loaded; rerunning later resumes from there."""
