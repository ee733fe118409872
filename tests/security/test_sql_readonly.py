"""`elt sql` as a hostile analyst uses it on the embedded default: every known bypass
exits 2 and leaves the mart intact."""

from __future__ import annotations

import dataclasses

import pytest
from support import query, run_elt

from runtime import embedded, readonly, roles
from runtime import warehouse as wh
from runtime.errors import ConfigError
from runtime.project import project_dir

PROJECT = project_dir()
EMBEDDED = {"ELT_WAREHOUSE_URL": ""}  # the embedded default: commands connect as their role


@pytest.fixture(scope="module")
def mart():
    """`marts.fct_orders` on the embedded default's warehouse, owned by the transformer."""
    admin = wh.resolve(PROJECT)
    wh.ensure_database(admin, admin.database)
    roles.ensure_applied(admin)
    transformer = admin.as_role("transformer")
    conn = transformer.connect()
    with conn, conn.cursor() as cur:
        cur.execute("drop table if exists marts.fct_orders")
        cur.execute(
            "create table marts.fct_orders as select g as order_id from generate_series(1, 5) g"
        )
    conn.close()
    return admin


def intact(admin) -> bool:
    return query(admin, "select count(*) from marts.fct_orders") == [(5,)]


BYPASSES = [
    "commit; drop table marts.fct_orders",
    "set transaction read write; drop table marts.fct_orders; commit",
    "select 1; drop table marts.fct_orders",
    "select 1 /* ; */ ; drop table marts.fct_orders",
    "copy (select 1) to program 'id'",
    "copy marts.fct_orders to '/tmp/elt-sql-leak'",
    "select pg_read_file('/etc/passwd')",
    "drop table marts.fct_orders",
    "begin",
    "set default_transaction_read_only = off",
    "with gone as (delete from marts.fct_orders returning 1) select count(*) from gone",
    "select * from raw_shop.customers",
    "do $$ begin execute 'drop table marts.fct_orders'; end $$",
    "call pg_catalog.pg_reload_conf()",
]


@pytest.mark.parametrize("statement", BYPASSES)
def test_a_bypass_exits_2_and_the_mart_stays(mart, statement):
    result = run_elt("sql", statement, env=EMBEDDED)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("error: sql:"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert intact(mart)


def test_a_read_runs_as_the_analyst_read_only(mart):
    result = run_elt(
        "sql",
        "select current_user, current_setting('transaction_read_only'), count(*)"
        " from marts.fct_orders",
        "--format",
        "csv",
        env=EMBEDDED,
        check=True,
    )
    assert result.stdout.splitlines()[1] == "elt_analyst,on,5"


def test_the_statement_timeout_cannot_be_lifted_from_inside_the_query(mart):
    result = run_elt(
        "sql",
        "select set_config('statement_timeout', '0', false), pg_sleep(5)",
        "--timeout",
        "1",
        env=EMBEDDED,
    )
    assert result.returncode == 2
    assert "statement timeout" in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        "select ';' as semicolon",
        "select $$;$$, $tag$ ; $ ; $tag$",
        "select 1 -- ; drop table x",
        "select 1 /* nested /* ; */ still ; */",
        'select 1 as ";"',
        "select E'\\';' as escaped",
        "select 1;",
        "  -- a comment first\n  select 1 ;  -- and after\n",
    ],
)
def test_semicolons_in_strings_comments_and_dollar_quotes_are_not_separators(text):
    assert readonly.check(text).strip().startswith(("select", "--"))


@pytest.mark.parametrize(
    "text",
    [
        "select 1; select 2",
        "select ';'; drop table x",
        "select $$x$$; commit",
        "select E'\\''; drop table x",
        "select 1 /* */ ; /* */ commit",
    ],
)
def test_a_batch_is_refused_before_it_is_sent(text):
    with pytest.raises(ConfigError, match="statements given"):
        readonly.check(text)


def test_the_analyst_cannot_log_in_without_its_password(mart):
    stranger = dataclasses.replace(mart.as_role("analyst"), password="guess")
    with pytest.raises(ConfigError, match="cannot connect"):
        stranger.connect()
    assert embedded.password(PROJECT, "elt_analyst") != "guess"


def test_on_call_reads_as_the_doctor_still_read_only(mart):
    who = run_elt("sql", "--role", "doctor", "select current_user", "--format", "csv", env=EMBEDDED)
    assert who.stdout.splitlines()[1] == "elt_doctor", who.stderr
    for statement in ("drop table marts.fct_orders", "select 1; drop table marts.fct_orders"):
        assert run_elt("sql", "--role", "doctor", statement, env=EMBEDDED).returncode == 2
    insert = run_elt(
        "sql", "--role", "doctor",
        "with x as (insert into marts.fct_orders values (9) returning 1) select * from x",
        env=EMBEDDED,
    )  # fmt: skip
    assert insert.returncode == 2
    assert intact(mart)
