"""Data checks on the dbt side, computed in the warehouse without running dbt: source
freshness (dbt's thresholds from the sources YAML) and nulls or duplicates in mart keys."""

from __future__ import annotations

from datetime import UTC, datetime

from diagnostics import dbt_meta, pg
from diagnostics.context import Context
from diagnostics.data import age_text, utc
from diagnostics.results import Outcome, fail, ok, warn


def freshness(
    ctx: Context, source: str, tables: list[dbt_meta.SourceTable], elt_source: str | None
) -> Outcome:
    """dbt's source freshness computed here: the newest load time (loaded_at_field or a
    loaded_at_query the doctor can compute) against its thresholds."""
    load_hint = f"`elt load {elt_source}`" if elt_source else f"`elt test -s source:{source}`"
    results = []
    with ctx.warehouse_connection() as conn:
        for table in tables:
            if not pg.relation_exists(conn, table.schema, table.table):
                results.append((table, None, "missing"))
                continue
            sql = table.newest_sql()
            if sql is None:
                continue
            newest = pg.rows(conn, sql)[0][0]
            if newest is None:
                results.append((table, None, "empty"))
                continue
            age = (datetime.now(UTC) - utc(newest)).total_seconds()
            if table.error_after and age > table.error_after:
                state = "error"
            elif table.warn_after and age > table.warn_after:
                state = "warn"
            else:
                state = "pass"
            results.append((table, age, state))
    facts = {
        "tables": [
            {"table": t.name, "age_seconds": None if a is None else round(a, 1), "status": s}
            for t, a, s in results
        ]
    }
    bad = [r for r in results if r[2] in ("missing", "empty", "error")]
    late = [r for r in results if r[2] == "warn"]

    def text(entries: list) -> str:
        return ", ".join(
            f"{t.name} ({s})" if a is None else f"{t.name} {age_text(a)} old" for t, a, s in entries
        )

    if bad:
        return fail(f"dbt source {source}: stale or missing: {text(bad)}", load_hint, **facts)
    if late:
        return warn(f"dbt source {source}: late: {text(late)}", load_hint, **facts)
    oldest = max((a for _, a, _ in results if a is not None), default=None)
    detail = f"dbt source {source}: {len(results)} table(s) fresh"
    if oldest is not None:
        detail += f" (oldest {age_text(oldest)})"
    return ok(detail, **facts)


def mart_keys(ctx: Context) -> Outcome:
    """Nulls and duplicates in the marts' keys (columns tested unique and not_null)."""
    keys, origin = dbt_meta.mart_keys(ctx.project)
    if not keys:
        return warn("no mart keys found (no unique + not_null tests on marts)", "`elt transform`")
    problems, missing = [], []
    with ctx.warehouse_connection(heavy=True) as conn:
        by_table: dict[tuple[str, str], list[dbt_meta.MartKey]] = {}
        for key in keys:
            by_table.setdefault((key.schema, key.table), []).append(key)
        for (schema, table), table_keys in by_table.items():
            if not pg.relation_exists(conn, schema, table):
                missing.append(table_keys[0].model)
                continue
            parts = []
            for key in table_keys:
                column = pg.ident(key.column)
                parts += [
                    f"count(*) - count({column})",
                    f"count({column}) - count(distinct {column})",
                ]
            counts = pg.rows(conn, f"select {', '.join(parts)} from {pg.qualified(schema, table)}")[
                0
            ]
            for index, key in enumerate(table_keys):
                nulls, duplicates = counts[2 * index], counts[2 * index + 1]
                if nulls or duplicates:
                    problems.append((key, nulls, duplicates))
    facts = {
        "keys": len(keys),
        "from": origin,
        "not_built": missing,
        "problems": [
            {"model": k.model, "column": k.column, "nulls": n, "duplicates": d}
            for k, n, d in problems
        ],
    }
    if problems:
        listed = ", ".join(
            f"{k.model}.{k.column}: {n} null(s), {d} duplicate(s)" for k, n, d in problems
        )
        return fail(listed, f"`elt test -s {problems[0][0].model}`", **facts)
    if missing:
        return warn(f"not built yet: {', '.join(missing)}", "`elt transform`", **facts)
    detail = f"{len(keys)} key(s) on {len(by_table)} marts: no nulls, no duplicates ({origin})"
    return ok(detail, **facts)


def mart_pii(ctx: Context) -> Outcome:
    """A mart column named like a column staging marks PII: it reaches readers unhashed."""
    pii = dbt_meta.pii_columns(ctx.project)
    if not pii:
        return ok("no columns marked PII (meta: {pii: true}) in the models' YAML")
    with ctx.warehouse_connection() as conn:
        exposed = pg.rows(
            conn,
            "select table_name, column_name from information_schema.columns"
            " where table_schema = 'marts' and lower(column_name) = any(%s)"
            " order by table_name, column_name",
            (sorted(pii),),
        )
    facts = {"pii_columns": sorted(pii), "exposed": [f"{t}.{c}" for t, c in exposed]}
    if exposed:
        listed = ", ".join(facts["exposed"])
        return warn(
            f"marts expose PII column(s) unhashed: {listed}",
            "hash or drop them in the mart (e.g. {{ dbt.hash('lower(email)') }} as email_hash),"
            " then `elt transform`",
            **facts,
        )
    return ok(f"no mart exposes the {len(pii)} PII column(s) staging marks", **facts)
