"""Decode PostgreSQL's `pgoutput` logical replication messages (protocol version 1).

Only what change data capture needs: Begin (commit LSN and time), Relation (a table's
columns, sent before its first change in each decoding session), Insert, Update, Delete
and Commit. Values arrive as text and are converted by column type; a type this module
does not know stays text. Truncate, Origin, Type and Message are skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

_CONVERT = {
    16: lambda text: text == "t",  # bool
    20: int,  # int8
    21: int,  # int2
    23: int,  # int4
    700: float,
    701: float,
    1700: Decimal,  # numeric
    1082: date.fromisoformat,
    1114: datetime.fromisoformat,  # timestamp
    1184: datetime.fromisoformat,  # timestamptz (the session's time zone: UTC)
}


@dataclass
class Relation:
    schema: str
    name: str
    columns: list[tuple[str, int]]  # (name, type oid)
    key: list[str]


@dataclass
class Change:
    """One row change: `values` holds every column (insert, update) or the key (delete)."""

    operation: str  # insert | update | delete
    relation: Relation
    values: dict[str, Any]
    lsn: int  # this change's own position: orders changes within a transaction
    commit_lsn: int
    committed_at: datetime


@dataclass
class _Reader:
    data: bytes
    at: int = 0

    def take(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        end = self.data.index(b"\0", self.at)
        value = self.data[self.at : end].decode()
        self.at = end + 1
        return value

    def tuple(self, relation: Relation) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, oid in relation.columns[: self.take(">h")]:
            kind = self.take(">c")
            if kind == b"t":
                length = self.take(">i")
                text = self.data[self.at : self.at + length].decode()
                self.at += length
                values[name] = _CONVERT.get(oid, str)(text)
            elif kind == b"n":
                values[name] = None
            # b"u": an unchanged TOASTed value, not sent: the column is left out
        return values


@dataclass
class Decoder:
    """Keeps the relations and the open transaction across messages."""

    relations: dict[int, Relation] = field(default_factory=dict)
    commit_lsn: int = 0
    committed_at: datetime = POSTGRES_EPOCH

    def changes(self, messages: Iterable[tuple[int, bytes]]) -> Iterator[Change | int]:
        """Changes, and after each transaction its commit LSN (an int), in commit order."""
        for lsn, message in messages:
            data = bytes(message)
            reader = _Reader(data, 1)
            kind = data[:1]
            if kind == b"B":
                self.commit_lsn = reader.take(">Q")
                self.committed_at = POSTGRES_EPOCH + timedelta(microseconds=reader.take(">q"))
            elif kind == b"C":
                reader.take(">b")  # flags
                reader.take(">Q")  # the commit's LSN; then the transaction's end:
                yield reader.take(">Q")
            elif kind == b"R":
                oid = reader.take(">I")
                schema, name = reader.string(), reader.string()
                reader.take(">b")  # replica identity
                columns, key = [], []
                for _ in range(reader.take(">h")):
                    flags = reader.take(">b")
                    column = reader.string()
                    columns.append((column, reader.take(">I")))
                    reader.take(">i")  # type modifier
                    if flags & 1:
                        key.append(column)
                self.relations[oid] = Relation(schema, name, columns, key)
            elif kind in (b"I", b"U", b"D"):
                relation = self.relations[reader.take(">I")]
                marker = reader.take(">c")
                if kind == b"U" and marker in (b"K", b"O"):
                    reader.tuple(relation)  # the old key: the new tuple follows
                    marker = reader.take(">c")
                values = reader.tuple(relation)
                if kind == b"D":
                    values = {name: values.get(name) for name in relation.key}
                operation = {b"I": "insert", b"U": "update", b"D": "delete"}[kind]
                yield Change(operation, relation, values, lsn, self.commit_lsn, self.committed_at)
