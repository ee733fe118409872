"""The replication slot of a Postgres source in replication mode (loaders/shop/replication.py).

A logical slot keeps every WAL segment since its confirmed position on the *source* server
until a load consumes it: a source that is no longer loaded fills that server's disk. The
check reports the WAL the slot retains and its lag behind the server's current position,
against `[doctor] replication_retained_wal_warn_mb` / `_fail_mb`, and FAILs on a slot that
is missing or invalidated (`wal_status = lost`): changes were lost, re-snapshot.
"""

from __future__ import annotations

from typing import Any

from diagnostics import pg
from diagnostics.connectivity import _postgres_params
from diagnostics.context import Context
from diagnostics.results import Outcome, Skipped, fail, ok, warn
from diagnostics.sources import SourceSpec

MIB = 2**20
DEFAULT_WARN_MB = 1024.0
DEFAULT_FAIL_MB = 10240.0


def applies(ctx: Context, spec: SourceSpec) -> bool:
    """True when the source, or one of its tables, is in replication mode."""
    if ctx.source_setting(spec, "mode") == "replication":
        return True
    tables = ctx.source_setting(spec, "tables") or {}
    return any(
        isinstance(table, dict) and table.get("mode") == "replication" for table in tables.values()
    )


def slot_name(ctx: Context, spec: SourceSpec) -> str:
    return str(ctx.source_setting(spec, "slot_name") or f"elt_{spec.name}")


def _threshold(ctx: Context, key: str, default: float) -> float:
    try:
        return float(ctx.config.values.get("doctor", {}).get(key, default))
    except (TypeError, ValueError):
        return default


def slot(ctx: Context, spec: SourceSpec) -> Outcome:
    name = slot_name(ctx, spec)
    credentials = ctx.source_setting(spec, "credentials")
    if credentials is None:
        raise Skipped(
            f"not checked: no credentials for {spec.name}",
            f"`elt doctor --only connectivity --source {spec.name}`",
        )
    resnapshot = f"`SOURCES__{spec.name.upper()}__RESNAPSHOT=true elt load {spec.name}`"
    dsn, params = _postgres_params(credentials)
    with pg.connection(dsn, timeout=ctx.io_timeout, **params) as conn:
        found = pg.rows(
            conn,
            "select wal_status, active,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint"
            " from pg_replication_slots where slot_name = %s",
            (name,),
        )
    if not found:
        return fail(
            f"replication slot {name} does not exist: the next load cannot read changes"
            " (or will take a new snapshot if none was ever loaded)",
            f"re-snapshot: {resnapshot}",
            slot=name,
        )
    wal_status, active, retained, lag = found[0]
    facts: dict[str, Any] = {
        "slot": name,
        "wal_status": wal_status,
        "active": active,
        "retained_bytes": retained,
        "lag_bytes": lag,
    }
    if wal_status == "lost":
        return fail(
            f"replication slot {name} was invalidated: the WAL it needed is gone",
            f"re-snapshot: {resnapshot}",
            **facts,
        )
    warn_mb = _threshold(ctx, "replication_retained_wal_warn_mb", DEFAULT_WARN_MB)
    fail_mb = _threshold(ctx, "replication_retained_wal_fail_mb", DEFAULT_FAIL_MB)
    detail = (
        f"slot {name} retains {(retained or 0) / MIB:,.1f} MiB of WAL,"
        f" {(lag or 0) / MIB:,.1f} MiB behind the server ({wal_status})"
    )
    consume = (
        f"`elt load {spec.name}` consumes it; if the source is no longer loaded, drop the slot:"
        f" `elt load --drop-slot {spec.name}`"
    )
    if (retained or 0) >= fail_mb * MIB or wal_status == "unreserved":
        return fail(detail, consume, **facts)
    if (retained or 0) >= warn_mb * MIB:
        return warn(detail, consume, **facts)
    return ok(detail, **facts)
