"""Exactly-once delivery for incremental cursors read with a lag window.

dlt's `Incremental(lag=...)` re-reads the last `lag` seconds of cursor values on every
run, so rows committed late by a long transaction (their `updated_at` is older than rows
already loaded) are still caught. dlt turns its own boundary deduplication off when a
lag is set and leaves deduplication to the destination; a merge would absorb the
repeats, but every run would then reload the whole window. This filter remembers the
(key, cursor) pairs seen inside the window, in the resource's dlt state, and drops
exact repeats, so a run with nothing new loads nothing while a late row loads once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

STATE_KEY = "lag_window"


def _key(values: tuple[Any, ...]) -> str:
    return "|".join(str(v) for v in values)


class LagWindowFilter:
    """An `add_map` step over arrow tables, keeping its memory in the resource's dlt state.

    The state is fetched on the first batch, inside extraction: only then is it the state
    dlt restored (possibly from the warehouse) and will persist with the load.
    """

    def __init__(self, resource: str, primary_key: list[str], cursor: str, lag_seconds: float):
        self.resource = resource
        self.window = timedelta(seconds=lag_seconds)
        self.primary_key = primary_key
        self.cursor = cursor
        self.state: dict | None = None
        self.previous_max: datetime | None = None
        self.previous_seen: dict[str, str] = {}
        self.running_max: datetime | None = None
        self.seen: dict[str, str] = {}

    def _bind(self) -> None:
        import dlt

        saved = dlt.current.resource_state(self.resource)
        self.state = saved.setdefault(STATE_KEY, {"max": None, "seen": {}})
        self.previous_max = _parse(self.state.get("max"))
        self.previous_seen = dict(self.state.get("seen") or {})
        self.running_max = self.previous_max

    def __call__(self, table: pa.Table) -> pa.Table | None:
        if self.state is None:
            self._bind()
        if table.num_rows == 0:
            return None
        table = self._drop_repeats(table)
        if table.num_rows == 0:
            return None
        self._remember(table)
        return table

    def _drop_repeats(self, table: pa.Table) -> pa.Table:
        """Drop rows already delivered: cursor inside the old window and same (key, cursor)."""
        if self.previous_max is None or not self.previous_seen:
            return table
        cursor = table[self.cursor]
        old = pc.less_equal(cursor, pa.scalar(self.previous_max, type=cursor.type))
        old = pc.fill_null(old, False)
        if not pc.any(old).as_py():
            return table
        candidates = table.filter(old).select([*self.primary_key, self.cursor]).to_pylist()
        repeat = [
            self.previous_seen.get(_key(tuple(row[k] for k in self.primary_key)))
            == _iso(row[self.cursor])
            for row in candidates
        ]
        # scatter the per-candidate verdicts back over the whole table
        keep, verdicts = [], iter(repeat)
        for is_old in old.to_pylist():
            keep.append(not next(verdicts) if is_old else True)
        return table.filter(pa.array(keep))

    def _remember(self, table: pa.Table) -> None:
        """Keep the (key, cursor) pairs within `lag` of the newest cursor seen so far."""
        chunk_max = pc.max(table[self.cursor]).as_py()
        if chunk_max is None:
            return
        if self.running_max is None or chunk_max > self.running_max:
            self.running_max = chunk_max
        floor = self.running_max - self.window
        cursor = table[self.cursor]
        recent = pc.fill_null(pc.greater_equal(cursor, pa.scalar(floor, type=cursor.type)), False)
        for row in table.filter(recent).select([*self.primary_key, self.cursor]).to_pylist():
            self.seen[_key(tuple(row[k] for k in self.primary_key))] = _iso(row[self.cursor])
        floor_iso = _iso(floor)
        # rows of the previous window that are still inside the new one stay remembered
        merged = {k: v for k, v in self.previous_seen.items() if v >= floor_iso}
        merged.update({k: v for k, v in self.seen.items() if v >= floor_iso})
        self.seen = {k: v for k, v in self.seen.items() if v >= floor_iso}
        self.state["seen"] = merged
        self.state["max"] = _iso(self.running_max)


def _iso(value: datetime) -> str:
    return value.isoformat()


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
