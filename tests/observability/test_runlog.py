"""The JSON-lines run log: one file per audited run, named in the audit, bounded, rotated,
redacted."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from support import query

from runtime import runlog
from runtime.audit import audited
from runtime.errors import DataError

CANARY = "canary-pa55word-41c"


@pytest.fixture
def logs(tmp_path, monkeypatch):
    folder = tmp_path / "logs"
    monkeypatch.setenv("ELT_LOGS__DIR", str(folder))
    for key in ("ELT_METRICS__TEXTFILE_DIR", "ELT_METRICS__PUSHGATEWAY_URL"):
        monkeypatch.delenv(key, raising=False)
    return folder


def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_run_writes_a_json_lines_log_that_the_audit_names(warehouse, logs):
    with pytest.raises(DataError), audited(warehouse, "test", {"select": ["fct_orders"]}) as run:
        runlog.note("between the start and the end")
        raise DataError("test: 1 of 3 nodes failed")
    ((log_path,),) = query(
        warehouse, "select log_path from elt_audit.runs where run_id = %s", (run.run_id,)
    )
    assert log_path == run.log_path and log_path.startswith(str(logs))
    lines = records(logs / log_path.rsplit("/", 1)[1])
    assert lines[0]["message"] == "test started" and lines[0]["args"] == {"select": ["fct_orders"]}
    assert lines[1]["message"] == "between the start and the end"
    assert lines[-1]["message"] == "run ended"
    assert (lines[-1]["status"], lines[-1]["exit_code"]) == ("failed", 1)
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)


def test_dbt_events_and_stderr_lines_reach_the_log(logs):
    from elt import output

    # the shape of a dbt event as dbtRunner's callbacks get it
    event = SimpleNamespace(
        info=SimpleNamespace(name="LogModelResult", level="info", msg="1 of 1 OK model x"),
        data=SimpleNamespace(node_info=SimpleNamespace(unique_id="model.elt.x")),
    )
    debug = SimpleNamespace(
        info=SimpleNamespace(name="Note", level="debug", msg="chatter"), data=None
    )
    path = runlog.start("d" * 32, "transform")
    runlog.dbt_event(event)
    runlog.dbt_event(debug)
    output.log("transform: 1 node")
    runlog.finish({"status": "success"})
    lines = records(path)
    (dbt,) = [line for line in lines if line["logger"] == "dbt"]  # debug events are not kept
    assert dbt["event"] == "LogModelResult" and dbt["node"] == "model.elt.x"
    assert any(
        line["logger"] == "stderr" and line["message"] == "transform: 1 node" for line in lines
    )


def test_a_log_stops_at_its_size_limit_and_old_logs_are_removed(logs, monkeypatch):
    monkeypatch.setenv("ELT_LOGS__MAX_FILES", "3")
    monkeypatch.setenv("ELT_LOGS__MAX_FILE_MB", "0.002")  # about 2 KB
    paths = []
    for index in range(5):
        paths.append(runlog.start(f"{index:032x}", "load"))
        for line in range(200):
            runlog.note(f"line {line} of a chatty run")
        runlog.finish({"status": "success"})
    kept = sorted(logs.glob("*.jsonl"))
    assert len(kept) == 3 and set(kept) <= set(paths)
    for path in kept:
        assert path.stat().st_size < 2200
        assert records(path)[-1]["message"] == "log truncated"


def test_the_log_holds_no_secret(logs, monkeypatch):
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", f"postgresql://app:{CANARY}@db:5432/shop")
    path = runlog.start("e" * 32, "load")
    runlog.note(f"cannot connect to postgresql://app:{CANARY}@db:5432/shop")
    runlog.note(f"password {CANARY} rejected")
    runlog.finish({"error": f"load shop: {CANARY}"})
    assert CANARY not in path.read_text()


def test_an_unwritable_log_folder_never_fails_the_run(warehouse, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("ELT_LOGS__DIR", str(blocker / "logs"))
    with audited(warehouse, "load", {"sources": []}) as run:
        pass
    assert run.log_path is None
    assert query(warehouse, "select status from elt_audit.runs") == [("success",)]
