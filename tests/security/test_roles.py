"""Least-privilege roles: every role tried against every schema (read, write, DDL) and
against the server itself (`copy ... to program`, `pg_read_file`), as the matrix says."""

from __future__ import annotations

import dataclasses

import psycopg2
import pytest
from support import query, run_elt

from runtime import embedded, roles
from runtime import warehouse as wh
from runtime.project import project_dir

PROJECT = project_dir()
SCHEMAS = ("raw_probe", "staging", "marts", "elt_audit")
R, W, D = "read", "write", "ddl"
# what each role may do in each schema; anything absent must be refused
MATRIX = {
    "loader": {"raw_probe": {R, W, D}, "elt_audit": {R, W, D}},
    "transformer": {"raw_probe": {R}, "staging": {R, W, D}, "marts": {R, W, D},
                    "elt_audit": {R, W, D}},
    "analyst": {"staging": {R}, "marts": {R}},
    "doctor": {"raw_probe": {R}, "staging": {R}, "marts": {R}, "elt_audit": {R}},
}  # fmt: skip


def passwords() -> dict[str, str]:
    return embedded.credentials(PROJECT, tuple(roles.ROLES.values()))


def as_role(warehouse, role: str):
    name = roles.ROLES[role]
    return dataclasses.replace(warehouse, user=name, password=passwords()[name])


def attempt(warehouse, sql: str) -> bool:
    """True when `sql` succeeds (autocommit, its own connection)."""
    conn = warehouse.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        return True
    except psycopg2.Error:
        return False
    finally:
        conn.close()


@pytest.fixture
def applied(warehouse):
    """A fresh warehouse database with the roles applied and one table per schema, each
    made by the role that writes there."""
    roles.apply(warehouse, passwords=passwords())
    loader, transformer = as_role(warehouse, "loader"), as_role(warehouse, "transformer")
    assert attempt(loader, "create schema raw_probe; create table raw_probe.t (x int)")
    assert attempt(loader, "insert into raw_probe.t values (1)")
    assert attempt(loader, "create table elt_audit.t (x int); insert into elt_audit.t values (1)")
    for schema in ("staging", "marts"):
        assert attempt(transformer, f"create table {schema}.t as select 1 as x")
    return warehouse


@pytest.mark.parametrize("role", list(MATRIX))
def test_each_role_can_do_exactly_what_the_matrix_says(applied, role):
    conn = as_role(applied, role)
    found = {}
    for schema in SCHEMAS:
        found[schema] = {
            action
            for action, sql in (
                (R, f"select * from {schema}.t"),
                (W, f"insert into {schema}.t values (2)"),
                (D, f"create table {schema}.made_by_{role} (x int)"),
            )
            if attempt(conn, sql)
        }
    expected = {schema: MATRIX[role].get(schema, set()) for schema in SCHEMAS}
    assert found == expected


@pytest.mark.parametrize("role", list(MATRIX))
def test_no_role_runs_programs_or_reads_server_files(applied, role):
    conn = as_role(applied, role)
    assert not attempt(conn, "copy (select 1) to program 'id'")
    assert not attempt(conn, "select pg_read_file('/etc/passwd')")
    assert not attempt(conn, "select pg_ls_dir('.')")
    assert not attempt(conn, "create extension if not exists dblink")
    assert not attempt(conn, "alter role current_user superuser")


def test_the_roles_have_their_session_defaults(applied):
    conn = as_role(applied, "analyst").connect()
    try:
        with conn.cursor() as cur:
            cur.execute("show statement_timeout")
            assert cur.fetchone() == ("1min",)
            cur.execute("show default_transaction_read_only")
            assert cur.fetchone() == ("on",)
    finally:
        conn.close()


def test_apply_is_idempotent_and_dry_run_masks_the_passwords(applied):
    again = roles.apply(applied, passwords=passwords())
    assert again == roles.statements(applied.database, passwords())
    env = {"ELT_WAREHOUSE_URL": applied.url}
    dry = run_elt("roles", "apply", "--dry-run", env=env, check=True)
    assert "create role" in dry.stdout
    for secret in passwords().values():
        assert secret not in dry.stdout + dry.stderr
    # on a user's server the roles are NOLOGIN: nothing about passwords
    assert "password" not in dry.stdout


def test_on_the_embedded_default_each_command_gets_its_role():
    admin = wh.resolve(PROJECT)
    assert admin.embedded and admin.user == embedded.ADMIN
    for command, role in (("load", "loader"), ("transform", "transformer"), ("sql", "analyst"),
                          ("doctor", "doctor"), ("demo", "admin")):  # fmt: skip
        expected = roles.ROLES.get(role, embedded.ADMIN)
        assert admin.as_role(roles.for_command(command)).user == expected


def test_on_a_user_server_the_configured_user_is_used(warehouse):
    configured = wh.parse_url(warehouse.url)
    assert configured.as_role("loader") == configured


def test_the_run_history_belongs_to_both_writers(applied):
    owner = query(
        applied,
        "select pg_get_userbyid(relowner) from pg_class where oid = 'elt_audit.runs'::regclass",
    )
    assert owner == [(roles.AUDIT_WRITER,)]
    for role in ("loader", "transformer"):
        assert attempt(
            as_role(applied, role),
            f"alter table elt_audit.runs add column if not exists by_{role} text",
        )
    assert not attempt(as_role(applied, "analyst"), "select * from elt_audit.runs")
