"""Bounded time against a Postgres source: a connect timeout and a statement timeout.

Both travel in the connection URL (`connect_timeout`, `options=-c statement_timeout=`),
which SQLAlchemy's psycopg2 (table reflection) and connectorx (extraction) both honour,
so one setting bounds every connection and every statement. A URL that already names
either keeps its own value. `explain_failure` turns what the drivers say when a bound
is hit into one line naming the bound and the setting.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

STATEMENT_TIMEOUT_SIGNS = ("canceling statement due to statement timeout",)
CONNECT_TIMEOUT_SIGNS = ("timeout expired", "timed out", "connection timeout")


class SourceTimeout(Exception):
    """A source connection or statement ran into its bound."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def with_timeouts(url: Any, connect_seconds: float, statement_seconds: float) -> Any:
    """`url` with `connect_timeout` and a statement timeout, unless it names them already.

    A non-URL value (an Engine, a credentials object) is returned as it is.
    """
    if not isinstance(url, str) or "://" not in url:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = {name for name, _ in query}
    if "connect_timeout" not in names:
        # libpq reads whole seconds and treats 1 as 2; never 0 (that would mean forever)
        query.append(("connect_timeout", str(max(2, math.ceil(connect_seconds)))))
    options = dict(query).get("options", "")
    if "statement_timeout" not in options:
        # no space after -c: SQLAlchemy re-renders a space as +, which connectorx keeps
        option = f"-cstatement_timeout={max(1, round(statement_seconds * 1000))}"
        query = [(n, v) for n, v in query if n != "options"]
        query.append(("options", f"{options} {option}".strip()))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def explain_failure(exc: BaseException) -> BaseException | None:
    """A `SourceTimeout` when `exc` says a connection or statement bound was hit, else None."""
    lowered = str(exc).lower()
    if any(sign in lowered for sign in STATEMENT_TIMEOUT_SIGNS):
        return SourceTimeout(
            "the source database cancelled a statement at its statement timeout"
            " (statement_timeout_seconds): a table locked by another session, or a query too"
            " slow for the bound",
            "find the lock holder in the source (pg_locks), or raise statement_timeout_seconds"
            " in [sources.shop]; then rerun `elt load shop`",
        )
    connecting = "could not connect" in lowered or "connection to server" in lowered
    if connecting and any(sign in lowered for sign in CONNECT_TIMEOUT_SIGNS):
        return SourceTimeout(
            "the source database did not answer within the connect timeout"
            " (connect_timeout_seconds)",
            "check the host and port of SOURCES__SHOP__CREDENTIALS and that the database is"
            " up; then rerun `elt load shop`",
        )
    return None
