"""Exact values from a Postgres table: what arrow and the warehouse can hold, per row.

connectorx reads `numeric` as a 38-digit decimal with 10 decimals (0.123456789012345678
becomes 0.1234567890), fails a whole batch on a numeric wider than that, and panics on
`NaN`; a timestamp or date of `infinity` (or outside years 1..9999) cannot become a
Python or warehouse value either. So the SELECT is rewritten before it runs:

- every `numeric` column is read as text, exact. A bounded `numeric(p,s)` with p <= 38
  is cast back to arrow `decimal128(p,s)` (exact: the source already holds it at that
  scale); an unbounded `numeric` (or p > 38) stays text in raw, every digit kept, and
  staging casts it to `numeric`. `NaN` and `±Infinity` are read as NULL and flagged.
- a timestamp or date outside years 1..9999 (`±infinity` included) is read as NULL and
  flagged.

The flags are one extra column, `_elt_unrepresentable`, holding the reasons (column and
kind, never the value). `RowQuarantine` then splits every batch: flagged rows, and rows
whose cursor is NULL, go to the quarantine (`raw_shop._elt_quarantine`, then
`elt_audit.quarantine`) with table, key, column and reason; the others load.

With connectorx the checks run in arrow instead (`fast_select`, then `Unrepresentable`
as the resource's first step), which costs the source server a third of the CPU of the
CASE expressions: connectorx decodes NaN and infinity of a numeric read as text, and
timestamps and dates up to year ~262,000 (infinity included) without failing; the SELECT
only turns values beyond that into infinity. The pyarrow backend converts through Python,
which fails on all of these, so it keeps the checks in SQL (`safe_select`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

FLAG_COLUMN = "_elt_unrepresentable"
MAX_ARROW_DECIMAL_PRECISION = 38
NULL_CURSOR_POLICIES = ("quarantine", "fail")
NOT_A_NUMBER = ("NaN", "Infinity", "-Infinity")
# what connectorx can decode (years up to ~262,000); later values are read as infinity
DECODABLE_BEFORE = "100000-01-01"
# years 1..9999 in seconds since 1970 (and days), the range every value must fall in
FIRST_SECOND, END_SECOND = -62135596800, 253402300800
SECONDS_PER_DAY = 86400
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


class NullCursorError(ValueError):
    """A NULL cursor value under `null_cursor = "fail"`: the data failed (exit 1)."""

    data_error = True
    hint = (
        'fill the cursor at the source, or set null_cursor = "quarantine" to load the'
        " other rows and keep these aside"
    )


def is_numeric(column: Any) -> bool:
    import sqlalchemy as sa

    return isinstance(column.type, sa.Numeric) and not isinstance(column.type, sa.Float)


def _is_temporal(column: Any) -> bool:
    import sqlalchemy as sa

    return isinstance(column.type, sa.Date | sa.DateTime)


def exact_decimal(column: Any) -> pa.DataType | None:
    """The arrow decimal a bounded numeric column is read back into; None keeps it text."""
    precision = getattr(column.type, "precision", None)
    scale = getattr(column.type, "scale", None) or 0
    if precision is None or precision > MAX_ARROW_DECIMAL_PRECISION:
        return None
    return pa.decimal128(precision, scale)


def _reason(column: Any) -> str:
    """Why a value of `column` was flagged: its name and kind, never the value."""
    import sqlalchemy as sa

    if is_numeric(column):
        return f"column {column.name}: NaN or Infinity has no value in the warehouse"
    kind = "date" if isinstance(column.type, sa.Date) else "timestamp"
    return f"column {column.name}: {kind} outside the warehouse range (years 1..9999, no infinity)"


def safe_select(query: Any, table: Any) -> Any:
    """A sql_table `query_adapter_callback`: the same query, unrepresentable values as NULL
    plus the reasons in `_elt_unrepresentable`. Filters and order stay as dlt built them."""
    import sqlalchemy as sa

    columns, reasons = [], []
    for column in table.columns:
        reason = _reason(column) if is_numeric(column) or _is_temporal(column) else ""
        if is_numeric(column):
            bad = column.in_([sa.literal(text) for text in NOT_A_NUMBER])
            value = sa.cast(column, sa.Text)
        elif _is_temporal(column):
            year = sa.extract("year", column)
            bad = sa.not_(sa.and_(sa.func.isfinite(column), year.between(1, 9999)))
            value = column
        else:
            columns.append(column)
            continue
        bad = sa.and_(column.is_not(None), bad)
        columns.append(sa.case((bad, sa.null()), else_=value).label(column.name))
        reasons.append(sa.case((bad, sa.literal(reason))))
    if not reasons:
        return query
    flag = sa.func.nullif(sa.func.concat_ws(sa.literal("; "), *reasons), sa.literal(""))
    return query.with_only_columns(*columns, flag.label(FLAG_COLUMN))


def fast_select(query: Any, table: Any) -> Any:
    """The connectorx `query_adapter_callback`: numerics as text (exact, NaN kept as text),
    temporals as they are but past what connectorx decodes read as infinity. The values
    are judged in arrow by `Unrepresentable`."""
    import sqlalchemy as sa

    columns, changed = [], False
    for column in table.columns:
        if is_numeric(column):
            columns.append(sa.cast(column, sa.Text).label(column.name))
        elif _is_temporal(column):
            beyond = column > sa.cast(sa.literal(DECODABLE_BEFORE), column.type)
            infinity = sa.cast(sa.literal("infinity"), column.type)
            columns.append(sa.case((beyond, infinity), else_=column).label(column.name))
        else:
            columns.append(column)
            continue
        changed = True
    return query.with_only_columns(*columns) if changed else query


class Unrepresentable:
    """An `add_map` step, first after a `fast_select` read: what `safe_select` does in SQL.

    A numeric read as text that is NaN or ±Infinity, a timestamp or date outside years
    1..9999: the value becomes NULL and the reasons go to `_elt_unrepresentable`, in column
    order, so the later steps (lag window, incremental, quarantine) see what they would
    have seen from `safe_select`.
    """

    def __init__(self, sql_columns: dict[str, Any]) -> None:
        self.checks = [
            (name, is_numeric(column), _reason(column))
            for name, column in sql_columns.items()
            if is_numeric(column) or _is_temporal(column)
        ]

    def __call__(self, table: pa.Table) -> pa.Table:
        reasons = []
        for name, numeric, reason in self.checks:
            if name not in table.column_names:
                continue
            values = table[name]
            bad = _not_a_number(values) if numeric else _out_of_range(values)
            if bad is None or not pc.any(bad).as_py():
                continue
            bad = pc.fill_null(bad, False)
            index = table.column_names.index(name)
            table = table.set_column(
                index, name, pc.if_else(bad, pa.scalar(None, values.type), values)
            )
            reasons.append((bad, reason))
        if not reasons:
            return table
        # rare rows: their reasons are joined in Python
        flagged = reasons[0][0]
        for bad, _reason_text in reasons[1:]:
            flagged = pc.or_(flagged, bad)
        rows = pc.indices_nonzero(flagged)
        verdicts = [(bad.take(rows).to_pylist(), text) for bad, text in reasons]
        flag: list[str | None] = [None] * table.num_rows
        for at, row in enumerate(rows.to_pylist()):
            flag[row] = "; ".join(text for bad, text in verdicts if bad[at])
        return table.append_column(FLAG_COLUMN, pa.array(flag, pa.string()))


def _not_a_number(values: Any) -> Any:
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        return None
    return pc.is_in(values, value_set=pa.array(NOT_A_NUMBER, values.type))


def _out_of_range(values: Any) -> Any:
    """Years 1..9999 (infinity is read as a year past 260,000), on the stored integers: for
    a timestamp with a zone that is UTC."""
    kind = values.type
    if pa.types.is_timestamp(kind) and kind.unit != "ns":  # nanoseconds span 1677..2262
        per_second = _PER_SECOND[kind.unit]
        numbers = values.cast(pa.int64())
        first, end = FIRST_SECOND * per_second, END_SECOND * per_second
    elif pa.types.is_date32(kind):
        numbers = values.cast(pa.int32())
        first, end = FIRST_SECOND // SECONDS_PER_DAY, END_SECOND // SECONDS_PER_DAY
    else:
        return None
    return pc.or_(pc.less(numbers, first), pc.greater_equal(numbers, end))


@dataclass(frozen=True)
class TableRules:
    """What the quarantine step needs to know of one source table."""

    source: str
    relation: str  # schema.table in the source
    table: str  # the raw table name
    primary_key: tuple[str, ...]
    cursor: str
    null_cursor: str
    decimals: dict[str, pa.DataType]  # numeric columns read as text -> their arrow decimal


def quarantine_id(source: str, table: str, key: str, version: str) -> str:
    """Stable id of one rejected version of one source row: rereading it changes nothing."""
    text = f"{source}\x1f{table}\x1f{key}\x1f{version}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class RowQuarantine:
    """An `add_yield_map` step: the good rows of a batch, then its rejected rows.

    `counts` keeps, per run, rows read, loaded and quarantined, for the load report.
    """

    def __init__(self, rules: TableRules, hints: Any) -> None:
        self.rules = rules
        self.hints = hints
        self.counts = {"read": 0, "loaded": 0, "quarantined": 0}

    def __call__(self, table: pa.Table) -> Iterator[Any]:
        rules = self.rules
        reasons = (
            table[FLAG_COLUMN]
            if FLAG_COLUMN in table.column_names
            else pa.nulls(table.num_rows, pa.string())
        )
        cursor_null = (
            pc.is_null(table[rules.cursor]) if rules.cursor in table.column_names else None
        )
        if cursor_null is not None and pc.any(cursor_null).as_py():
            cursor_null = pc.and_(cursor_null, pc.is_null(reasons))  # flagged rows say why
            if rules.null_cursor == "fail" and pc.any(cursor_null).as_py():
                raise NullCursorError(
                    f"{rules.relation}: cursor {rules.cursor} is NULL in"
                    f' {pc.sum(cursor_null).as_py()} row(s) and null_cursor = "fail"'
                )
            reasons = pc.if_else(
                cursor_null, pa.scalar(f"cursor {rules.cursor} is NULL", pa.string()), reasons
            )
        bad = pc.fill_null(pc.is_valid(reasons), False)
        self.counts["read"] += table.num_rows
        rejected = table.filter(bad) if pc.any(bad).as_py() else None
        good = table.filter(pc.invert(bad)) if rejected is not None else table
        if FLAG_COLUMN in good.column_names:
            good = good.drop_columns([FLAG_COLUMN])
        good = self._decimals(good)
        self.counts["loaded"] += good.num_rows
        if good.num_rows:
            yield good
        if rejected is not None:
            self.counts["quarantined"] += rejected.num_rows
            yield self._quarantined(rejected)

    def _decimals(self, table: pa.Table) -> pa.Table:
        """Numeric columns read as text back to their exact arrow decimal."""
        for name, decimal in self.rules.decimals.items():
            if name in table.column_names and table[name].type != decimal:
                index = table.column_names.index(name)
                table = table.set_column(index, name, pc.cast(table[name], decimal, safe=True))
        return table

    def _quarantined(self, rejected: pa.Table) -> Any:
        import dlt

        rules = self.rules
        names = [*rules.primary_key, rules.cursor, FLAG_COLUMN]
        present = [n for n in dict.fromkeys(names) if n in rejected.column_names]
        rows = []
        for row, reason in zip(
            rejected.select(present).to_pylist(),
            (
                rejected[FLAG_COLUMN].to_pylist()
                if FLAG_COLUMN in rejected.column_names
                else [None] * rejected.num_rows
            ),
            strict=True,
        ):
            reason = reason or f"cursor {rules.cursor} is NULL"
            key = ", ".join(f"{k}={row.get(k)}" for k in rules.primary_key)
            version = row.get(rules.cursor)
            rows.append(
                {
                    "quarantine_id": quarantine_id(rules.source, rules.table, key, str(version)),
                    "feed": rules.table,
                    "file": rules.relation,
                    "row_key": key,
                    "column_name": _columns_of(reason),
                    "reason": reason,
                    "file_modified_at": version if isinstance(version, datetime) else None,
                }
            )
        return dlt.mark.with_hints(rows, self.hints, create_table_variant=True)


def _columns_of(reason: str) -> str:
    """The columns a reason names ("column a b: ...; cursor c is NULL" -> "a b, c")."""
    names = []
    for part in reason.split("; "):
        match = _REASON_COLUMN.match(part)
        if match:
            names.append(match["column"] or match["cursor"])
    return ", ".join(names)


_REASON_COLUMN = re.compile(r"^(?:column (?P<column>.+?): |cursor (?P<cursor>.+) is NULL$)")
