"""`elt lineage MART KEY`: where a mart row came from, down to the raw load and the file.

What links a mart to its staging models and raw tables is configuration, in the mart's
YAML (`config.meta.elt_lineage`; see dbt/models/marts/sales/_sales__models.yml):

    elt_lineage:
      key: order_id                  # the mart's column KEY is matched against
      upstream:
        - model: stg_shop__order_items   # a staging model (schema `staging`)
          match: order_id                # its column (and the raw table's) equal to KEY
          id: order_item_id              # its row id, also in raw (default: match)
          source: shop.order_items       # the raw table: raw_shop.order_items
          cursor: updated_at             # optional: shown to tell raw versions apart

Raw is an append-only log of versions: every raw row with the key is listed, the ones
staging uses marked; each load id is joined to the source's `_dlt_loads` (when) and to
the elt run whose `load_ids` hold it. File sources' raw rows name their file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from elt import output
from elt.options import format_option
from elt.runtime import Runtime
from runtime.errors import ConfigError, DataError

MART_SCHEMA, STAGING_SCHEMA = "marts", "staging"
RAW_ROWS_SHOWN = 50
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RAW_LINEAGE = ("_elt_file", "_elt_line", "_elt_file_modified_at", "_elt_extracted_at")


@click.command(
    epilog="\b\nExamples:\n  elt lineage fct_orders 42\n"
    "  elt lineage dim_customers 7 --format json",
)
@click.argument("mart")
@click.argument("key")
@format_option()
def lineage(mart: str, key: str, fmt: str) -> None:
    """Trace the row of MART whose key is KEY to its staging and raw rows, their dlt loads,
    the elt runs that loaded them and, for files, the file and line."""
    runtime = Runtime()
    config = lineage_config(runtime.dbt_dir)
    if mart not in config:
        known = ", ".join(sorted(config)) or "none"
        raise click.UsageError(
            f"no lineage configured for {mart}; configured: {known}"
            " (config.meta.elt_lineage in the mart's YAML)"
        )
    from runtime import engines

    conn = engines.read_only(runtime.warehouse, timeout=30)
    try:
        traced = trace(conn, mart, config[mart], key)
    finally:
        conn.close()
    if fmt == "json":
        output.emit_json({"command": "lineage", "status": "success", **traced})
    else:
        render(traced)


def lineage_config(dbt_dir: Path) -> dict[str, dict[str, Any]]:
    """mart name -> its `elt_lineage` block, from the models' YAML files."""
    import yaml

    found: dict[str, dict[str, Any]] = {}
    for path in sorted((dbt_dir / "models").rglob("*.yml")):
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue  # dbt itself reports a broken file
        for model in document.get("models") or []:
            meta = {**(model.get("meta") or {}), **((model.get("config") or {}).get("meta") or {})}
            if isinstance(meta.get("elt_lineage"), dict):
                found[model["name"]] = _checked(model["name"], meta["elt_lineage"], path)
    return found


def _checked(mart: str, block: dict[str, Any], path: Path) -> dict[str, Any]:
    """The block with every name a SQL identifier; a configuration error names the file."""
    names = [mart, block.get("key")]
    for upstream in block.get("upstream") or []:
        source, _, table = str(upstream.get("source", "")).partition(".")
        names += [upstream.get("model"), upstream.get("match"), source, table]
        names += [upstream.get(k) for k in ("id", "cursor") if upstream.get(k)]
    bad = [str(n) for n in names if not isinstance(n, str) or not _IDENTIFIER.match(n)]
    if bad or not block.get("upstream"):
        raise ConfigError(
            f"lineage {mart}: elt_lineage in {path.name} is incomplete or names {bad[0]!r}"
            if bad
            else f"lineage {mart}: elt_lineage in {path.name} lists no upstream",
            hint="give key, and per upstream model, match and source (source.table)",
        )
    return block


def trace(conn: Any, mart: str, config: dict[str, Any], key: str) -> dict[str, Any]:
    """The mart row's lineage as plain data."""
    from loaders import dataset_name
    from runtime.run_detail import runs_of_loads

    cur = conn.cursor()
    key_column = config["key"]
    mart_columns = _columns(cur, MART_SCHEMA, mart)
    if not mart_columns:
        raise ConfigError(
            f"lineage {mart}: {MART_SCHEMA}.{mart} does not exist", hint="run `elt transform`"
        )
    shown = [c for c in (key_column, "dlt_load_id", "extracted_at") if c in mart_columns]
    rows = _select(cur, MART_SCHEMA, mart, shown, key_column, key, mart)
    if not rows:
        raise DataError(
            f"lineage {mart}: no row with {key_column} = {key}",
            hint=f'`elt sql "select {key_column} from {MART_SCHEMA}.{mart} limit 5"` shows some',
        )
    upstream, loads = [], {}
    for entry in config["upstream"]:
        source, _, table = entry["source"].partition(".")
        match, row_id = entry["match"], entry.get("id", entry["match"])
        staged_columns = _columns(cur, STAGING_SCHEMA, entry["model"])
        staged_shown = [
            c
            for c in (row_id, "dlt_load_id", "source_file", "source_line", "extracted_at")
            if c in staged_columns
        ]
        staged = (
            _select(cur, STAGING_SCHEMA, entry["model"], staged_shown, match, key, mart)
            if match in staged_columns
            else []
        )
        raw_schema = dataset_name(source)
        raw_columns = _columns(cur, raw_schema, table)
        raw_shown = [row_id, "_dlt_load_id"]
        raw_shown += [
            c for c in ("_dlt_id", entry.get("cursor"), *_RAW_LINEAGE) if c and c in raw_columns
        ]
        raw = []
        if match in raw_columns and row_id in raw_columns:
            raw = _select(cur, raw_schema, table, raw_shown, match, key, mart, newest=True)
        in_staging = {(str(r[row_id]), r.get("dlt_load_id")) for r in staged}
        for row in raw:
            row["in_staging"] = (str(row[row_id]), row["_dlt_load_id"]) in in_staging
            loads.setdefault(row["_dlt_load_id"], {"source": source, "schema": raw_schema})
        upstream.append(
            {
                "model": entry["model"],
                "source": entry["source"],
                "raw_table": f"{raw_schema}.{table}",
                "id": row_id,
                "staging_rows": staged,
                "raw_rows": raw,
                "raw_rows_truncated": len(raw) == RAW_ROWS_SHOWN,
            }
        )
    for row in rows:
        if row.get("dlt_load_id"):
            loads.setdefault(row["dlt_load_id"], {"source": None, "schema": None})
    runs = runs_of_loads(cur, list(loads))
    described = []
    for load_id, where in sorted(loads.items()):
        completed = _load_row(cur, where["schema"], load_id) if where["schema"] else {}
        described.append(
            {"load_id": load_id, "source": where["source"], **completed, "run": runs.get(load_id)}
        )
    cur.close()
    return {
        "mart": mart,
        "key_column": key_column,
        "key": key,
        "rows": rows,
        "upstream": upstream,
        "loads": described,
    }


def _select(cur, schema, table, columns, where_column, key, mart, newest=False) -> list[dict]:
    from runtime import engines

    query = (
        f"select {', '.join(engines.ident(c) for c in columns)}"
        f" from {engines.qualified(schema, table)} where {engines.ident(where_column)} = %s"
    )
    if newest:
        query += f" order by {engines.ident('_dlt_load_id')} desc limit {RAW_ROWS_SHOWN}"
    try:
        cur.execute(query, (key,))
    except Exception as exc:
        if not engines.is_data_error(exc):
            raise
        cause = engines.first_line(exc)
        raise ConfigError(
            f"lineage {mart}: {key!r} is not a valid {where_column} for {schema}.{table} ({cause})",
            hint=f"give the {where_column} as the mart shows it",
        ) from None
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _columns(cur, schema: str, table: str) -> list[str]:
    cur.execute(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, table),
    )
    return [row[0] for row in cur.fetchall()]


def _load_row(cur, schema: str, load_id: str) -> dict[str, Any]:
    from runtime import engines

    if "load_id" not in _columns(cur, schema, "_dlt_loads"):
        return {}
    cur.execute(
        f"select status, inserted_at from {engines.qualified(schema, '_dlt_loads')}"
        " where load_id = %s",
        (load_id,),
    )
    found = cur.fetchone()
    if found is None:
        return {"completed": False}
    return {"completed": found[0] == 0, "loaded_at": found[1]}


def render(traced: dict[str, Any]) -> None:
    loads = {load["load_id"]: load for load in traced["loads"]}
    for row in traced["rows"]:
        load = loads.get(row.get("dlt_load_id")) or {}
        output.line(
            f"{MART_SCHEMA}.{traced['mart']} {traced['key_column']} = {traced['key']}:"
            f" version of dlt load {row.get('dlt_load_id') or '-'}"
            + (
                f", extracted {row['extracted_at']:%Y-%m-%d %H:%M:%S}"
                if row.get("extracted_at")
                else ""
            )
            + _run_text(load)
        )
    for entry in traced["upstream"]:
        title = f"{entry['model']} <- {entry['raw_table']}"
        if not entry["raw_rows"]:
            output.line(f"{title}: no rows with this key")
            continue
        columns = [entry["id"], "dlt load", "loaded at", "elt run", "file:line", "in staging"]
        rows = []
        for raw in entry["raw_rows"]:
            load = loads.get(raw["_dlt_load_id"]) or {}
            file = f"{raw['_elt_file']}:{raw.get('_elt_line')}" if raw.get("_elt_file") else ""
            rows.append(
                (
                    raw[entry["id"]],
                    raw["_dlt_load_id"],
                    f"{load['loaded_at']:%Y-%m-%d %H:%M:%S}" if load.get("loaded_at") else "-",
                    _run_text(load).removeprefix(", ") or "-",
                    file,
                    "yes" if raw["in_staging"] else "no (older or superseded)",
                )
            )
        output.table(title, columns, rows)


def _run_text(load: dict[str, Any]) -> str:
    run = load.get("run")
    if not run:
        return ""
    return f", elt {run['command']} run {run['run_id'][:8]} ({run['status']})"
