"""Keep secrets out of every line elt prints: errors, logs, JSON."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")


def known_secrets() -> list[str]:
    """Passwords and tokens present in the environment elt and dlt read."""
    found: list[str] = []
    for key, value in os.environ.items():
        if not value:
            continue
        if key.startswith(("DBT_ENV_SECRET_",)) or key.endswith(("__PASSWORD", "__TOKEN")):
            found.append(value)
        elif key == "ELT_WAREHOUSE_URL" or key.endswith("__CREDENTIALS"):
            password = urlsplit(value).password if "://" in value else None
            if password:
                found += [password, unquote(password)]
    return [s for s in found if len(s) >= 3]


def redact(text: str) -> str:
    """Mask URL passwords and every known secret in `text`."""
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    for secret in sorted(known_secrets(), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
