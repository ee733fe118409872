"""Run metrics through prometheus-client: the textfile parsed back with its parser, a
Pushgateway-compatible receiver on 127.0.0.1, a hung gateway, `elt metrics` printing and
serving, the doctor's checks; against the real warehouse's audit."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from receivers import receiver
from support import PROJECT, query, run_elt

from runtime import metrics
from runtime.audit import audited
from runtime.errors import DataError

pytest_plugins = ["doctor_servers"]


@dataclasses.dataclass
class Report:
    """What elt load hands the audit for a source (loaders.pipeline.LoadReport.as_dict)."""

    rows: dict
    load_ids: list
    status: str = "success"
    quarantine: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "seconds": 1.5}


@pytest.fixture
def textfile_dir(tmp_path, monkeypatch):
    folder = tmp_path / "textfile"
    monkeypatch.setenv("ELT_METRICS__TEXTFILE_DIR", str(folder))
    monkeypatch.setenv("ELT_LOGS__DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("ELT_METRICS__PUSHGATEWAY_URL", raising=False)
    return folder


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels...): value} of an exposition."""
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def load_run(warehouse, shop_rows: int, fail: bool = False) -> str:
    with audited(warehouse, "load", {"sources": ["shop", "marketing"]}) as run:
        run.source_done("shop", Report({"orders": shop_rows, "customers": 2}, ["1.1"]))
        quarantine = {"ad_spend": {"rows": 10, "loaded": 9, "quarantined": 1}}
        run.source_done("marketing", Report({"ad_spend": 9}, ["1.2"], quarantine=quarantine))
        if fail:
            raise DataError("load marketing: feed ad_spend quarantined too much")
    return run.run_id


def test_a_load_leaves_a_textfile_with_rows_per_source_and_table_and_the_last_success(
    warehouse, textfile_dir
):
    load_run(warehouse, 5)
    load_run(warehouse, 7)
    found = samples((textfile_dir / "elt.prom").read_text())
    assert found[("elt_rows_loaded_total", ("source", "shop"), ("table", "orders"))] == 12
    assert found[("elt_load_rows", ("source", "shop"), ("table", "orders"))] == 7
    assert (
        found[("elt_rows_quarantined_total", ("source", "marketing"), ("table", "ad_spend"))] == 2
    )
    assert found[("elt_load_duration_seconds", ("source", "shop"))] == 1.5
    ended = query(warehouse, "select max(ended_at) from elt_audit.runs")[0][0].timestamp()
    last = found[("elt_source_last_success_timestamp_seconds", ("source", "shop"))]
    assert last == pytest.approx(ended, abs=0.001)
    assert found[("elt_runs_total", ("command", "load"), ("status", "success"))] == 2
    assert found[("elt_run_status", ("command", "load"), ("status", "success"))] == 1
    assert found[("elt_audit_up",)] == 1
    assert not list(textfile_dir.glob("*.prom.*"))  # no temporary file left behind


def test_a_failed_run_shows_its_status_and_exit_code_and_keeps_the_last_success(
    warehouse, textfile_dir
):
    load_run(warehouse, 5)
    before = samples((textfile_dir / "elt.prom").read_text())
    with pytest.raises(DataError):
        load_run(warehouse, 3, fail=True)
    found = samples((textfile_dir / "elt.prom").read_text())
    assert found[("elt_run_status", ("command", "load"), ("status", "failed"))] == 1
    assert found[("elt_run_status", ("command", "load"), ("status", "success"))] == 0
    assert found[("elt_run_exit_code", ("command", "load"))] == 1
    key = ("elt_run_last_success_timestamp_seconds", ("command", "load"))
    assert found[key] == before[key]


def test_metrics_are_pushed_to_a_pushgateway_compatible_receiver(
    warehouse, textfile_dir, monkeypatch
):
    with receiver() as gateway:
        monkeypatch.setenv("ELT_METRICS__PUSHGATEWAY_URL", gateway.url)
        load_run(warehouse, 4)
        (push,) = gateway.requests
    assert push.method == "PUT"
    assert push.path == f"/metrics/job/elt/instance/{socket.gethostname()}"
    found = samples(push.body.decode())
    assert found[("elt_rows_loaded_total", ("source", "shop"), ("table", "orders"))] == 4


def test_credentials_in_the_pushgateway_url_become_basic_auth_and_stay_out_of_logs(
    warehouse, textfile_dir, monkeypatch, caplog
):
    import base64

    with receiver(statuses=[200, 401]) as gateway:
        url = gateway.url.replace("http://", "http://pusher:s3cret-push@")
        monkeypatch.setenv("ELT_METRICS__PUSHGATEWAY_URL", url)
        load_run(warehouse, 1)
        with caplog.at_level("WARNING", logger="elt"):
            load_run(warehouse, 1)  # the gateway refuses this one: logged, the run succeeds
        first = gateway.requests[0]
    assert (
        first.headers["Authorization"]
        == "Basic " + base64.b64encode(b"pusher:s3cret-push").decode()
    )
    assert "push to the Pushgateway failed" in caplog.text and "s3cret-push" not in caplog.text
    assert query(warehouse, "select distinct status from elt_audit.runs") == [("success",)]


def test_runs_ending_at_once_leave_a_textfile_that_always_parses(warehouse, textfile_dir):
    import threading

    load_run(warehouse, 1)
    stop, seen, problems = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(samples((textfile_dir / "elt.prom").read_text()))
            except Exception as exc:  # a torn or missing file
                problems.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=load_run, args=(warehouse, 1)) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    stop.set()
    reader.join()
    assert problems == [] and seen
    final = samples((textfile_dir / "elt.prom").read_text())
    assert final[("elt_rows_loaded_total", ("source", "shop"), ("table", "orders"))] == 5


def test_a_hung_pushgateway_costs_the_run_its_timeout_and_never_fails_it(
    warehouse, textfile_dir, monkeypatch, blackhole
):
    monkeypatch.setenv("ELT_METRICS__PUSH_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("ELT_METRICS__PUSHGATEWAY_URL", f"http://127.0.0.1:{blackhole}")
    started = time.monotonic()
    load_run(warehouse, 4)  # raises nothing
    took = time.monotonic() - started
    assert took < 4
    assert (textfile_dir / "elt.prom").exists()
    assert query(warehouse, "select status from elt_audit.runs") == [("success",)]


def test_with_the_audit_unreadable_the_run_itself_is_published_with_audit_up_0(
    warehouse, textfile_dir
):
    from runtime.audit import Run

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        down = dataclasses.replace(warehouse, port=sock.getsockname()[1])
    run = Run(run_id="c" * 32, command="load")
    run.source_done("shop", error="load shop: cannot connect")
    outcome = {"status": "error", "exit_code": 2, "error": "x", "seconds": 0.5}
    metrics.publish_run(down, run, outcome)
    found = samples((textfile_dir / "elt.prom").read_text())
    assert found[("elt_audit_up",)] == 0
    assert found[("elt_run_status", ("command", "load"), ("status", "error"))] == 1
    assert found[("elt_load_status", ("source", "shop"), ("status", "failed"))] == 1


def test_the_doctor_publishes_a_status_per_check(textfile_dir):
    from diagnostics.results import Result, Status

    results = [
        Result("connectivity/warehouse", "connectivity", "warehouse", Status.OK, "up"),
        Result("data/shop/last_load", "data", "last load", Status.FAIL, "old", source="shop"),
    ]
    metrics.publish_doctor(results, 0.4)
    found = samples((textfile_dir / "elt_doctor.prom").read_text())
    key = ("elt_doctor_check_status", ("check", "data/shop/last_load"), ("section", "data"))
    assert found[(*key, ("source", "shop"), ("status", "FAIL"))] == 1
    assert found[(*key, ("source", "shop"), ("status", "OK"))] == 0
    assert found[("elt_doctor_checks", ("status", "FAIL"))] == 1


def test_elt_metrics_prints_the_audit_and_serves_it_to_a_scraper(warehouse, tmp_path, monkeypatch):
    env = {"ELT_WAREHOUSE_URL": warehouse.url, "ELT_LOGS__DIR": str(tmp_path / "logs")}
    empty = run_elt("metrics", env=env, check=True)
    assert samples(empty.stdout)[("elt_audit_up",)] == 1  # no audit yet: nothing else
    monkeypatch.setenv("ELT_LOGS__DIR", env["ELT_LOGS__DIR"])
    load_run(warehouse, 6)
    printed = samples(run_elt("metrics", env=env, check=True).stdout)
    assert printed[("elt_rows_loaded_total", ("source", "shop"), ("table", "orders"))] == 6

    server = subprocess.Popen(
        [sys.executable, "-m", "elt", "metrics", "--serve", "0"],
        env={**os.environ, **env},
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stderr.readline()
        url = line.split("serving metrics on ")[1].split()[0]
        with urllib.request.urlopen(url, timeout=10) as response:
            scraped = samples(response.read().decode())
        load_run(warehouse, 1)  # read anew on every scrape
        with urllib.request.urlopen(url, timeout=10) as response:
            again = samples(response.read().decode())
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert server.returncode == 0
    assert scraped[("elt_rows_loaded_total", ("source", "shop"), ("table", "orders"))] == 6
    assert again[("elt_rows_loaded_total", ("source", "shop"), ("table", "orders"))] == 7


def test_an_audit_table_of_an_older_version_gains_the_new_columns(warehouse, textfile_dir):
    from support import execute

    execute(
        warehouse.url,
        "create schema elt_audit; create table elt_audit.runs (run_id text primary key,"
        " command text not null, args jsonb, started_at timestamptz not null,"
        " ended_at timestamptz, status text not null, exit_code integer, rows jsonb,"
        " failures jsonb, error text);"
        " insert into elt_audit.runs values ('old', 'load', '{}', now(), now(), 'success', 0,"
        " '{}', '[]', null)",
    )
    run_id = load_run(warehouse, 2)
    rows = query(warehouse, "select run_id, load_ids, host from elt_audit.runs order by started_at")
    assert rows[0] == ("old", None, None)
    assert rows[1][0] == run_id and rows[1][1] == {"shop": ["1.1"], "marketing": ["1.2"]}
    assert rows[1][2] == socket.gethostname()
