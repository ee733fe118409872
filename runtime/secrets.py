"""Keep secrets out of every line elt prints: errors, logs, JSON, tracebacks.

Two layers. Patterns mask what looks like a credential wherever it comes from: a URL's
password (also one that was never URL-encoded, `postgresql://u:p@ss/w@host/db`), libpq
keyword DSNs (`host=... password=...`), `Authorization` headers and bearer tokens a
server echoes back. Known values mask the rest: every password and token elt and dlt
read (environment, `.dlt/secrets.toml`, `.elt/credentials.json`), also in their
URL-encoded, JSON-escaped and base64 forms.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import tomllib
from pathlib import Path
from urllib.parse import quote, unquote

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words

# scheme://user:PASSWORD@host: greedy to the last `@` of the token, so an un-encoded
# password holding `@`, `/` or `:` is masked whole
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)(\S+)(@)")
_KEYWORD_PASSWORD = re.compile(
    r"""(\b(?:password|passwd|pwd|sslpassword)\s*=\s*)('(?:[^'\\]|\\.)*'|"[^"]*"|[^\s,;&)]+)""",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(
    r"""((?:authorization|x-api-key|api[_-]?key|access[_-]?token)["']?\s*[:=]\s*["']?)"""
    r"""((?:bearer|basic|token)\s+)?([^\s"',;}]+)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(bearer|basic)\s+([A-Za-z0-9._~+/=-]{6,})", re.IGNORECASE)
_SECRET_KEYS = ("PASSWORD", "TOKEN", "SECRET", "API_KEY", "APIKEY")
_NOT_SECRET = {"true", "false", "none", "null", "postgres"}


def split_url(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, user, password, rest) of `scheme://user:password@rest`, the password up to
    the last `@`, so one that was never URL-encoded stays whole; None without a password."""
    scheme, sep, remainder = url.partition("://")
    if not sep or "@" not in remainder:
        return None
    userinfo, _, rest = remainder.rpartition("@")
    user, colon, secret = userinfo.partition(":")
    if not colon:
        return None
    return scheme, user, secret, rest


def encode_url_password(url: str) -> str:
    """The URL with its user and password percent-encoded, so no driver splits a password
    holding `@`, `/`, `:` or `#` and echoes a fragment of it as a host or a path."""
    parts = split_url(url)
    if parts is None:
        return url
    scheme, user, secret, rest = parts
    return f"{scheme}://{quote(unquote(user), safe='')}:{quote(unquote(secret), safe='')}@{rest}"


def keyword_password(dsn: str) -> str | None:
    """The password of a libpq keyword DSN (`host=... password='a b'`), else None."""
    match = _KEYWORD_PASSWORD.search(dsn)
    if not match:
        return None
    value = match.group(2)
    if value[:1] in "'\"" and value[-1:] == value[:1]:
        value = value[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    return value


def _secret_values_of(key: str, value: str) -> list[str]:
    upper = key.upper()
    if upper.startswith("DBT_ENV_SECRET_") or upper.endswith(_SECRET_KEYS):
        return [value]
    if "WEBHOOK" in upper:  # a webhook URL (Slack's and most) carries its token in the path
        return [url.strip() for url in value.split(",") if url.strip()]
    if upper == "ELT_WAREHOUSE_URL" or upper.endswith(("__CREDENTIALS", "_URL", "_DSN")):
        found = []
        parts = split_url(value)
        if parts and parts[2]:
            found += [parts[2], unquote(parts[2])]
        keyword = keyword_password(value)
        if keyword:
            found.append(keyword)
        return found
    return []


def _toml_secrets(path: Path) -> list[str]:
    """Every string under a secrets.toml: all of it is secret by definition."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    found: list[str] = []

    def walk(key: str, node: object) -> None:
        if isinstance(node, dict):
            for child_key, child in node.items():
                walk(child_key, child)
        elif isinstance(node, str):
            found.extend(_secret_values_of(key, node) or [node])

    walk("", data)
    return found


def _files_with_secrets() -> list[Path]:
    project = os.environ.get("DLT_PROJECT_DIR") or os.environ.get("ELT_PROJECT_DIR") or "."
    home = os.environ.get("ELT_HOME") or str(Path(project) / ".elt")
    return [Path(project) / ".dlt" / "secrets.toml", Path(home) / "credentials.json"]


def known_secrets() -> list[str]:
    """Passwords and tokens elt and dlt read: environment, secrets.toml, credentials.json."""
    found: list[str] = []
    for key, value in os.environ.items():
        if value:
            found += _secret_values_of(key, value)
    secrets_toml, credentials = _files_with_secrets()
    found += _toml_secrets(secrets_toml)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        found += [v for v in json.loads(credentials.read_text()).values() if isinstance(v, str)]
    return [s for s in set(found) if len(s) >= MIN_SECRET and s.lower() not in _NOT_SECRET]


def forms(secret: str) -> list[str]:
    """The ways a secret shows up in text: raw, URL-encoded, JSON-escaped, base64."""
    encoded = base64.b64encode(secret.encode()).decode()
    return list(
        dict.fromkeys(
            [
                secret,
                quote(secret, safe=""),
                quote(secret),
                json.dumps(secret)[1:-1],
                encoded,
                encoded.rstrip("="),
            ]
        )
    )


def redact(text: str, extra: list[str] | tuple[str, ...] = ()) -> str:
    """Mask credential-shaped text and every known secret (and `extra`) in `text`."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(rf"\1{MASK}\3", text)
    text = _KEYWORD_PASSWORD.sub(rf"\1{MASK}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}", text)
    text = _BEARER.sub(rf"\1 {MASK}", text)
    values = {form for secret in [*known_secrets(), *extra] for form in forms(secret)}
    for value in sorted((v for v in values if len(v) >= MIN_SECRET), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
