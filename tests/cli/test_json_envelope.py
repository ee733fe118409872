"""`--format json`: exactly one JSON document on stdout for every command and every way
out (success, usage error, configuration error, a held lock, a signal)."""

from __future__ import annotations

import json
import signal

import pytest
from run_control import Background, runs
from support import run_elt

from runtime import locks
from runtime.audit import Run

ENVELOPE = {"command", "version", "elt_version", "status", "exit_code", "error"}


def envelope(result) -> dict:
    """The one document on stdout (json.loads fails on anything more)."""
    document = json.loads(result.stdout)
    assert set(document) >= ENVELOPE, document
    assert document["exit_code"] == result.returncode
    return document


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["load", "nosuchsource"], "load"),
        (["transform", "--no-such-option"], "transform"),
        (["test", "--wait", "-1"], "test"),
        (["sql"], "sql"),
        (["runs", "--limit", "0"], "runs"),
        (["doctor", "--source", "nosuchsource"], "doctor"),
        (["quarantine", "list", "--status", "bogus"], "quarantine list"),
        (["demo", "--orders", "many"], "demo"),
        (["deps", "--no-such-option"], "deps"),
    ],
)
def test_a_usage_error_is_one_envelope_with_exit_2(args, command, elt_env):
    result = run_elt(*args, "--format", "json", env=elt_env)
    assert result.returncode == 2, result.stderr
    document = envelope(result)
    assert (document["command"], document["status"]) == (command, "error")
    assert document["error"]["cause"] == "usage" and document["error"]["message"]


def test_elt_format_json_covers_a_configuration_error_without_the_password(elt_env):
    env = {
        **elt_env,
        "ELT_FORMAT": "json",
        "ELT_WAREHOUSE_URL": "postgresql://etl:s3cr3t-pw@127.0.0.1:1/warehouse",
    }
    result = run_elt("runs", env=env)
    document = envelope(result)
    assert (document["status"], document["exit_code"]) == ("error", 2)
    assert document["error"]["message"].startswith(
        "warehouse 127.0.0.1:1/warehouse: cannot connect"
    )
    assert document["error"]["hint"] and document["error"]["cause"] == "config"
    assert "s3cr3t-pw" not in result.stdout + result.stderr


def test_sql_rows_sit_in_the_envelope(elt_env):
    result = run_elt("sql", "select 1 as a, 'x' as b", "--format", "json", env=elt_env)
    document = envelope(result)
    assert (document["command"], document["status"], document["error"]) == ("sql", "success", None)
    assert document["columns"] == ["a", "b"]
    assert document["rows"] == [{"a": 1, "b": "x"}]


def test_a_failing_query_is_an_envelope_with_the_cause(elt_env):
    result = run_elt("sql", "select * from no_such_table", "--format", "json", env=elt_env)
    document = envelope(result)
    assert document["status"] == "error"
    assert 'relation "no_such_table" does not exist' in document["error"]["message"]


def test_runs_sit_in_the_envelope(elt_env):
    run_elt(
        "load",
        "shop",
        env={**elt_env, "SOURCES__SHOP__CREDENTIALS": "postgresql://x@127.0.0.1:1/x"},
    )
    document = envelope(run_elt("runs", "--format", "json", env=elt_env))
    (run,) = document["runs"]
    assert (run["command"], run["status"], run["exit_code"]) == ("load", "error", 2)
    assert run["error"].startswith("load shop:")


def test_a_held_lock_is_an_envelope_naming_the_holder(elt_env, warehouse):
    with locks.hold(warehouse, "load:shop", run=Run(run_id="a" * 32, command="load")):
        result = run_elt("load", "shop", "--format", "json", env=elt_env)
    document = envelope(result)
    assert (document["status"], document["exit_code"]) == ("error", 2)
    assert document["error"]["cause"] == "locked"
    assert document["error"]["message"].startswith("load shop: locked by `elt load` pid ")
    assert "(run aaaaaaaa)" in document["error"]["message"]


def test_a_signal_stop_is_an_envelope_and_the_audit_says_stopped(elt_env, warehouse):
    holder = Run(run_id="b" * 32, command="load")
    with (
        locks.hold(warehouse, "load:shop", run=holder),
        Background("load", "shop", "--wait", "300", "--format", "json", env=elt_env) as run,
    ):
        run.wait_for_line("waiting up to 300s")
        run.signal(signal.SIGTERM)
        assert run.finish(timeout=60) == 2, run.stderr
    document = json.loads(run.stdout)
    assert (document["command"], document["status"], document["exit_code"]) == (
        "load",
        "stopped",
        2,
    )
    assert document["error"] == {
        "message": "stopped by signal: rerun resumes",
        "hint": "rerun the same command",
        "cause": "signal",
    }
    (row,) = runs(warehouse, "load")
    assert (row["status"], row["exit_code"]) == ("stopped", 2)
