"""One read-only statement, for `elt sql`: what an analyst may run, and running it.

Defence in depth, each layer enough alone for the cases it knows:

1. the text is one statement (semicolons inside strings, quoted identifiers, comments and
   dollar quotes are not separators) and starts with a query keyword: no `COPY`, no
   transaction control (`commit; drop ...` never reaches the server), no `SET`;
2. it runs in a `READ ONLY` transaction with a `statement_timeout`, rolled back after;
3. on the embedded warehouse the connection is `elt_analyst`, which can read `staging`
   and `marts` only, is no superuser (`copy ... to program`, `pg_read_file` fail) and
   defaults to read-only transactions (runtime/roles.py).
"""

from __future__ import annotations

import re
from typing import Any

from runtime.errors import ConfigError

ALLOWED = ("select", "with", "values", "table", "explain", "show")
HINT = "elt sql runs one read-only query (select, with, values, table, explain, show)"

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


def split(text: str) -> list[str]:
    """The statements of `text`, split on top-level semicolons; empty ones dropped."""
    statements, start, i, n = [], 0, 0, len(text)
    while i < n:
        char = text[i]
        if char == "'" or char == '"':
            escaped = char == "'" and i > 0 and text[i - 1] in "eE" and _word_start(text, i - 1)
            i = _end_of_quoted(text, i + 1, char, backslash=escaped)
        elif text.startswith("--", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif text.startswith("/*", i):
            i = _end_of_block_comment(text, i)
        elif char == "$" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            match = _DOLLAR.match(text, i)
            if match:
                close = text.find(match.group(0), match.end())
                i = n if close < 0 else close + len(match.group(0))
            else:
                i += 1
        elif char == ";":
            statements.append(text[start:i])
            start = i = i + 1
        else:
            i += 1
    statements.append(text[start:])
    return [s for s in statements if strip_comments(s).strip()]


def _word_start(text: str, i: int) -> bool:
    return i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")


def _end_of_quoted(text: str, i: int, quote: str, *, backslash: bool) -> int:
    n = len(text)
    while i < n:
        if backslash and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if i + 1 < n and text[i + 1] == quote:  # '' or "" inside: an escaped quote
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _end_of_block_comment(text: str, i: int) -> int:
    """Block comments nest in PostgreSQL."""
    depth, i, n = 0, i, len(text)
    while i < n:
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def strip_comments(statement: str) -> str:
    """The statement without leading comments and whitespace (its first word comes next)."""
    text = statement.lstrip()
    while text.startswith(("--", "/*")):
        if text.startswith("--"):
            newline = text.find("\n")
            text = "" if newline < 0 else text[newline + 1 :]
        else:
            text = text[_end_of_block_comment(text, 0) :]
        text = text.lstrip()
    return text


def check(query: str) -> str:
    """The one read-only statement of `query`; a usage error (exit 2) for anything else."""
    statements = split(query)
    if not statements:
        raise ConfigError("sql: the query is empty", hint=HINT)
    if len(statements) > 1:
        raise ConfigError(
            f"sql: {len(statements)} statements given; elt sql runs exactly one", hint=HINT
        )
    body = strip_comments(statements[0]).lstrip("(")
    first = re.match(r"[A-Za-z_]+", body)
    keyword = first.group(0).lower() if first else body[:10]
    if keyword not in ALLOWED:
        raise ConfigError(f"sql: {keyword.upper() or 'this statement'} is not allowed", hint=HINT)
    return statements[0]


def run(warehouse: Any, query: str, timeout_seconds: int) -> tuple[list[str], list[tuple]]:
    """Columns and rows of `query`, run on the engine's read-only connection (read-only
    transactions, statement and lock timeouts: runtime/engines/)."""
    from runtime import engines

    statement = check(query)
    conn = engines.read_only(warehouse, timeout=max(1, timeout_seconds))
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(statement)
            except engines.errors(warehouse) as exc:
                first = (getattr(exc, "pgerror", None) or str(exc)).strip().splitlines()
                raise ConfigError(
                    f"sql: {first[0] if first else type(exc).__name__}",
                    hint="elt sql is read-only; check the query",
                ) from None
            columns = [d.name for d in cur.description] if cur.description else []
            rows = cur.fetchall() if cur.description else []
    finally:
        conn.close()
    return columns, rows
