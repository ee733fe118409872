"""Typing a chunk of parsed rows against a feed's declared columns, row by row, vectorised.

Each column is cast with arrow's safe cast. When a cast fails, a bisection finds every
value that does not fit (k bad values in n cost O(k log n) casts), and those rows are
rejected with the column, the value and the declared type; the others load. Nothing is
padded, truncated, rounded or turned into NULL: an empty field is NULL, anything else
either converts exactly or rejects its row.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loaders.marketing.feeds import LINE_COLUMN, ColumnType, Feed

_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError)
_FORMAT_HINTS = {
    "date": " (expected YYYY-MM-DD)",
    "timestamp": " (expected an ISO 8601 time with a zone offset)",
    "boolean": " (expected true or false)",
}


@dataclass(frozen=True)
class Rejected:
    """A row that did not load: where it was, why, and its text exactly as it came.

    `raw_text` is what a person reads; where it cannot hold the original exactly (bytes
    that are not valid in the feed's encoding, a NUL character Postgres text cannot
    store), `raw_base64` keeps the original bytes, and replay reads those.
    """

    line: int
    reason: str
    raw_text: str | None
    raw_base64: str | None = None

    @classmethod
    def of_text(cls, line: int, reason: str, text: str, encoding: str = "utf-8") -> Rejected:
        if "\x00" not in text:
            return cls(line, reason, text)
        exact = base64.b64encode(text.encode(encoding, "surrogateescape")).decode("ascii")
        return cls(line, reason, text.replace("\x00", "\\x00"), exact)

    @classmethod
    def of_bytes(cls, line: int, reason: str, raw: bytes, encoding: str) -> Rejected:
        text = raw.decode(encoding, "backslashreplace").replace("\x00", "\\x00")
        return cls(line, reason, text, base64.b64encode(raw).decode("ascii"))


@dataclass
class Batch:
    """One chunk of one file: the rows that load (with `_elt_line`) and the rows that don't.

    `rows_in` counts the chunk's input rows, so rows_in == table.num_rows + len(rejected).
    """

    table: pa.Table | None
    rejected: list[Rejected] = field(default_factory=list)
    rows_in: int = 0
    type_changes: list[dict[str, str]] = field(default_factory=list)

    @property
    def rows_loaded(self) -> int:
        return 0 if self.table is None else self.table.num_rows


def empty_to_null(array: pa.Array) -> pa.Array:
    """An empty field is NULL (there is no other way to write NULL in CSV)."""
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        return array
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, array.type), array)


def type_rows(
    feed: Feed, columns: dict[str, pa.Array], lines: pa.Array
) -> tuple[pa.Table, dict[int, str]]:
    """Cast `columns` to the feed's declared types; undeclared columns become text.

    Returns the table of the rows that fit (with `_elt_line`) and {row index: reason} of
    the rows that don't (reasons of several columns joined).
    """
    problems: dict[int, list[str]] = {}
    casted: dict[str, pa.Array] = {}
    uncast: dict[str, pa.Array] = {}
    for name, array in columns.items():
        declared = feed.columns.get(name)
        array = empty_to_null(array)
        _reject_nul(name, array, problems)
        if declared is None and not _castable_to_text(array.type):
            casted[name] = _as_json_text(array)
            continue
        try:
            casted[name] = _exact_cast(array, declared)
            continue
        except _CAST_ERRORS:
            pass
        spelled = declared.name if declared is not None else "text"
        for index in _failing_positions(array, declared):
            value = array[index].as_py()
            hint = _FORMAT_HINTS.get(spelled.split("(")[0], "") if "(" not in spelled else ""
            problems.setdefault(index, []).append(
                f"column {name}: {_show(value)} is not a valid {spelled}{hint}"
            )
        uncast[name] = array
    for key in feed.primary_key:
        array = casted.get(key, uncast.get(key))
        if array is None:
            nulls: Any = range(len(lines))
        else:
            nulls = pc.indices_nonzero(pc.is_null(array)).to_pylist()
        for index in nulls:
            problems.setdefault(index, []).append(f"key column {key} is empty")

    if problems:
        keep = pa.array([i not in problems for i in range(len(lines))], pa.bool_())
        casted = {name: array.filter(keep) for name, array in casted.items()}
        for name, array in uncast.items():
            casted[name] = _exact_cast(array.filter(keep), feed.columns.get(name))
        lines = lines.filter(keep)
    ordered = [n for n in feed.columns if n in casted] + [
        n for n in casted if n not in feed.columns
    ]
    table = pa.table({name: casted[name] for name in ordered} | {LINE_COLUMN: lines})
    return table, {index: "; ".join(reasons) for index, reasons in problems.items()}


def _exact_cast(array: pa.Array, declared: ColumnType | None) -> pa.Array:
    """Arrow's safe cast, plus: a float becomes a decimal only when no digit is lost."""
    target = declared.arrow if declared is not None else pa.string()
    if array.type == target:
        return array
    if declared is not None and declared.date_format and pa.types.is_string(array.type):
        parsed = pc.strptime(array, format=declared.date_format, unit="s")
        # strptime rolls impossible dates over (30 February becomes 1 March): refuse those
        back = pc.strftime(parsed, format=declared.date_format)
        if not all_true(pc.or_kleene(pc.equal(back, array), pc.is_null(array))):
            raise pa.ArrowInvalid("not a valid date in the declared format")
        return pc.cast(parsed, target)
    result = pc.cast(array, target, safe=True)
    if pa.types.is_floating(array.type) and pa.types.is_decimal(target):
        back = pc.cast(result, array.type)
        if not all_true(pc.or_kleene(pc.equal(back, array), pc.is_null(array))):
            raise pa.ArrowInvalid("float value is not exactly representable")
    return result


def all_true(mask: pa.Array) -> bool:
    return bool(pc.all(mask, min_count=0).as_py())


def _failing_positions(array: pa.Array, declared: ColumnType | None) -> list[int]:
    """Indexes of the values that do not cast, by bisection: only failing halves split."""
    failing: list[int] = []
    pending = [(0, len(array))]
    while pending:
        start, length = pending.pop()
        try:
            _exact_cast(array.slice(start, length), declared)
        except _CAST_ERRORS:
            if length == 1:
                failing.append(start)
            else:
                half = length // 2
                pending += [(start, half), (start + half, length - half)]
    return sorted(failing)


def _reject_nul(name: str, array: pa.Array, problems: dict[int, list[str]]) -> None:
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return
    hits = pc.match_substring(array, "\x00")
    if pc.any(hits).as_py():
        for index in pc.indices_nonzero(pc.fill_null(hits, False)).to_pylist():
            problems.setdefault(index, []).append(
                f"column {name}: contains a NUL character (Postgres text cannot store it)"
            )


def _castable_to_text(arrow_type: pa.DataType) -> bool:
    return not (pa.types.is_nested(arrow_type) or pa.types.is_dictionary(arrow_type))


def _as_json_text(array: pa.Array) -> pa.Array:
    """Nested values (Parquet structs and lists) of an undeclared column, as JSON text."""
    import orjson

    def dump(value: object) -> str | None:
        if value is None:
            return None
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()

    return pa.array([dump(v) for v in array.to_pylist()], pa.string())


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
