"""Least-privilege roles: which command connects as whom, and the SQL that makes them.

- `elt_loader`: create and write `raw_*`, write `elt_audit`, read the demo source;
- `elt_transformer`: read `raw_*`, own and write `staging` and `marts`, write `elt_audit`;
- `elt_analyst`: read `staging` and `marts`, in read-only transactions by default;
- `elt_doctor`: read catalogs (`pg_monitor`), `raw_*` (freshness), `staging`, `marts`,
  `elt_audit`.

None is a superuser, so none can `copy ... to program` or `pg_read_file`. Objects a
role creates reach the others through default privileges, so a new `raw_<source>` is
readable by the transformer without another `roles apply`. `elt_audit` is owned by a
group role both writers belong to (`elt_audit_writer`).

`COMMANDS` is the one place a command is mapped to its role. On the embedded warehouse
every command connects as its role (`Warehouse.as_role`); on a user's server
(`ELT_WAREHOUSE_URL`) the configured user is used and `elt roles apply` only creates the
roles and grants (NOLOGIN; the README shows how to give them to login users).
"""

from __future__ import annotations

import hashlib
import json

from runtime import audit

ROLES = {
    "loader": "elt_loader",
    "transformer": "elt_transformer",
    "analyst": "elt_analyst",
    "doctor": "elt_doctor",
}
AUDIT_WRITER = "elt_audit_writer"
ADMIN = "admin"  # the configured user (the embedded server's superuser)

# the one map from command to role; a command not named here runs as the admin
COMMANDS = {
    "load": "loader",
    "quarantine": "loader",
    "compact": "loader",
    "transform": "transformer",
    "test": "transformer",
    "dbt": "transformer",
    "sql": "analyst",
    "runs": "doctor",
    "doctor": "doctor",
    "metrics": "doctor",
    "lineage": "doctor",  # traces a mart row to its raw rows and load: reads every layer
}

# per-role session defaults (a session may still lower or raise them with SET)
SETTINGS = {
    "loader": {"statement_timeout": "30min", "lock_timeout": "60s"},
    "transformer": {"statement_timeout": "60min", "lock_timeout": "30s"},
    "analyst": {
        "statement_timeout": "60s",
        "lock_timeout": "5s",
        "default_transaction_read_only": "on",
        "idle_in_transaction_session_timeout": "60s",
    },
    "doctor": {"statement_timeout": "30s", "lock_timeout": "5s"},
}

WRITERS = ("loader", "transformer")
# marts__wap: marts built and tested before publishing (macros/write_audit_publish.sql)
OWNED = {"staging": "transformer", "marts": "transformer", "marts__wap": "transformer"}
AUDIT_SCHEMA = "elt_audit"
VERSION = 3  # bump when the statements change: the embedded warehouse reapplies them


def for_command(command: str | None) -> str:
    return COMMANDS.get(command or "", ADMIN)


def login(role: str) -> str | None:
    """The database role of `role`, or None for the admin (the configured user)."""
    return ROLES.get(role)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def statements(database: str, passwords: dict[str, str] | None = None) -> list[str]:
    """The SQL of `elt roles apply` on `database`, idempotent. With `passwords` (the
    embedded server) the roles can log in with them; without, they are NOLOGIN."""
    db = _ident(database)
    names = list(ROLES.values())
    sql = ["select pg_advisory_xact_lock(hashtext('elt roles apply'))"]
    for role in [*names, AUDIT_WRITER]:
        sql.append(
            "do $$ begin if not exists (select from pg_roles where rolname = "
            f"{_literal(role)}) then create role {_ident(role)} nologin; end if; end $$"
        )
    for key, role in ROLES.items():
        attributes = "nosuperuser nocreatedb nocreaterole noreplication nobypassrls"
        if passwords is not None:
            attributes += f" login password {_literal(passwords[role])}"
        sql.append(f"alter role {_ident(role)} with {attributes}")
        for setting, value in SETTINGS[key].items():
            sql.append(f"alter role {_ident(role)} set {setting} = {_literal(value)}")
    loader, transformer, analyst, doctor = (_ident(ROLES[k]) for k in ROLES)
    writer = _ident(AUDIT_WRITER)
    sql += [
        f"grant {writer} to {loader}, {transformer}",
        f"grant pg_monitor to {doctor}",
        f"revoke all on database {db} from public",
        f"grant connect on database {db} to {', '.join(_ident(n) for n in names)}",
        f"grant create, temporary on database {db} to {loader}, {transformer}",
        "revoke create on schema public from public",
    ]
    for schema, owner in OWNED.items():
        sql += [
            f"create schema if not exists {schema} authorization {_ident(ROLES[owner])}",
            f"alter schema {schema} owner to {_ident(ROLES[owner])}",
            f"grant usage on schema {schema} to {analyst}, {doctor}",
        ]
    sql += [
        f"create schema if not exists {AUDIT_SCHEMA} authorization {writer}",
        f"alter schema {AUDIT_SCHEMA} owner to {writer}",
        f"grant usage, create on schema {AUDIT_SCHEMA} to {writer}",
        f"grant usage on schema {AUDIT_SCHEMA} to {doctor}",
        # the run history exists before either writer: owned by the group role below, so
        # both the loader and the transformer may alter it (a later migration)
        audit.DDL,
        # objects an older elt made as the admin pass to the role that owns them now
        _reassign("nspname like 'raw\\_%'", ROLES["loader"], schemas_too=True),
        _reassign("nspname in ('staging', 'marts')", ROLES["transformer"]),
        _reassign(f"nspname = '{AUDIT_SCHEMA}'", AUDIT_WRITER),
        _grant_existing_raw(),
        f"grant select on all tables in schema staging, marts to {analyst}, {doctor}",
        f"grant select on all tables in schema {AUDIT_SCHEMA} to {doctor}",
        f"grant select, insert, update, delete on all tables in schema {AUDIT_SCHEMA} to {writer}",
        # what the roles create from now on
        f"alter default privileges for role {loader} grant usage on schemas"
        f" to {transformer}, {doctor}",
        f"alter default privileges for role {loader} grant select on tables"
        f" to {transformer}, {doctor}",
        f"alter default privileges for role {transformer} grant usage on schemas"
        f" to {analyst}, {doctor}",
        f"alter default privileges for role {transformer} grant select on tables"
        f" to {analyst}, {doctor}",
    ]
    for role in (loader, transformer, writer):
        sql += [
            f"alter default privileges for role {role} in schema {AUDIT_SCHEMA}"
            f" grant select, insert, update, delete on tables to {writer}",
            f"alter default privileges for role {role} in schema {AUDIT_SCHEMA}"
            f" grant usage, select on sequences to {writer}",
        ]
    return sql


def _reassign(schemas: str, owner: str, *, schemas_too: bool = False) -> str:
    """A DO block giving `owner` the tables, views and sequences of the matching schemas
    (and, with `schemas_too`, the schemas themselves)."""
    schema_step = (
        f"for s in select nspname from pg_namespace where {schemas} loop "
        f"execute format('alter schema %I owner to %I', s.nspname, {_literal(owner)}); "
        "end loop; "
        if schemas_too
        else ""
    )
    return (
        "do $$ declare r record; s record; begin "
        + schema_step
        + "for r in select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n"
        " on n.oid = c.relnamespace where c.relkind in ('r', 'p', 'v', 'm', 'S')"
        f" and {schemas} and pg_get_userbyid(c.relowner) <> {_literal(owner)}"
        " and not exists (select from pg_depend d where d.objid = c.oid and d.deptype in"
        " ('a', 'i') and c.relkind = 'S') loop "
        "execute format('alter %s %I.%I owner to %I', case r.relkind when 'v' then 'view'"
        " when 'm' then 'materialized view' when 'S' then 'sequence' else 'table' end,"
        f" r.nspname, r.relname, {_literal(owner)}); end loop; end $$"
    )


def _grant_existing_raw() -> str:
    """USAGE and SELECT on the raw schemas that exist now, for the transformer and doctor."""
    readers = f"{_ident(ROLES['transformer'])}, {_ident(ROLES['doctor'])}"
    return (
        "do $$ declare s record; begin for s in select nspname from pg_namespace"
        " where nspname like 'raw\\_%' loop "
        f"execute format('grant usage on schema %I to {readers}', s.nspname); "
        f"execute format('grant select on all tables in schema %I to {readers}', s.nspname);"
        " end loop; end $$"
    )


def source_statements(readers: tuple[str, ...] = ("loader", "doctor")) -> list[str]:
    """Read access to a source database on the same server (the demo shop): connect, and
    SELECT on its tables now and later."""
    names = ", ".join(_ident(ROLES[r]) for r in readers)
    return [
        f"grant connect on database {{database}} to {names}",
        "do $$ declare s record; begin for s in select nspname from pg_namespace where nspname"
        " not like 'pg\\_%' and nspname <> 'information_schema' loop "
        f"execute format('grant usage on schema %I to {names}', s.nspname); "
        f"execute format('grant select on all tables in schema %I to {names}', s.nspname);"
        " end loop; end $$",
        f"alter default privileges grant usage on schemas to {names}",
        f"alter default privileges grant select on tables to {names}",
    ]


def fingerprint(database: str, passwords: dict[str, str] | None) -> str:
    """What was applied (statements and passwords, hashed): kept as the database comment."""
    payload = json.dumps([VERSION, statements(database, passwords)])
    return "elt roles " + hashlib.sha256(payload.encode()).hexdigest()[:16]


def apply(admin, *, passwords: dict[str, str] | None = None) -> list[str]:
    """Run `statements` on the admin's warehouse in one transaction; the SQL it ran."""
    sql = statements(admin.database, passwords)
    mark = fingerprint(admin.database, passwords)
    conn = admin.connect()
    try:
        with conn, conn.cursor() as cur:
            for statement in sql:
                cur.execute(statement)
            cur.execute(f"comment on database {_ident(admin.database)} is {_literal(mark)}")
    finally:
        conn.close()
    return sql


def ensure_applied(admin) -> None:
    """On the embedded warehouse: apply the roles unless this database already has them."""
    from runtime import embedded

    passwords = embedded.credentials(admin.project, tuple(ROLES.values()))
    mark = fingerprint(admin.database, passwords)
    conn = admin.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select shobj_description(oid, 'pg_database') from pg_database"
                " where datname = current_database()"
            )
            current = cur.fetchone()[0]
        conn.rollback()
    finally:
        conn.close()
    if current != mark:
        apply(admin, passwords=passwords)


def grant_source_read(admin, database: str) -> None:
    """Let the loader and the doctor read a source database on the embedded server."""
    conn = admin.connect(database=database)
    try:
        with conn, conn.cursor() as cur:
            for statement in source_statements():
                cur.execute(statement.replace("{database}", _ident(database)))
    finally:
        conn.close()


def redacted(sql: list[str]) -> list[str]:
    """The statements with role passwords masked (what `--dry-run` prints)."""
    import re

    return [re.sub(r"password '(?:[^']|'')*'", "password '***'", s) for s in sql]
