"""What the doctor needs from the dbt project, read from its files without running dbt:
source freshness thresholds (sources YAML) and mart keys (manifest, else models YAML)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics import pg

PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass
class SourceTable:
    source: str  # the dbt source name
    schema: str
    table: str  # identifier in the warehouse
    name: str  # the dbt table name
    loaded_at_field: str | None
    warn_after: float | None  # seconds
    error_after: float | None
    filter: str | None
    loaded_at_query: str | None = None  # dbt's alternative to loaded_at_field

    def newest_sql(self) -> str | None:
        """SQL giving the table's newest load time as dbt's freshness computes it, or None
        when it cannot be computed without dbt (a loaded_at_query of other Jinja)."""
        relation = pg.qualified(self.schema, self.table)
        if self.loaded_at_field:
            where = f" where {self.filter}" if self.filter and "{{" not in self.filter else ""
            return f"select max({self.loaded_at_field}) from {relation}{where}"
        query = (self.loaded_at_query or "").strip()
        if DLT_LOADED_AT.fullmatch(query):
            return dlt_loaded_at_sql(self.schema, self.table)
        if query and "{{" not in query and "{%" not in query:
            return query
        return None


# macros/dlt_loaded_at.sql as a source's loaded_at_query, with its default arguments
DLT_LOADED_AT = re.compile(r"\{\{-?\s*dlt_loaded_at\(\s*this\s*\)\s*-?\}\}")
DLT_LOADS = "_dlt_loads"


def dlt_loaded_at_sql(schema: str, table: str) -> str:
    """What macros/dlt_loaded_at.sql renders to for `schema.table`: when the newest
    completed dlt load that wrote rows to it finished (for _dlt_loads, the newest one)."""
    sql = f"select max(inserted_at) from {pg.qualified(schema, DLT_LOADS)} where status = 0"
    if table != DLT_LOADS:
        rows = pg.qualified(schema, table)
        sql += f" and load_id in (select _dlt_load_id from {rows})"
    return sql


@dataclass
class MartKey:
    model: str
    schema: str
    table: str
    column: str


def _yaml(path: Path) -> Any:
    import yaml

    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _threshold(spec: Any) -> float | None:
    if not isinstance(spec, dict) or spec.get("count") is None:
        return None
    return float(spec["count"]) * PERIOD_SECONDS.get(str(spec.get("period", "hour")), 3600)


def _get(node: dict, key: str, default: Any = None) -> Any:
    """A property set at the top level or under `config:` (dbt 1.10+ prefers config)."""
    config = node.get("config") or {}
    if key in config:
        return config[key]
    return node.get(key, default)


def source_tables(project: Path) -> list[SourceTable]:
    """Every dbt source table that declares freshness, with its thresholds in seconds."""
    found: list[SourceTable] = []
    for path in sorted((project / "dbt" / "models").rglob("*.yml")):
        try:
            document = _yaml(path)
        except Exception:
            continue  # the configuration checks report files that do not parse
        for source in document.get("sources") or []:
            if not isinstance(source, dict) or "name" not in source:
                continue
            base_freshness = _get(source, "freshness")
            base_loaded_at = _get(source, "loaded_at_field")
            base_query = _get(source, "loaded_at_query")
            for table in source.get("tables") or []:
                if not isinstance(table, dict) or "name" not in table:
                    continue
                config = table.get("config") or {}
                overridden = "freshness" in config or "freshness" in table
                freshness = _get(table, "freshness") if overridden else base_freshness
                if not freshness:
                    continue
                # the table's own loaded_at_field or loaded_at_query wins over the source's
                field, query = _get(table, "loaded_at_field"), _get(table, "loaded_at_query")
                if not field and not query:
                    field, query = base_loaded_at, base_query
                found.append(
                    SourceTable(
                        source=source["name"],
                        schema=source.get("schema") or source["name"],
                        table=table.get("identifier") or table["name"],
                        name=table["name"],
                        loaded_at_field=field,
                        warn_after=_threshold(freshness.get("warn_after")),
                        error_after=_threshold(freshness.get("error_after")),
                        filter=freshness.get("filter"),
                        loaded_at_query=None if field else query,
                    )
                )
    return found


def _tests_of(column: dict) -> set[str]:
    names = set()
    for test in (column.get("data_tests") or []) + (column.get("tests") or []):
        if isinstance(test, str):
            names.add(test)
        elif isinstance(test, dict) and test:
            names.add(next(iter(test)))
    return names


def mart_keys(project: Path) -> tuple[list[MartKey], str]:
    """Columns tested unique and not_null on models under marts/, and where they came from."""
    manifest = project / "dbt" / "target" / "manifest.json"
    if manifest.exists():
        try:
            return _keys_from_manifest(json.loads(manifest.read_text(encoding="utf-8"))), "manifest"
        except (ValueError, KeyError, TypeError):
            pass  # a half-written manifest: the YAML says the same
    return _keys_from_yaml(project), "models YAML"


def _is_mart(node: dict) -> bool:
    return node.get("resource_type") == "model" and "marts" in (node.get("fqn") or [])


def _keys_from_manifest(manifest: dict) -> list[MartKey]:
    nodes = manifest["nodes"]
    tested: dict[tuple[str, str], set[str]] = {}
    for node in nodes.values():
        metadata = node.get("test_metadata") or {}
        is_key_test = metadata.get("name") in ("unique", "not_null")
        if node.get("resource_type") != "test" or not is_key_test:
            continue
        attached, column = node.get("attached_node"), node.get("column_name")
        if attached and column:
            tested.setdefault((attached, column), set()).add(metadata["name"])
    keys = []
    for (unique_id, column), names in sorted(tested.items()):
        model = nodes.get(unique_id)
        if model and _is_mart(model) and names == {"unique", "not_null"}:
            keys.append(
                MartKey(
                    model=model["name"],
                    schema=_published_schema(model),
                    table=model.get("alias") or model["name"],
                    column=column,
                )
            )
    return keys


def _published_schema(model: dict) -> str:
    """Where readers find a model: a write-audit-publish mart builds in `<schema>__wap`
    and is published to `<schema>` (macros/write_audit_publish.sql)."""
    meta = (model.get("config") or {}).get("meta") or {}
    if str(meta.get("write_audit_publish", "")).lower() == "true":
        return model["schema"].removesuffix("__wap")
    return model["schema"]


def _keys_from_yaml(project: Path) -> list[MartKey]:
    keys = []
    for path in sorted((project / "dbt" / "models" / "marts").rglob("*.yml")):
        try:
            document = _yaml(path)
        except Exception:
            continue
        for model in document.get("models") or []:
            for column in model.get("columns") or []:
                if {"unique", "not_null"} <= _tests_of(column):
                    keys.append(MartKey(model["name"], "marts", model["name"], column["name"]))
    return keys


def pii_columns(project: Path) -> dict[str, list[str]]:
    """Column name -> the models marking it PII (`meta: {pii: true}`, top level or under
    `config:`) in the models' YAML: what no mart may expose unhashed."""
    found: dict[str, list[str]] = {}
    for path in sorted((project / "dbt" / "models").rglob("*.yml")):
        try:
            document = _yaml(path)
        except Exception:
            continue
        for model in document.get("models") or []:
            for column in model.get("columns") or []:
                meta = {
                    **(column.get("meta") or {}),
                    **((column.get("config") or {}).get("meta") or {}),
                }
                if meta.get("pii") is True:
                    found.setdefault(column["name"].lower(), []).append(model["name"])
    return found
