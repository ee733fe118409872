"""Who holds a lock that made transform DDL give up (`lock_timeout`), for its error line.

Postgres only (pg_locks, pg_stat_activity); elsewhere the error names the cause alone.
Run after the timeout: the holder (an analyst's open transaction) usually still holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.secrets import redact

_HOLDERS = """
select distinct locks.pid, namespace.nspname || '.' || class.relname, activity.usename,
    coalesce(activity.application_name, ''), activity.state, left(activity.query, 200)
from pg_locks as locks
inner join pg_class as class on locks.relation = class.oid
inner join pg_namespace as namespace on class.relnamespace = namespace.oid
inner join pg_stat_activity as activity on locks.pid = activity.pid
where locks.granted and locks.pid <> pg_backend_pid() and namespace.nspname = any(%s)
order by 1
"""


@dataclass(frozen=True)
class Holder:
    pid: int
    relation: str
    user: str
    application: str
    state: str
    query: str

    def describe(self) -> str:
        query = " ".join(self.query.split())
        return (
            f"pid {self.pid} ({self.user}, {self.state}) holds a lock on {self.relation}:"
            f" {redact(query)!r}"
        )


def lock_holders(warehouse: Any, schemas: list[str]) -> list[Holder]:
    """Other sessions holding a granted lock on a relation in `schemas`; [] if unknown."""
    import psycopg2

    try:
        conn = warehouse.connect(connect_timeout=5)
    except Exception:
        return []
    try:
        with conn.cursor() as cur:
            cur.execute("set statement_timeout = 5000")
            cur.execute(_HOLDERS, (schemas,))
            return [Holder(*row) for row in cur.fetchall()]
    except psycopg2.Error:
        return []
    finally:
        conn.close()
