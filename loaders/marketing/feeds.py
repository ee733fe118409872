"""Feed declarations: which files a feed reads, how, its key and its declared column types.

A feed is configuration (`[sources.marketing.feeds.<name>]` in `.dlt/config.toml`), read
once into a frozen `Feed`. The declared types are the rules a row must pass to load:
anything that does not fit goes to quarantine, nothing is coerced.
"""

from __future__ import annotations

import codecs
import os
import posixpath
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

FORMATS = ("csv", "jsonl", "parquet")

# lineage columns every loaded row carries (besides _dlt_load_id, _elt_source, _elt_extracted_at)
FILE_COLUMN = "_elt_file"
LINE_COLUMN = "_elt_line"
MODIFIED_COLUMN = "_elt_file_modified_at"

_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_DATE_FORMAT = re.compile(r"^date\s*\((.+)\)$", re.DOTALL)


@dataclass(frozen=True)
class ColumnType:
    """A declared column type: its spelling, the arrow type values are cast to, dlt's hint."""

    name: str
    arrow: pa.DataType
    hint: dict[str, Any]
    date_format: str | None = None  # strptime format of a date written otherwise than ISO

    @property
    def is_text(self) -> bool:
        return pa.types.is_string(self.arrow)


_SIMPLE_TYPES: dict[str, tuple[pa.DataType, dict[str, Any]]] = {
    "text": (pa.string(), {"data_type": "text"}),
    "bigint": (pa.int64(), {"data_type": "bigint"}),
    "double": (pa.float64(), {"data_type": "double"}),
    "boolean": (pa.bool_(), {"data_type": "bool"}),
    "date": (pa.date32(), {"data_type": "date"}),
    # an instant: the value must carry a zone offset (naive local times are ambiguous)
    "timestamp": (pa.timestamp("us", tz="UTC"), {"data_type": "timestamp", "timezone": True}),
}
_ALIASES = {
    "string": "text",
    "integer": "bigint",
    "int": "bigint",
    "float": "double",
    "bool": "boolean",
}
TYPE_NAMES = (*_SIMPLE_TYPES, "decimal(p,s)", "date(%d/%m/%Y)")


def column_type(spelling: str) -> ColumnType:
    """Parse a declared type (`text`, `bigint`, `double`, `boolean`, `date`, `timestamp`,
    `decimal(p,s)`, `date(<strptime format>)`); ValueError names the accepted spellings."""
    dated = _DATE_FORMAT.match(spelling.strip())
    if dated:
        arrow, hint = _SIMPLE_TYPES["date"]
        return ColumnType(f"date({dated.group(1)})", arrow, dict(hint), dated.group(1))
    name = spelling.strip().lower()
    name = _ALIASES.get(name, name)
    if name in _SIMPLE_TYPES:
        arrow, hint = _SIMPLE_TYPES[name]
        return ColumnType(name, arrow, dict(hint))
    match = _DECIMAL.match(name)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 0 < precision <= 38 or scale > precision:
            raise ValueError(f"{spelling!r}: decimal precision must be 1..38 and >= scale")
        return ColumnType(
            f"decimal({precision},{scale})",
            pa.decimal128(precision, scale),
            {"data_type": "decimal", "precision": precision, "scale": scale},
        )
    raise ValueError(f"unknown type {spelling!r}; use one of {', '.join(TYPE_NAMES)}")


@dataclass(frozen=True)
class Feed:
    """One feed: files matching `file_glob` under the landing folder, parsed as `format`."""

    name: str
    file_glob: str
    format: str
    primary_key: tuple[str, ...]
    columns: dict[str, ColumnType] = field(default_factory=dict)
    encoding: str = "utf-8"
    delimiter: str = ","
    multiline_fields: bool = False
    max_record_lines: int = 100
    max_quarantine_share: float | None = None

    def dlt_columns(self) -> dict[str, dict[str, Any]]:
        """Column hints for dlt: the declared columns, then the lineage columns."""
        columns: dict[str, dict[str, Any]] = {}
        for name, declared in self.columns.items():
            columns[name] = {
                "name": name,
                **declared.hint,
                "nullable": name not in self.primary_key,
            }
        columns[FILE_COLUMN] = {"name": FILE_COLUMN, "data_type": "text", "nullable": False}
        columns[LINE_COLUMN] = {"name": LINE_COLUMN, "data_type": "bigint", "nullable": False}
        # of a key's versions, staging keeps the one of the newest file (then load)
        columns[MODIFIED_COLUMN] = {
            "name": MODIFIED_COLUMN,
            "data_type": "timestamp",
            "timezone": True,
            "nullable": False,
        }
        return columns


def parse_feeds(
    feeds: Mapping[str, Any], env_prefix: str = "SOURCES__MARKETING"
) -> dict[str, Feed]:
    """Validate `[sources.<source>.feeds.*]`; ValueError says which feed and key is wrong.

    Every key of a configured feed can be overridden by an environment variable, e.g.
    `SOURCES__MARKETING__FEEDS__AD_SPEND__ENCODING=cp1252` or
    `SOURCES__MARKETING__FEEDS__AD_SPEND__COLUMNS__SPEND='decimal(14,4)'` (values in TOML
    syntax where they are not plain strings). dlt resolves a feed table as one value, so
    these are applied here.
    """
    if not feeds:
        raise ValueError("no feeds configured: add a [sources.marketing.feeds.<name>] block")
    return {
        name: _parse_feed(name, _with_environment(dict(spec), f"{env_prefix}__FEEDS__{name}"))
        for name, spec in feeds.items()
    }


def _with_environment(spec: dict[str, Any], prefix: str) -> dict[str, Any]:
    prefix = prefix.upper() + "__"
    spec = {**spec, "columns": dict(spec.get("columns", {}))}
    for variable, raw in os.environ.items():
        if not variable.startswith(prefix):
            continue
        path = variable[len(prefix) :].lower().split("__")
        value = _toml_value(raw)
        if path[0] == "columns" and len(path) == 2:
            spec["columns"][path[1]] = value
        elif len(path) == 1:
            spec[path[0]] = value
    return spec


def _toml_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def _parse_feed(name: str, spec: dict[str, Any]) -> Feed:
    def fail(message: str) -> ValueError:
        return ValueError(f"feed {name}: {message}")

    fmt = str(spec.get("format", "")).lower()
    if fmt not in FORMATS:
        raise fail(f"format must be one of {', '.join(FORMATS)}, got {spec.get('format')!r}")
    file_glob = spec.get("file_glob")
    if not file_glob:
        raise fail("file_glob is required")
    check_glob(name, str(file_glob))
    try:
        columns = {
            str(col): column_type(str(t)) for col, t in dict(spec.get("columns", {})).items()
        }
    except ValueError as exc:
        raise fail(f"columns: {exc}") from None
    key = spec.get("primary_key") or []
    key = (key,) if isinstance(key, str) else tuple(key)
    if not key:
        raise fail("primary_key is required: staging dedupes re-delivered files on it")
    undeclared = [k for k in key if k not in columns]
    if undeclared:
        raise fail(f"primary_key column(s) {', '.join(undeclared)} must be declared in columns")
    encoding = str(spec.get("encoding", "utf-8"))
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise fail(f"unknown encoding {encoding!r}") from None
    if "\n".encode(encoding) != b"\n" or ",".encode(encoding) != b",":
        raise fail(f"encoding {encoding!r} is not ASCII-compatible; files are split on newlines")
    delimiter = str(spec.get("delimiter", ","))
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise fail(f"delimiter must be one character other than a quote or newline: {delimiter!r}")
    share = spec.get("max_quarantine_share")
    if share is not None and not 0 <= float(share) <= 1:
        raise fail(f"max_quarantine_share must be between 0 and 1, got {share}")
    return Feed(
        name=name,
        file_glob=str(file_glob),
        format=fmt,
        primary_key=key,
        columns=columns,
        encoding=encoding,
        delimiter=delimiter,
        multiline_fields=bool(spec.get("multiline_fields", False)),
        max_record_lines=int(spec.get("max_record_lines", 100)),
        max_quarantine_share=None if share is None else float(share),
    )


def check_glob(feed: str, file_glob: str) -> None:
    """A glob is relative to the landing folder and never climbs out of it."""
    if file_glob.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", file_glob):
        raise ValueError(f"feed {feed}: file_glob {file_glob!r} must be relative to bucket_url")
    parts = re.split(r"[\\/]", file_glob)
    if ".." in parts or posixpath.normpath(file_glob).startswith(".."):
        raise ValueError(f"feed {feed}: file_glob {file_glob!r} must stay inside bucket_url")
