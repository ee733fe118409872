"""The audit tells the truth: every way a run ends is recorded with its cause, panics of
native code (BaseExceptions) and SystemExit included; nothing stays 'running'."""

from __future__ import annotations

import json

import pytest
from run_control import runs
from support import execute, run_elt

from runtime.audit import audited


class NativePanic(BaseException):
    """Stands for pyo3's PanicException (a BaseException, not an Exception). The real one
    (connectorx on a NaN numeric) no longer happens: loaders/shop/values.py reads NaN as NULL."""


@pytest.mark.parametrize(
    ("raised", "status", "exit_code", "error"),
    [
        (
            NativePanic("cx writer failed\nmore"),
            "error",
            2,
            "internal error: NativePanic: cx writer failed",
        ),
        (SystemExit(3), "error", 3, "exited with code 3"),
        (SystemExit(1), "failed", 1, None),
        (SystemExit(0), "success", 0, None),
        (KeyboardInterrupt(), "stopped", 2, "stopped by signal: rerun resumes"),
    ],
)
def test_every_way_out_of_a_run_is_recorded(raised, status, exit_code, error, warehouse):
    with pytest.raises(type(raised)), audited(warehouse, "load", {}):
        raise raised
    (row,) = runs(warehouse, "load")
    assert (row["status"], row["exit_code"], row["error"]) == (status, exit_code, error)
    with audited(warehouse, "test", {}):  # the next run: the finished one stays as it was
        pass
    assert runs(warehouse, "load")[0]["status"] == status


def test_an_audit_table_from_before_run_locks_gains_them_and_its_running_rows_are_abandoned(
    elt_env, warehouse
):
    execute(
        warehouse.url,
        "create schema elt_audit; create table elt_audit.runs (run_id text primary key,"
        " command text not null, args jsonb, started_at timestamptz not null,"
        " ended_at timestamptz, status text not null, exit_code integer, rows jsonb,"
        " failures jsonb, error text);"
        " insert into elt_audit.runs (run_id, command, started_at, status)"
        " values ('old', 'load', now() - interval '2 days', 'running')",
    )
    listed = json.loads(run_elt("runs", "--format", "json", env=elt_env).stdout)
    assert [run["status"] for run in listed["runs"]] == ["running"]  # read as it is
    env = {**elt_env, "SOURCES__SHOP__CREDENTIALS": "postgresql://x@127.0.0.1:1/x"}
    assert run_elt("load", "shop", env=env).returncode == 2
    assert [(row["run_id"] == "old", row["status"]) for row in runs(warehouse, "load")] == [
        (True, "abandoned"),
        (False, "error"),
    ]


def test_a_reader_that_cannot_write_still_sees_a_dead_run_as_abandoned(elt_env, warehouse):
    import dataclasses
    import uuid

    with audited(warehouse, "load", {}):
        pass  # creates the table
    execute(
        warehouse.url,
        "insert into elt_audit.runs (run_id, command, started_at, status, lock_key)"
        " values ('dead', 'load', now(), 'running', 12345)",
    )
    role = f"elt_test_reader_{uuid.uuid4().hex[:8]}"
    execute(
        warehouse.url,
        f"create role {role} login password 'reader-pw'; grant usage on schema elt_audit to {role};"
        f" grant select on elt_audit.runs to {role}",
    )
    try:
        reader = dataclasses.replace(warehouse, user=role, password="reader-pw")
        result = run_elt(
            "runs", "--format", "json", env={**elt_env, "ELT_WAREHOUSE_URL": reader.url}
        )
        assert result.returncode == 0, result.stderr
        statuses = {run["run_id"]: run["status"] for run in json.loads(result.stdout)["runs"]}
        assert statuses["dead"] == "abandoned"
        assert [row["status"] for row in runs(warehouse) if row["run_id"] == "dead"] == ["running"]
    finally:
        execute(warehouse.url, f"drop owned by {role}; drop role {role}")
