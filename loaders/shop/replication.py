"""Change data capture for shop tables in `mode = "replication"`: a publication, a logical
replication slot (`pgoutput`), an initial snapshot consistent with the slot's start, then
every insert, update and delete appended to raw as a version.

Each version carries `_elt_lsn` (its WAL position: orders the changes, also within a
transaction), `_elt_committed_at` and `_elt_operation` (snapshot | insert | update |
delete). A delete version is a tombstone like reconcile's (loaders/shop/reconcile.py): the
key, the cursor and `_elt_deleted_at` set to the commit time, every other column NULL.

Exactly once: the LSN up to which changes were extracted is kept in the resource's dlt
state, which dlt stores in the warehouse with the load, atomically with its `_dlt_loads`
row. The slot's confirmed position is advanced to it only once that load is recorded
(after the load, and again at the start of the next run from the state the warehouse
holds); until then the slot keeps the changes, and a run killed before recording its
load reads them again. Changes are read with `pg_logical_slot_peek_binary_changes`
through a server-side cursor (bounded memory) rather than the streaming protocol: a
batch load wants "everything committed up to now", which peeking answers without
keepalive bookkeeping. The replication protocol connection is used to create the slot,
because only it exports the snapshot the initial read must use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from loaders.shop import deletes
from loaders.shop.pgoutput import Change, Decoder
from loaders.shop.reconcile import DELETED_AT_COLUMN, quote

LSN_COLUMN = "_elt_lsn"
COMMITTED_AT_COLUMN = "_elt_committed_at"
OPERATION_COLUMN = "_elt_operation"
FETCH_ROWS = 10_000
RESOURCE = "replication"
APPLICATION_NAME = "elt-replication"

_pending: dict[str, tuple[str, str, int]] = {}  # source -> (url, slot, lsn) to confirm
_lock = threading.Lock()


class ReplicationError(Exception):
    """A replication problem `elt load` reports in one line, with the next step."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Slot:
    name: str
    active: bool
    wal_status: str | None
    confirmed_lsn: int | None


def lsn_to_int(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def lsn_to_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def connect(url: str, **kwargs: Any) -> Any:
    import psycopg2

    conn = psycopg2.connect(url, connect_timeout=10, application_name=APPLICATION_NAME, **kwargs)
    with conn.cursor() as cur:
        cur.execute("set time zone 'UTC'")
    conn.commit()
    return conn


def slot(conn: Any, name: str) -> Slot | None:
    with conn.cursor() as cur:
        cur.execute(
            "select active, wal_status, confirmed_flush_lsn::text from pg_replication_slots"
            " where slot_name = %s",
            (name,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return Slot(name, row[0], row[1], lsn_to_int(row[2]) if row[2] else None)


def drop_slot(url: str, name: str) -> bool:
    """Drop the slot `name` on the source (the WAL it held is freed); False if none."""
    with closing(connect(url)) as conn:
        conn.autocommit = True
        if slot(conn, name) is None:
            return False
        with conn.cursor() as cur:
            cur.execute("select pg_drop_replication_slot(%s)", (name,))
    return True


def confirm(url: str, name: str, lsn: int) -> None:
    """Let the slot forget changes up to `lsn`: call only once they are recorded loaded."""
    with closing(connect(url)) as conn:
        conn.autocommit = True
        current = slot(conn, name)
        if current is None or (current.confirmed_lsn or 0) >= lsn:
            return
        with conn.cursor() as cur:
            cur.execute(
                "select pg_replication_slot_advance(%s, %s::pg_lsn)", (name, lsn_to_text(lsn))
            )


def forget_pending(source: str) -> tuple[str, str, int] | None:
    """The (url, slot, LSN) an extraction of `source` left to confirm, now forgotten."""
    with _lock:
        return _pending.pop(source, None)


def confirm_pending(source: str) -> None:
    """After a recorded load: advance the source's slot to what that load holds."""
    pending = forget_pending(source)
    if pending is not None:
        confirm(*pending)


def _check_server(conn: Any, slot_name: str) -> None:
    with conn.cursor() as cur:
        cur.execute("show wal_level")
        level = cur.fetchone()[0]
    if level != "logical":
        raise ReplicationError(
            f"replication slot {slot_name}: the source server runs with wal_level = {level}",
            "set wal_level = logical on the source server and restart it (the embedded"
            " server sets it when it starts: stop it with `.venv/bin/python -c 'from runtime"
            " import embedded, project; embedded.stop(project.project_dir())'` and rerun)"
            ', or use mode = "cursor"',
        )


def _ensure_publication(conn: Any, publication: str, schema: str, tables: list[str]) -> None:
    """Create the publication for `tables` unless it exists (a DBA's is used as it is)."""
    with conn.cursor() as cur:
        cur.execute("select 1 from pg_publication where pubname = %s", (publication,))
        if cur.fetchone():
            return
        names = ", ".join(f"{quote(schema)}.{quote(table)}" for table in tables)
        cur.execute(f"create publication {quote(publication)} for table {names}")


_DLT_TYPES = {
    "bigint": "bigint",
    "integer": "bigint",
    "smallint": "bigint",
    "boolean": "bool",
    "date": "date",
    "double precision": "double",
    "real": "double",
    "numeric": "decimal",
    "timestamp with time zone": "timestamp",
    "timestamp without time zone": "timestamp",
}


def _column_hints(conn: Any, schema: str, table: str, primary_key: list[str]) -> dict[str, Any]:
    """dlt column hints from the source's catalog: a column NULL in every version of a
    batch still gets its type (the key alone is NOT NULL: a delete has nothing else)."""
    with conn.cursor() as cur:
        cur.execute(
            "select column_name, data_type, numeric_precision, numeric_scale"
            " from information_schema.columns where table_schema = %s and table_name = %s",
            (schema, table),
        )
        columns = cur.fetchall()
    hints = {}
    for name, data_type, precision, scale in columns:
        hint: dict[str, Any] = {
            "data_type": _DLT_TYPES.get(data_type, "text"),
            "nullable": name not in primary_key,
        }
        if data_type == "numeric" and precision is not None:
            hint.update(precision=precision, scale=scale)
        if data_type.startswith("timestamp"):
            hint["timezone"] = data_type == "timestamp with time zone"
        hints[name] = hint
    return hints


def _snapshot(
    url: str, slot_name: str, schema: str, tables: dict[str, dict[str, Any]]
) -> Iterator[tuple[str, list[dict[str, Any]]] | int]:
    """Create the slot; yield (table, rows) of every table as of the slot's start, then the
    slot's consistent point (an int)."""
    import psycopg2.extras

    with closing(
        connect(url, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    ) as replication:
        with replication.cursor() as cur:
            cur.create_replication_slot(slot_name, output_plugin="pgoutput")
            _, consistent_point, snapshot_name, _ = cur.fetchone()
        # the exported snapshot lives while the replication connection stays idle and open
        with closing(connect(url)) as reader:
            reader.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with reader.cursor() as cur:
                cur.execute("set transaction snapshot %s", (snapshot_name,))
            for table in tables:
                with reader.cursor(name=f"elt_snapshot_{table}") as cur:
                    cur.itersize = FETCH_ROWS
                    cur.execute(f"select * from {quote(schema)}.{quote(table)}")
                    while rows := cur.fetchmany(FETCH_ROWS):
                        names = [column.name for column in cur.description]
                        yield table, [dict(zip(names, row, strict=True)) for row in rows]
    yield lsn_to_int(consistent_point)


def _changes(url: str, slot_name: str, publication: str) -> Iterator[Change | int]:
    """Every change the slot holds past its confirmed position, then each commit's end LSN."""
    with closing(connect(url)) as conn, conn.cursor(name="elt_replication_peek") as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(
            "select (lsn - '0/0'::pg_lsn)::bigint, data"
            " from pg_logical_slot_peek_binary_changes(%s, null, null,"
            " 'proto_version', '1', 'publication_names', %s)",
            (slot_name, publication),
        )
        yield from Decoder().changes(cur)


def _version(change: Change, cursor: str) -> dict[str, Any]:
    row = dict(change.values)
    if change.operation == "delete":
        row[cursor] = change.committed_at
        row[DELETED_AT_COLUMN] = change.committed_at
    row[LSN_COLUMN] = change.lsn
    row[COMMITTED_AT_COLUMN] = change.committed_at
    row[OPERATION_COLUMN] = change.operation
    return row


def changes_resource(
    *,
    source: str,
    credentials: Any,
    schema: str,
    tables: dict[str, dict[str, Any]],
    slot_name: str,
    publication: str,
    resnapshot: bool = False,
) -> Any:
    """One resource for all of `source`'s replicated tables, appending versions to each."""
    import dlt

    url = deletes.psycopg2_url(credentials)

    def generate() -> Iterator[Any]:
        state = dlt.current.resource_state()
        loaded_lsn = state.get("lsn")
        with closing(connect(url)) as conn:
            conn.autocommit = True
            _check_server(conn, slot_name)
            current = slot(conn, slot_name)
            if resnapshot or (current is not None and loaded_lsn is None):
                # a re-snapshot, or a slot whose snapshot never made it into a load
                drop_slot(url, slot_name)
                current, loaded_lsn = None, None
            if current is None and loaded_lsn is not None:
                raise _lost(source, slot_name, "is missing")
            if current is not None and current.wal_status == "lost":
                raise _lost(source, slot_name, "was invalidated (its WAL was removed)")
            _ensure_publication(conn, publication, schema, list(tables))
            hints = {
                table: dlt.mark.make_hints(
                    table_name=table,
                    primary_key=list(spec["primary_key"]),
                    columns=_column_hints(conn, schema, table, list(spec["primary_key"])),
                )
                for table, spec in tables.items()
            }
        if current is None:
            items = _snapshot(url, slot_name, schema, tables)
            versions = _snapshot_versions(items, state)
        else:
            confirm(url, slot_name, loaded_lsn)  # recorded in the warehouse: let it go
            versions = _change_versions(
                _changes(url, slot_name, publication), tables, state, source
            )
        for table, rows in versions:
            yield dlt.mark.with_hints(_arrow(rows), hints[table], create_table_variant=True)
        with _lock:
            _pending[source] = (url, slot_name, state["lsn"])

    return dlt.resource(
        generate,
        name=RESOURCE,
        write_disposition="append",
        columns={
            DELETED_AT_COLUMN: {"data_type": "timestamp", "timezone": True, "nullable": True},
            COMMITTED_AT_COLUMN: {"data_type": "timestamp", "timezone": True, "nullable": True},
            LSN_COLUMN: {"data_type": "bigint", "nullable": True},
            OPERATION_COLUMN: {"data_type": "text", "nullable": True},
        },
    )


def _snapshot_versions(
    items: Iterator[tuple[str, list[dict[str, Any]]] | int], state: dict[str, Any]
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The snapshot's rows as versions; the state's LSN becomes the slot's starting point."""
    for item in items:
        if isinstance(item, int):
            state["lsn"] = item
            continue
        table, rows = item
        for row in rows:
            row.update({LSN_COLUMN: None, COMMITTED_AT_COLUMN: None, OPERATION_COLUMN: "snapshot"})
        yield table, rows


def _change_versions(
    changes: Iterator[Change | int],
    tables: dict[str, dict[str, Any]],
    state: dict[str, Any],
    source: str,
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Versions per table in batches; the state's LSN follows each complete transaction."""
    loaded = state["lsn"]
    batches: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        if isinstance(change, int):
            state["lsn"] = max(state["lsn"], change)
            continue
        table = change.relation.name
        if table not in tables or change.commit_lsn < loaded:
            continue  # not replicated here, or already loaded
        cursor = tables[table].get("cursor", "updated_at")
        batches.setdefault(table, []).append(_version(change, cursor))
        if change.operation == "delete":
            deletes.record(source, table, 1)
        if len(batches[table]) >= FETCH_ROWS:
            yield table, batches.pop(table)
    yield from batches.items()


def _arrow(rows: list[dict[str, Any]]) -> Any:
    """One arrow table of the rows, every column present (a delete has only its key)."""
    import pyarrow as pa

    names = list(dict.fromkeys(name for row in rows for name in row))
    return pa.table({name: [row.get(name) for row in rows] for name in names})


def _lost(source: str, slot_name: str, what: str) -> ReplicationError:
    return ReplicationError(
        f"replication slot {slot_name} of source {source} {what}: changes since the last"
        " load may be lost",
        f"re-snapshot: `SOURCES__{source.upper()}__RESNAPSHOT=true elt load {source}`"
        " (creates a new slot and reads every replicated table again)",
    )
