"""Data checks per source, from what dlt leaves behind: its load log and state in the
warehouse (`raw_<source>._dlt_loads`, `_dlt_pipeline_state`) and its local working dir."""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from diagnostics import dbt_meta, pg
from diagnostics.context import Context
from diagnostics.results import Outcome, fail, ok, warn
from diagnostics.sources import SourceSpec

HOUR = 3600.0
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * HOUR:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * HOUR:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / 86400:.1f} d"


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def last_completed_load(conn: Any, dataset: str) -> tuple[datetime | None, int]:
    """(when the newest completed load was recorded, how many completed loads)."""
    if not pg.relation_exists(conn, dataset, "_dlt_loads"):
        return None, 0
    newest, count = pg.rows(
        conn,
        f"select max(inserted_at), count(*) from {pg.qualified(dataset, '_dlt_loads')}"
        " where status = 0",
    )[0]
    return (utc(newest) if newest else None), count


def _load_thresholds(ctx: Context, spec: SourceSpec) -> tuple[float, float, str]:
    """warn/error ages of the last load: the dbt source's `_dlt_loads` freshness, else
    the doctor's defaults."""
    for table in dbt_meta.source_tables(ctx.project):
        if table.schema == spec.dataset and table.table == "_dlt_loads":
            warn_after = table.warn_after or table.error_after
            error_after = table.error_after or table.warn_after
            if warn_after and error_after:
                return warn_after, error_after, f"dbt source {table.source} freshness"
    return (
        ctx.config.doctor("load_age_warn_hours") * HOUR,
        ctx.config.doctor("load_age_fail_hours") * HOUR,
        "doctor defaults",
    )


def last_load(ctx: Context, spec: SourceSpec) -> Outcome:
    with ctx.warehouse_connection() as conn:
        newest, count = last_completed_load(conn, spec.dataset)
    if newest is None:
        return fail(
            f"{spec.dataset}: no completed load yet", f"`elt load {spec.name}`", loads=count
        )
    age = (datetime.now(UTC) - newest).total_seconds()
    warn_after, error_after, basis = _load_thresholds(ctx, spec)
    detail = f"last completed load {age_text(age)} ago ({count} completed)"
    facts = {
        "age_seconds": round(age, 1),
        "loads": count,
        "warn_after": warn_after,
        "error_after": error_after,
    }
    hint = f"`elt load {spec.name}`"
    if age > error_after:
        return fail(f"{detail}: stale, over {age_text(error_after)} ({basis})", hint, **facts)
    if age > warn_after:
        return warn(f"{detail}: over {age_text(warn_after)} ({basis})", hint, **facts)
    return ok(detail, **facts)


# --- local load packages ----------------------------------------------------------------


def pipeline_dir(ctx: Context, spec: SourceSpec) -> Path:
    return ctx.pipelines_dir / f"elt_{spec.name}"


def local_packages(folder: Path) -> dict[str, list[str]]:
    """Load ids by state, read from dlt's folder layout: extracted (normalize/extracted),
    normalized (load/normalized) and those holding failed jobs."""
    found: dict[str, list[str]] = {"extracted": [], "normalized": [], "failed": []}
    for state, where in (("extracted", "normalize/extracted"), ("normalized", "load/normalized")):
        base = folder / where
        if base.is_dir():
            found[state] = sorted(p.name for p in base.iterdir() if p.is_dir())
    for where in ("load/normalized", "load/loaded"):
        base = folder / where
        if not base.is_dir():
            continue
        for package in base.iterdir():
            failed = package / "failed_jobs"
            if failed.is_dir() and any(p for p in failed.iterdir() if not p.name.startswith(".")):
                found["failed"].append(package.name)
    found["failed"].sort()
    return found


def packages(ctx: Context, spec: SourceSpec) -> Outcome:
    aside = moved_aside(ctx, spec)
    if aside.facts["moved_aside"]:
        return aside
    folder = pipeline_dir(ctx, spec)
    if not folder.is_dir():
        return ok(f"no local working dir ({folder}): nothing pending here", pending=0, failed=0)
    found = local_packages(folder)
    pending = found["extracted"] + found["normalized"]
    failed = found["failed"]
    facts = {"pending": len(pending), "failed": len(failed), "load_ids": pending + failed}
    if failed:
        first = failed[0]
        where = (
            "load/loaded" if (folder / "load" / "loaded" / first).is_dir() else "load/normalized"
        )
        return fail(
            f"{len(failed)} load package(s) with failed jobs: {', '.join(failed)}",
            f"read the errors: `ls {folder / where / first / 'failed_jobs'}`, fix, then"
            f" `elt load {spec.name}`",
            **facts,
        )
    if pending:
        return warn(
            f"{len(pending)} pending load package(s) ({len(found['extracted'])} extracted,"
            f" {len(found['normalized'])} normalized), left by an interrupted run",
            f"`elt load {spec.name}` finishes them first",
            **facts,
        )
    return ok("no pending or failed load packages", **facts)


# loaders/packages.py moves a package refused for its data here, per source
MOVED_ASIDE = "moved_aside"


def moved_aside(ctx: Context, spec: SourceSpec) -> Outcome:
    """Load packages moved aside after the warehouse refused their data: rows not loaded."""
    folder = ctx.pipelines_dir / MOVED_ASIDE / f"elt_{spec.name}"
    found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not found:
        return ok("no load package moved aside", moved_aside=[])
    first = folder / found[0]
    normalized = pipeline_dir(ctx, spec) / "load" / "normalized"
    return fail(
        f"{len(found)} load package(s) moved aside after a data error: {', '.join(found)}"
        f" (in {folder})",
        f"inspect: `ls {first}/failed_jobs`; delete: `rm -rf {first}`; or load it again once"
        f" the warehouse accepts it: `mkdir -p {normalized} && mv {first} {normalized}/ &&"
        f" elt load {spec.name}`",
        moved_aside=found,
    )


# --- the raw dataset --------------------------------------------------------------------


def raw_tables(conn: Any, dataset: str) -> dict[str, set[str]]:
    """Data tables of the dataset (dlt's own excluded) and their columns."""
    tables: dict[str, set[str]] = {}
    for table, column in pg.rows(
        conn,
        "select table_name, column_name from information_schema.columns"
        " where table_schema = %s and table_name not like '\\_dlt\\_%%'",
        (dataset,),
    ):
        tables.setdefault(table, set()).add(column)
    return tables


def incomplete_loads(ctx: Context, spec: SourceSpec) -> Outcome:
    """Raw rows whose load never completed: staging ignores them until the load finishes."""
    with ctx.warehouse_connection(heavy=True) as conn:
        if not pg.relation_exists(conn, spec.dataset, "_dlt_loads"):
            return warn(f"{spec.dataset}: not loaded yet", f"`elt load {spec.name}`")
        tables = {t: c for t, c in raw_tables(conn, spec.dataset).items() if "_dlt_load_id" in c}
        if not tables:
            return ok("no raw tables yet", rows=0)
        loads = pg.qualified(spec.dataset, "_dlt_loads")
        counts = pg.rows(
            conn,
            " union all ".join(
                f"select %s, count(*) from {pg.qualified(spec.dataset, t)} as r where not exists"
                f" (select 1 from {loads} as l where l.load_id = r._dlt_load_id and l.status = 0)"
                for t in sorted(tables)
            ),
            tuple(sorted(tables)),
        )
    found = {table: n for table, n in counts if n}
    total = sum(found.values())
    if total:
        packages_here = local_packages(pipeline_dir(ctx, spec))
        pending = len(packages_here["extracted"]) + len(packages_here["normalized"])
        note = (
            "a pending package will complete them"
            if pending
            else "no pending package here: staging keeps ignoring them"
        )
        return warn(
            f"{total:,} raw row(s) of loads never completed in "
            + ", ".join(f"{t} ({n:,})" for t, n in sorted(found.items()))
            + f"; {note}",
            f"`elt load {spec.name}`",
            rows=total,
            tables=sorted(found),
        )
    return ok(f"every raw row belongs to a completed load ({len(tables)} tables)", rows=0)


def variant_columns(ctx: Context, spec: SourceSpec) -> Outcome:
    """`__v_` columns: dlt met a value of another type than the column's and kept it aside."""
    with ctx.warehouse_connection() as conn:
        found = sorted(
            f"{table}.{column}"
            for table, columns in raw_tables(conn, spec.dataset).items()
            for column in columns
            if "__v_" in column
        )
    if found:
        table, column = found[0].split(".", 1)
        return warn(
            f"{len(found)} variant column(s): {', '.join(found)}",
            f'size it: `elt sql "select count({column}) from {spec.dataset}.{table}"`;'
            " then fix the source's type or cast it in staging",
            columns=found,
        )
    return ok("no variant columns", columns=[])


# --- cursor state -----------------------------------------------------------------------


# dlt's typed JSON marks some values with a private-use character (dlt.common.json)
_PUA_START = 0xF026
_PUA_DECODERS = {
    0: Decimal,
    1: datetime.fromisoformat,
    2: date.fromisoformat,
    7: time.fromisoformat,
}


def _pua_decode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _pua_decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pua_decode(v) for v in value]
    if isinstance(value, str) and value and 0 <= ord(value[0]) - _PUA_START <= 7:
        decoder = _PUA_DECODERS.get(ord(value[0]) - _PUA_START, str)
        return decoder(value[1:])
    return value


def decode_state(encoded: str) -> dict[str, Any]:
    """dlt's stored state (`compress_state`: typed JSON, zlib, base64), decoded without
    importing dlt (2 s, most of the doctor's time). tests/diagnostics pins this against
    dlt's own `decompress_state`, which is the fallback for anything unexpected."""
    try:
        return _pua_decode(json.loads(zlib.decompress(base64.b64decode(encoded, validate=True))))
    except (binascii.Error, zlib.error, ValueError):
        from dlt.common.versioned_state import decompress_state  # imports dlt: only here

        return decompress_state(encoded)


def pipeline_state(conn: Any, spec: SourceSpec) -> dict[str, Any] | None:
    """The newest state stored with a completed load, decoded with dlt's helper."""
    if not pg.relation_exists(conn, spec.dataset, "_dlt_pipeline_state"):
        return None
    found = pg.rows(
        conn,
        f"select s.state from {pg.qualified(spec.dataset, '_dlt_pipeline_state')} as s"
        " where s.pipeline_name = %s and exists (select 1 from"
        f" {pg.qualified(spec.dataset, '_dlt_loads')} as l"
        " where l.load_id = s._dlt_load_id and l.status = 0)"
        " order by s.version desc, s.created_at desc limit 1",
        (f"elt_{spec.name}",),
    )
    return decode_state(found[0][0]) if found else None


def cursors(state: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(resource, cursor path, last value) for every incremental in the state."""
    found = []
    for source in (state.get("sources") or {}).values():
        for resource, resource_state in (source.get("resources") or {}).items():
            for cursor, incremental in (resource_state.get("incremental") or {}).items():
                if isinstance(incremental, dict) and "last_value" in incremental:
                    found.append((resource, cursor, incremental["last_value"]))
    return found


def _comparable(value: Any, like: Any) -> Any:
    """State values are JSON (a timestamp may come back as a string): match the raw type."""
    if isinstance(like, datetime) and isinstance(value, str):
        return utc(datetime.fromisoformat(value))
    if isinstance(like, datetime) and isinstance(value, datetime):
        return utc(value)
    if isinstance(like, date) and isinstance(value, str):
        return date.fromisoformat(value[:10])
    if isinstance(like, int | float | Decimal) and isinstance(value, str | int | float):
        return Decimal(str(value))
    return value


def _difference(state_value: Any, raw_value: Any) -> tuple[str, float | None]:
    """('equal' | 'ahead' | 'behind', by how much) for the state against raw; no values."""
    if isinstance(raw_value, datetime):
        raw_value = utc(raw_value)
    elif isinstance(raw_value, int | float):
        raw_value = Decimal(str(raw_value))
    if state_value == raw_value:
        return "equal", 0.0
    if isinstance(state_value, datetime):
        delta = (state_value - raw_value).total_seconds()
    elif isinstance(state_value, Decimal):
        delta = float(state_value - raw_value)
    else:
        delta = None
    return ("ahead" if state_value > raw_value else "behind"), delta


def _by(entry: dict[str, Any]) -> str:
    difference = entry.get("difference")
    if difference is None:
        return "?"
    return age_text(abs(difference)) if entry.get("kind") == "time" else f"{abs(difference):g}"


def cursor_state(ctx: Context, spec: SourceSpec) -> Outcome:
    """The state's last cursor value against the newest cursor value in raw, per resource.

    Equal is healthy. State behind raw: the next load re-reads rows (merge absorbs them).
    State ahead of raw by more than the lag window: rows in between may never load."""
    lag = float(spec.setting("lag_seconds") or 0)
    with ctx.warehouse_connection() as conn:
        state = pipeline_state(conn, spec)
        if state is None:
            if pg.relation_exists(conn, spec.dataset, "_dlt_loads"):
                return warn(
                    f"{spec.dataset}: no pipeline state stored with a completed load",
                    f"`elt load {spec.name}` stores it",
                )
            return warn(f"{spec.dataset}: not loaded yet", f"`elt load {spec.name}`")
        tables = raw_tables(conn, spec.dataset)
        compared, skipped, ahead, behind = [], [], [], []
        for resource, cursor, last_value in cursors(state):
            comparable = _IDENTIFIER.match(cursor) and cursor in tables.get(resource, ())
            if not comparable:
                skipped.append(resource)
                continue
            raw_max = pg.rows(
                conn,
                f"select max(r.{pg.ident(cursor)}) from {pg.qualified(spec.dataset, resource)} as r"
                f" where exists (select 1 from {pg.qualified(spec.dataset, '_dlt_loads')} as l"
                " where l.load_id = r._dlt_load_id and l.status = 0)",
            )[0][0]
            entry = {"resource": resource, "cursor": cursor}
            if raw_max is None or last_value is None:
                entry["state_vs_raw"] = "no raw rows" if raw_max is None else "no state value"
            else:
                try:
                    relation, delta = _difference(_comparable(last_value, raw_max), raw_max)
                except (TypeError, ValueError):
                    relation, delta = "incomparable", None
                kind = "time" if isinstance(raw_max, datetime) else "number"
                entry.update(state_vs_raw=relation, difference=delta, kind=kind)
                if relation == "ahead":
                    ahead.append(entry)
                elif relation == "behind":
                    behind.append(entry)
            compared.append(entry)
    facts = {"cursors": compared, "not_compared": skipped}
    beyond_lag = [e for e in ahead if e.get("difference") is None or e["difference"] > lag]
    if beyond_lag:
        names = ", ".join(f"{e['resource']}.{e['cursor']} ({_by(e)})" for e in beyond_lag)
        return fail(
            f"state ahead of raw beyond the {lag:g}s lag window: {names}; rows in between are not"
            " reloaded",
            f'compare: `elt sql "select max({beyond_lag[0]["cursor"]}) from'
            f" {spec.dataset}.{beyond_lag[0]['resource']}\"`; reset the source's state to reload",
            **facts,
        )
    if behind:
        names = ", ".join(f"{e['resource']}.{e['cursor']} ({_by(e)})" for e in behind)
        return warn(
            f"state behind raw: {names}; the next load re-reads those rows",
            f"`elt load {spec.name}` moves the state on",
            **facts,
        )
    counted = len(compared)
    detail = f"{counted} cursor(s) match the newest raw values"
    if ahead:
        detail += f" ({len(ahead)} within the lag window)"
    if skipped:
        detail += f"; not compared (no raw column): {', '.join(skipped)}"
    return ok(detail, **facts)
