"""Checks reading the audit tables (contract: AUDIT.md), created here with rows: the
last transform and test, failing tests, row counts against recent loads, quarantine."""

from __future__ import annotations

import json
import uuid

import pytest
from doctor_support import AUDIT_DDL, check
from support import execute

pytest_plugins = ["doctor_servers"]


@pytest.fixture(scope="module")
def audit(module_warehouse):
    """A warehouse with the audit tables (AUDIT.md), emptied before each use."""
    warehouse, env = module_warehouse
    execute(warehouse.url, AUDIT_DDL)
    return warehouse, env


@pytest.fixture
def audit_env(audit):
    warehouse, env = audit
    execute(warehouse.url, "truncate elt_audit.runs, elt_audit.dbt_results, elt_audit.quarantine")
    return warehouse, env


def add_run(
    warehouse,
    command: str,
    status: str,
    *,
    hours_ago: float = 1,
    rows: dict | None = None,
    failures: list | None = None,
    error: str | None = None,
    ended: bool = True,
) -> str:
    run_id = uuid.uuid4().hex
    execute(
        warehouse.url,
        "insert into elt_audit.runs values (%s, %s, %s, now() - make_interval(secs => %s),"
        " case when %s then now() - make_interval(secs => %s) + interval '7 seconds' end,"
        " %s, %s, %s, %s, %s)",
        (
            run_id,
            command,
            json.dumps({"sources": []}),
            hours_ago * 3600,
            ended,
            hours_ago * 3600,
            status,
            {"success": 0, "running": None}.get(status, 1),
            json.dumps(rows or {}),
            json.dumps(failures or []),
            error,
        ),
    )
    return run_id


def test_no_audit_tables_warn_no_audit_yet_with_the_command_creating_them(elt_env):
    env = elt_env  # a warehouse no elt command has run on
    for check_id, table, command in (
        ("data/transform", "runs", "`elt transform`"),
        ("data/test", "runs", "`elt transform`"),
        ("data/shop/row_counts", "runs", "`elt transform`"),
        ("data/shop/quarantine", "quarantine", "`elt load`"),
    ):
        result = check(env, check_id)
        assert result.status == "WARN", check_id
        assert result.detail == f"no audit yet: elt_audit.{table} does not exist"
        assert result.hint.startswith(command), result.hint


def test_loads_recorded_but_no_transform_yet_warns_with_the_command(loaded):
    _, _, env = loaded  # `elt load` records itself in elt_audit.runs
    for check_id, command in (("data/transform", "transform"), ("data/test", "test")):
        result = check(env, check_id)
        assert result.status == "WARN", (check_id, result.detail)
        assert result.detail == f"no `elt {command}` recorded yet"
        assert result.hint == f"`elt {command}`"


def test_a_successful_transform_is_ok_with_its_age(audit_env):
    warehouse, env = audit_env
    add_run(warehouse, "transform", "failed", hours_ago=3, error="dbt build: boom")
    add_run(warehouse, "transform", "success", hours_ago=1)
    result = check(env, "data/transform")
    assert result.status == "OK", result.detail
    assert result.detail == "last transform 60 min ago: success in 7.0s"


def test_a_failed_transform_fails_with_its_error_and_the_rerun(audit_env):
    warehouse, env = audit_env
    add_run(warehouse, "transform", "error", error="dbt build: relation raw_shop.orders missing")
    result = check(env, "data/transform")
    assert result.status == "FAIL"
    assert "relation raw_shop.orders missing" in result.detail
    assert result.hint == "`elt transform` after fixing the cause"


def test_a_failing_test_in_the_audit_fails_naming_the_test_and_the_rerun(audit_env):
    warehouse, env = audit_env
    add_run(warehouse, "test", "success", hours_ago=5)
    run_id = add_run(
        warehouse,
        "test",
        "failed",
        failures=[{"name": "unique_fct_orders_order_id", "status": "fail", "failures": 2}],
    )
    execute(
        warehouse.url,
        "insert into elt_audit.dbt_results (invocation_id, run_id, unique_id, name,"
        " resource_type, status, failures, finished_at) values"
        " ('inv-1', %s, 'test.elt.unique_fct_orders_order_id', 'unique_fct_orders_order_id',"
        "  'test', 'fail', 2, now()),"
        " ('inv-1', %s, 'test.elt.not_null_fct_orders_order_id', 'not_null_fct_orders_order_id',"
        "  'test', 'pass', 0, now())",
        (run_id, run_id),
    )
    result = check(env, "data/test")
    assert result.status == "FAIL"
    assert "1 failing: unique_fct_orders_order_id (2 rows)" in result.detail
    assert result.hint == "`elt test -s unique_fct_orders_order_id` reruns the first"
    assert result.facts["run_id"] == run_id


def test_failing_tests_come_from_the_runs_failures_without_dbt_results(audit_env):
    warehouse, env = audit_env
    add_run(
        warehouse,
        "test",
        "failed",
        failures=[{"name": "assert_order_totals_match_order_items", "status": "error"}],
    )
    result = check(env, "data/test")
    assert result.status == "FAIL"
    assert "assert_order_totals_match_order_items (error)" in result.detail


def test_a_passing_test_run_is_ok(audit_env):
    warehouse, env = audit_env
    add_run(warehouse, "test", "success", hours_ago=0.5)
    assert check(env, "data/test").status == "OK"


def test_a_run_still_running_after_hours_warns_it_was_probably_killed(audit_env):
    warehouse, env = audit_env
    add_run(warehouse, "transform", "running", hours_ago=10, ended=False)
    result = check(env, "data/transform")
    assert result.status == "WARN" and "never ended" in result.detail
    assert result.hint == "`elt transform`"


@pytest.mark.parametrize("status", ["stopped", "abandoned"])
def test_a_stopped_or_abandoned_last_run_warns_that_a_rerun_resumes(audit_env, status):
    warehouse, env = audit_env
    add_run(warehouse, "transform", status, hours_ago=0.5, error=f"{status}: rerun resumes")
    result = check(env, "data/transform")
    assert result.status == "WARN" and status in result.detail
    assert result.hint == "`elt transform` resumes"


def loads(warehouse, counts: list[int]) -> None:
    """Successful shop loads, oldest first, bringing `counts` orders each."""
    for age, count in enumerate(reversed(counts), start=1):
        add_run(warehouse, "load", "success", hours_ago=age, rows={"raw_shop.orders": count})


def test_row_counts_in_line_with_recent_loads_are_ok(audit_env):
    warehouse, env = audit_env
    loads(warehouse, [30, 25, 41, 33, 28])
    result = check(env, "data/shop/row_counts")
    assert result.status == "OK" and "in line with the 4 before it" in result.detail


def test_a_spike_in_loaded_rows_warns(audit_env):
    warehouse, env = audit_env
    loads(warehouse, [30, 25, 41, 33, 5000])
    result = check(env, "data/shop/row_counts")
    assert result.status == "WARN"
    assert "orders: spike to 5,000 rows (median 32)" in result.detail
    assert "raw_shop.orders" in result.hint


def test_a_drop_to_nothing_warns(audit_env):
    warehouse, env = audit_env
    loads(warehouse, [300, 250, 410, 330, 0])
    result = check(env, "data/shop/row_counts")
    assert result.status == "WARN" and "orders: drop to 0 rows" in result.detail


def test_too_few_loads_are_not_judged(audit_env):
    warehouse, env = audit_env
    loads(warehouse, [300, 0])
    result = check(env, "data/shop/row_counts")
    assert result.status == "OK" and "too few to judge" in result.detail


def quarantine(warehouse, *rows: tuple[str, str, float]) -> None:
    """Quarantined rows as (source, status, hours ago); each with a reason quoting a value."""
    for number, (source, status, hours) in enumerate(rows):
        execute(
            warehouse.url,
            "insert into elt_audit.quarantine (quarantine_id, source, feed, file, reason,"
            " load_id, quarantined_at, status) values (%s, %s, 'feed', 'f.csv',"
            " 'amount: not a number: x9', '1', now() - make_interval(secs => %s), %s)",
            (f"q{number}", source, hours * 3600, status),
        )


def test_open_quarantined_rows_of_the_source_warn_with_the_query_to_read_them(audit_env):
    warehouse, env = audit_env
    quarantine(
        warehouse,
        ("shop", "open", 2),
        ("shop", "open", 0),
        ("shop", "replayed", 30),
        ("payments", "open", 5),
    )
    result = check(env, "data/shop/quarantine")
    assert result.status == "WARN" and "2 quarantined row(s) waiting, oldest 2.0 h" in result.detail
    assert "elt_audit.quarantine where source = 'shop'" in result.hint
    assert "x9" not in result.detail  # reasons may quote values: not printed


def test_no_open_quarantined_rows_of_the_source_is_ok(audit_env):
    warehouse, env = audit_env
    quarantine(warehouse, ("shop", "replayed", 1), ("payments", "open", 1))
    assert check(env, "data/shop/quarantine").status == "OK"
