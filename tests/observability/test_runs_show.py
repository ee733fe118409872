"""`elt runs show` on runs the flow test does not make: killed, unknown, ambiguous, old."""

from __future__ import annotations

import json

from support import execute, run_elt


def seed_runs(warehouse) -> None:
    execute(
        warehouse.url,
        "create schema elt_audit; create table elt_audit.runs (run_id text primary key,"
        " command text not null, args jsonb, started_at timestamptz not null,"
        " ended_at timestamptz, status text not null, exit_code integer, rows jsonb,"
        " failures jsonb, error text, load_ids jsonb, sources jsonb, host text, commit text,"
        " log_path text);"
        " insert into elt_audit.runs (run_id, command, args, started_at, status, rows, failures,"
        " host, log_path) values"
        " ('abcd1111aaaa', 'load', '{\"sources\": [\"shop\"]}', now(), 'running', '{}', '[]',"
        "  'gone-host', '/nowhere/run.jsonl'),"
        " ('abcd2222bbbb', 'test', '{\"select\": []}', now(), 'running', '{}', '[]', null, null)",
    )


def test_a_killed_run_shows_no_end_and_a_log_on_another_machine(warehouse, tmp_path):
    seed_runs(warehouse)
    env = {"ELT_WAREHOUSE_URL": warehouse.url, "ELT_LOGS__DIR": str(tmp_path)}
    shown = json.loads(
        run_elt("runs", "show", "abcd1111", "--format", "json", env=env, check=True).stdout
    )["run"]
    assert shown["ended_at"] is None and shown["seconds"] is None
    assert shown["host"] == "gone-host" and shown["log_on_this_machine"] is False
    assert shown["dbt_nodes"] == [] and shown["quarantine"] == []
    human = run_elt("runs", "show", "abcd1111", env={**env, "COLUMNS": "200"}, check=True)
    assert "no end recorded" in human.stdout
    assert "log: /nowhere/run.jsonl (not on this machine)" in human.stdout


def test_an_unknown_or_ambiguous_run_id_is_one_line_and_exit_2(warehouse, tmp_path):
    seed_runs(warehouse)
    env = {"ELT_WAREHOUSE_URL": warehouse.url, "ELT_LOGS__DIR": str(tmp_path)}
    for run_id, says in (
        ("abcd", "matches several runs"),
        ("ffff0000", "no run ffff0000"),
        ("x'; drop table elt_audit.runs; --", "is not a run id"),
    ):
        result = run_elt("runs", "show", run_id, env=env)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert says in line and "(next: " in line
    listed = run_elt("runs", env={**env, "COLUMNS": "200"}, check=True)
    assert "abcd1111" in listed.stdout and "abcd2222" in listed.stdout  # `elt runs` still lists
