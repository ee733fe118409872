"""Alerts against real webhook receivers on 127.0.0.1 and the real warehouse (dedupe)."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time

import pytest
from receivers import receiver
from support import execute

from runtime import alerts
from runtime.audit import Run

pytest_plugins = ["doctor_servers"]

CANARY = "canary-s3cr3t-7f1e"


@pytest.fixture(autouse=True)
def quiet_settings(monkeypatch, tmp_path):
    """No project-level settings leak in; the file fallback and logs stay in tmp_path."""
    monkeypatch.setenv("ELT_LOGS__DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("ELT_ALERTS__BUDGET_SECONDS", "4")
    monkeypatch.setenv("ELT_ALERTS__TIMEOUT_SECONDS", "1")


def a_run(command="load", sources=("shop", "payments"), **fields) -> Run:
    run = Run(run_id=fields.pop("run_id", "0123456789abcdef" * 2), command=command)
    run.args = {"sources": list(sources)} if command == "load" else {"select": []}
    run.host = "runner-1"
    for key, value in fields.items():
        setattr(run, key, value)
    return run


def error(message: str, exit_code: int = 2, status: str = "error") -> dict:
    return {"status": status, "exit_code": exit_code, "error": message, "seconds": 1.0}


PAYMENTS_DOWN = (
    "load payments: extract of `payments` failed: ConnectionError: "
    "HTTPConnectionPool(host='127.0.0.1', port=1): connection refused"
)


def test_a_failed_load_sends_one_alert_naming_the_source_the_cause_and_the_next_command(
    warehouse, monkeypatch
):
    run = a_run(hint="fix the cause, then rerun `elt load payments`")
    run.source_done("payments", error=PAYMENTS_DOWN)
    with receiver() as hook:
        monkeypatch.setenv("ELT_ALERTS__WEBHOOK_URLS", hook.url)
        sent = alerts.alert_run(warehouse, run, error(PAYMENTS_DOWN))
        (body,) = hook.bodies()
    assert sent == [body]
    assert body["kind"] == "run_error" and body["command"] == "load"
    assert body["source"] == "payments" and body["run_id"] == run.run_id
    assert "ConnectionError" in body["cause"]
    assert body["next"] == "fix the cause, then rerun `elt load payments`"
    assert body["text"].startswith("elt load run error: payments: load payments: extract")


def test_identical_alerts_within_the_window_are_sent_once_even_by_concurrent_runs(
    warehouse, monkeypatch
):
    with receiver() as hook:
        monkeypatch.setenv("ELT_ALERTS__WEBHOOK_URLS", hook.url)
        runs = [a_run(run_id=f"{i:032x}") for i in range(4)]
        for run in runs:
            run.source_done("payments", error=PAYMENTS_DOWN)
        threads = [
            threading.Thread(target=alerts.alert_run, args=(warehouse, r, error(PAYMENTS_DOWN)))
            for r in runs
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        later = a_run(run_id="f" * 32)
        later.source_done("payments", error=PAYMENTS_DOWN)
        alerts.alert_run(warehouse, later, error(PAYMENTS_DOWN))
        assert len(hook.bodies()) == 1
        # another kind of failure is another alert
        breach = a_run(run_id="e" * 32, sources=("marketing",))
        breach.add_failure("marketing.ad_spend", "quarantine", 3, "27.3% of 11 rows quarantined")
        alerts.alert_run(warehouse, breach, error("load marketing: feed ad_spend ...", 1, "failed"))
        kinds = [body["kind"] for body in hook.bodies()]
    assert kinds == ["run_error", "quarantine_breached"]
    counts = query_alerts(warehouse)
    assert counts["run_error"] == (1, 4)  # sent once, suppressed four times


def query_alerts(warehouse) -> dict:
    conn = warehouse.connect()
    with conn.cursor() as cur:
        cur.execute("select kind, sent, suppressed from elt_audit.alerts")
        rows = {kind: (sent, suppressed) for kind, sent, suppressed in cur.fetchall()}
    conn.close()
    return rows


def test_an_alert_window_that_passed_sends_the_same_alert_again(warehouse, monkeypatch):
    monkeypatch.setenv("ELT_ALERTS__DEDUPE_WINDOW_SECONDS", "1")
    with receiver() as hook:
        monkeypatch.setenv("ELT_ALERTS__WEBHOOK_URLS", hook.url)
        for _ in range(2):
            alerts.alert_run(warehouse, a_run(), error(PAYMENTS_DOWN))
        time.sleep(1.2)
        alerts.alert_run(warehouse, a_run(), error(PAYMENTS_DOWN))
        assert len(hook.bodies()) == 2


def test_an_alert_never_carries_a_secret(warehouse, monkeypatch, caplog, tmp_path, blackhole):
    """Canary: a token in the environment shows up in the failure's text and in the
    webhook's URL (a Slack webhook's path is its secret); neither reaches the payload, the
    log lines or the run log."""
    from runtime import runlog

    monkeypatch.setenv("SOURCES__PAYMENTS__TOKEN", CANARY)
    cause = f"load payments: extract failed: HTTPError: 401 for url ...?token={CANARY}"
    run = a_run(hint=f"check the token {CANARY}")
    run.source_done("payments", error=cause)
    runlog.start(run.run_id, "load")
    hung = blackhole
    with receiver(path=f"/hooks/T000/{CANARY}") as good:
        urls = [good.url, f"http://127.0.0.1:{hung}/hooks/{CANARY}"]
        monkeypatch.setenv("ELT_ALERTS__WEBHOOK_URLS", json.dumps(urls))
        monkeypatch.setenv("ELT_ALERTS__BUDGET_SECONDS", "1.5")
        with caplog.at_level("WARNING", logger="elt"):
            alerts.alert_run(warehouse, run, error(cause))
        runlog.finish({"status": "error"})
        raw = good.requests[0].body.decode()
    assert "***" in raw and CANARY not in raw
    assert CANARY not in caplog.text and "webhook 2 did not accept" in caplog.text
    for path in (tmp_path / "logs").glob("*.jsonl"):
        assert CANARY not in path.read_text()


def test_a_hung_webhook_costs_the_run_at_most_the_budget_and_the_others_still_get_it(
    warehouse, monkeypatch, blackhole
):
    monkeypatch.setenv("ELT_ALERTS__BUDGET_SECONDS", "2")
    monkeypatch.setenv("ELT_ALERTS__TIMEOUT_SECONDS", "5")  # the budget wins
    with receiver() as good:
        monkeypatch.setenv("ELT_ALERTS__WEBHOOK_URLS", f"http://127.0.0.1:{blackhole}/,{good.url}")
        started = time.monotonic()
        alerts.alert_run(warehouse, a_run(), error(PAYMENTS_DOWN))
        took = time.monotonic() - started
        assert len(good.bodies()) == 1
    assert took < 3.0


def test_a_refusing_webhook_is_tried_a_bounded_number_of_times_and_the_alert_not_lost(
    warehouse, monkeypatch
):
    monkeypatch.setenv("ELT_ALERTS__MAX_ATTEMPTS", "2")
    with receiver(statuses=[503, 503, 503]) as hook:
        monkeypatch.setenv("ELT_ALERTS__WEBHOOK_URLS", hook.url)
        assert alerts.alert_run(warehouse, a_run(), error(PAYMENTS_DOWN)) == []
        assert len(hook.requests) == 2
        # not delivered, so not deduplicated: the next run's identical alert goes out
        assert len(alerts.alert_run(warehouse, a_run(), error(PAYMENTS_DOWN))) == 1
        assert len(hook.requests) == 4


def test_with_the_warehouse_down_alerts_are_still_sent_once(warehouse, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    down = dataclasses.replace(warehouse, port=closed)
    with receiver() as hook:
        monkeypatch.setenv("ELT_ALERTS__WEBHOOK_URLS", hook.url)
        outage = "warehouse 127.0.0.1:1/warehouse: cannot connect (connection refused)"
        for _ in range(3):
            alerts.alert_run(down, a_run(), error(outage))
        (body,) = hook.bodies()
    assert body["kind"] == "run_error" and "cannot connect" in body["cause"]


def test_failing_tests_and_stale_sources_send_one_alert_per_kind(warehouse, monkeypatch):
    run = a_run(command="test", run_id="a" * 32)
    execute(
        warehouse.url,
        "create schema if not exists elt_audit;"
        " create table elt_audit.dbt_results (invocation_id text, run_id text, unique_id text,"
        " name text, resource_type text, status text, failures integer, rows_affected bigint,"
        " execution_time float, message text, finished_at timestamptz default now());"
        " insert into elt_audit.dbt_results (run_id, name, resource_type, status, failures,"
        " message) values"
        f" ('{run.run_id}', 'unique_fct_orders_order_id', 'test', 'fail', 3, 'Got 3 results'),"
        f" ('{run.run_id}', 'not_null_fct_orders_order_id', 'test', 'fail', 1, 'Got 1 result'),"
        f" ('{run.run_id}', 'accepted_values_x', 'test', 'pass', 0, null),"
        f" ('{run.run_id}', 'shop.orders', 'source', 'error', null, 'stale'),"
        f" ('{run.run_id}', 'shop.customers', 'source', 'warn', null, 'late'),"
        f" ('{'b' * 32}', 'other_runs_test', 'test', 'fail', 9, null)",
    )
    with receiver() as hook:
        monkeypatch.setenv("ELT_ALERTS__WEBHOOK_URLS", hook.url)
        failed = error("test: 2 of 5 nodes failed", 1, "failed")
        alerts.alert_run(warehouse, run, failed)
        alerts.alert_run(warehouse, run, failed)  # the same again: deduplicated
        bodies = {body["kind"]: body for body in hook.bodies()}
    assert sorted(bodies) == ["source_stale", "test_failed"]
    tests = bodies["test_failed"]
    assert tests["subjects"] == ["unique_fct_orders_order_id", "not_null_fct_orders_order_id"]
    assert tests["model"] == "unique_fct_orders_order_id"
    assert tests["next"] == "elt test -s unique_fct_orders_order_id"
    assert "3 failing rows" in tests["cause"]
    stale = bodies["source_stale"]
    assert stale["source"] == "shop" and stale["subjects"] == ["shop.orders"]
    assert stale["next"].endswith("elt load shop")


def test_a_quarantine_breach_names_the_feed_and_the_command_that_lists_its_rows():
    run = a_run(sources=("marketing",))
    run.add_failure("marketing.ad_spend", "quarantine", 3, "27.3% of 11 rows quarantined")
    (alert,) = alerts.alerts_for(run, error("load marketing: feed ad_spend ...", 1, "failed"), [])
    assert alert.kind == "quarantine_breached" and alert.source == "marketing"
    assert alert.next == "elt quarantine list --feed ad_spend"
    assert alert.cause == "feed ad_spend: 27.3% of 11 rows quarantined"


def test_an_error_line_naming_a_source_of_the_run_names_it_in_the_alert():
    """`elt demo --stop`, then `elt load`: the load stops before any source runs."""
    line = "load payments: no API configured and the demo payments API is not running"
    (alert,) = alerts.alerts_for(a_run(), error(line), [])
    assert alert.source == "payments" and alert.cause == line
    (other,) = alerts.alerts_for(a_run(), error("load nosuch: whatever"), [])
    assert other.source is None and other.next == "elt doctor"


def test_a_successful_run_sends_nothing():
    assert alerts.alerts_for(a_run(), {"status": "success", "exit_code": 0}, []) == []


def test_a_stopped_run_is_its_own_kind():
    (alert,) = alerts.alerts_for(
        a_run(), error("stopped by signal: rerun resumes", 2, "stopped"), []
    )
    assert alert.kind == "run_stopped"
