"""Connectivity checks: the warehouse and each configured source, by kind."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from diagnostics import pg
from diagnostics.context import WAREHOUSE_HINT, Context
from diagnostics.data import last_completed_load
from diagnostics.results import Outcome, Skipped, fail, ok, warn
from diagnostics.sources import SourceSpec

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def warehouse(ctx: Context) -> Outcome:
    probe = ctx.warehouse_probe()
    if not probe.ok:
        return fail(probe.detail, probe.hint or "check ELT_WAREHOUSE_URL")
    assert ctx.warehouse is not None
    if ctx.engine != "postgres":  # a file in this process: no network, TLS or latency
        return ok(f"{probe.detail}: {ctx.engine} {probe.version}", version=probe.version)
    tls = "TLS" if probe.ssl else "no TLS"
    detail = f"{probe.detail}: PostgreSQL {probe.version}, {probe.latency_ms:.1f} ms, {tls}"
    facts = {"version": probe.version, "latency_ms": probe.latency_ms, "tls": probe.ssl}
    if not probe.ssl and ctx.warehouse.host not in LOOPBACK:
        return warn(detail, "require TLS: add ?sslmode=require to ELT_WAREHOUSE_URL", **facts)
    if (probe.latency_ms or 0) > ctx.config.doctor("warehouse_latency_warn_ms"):
        return warn(detail, "check the network to the warehouse: `ping <host>`", **facts)
    return ok(detail, **facts)


def _env(spec: SourceSpec, key: str) -> str:
    return f"SOURCES__{spec.name.upper()}__{key.upper()}"


# --- postgres ---------------------------------------------------------------------------


def _postgres_params(credentials: Any) -> tuple[str | None, dict[str, Any]]:
    """A DSN or libpq keywords from dlt's credentials (a URL or a table of fields)."""
    if isinstance(credentials, dict):
        names = {"username": "user", "database": "dbname"}
        keep = ("host", "port", "username", "user", "password", "database", "dbname", "sslmode")
        return None, {names.get(k, k): v for k, v in credentials.items() if k in keep}
    return str(credentials), {}


def _where(dsn: str | None, params: dict[str, Any]) -> str:
    if dsn:
        parts = urlsplit(pg.libpq_url(dsn))
        return f"{parts.hostname}:{parts.port or 5432}{parts.path}"
    return f"{params.get('host')}:{params.get('port', 5432)}/{params.get('dbname', '')}"


def postgres_source(ctx: Context, spec: SourceSpec) -> Outcome:
    """Connect, then SELECT privilege on every configured table."""
    credentials = ctx.source_setting(spec, "credentials")
    if credentials is None and spec.name in ctx.source_defaults:
        raise Skipped(
            f"not checked: the demo {spec.name} database lives on the warehouse, which is"
            " unreachable",
            WAREHOUSE_HINT,
        )
    if credentials is None:
        return fail(
            f"{spec.name}: no credentials", f"set {_env(spec, 'credentials')} (a postgresql:// URL)"
        )
    dsn, params = _postgres_params(credentials)
    where = _where(dsn, params)
    schema = ctx.source_setting(spec, "schema") or "public"
    tables = list((ctx.source_setting(spec, "tables") or {}).keys())
    started = time.monotonic()
    try:
        with pg.connection(dsn, timeout=ctx.io_timeout, **params) as conn:
            latency = (time.monotonic() - started) * 1000
            found = pg.rows(
                conn,
                "select t, to_regclass(format('%%I.%%I', %s, t)) is not null,"
                " case when to_regclass(format('%%I.%%I', %s, t)) is not null"
                " then has_table_privilege(format('%%I.%%I', %s, t), 'SELECT') end"
                " from unnest(%s::text[]) as t",
                (schema, schema, schema, tables),
            )
            user = pg.rows(conn, "select current_user")[0][0]
    except Exception as exc:
        kind = pg.classify(exc)
        setting = _env(spec, "credentials")
        hint = {
            "refused": f"start the {spec.name} database, or fix host/port in {setting}",
            "timeout": f"{where} accepts but does not answer: check that server and the network",
            "auth": f"fix the user or password in {setting}",
            "missing database": f"fix the database name in {setting}",
        }.get(kind, f"check {setting}")
        return fail(f"{spec.name} at {where}: {pg.cause(exc)}", hint, error=kind)
    missing = [t for t, exists, _ in found if not exists]
    denied = [t for t, exists, allowed in found if exists and not allowed]
    facts = {
        "tables": len(tables),
        "missing": missing,
        "denied": denied,
        "latency_ms": round(latency, 1),
    }
    if missing:
        return fail(
            f"{spec.name} at {where}: table(s) missing in schema {schema}: {', '.join(missing)}",
            f"fix [sources.{spec.name}.tables] in .dlt/config.toml or the schema ({schema})",
            **facts,
        )
    if denied:
        return fail(
            f"{spec.name} at {where}: no SELECT for {user} on {', '.join(denied)}",
            f"GRANT SELECT ON {', '.join(f'{schema}.{t}' for t in denied)} TO {user};",
            **facts,
        )
    count = len(tables)
    return ok(
        f"{spec.name} at {where}: connected in {latency:.0f} ms, SELECT on {count}/{count} tables",
        **facts,
    )


# --- rest -------------------------------------------------------------------------------


def _probe_path(ctx: Context, spec: SourceSpec) -> str:
    """Where to knock: `doctor_path`, else the first configured endpoint, else the base URL."""
    configured = ctx.source_setting(spec, "probe_path")
    if configured:
        return str(configured)
    endpoints = ctx.source_setting(spec, "endpoints")
    first: Any = None
    if isinstance(endpoints, dict) and endpoints:
        name, value = next(iter(endpoints.items()))
        first = value if isinstance(value, str) else name
        if isinstance(value, dict):  # dlt rest_api: {endpoint = {path = ...}} or {path = ...}
            endpoint = value.get("endpoint")
            nested = endpoint.get("path") if isinstance(endpoint, dict) else endpoint
            first = value.get("path") or nested or name
    elif isinstance(endpoints, list) and endpoints:
        value = endpoints[0]
        first = value if isinstance(value, str) else (value.get("path") or value.get("name"))
    return str(first or "")


def _rate_limit(headers: Any) -> dict[str, float]:
    """limit / remaining / reset from X-RateLimit-*, RateLimit-* or a combined RateLimit."""
    found: dict[str, float] = {}
    for prefix in ("x-ratelimit-", "ratelimit-", "x-rate-limit-"):
        for key in ("limit", "remaining", "reset"):
            value = headers.get(prefix + key)
            if value is not None and key not in found:
                with contextlib.suppress(ValueError):
                    found[key] = float(str(value).split(",")[0].split(";")[0])
    combined = headers.get("ratelimit")
    if combined and not found:
        for item in str(combined).replace(";", ",").split(","):
            key, _, value = item.strip().partition("=")
            if key in ("limit", "remaining", "reset"):
                with contextlib.suppress(ValueError):
                    found[key] = float(value)
    return found


def _retry_after(value: str | None) -> float | None:
    from email.utils import parsedate_to_datetime

    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def rest_source(ctx: Context, spec: SourceSpec) -> Outcome:
    """Reachable, token accepted, and what the rate limit leaves: one authenticated GET."""
    import urllib.error  # here: only REST sources pay for the import
    import urllib.request

    base = ctx.source_setting(spec, "base_url")
    if not base:
        return fail(f"{spec.name}: no base_url", f"set {_env(spec, 'base_url')}")
    base = str(base)
    parts = urlsplit(base)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    path = _probe_path(ctx, spec)
    url = urljoin(base if base.endswith("/") else base + "/", path.lstrip("/"))
    token = ctx.source_setting(spec, "token")
    request = urllib.request.Request(url, method="GET", headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    shown = f"{spec.name} at {where}"
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=ctx.io_timeout) as response:
            status, headers = response.status, response.headers
    except urllib.error.HTTPError as exc:
        status, headers = exc.code, exc.headers
        exc.close()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ConnectionRefusedError):
            return fail(
                f"{shown}: connection refused",
                f"start the {spec.name} API, or fix {_env(spec, 'base_url')}",
                reachable=False,
            )
        if isinstance(reason, TimeoutError | socket.timeout):
            return fail(
                f"{shown}: no answer within {ctx.io_timeout:g}s",
                f"{where} accepts but does not answer: check the {spec.name} API",
                reachable=False,
            )
        lines = str(reason).splitlines()
        return fail(
            f"{shown}: {type(reason).__name__}: {lines[0] if lines else ''}",
            f"check {_env(spec, 'base_url')} and the network",
            reachable=False,
        )
    latency = (time.monotonic() - started) * 1000
    limits = _rate_limit(headers)
    facts: dict[str, Any] = {
        "reachable": True,
        "http_status": status,
        "latency_ms": round(latency, 1),
    }
    facts.update({f"rate_limit_{k}": v for k, v in limits.items()})
    if status in (401, 403):
        facts["token_accepted"] = False
        return fail(
            f"{shown}: token rejected (HTTP {status})",
            f"set a valid token: {_env(spec, 'token')}, or [sources.{spec.name}] token"
            " in .dlt/secrets.toml",
            **facts,
        )
    if status == 429:
        wait = _retry_after(headers.get("retry-after")) or limits.get("reset")
        after = f"; retry after {wait:.0f}s" if wait is not None else ""
        return warn(
            f"{shown}: rate limited (HTTP 429){after}",
            f"wait{f' {wait:.0f}s' if wait is not None else ''}, then `elt load {spec.name}`;"
            " load less often if it persists",
            **facts,
        )
    if status >= 500:
        hint = f"check the {spec.name} API's status page or logs"
        return fail(f"{shown}: server error (HTTP {status})", hint, **facts)
    if status == 404:
        return fail(
            f"{shown}: HTTP 404 for the probe path {path or '/'}",
            f"fix {_env(spec, 'base_url')}, or set doctor_path under [sources.{spec.name}]",
            **facts,
        )
    if status >= 400:
        return fail(f"{shown}: HTTP {status}", f"check {_env(spec, 'base_url')}", **facts)
    facts["token_accepted"] = True
    detail = f"{shown}: reachable in {latency:.0f} ms, token accepted"
    if "remaining" in limits:
        limit = limits.get("limit")
        left = f"{limits['remaining']:.0f}" + (f"/{limit:.0f}" if limit else "")
        reset = f", resets in {limits['reset']:.0f}s" if "reset" in limits else ""
        detail += f", rate limit: {left} left{reset}"
        threshold = ctx.config.doctor("rate_limit_warn_percent")
        if limit and limits["remaining"] * 100 / limit < threshold:
            return warn(
                detail,
                f"wait for the window to reset before `elt load {spec.name}`",
                **facts,
            )
    else:
        detail += ", no rate-limit headers"
    return ok(detail, **facts)


# --- files ------------------------------------------------------------------------------


def landing_folder(ctx: Context, spec: SourceSpec) -> Path | None:
    """The local landing folder of a files source; None for a remote bucket."""
    raw = str(ctx.source_setting(spec, "folder") or "")
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
        if scheme != "file":
            return None
        raw = rest
    path = Path(raw).expanduser()
    return path if path.is_absolute() else ctx.project / path


def _last_load(ctx: Context, spec: SourceSpec) -> datetime | None:
    """The last completed load of the source, when the warehouse answers; else None."""
    if not ctx.warehouse_probe().ok:
        return None
    try:
        with ctx.warehouse_connection() as conn:
            return last_completed_load(conn, spec.dataset)[0]
    except Exception:
        return None


def _globs(ctx: Context, spec: SourceSpec) -> list[str]:
    """Each feed's `file_glob` ([sources.<name>.feeds.<feed>]), else the source's, else all."""
    feeds = spec.config.get("feeds")
    if isinstance(feeds, dict):
        found = [
            f["file_glob"] for f in feeds.values() if isinstance(f, dict) and f.get("file_glob")
        ]
        if found:
            return found
    configured = ctx.source_setting(spec, "glob")
    return [str(configured)] if configured else ["**/*"]


def _data_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".")


def files_source(ctx: Context, spec: SourceSpec) -> Outcome:
    """The landing folder is readable; how many files wait for the next load."""
    folder = landing_folder(ctx, spec)
    raw = ctx.source_setting(spec, "folder")
    if folder is None:
        return ok(f"{spec.name}: remote bucket {urlsplit(str(raw)).scheme}://, not checked here")
    shown = f"{spec.name} landing folder {folder}"
    if not folder.is_dir():
        hint = f"`mkdir -p {folder}`, or fix {_env(spec, 'bucket_url')}"
        return fail(f"{shown} does not exist", hint)
    if not os.access(folder, os.R_OK | os.X_OK):
        return fail(f"{shown} is not readable", f"`chmod u+rx {folder}` (or run as its owner)")
    files = sorted(
        {p for pattern in _globs(ctx, spec) for p in folder.glob(pattern) if _data_file(p)}
    )
    unreadable = [p.name for p in files if not os.access(p, os.R_OK)]
    if unreadable:
        return fail(
            f"{shown}: {len(unreadable)} of {len(files)} files not readable",
            f"`chmod u+r {folder}/*`",
            files=len(files),
            unreadable=len(unreadable),
        )
    last = _last_load(ctx, spec)
    facts: dict[str, Any] = {"files": len(files)}
    detail = f"{shown}: readable, {len(files)} file(s)"
    if last is not None:
        cutoff = last.timestamp()
        waiting = [p for p in files if p.stat().st_mtime > cutoff]
        facts["waiting"] = len(waiting)
        detail += f", {len(waiting)} newer than the last load"
        if waiting:
            oldest = min(p.stat().st_mtime for p in waiting)
            age_hours = (time.time() - oldest) / 3600
            facts["oldest_waiting_hours"] = round(age_hours, 2)
            if age_hours > ctx.config.doctor("load_age_warn_hours"):
                return warn(
                    f"{detail}, oldest waiting {age_hours:.0f} h",
                    f"`elt load {spec.name}`",
                    **facts,
                )
    return ok(detail, **facts)
