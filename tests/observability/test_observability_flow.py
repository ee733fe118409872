"""Observability on the demo, as a new user meets it: `elt load`, `transform` and `test`
with a textfile folder, a Pushgateway-compatible receiver and a webhook receiver (real
HTTP servers on 127.0.0.1); then a tick, `elt runs show` and `elt lineage`; last, the
demo payments API stopped and the alert it causes.

One warehouse for the module; the scenarios build on each other in file order.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import elt_environment, fresh_databases, landing_dir
from prometheus_client.parser import text_string_to_metric_families
from receivers import Receiver, receiver
from support import PROJECT, query, run_elt

from demo import marketing, payments, shop
from demo.payments_api import PaymentsAPI

TOKEN = "flow-t0ken-canary-93"


@dataclass
class Flow:
    warehouse: object
    shop_url: str
    env: dict
    landing: Path
    webhook: Receiver
    gateway: Receiver
    textfile: Path
    api: PaymentsAPI


@pytest.fixture(scope="module")
def flow(server, tmp_path_factory):
    with contextlib.ExitStack() as stack:
        warehouse, shop_url = stack.enter_context(fresh_databases(server))
        webhook, gateway = stack.enter_context(receiver()), stack.enter_context(receiver())
        pipelines = tmp_path_factory.mktemp("pipelines")
        root = tmp_path_factory.mktemp("observe")
        shop.seed(shop_url, 300)
        marketing.seed(landing_dir(pipelines), shop_url)
        payments.seed(shop_url)
        api = PaymentsAPI(shop_url, TOKEN).start()
        stack.callback(api.stop)
        env = elt_environment(warehouse, shop_url, pipelines) | {
            "ELT_METRICS__TEXTFILE_DIR": str(root / "textfile"),
            "ELT_METRICS__PUSHGATEWAY_URL": gateway.url,
            "ELT_ALERTS__WEBHOOK_URLS": webhook.url,
            "ELT_LOGS__DIR": str(root / "logs"),
            "SOURCES__PAYMENTS__BASE_URL": api.url,
            "SOURCES__PAYMENTS__TOKEN": TOKEN,
            "SOURCES__PAYMENTS__REQUEST_MAX_ATTEMPTS": "1",
        }
        yield Flow(
            warehouse,
            shop_url,
            env,
            landing_dir(pipelines),
            webhook,
            gateway,
            root / "textfile" / "elt.prom",
            api,
        )


def samples(text: str) -> dict[tuple, float]:
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def last_run_id(warehouse, command: str) -> str:
    return query(
        warehouse,
        "select run_id from elt_audit.runs where command = %s order by started_at desc limit 1",
        (command,),
    )[0][0]


def show(flow: Flow, run_id: str) -> dict:
    shown = run_elt("runs", "show", run_id[:8], "--format", "json", env=flow.env, check=True)
    return json.loads(shown.stdout)["run"]


def test_a_load_leaves_a_prom_file_with_rows_per_source_and_table_and_the_last_success(flow):
    run_elt("load", env=flow.env, check=True)
    found = samples(flow.textfile.read_text())
    orders = shop.counts(flow.shop_url)["orders"]
    assert found[("elt_rows_loaded_total", ("source", "shop"), ("table", "orders"))] == orders
    assert found[("elt_load_rows", ("source", "payments"), ("table", "payments"))] > 0
    assert found[("elt_load_rows", ("source", "marketing"), ("table", "web_sessions"))] > 0
    for source in ("shop", "payments", "marketing"):
        assert found[("elt_source_last_success_timestamp_seconds", ("source", source))] > 0
    assert found[("elt_run_status", ("command", "load"), ("status", "success"))] == 1
    (push,) = flow.gateway.requests
    assert push.method == "PUT" and "elt_rows_loaded_total" in push.body.decode()
    assert flow.webhook.requests == []  # a successful run alerts nobody


def test_transform_and_test_publish_model_times_and_test_counts(flow):
    run_elt("transform", env=flow.env, check=True)
    run_elt("test", env=flow.env, check=True)
    found = samples(flow.textfile.read_text())
    assert found[("elt_dbt_model_duration_seconds", ("model", "fct_orders"))] > 0
    assert found[("elt_dbt_model_status", ("model", "fct_orders"), ("status", "success"))] == 1
    assert found[("elt_dbt_models", ("status", "error"))] == 0
    assert found[("elt_dbt_tests", ("status", "pass"))] > 50
    assert found[("elt_dbt_tests", ("status", "fail"))] == 0
    fresh = ("elt_source_freshness_status", ("source", "shop"), ("status", "pass"))
    assert found[(*fresh, ("table", "orders"))] == 1
    assert len(flow.gateway.requests) == 3


def test_runs_show_after_a_tick_names_loads_nodes_host_commit_and_the_log(flow):
    changes = shop.tick(flow.shop_url)
    payments.tick(flow.shop_url)
    marketing.tick(flow.landing, flow.shop_url)
    run_elt("load", env=flow.env, check=True)
    run = show(flow, last_run_id(flow.warehouse, "load"))
    by_source = {source["source"]: source for source in run["sources"]}
    assert by_source["shop"]["rows"]["orders"] == (
        changes["orders_inserted"] + changes["orders_updated"] + changes["orders_soft_deleted"]
    )
    newest = query(flow.warehouse, "select max(load_id) from raw_shop._dlt_loads")[0][0]
    assert by_source["shop"]["load_ids"] == [newest] == run["load_ids"]["shop"]
    assert run["args"] == {"sources": ["shop", "payments", "marketing"]}
    assert run["host"] == socket.gethostname()
    head = subprocess.run(
        ["git", "-C", str(PROJECT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert run["commit"].startswith(head)
    log = Path(run["log_path"])
    assert run["log_on_this_machine"] and "load shop: extracting" in log.read_text()
    assert TOKEN not in log.read_text()

    run_elt("transform", env=flow.env, check=True)
    transform = show(flow, last_run_id(flow.warehouse, "transform"))
    nodes = {node["name"]: node for node in transform["dbt_nodes"]}
    assert nodes["fct_orders"]["status"] == "success" and nodes["fct_orders"]["seconds"] > 0
    logged = [json.loads(line) for line in Path(transform["log_path"]).read_text().splitlines()]
    assert any(
        line["logger"] == "dbt" and line.get("node") == "model.elt.fct_orders" for line in logged
    )
    human = run_elt(
        "runs", "show", transform["run_id"], env={**flow.env, "COLUMNS": "200"}, check=True
    )
    assert f"log: {transform['log_path']}" in human.stdout and "fct_orders" in human.stdout


def test_lineage_traces_an_order_updated_by_the_tick_to_its_loads_and_their_runs(flow):
    """The order's row came with the tick's load, its items with the first: two loads,
    two elt runs. (Raw keeps one row per key where the source merges, every version where
    it appends: either way exactly one raw row per staged row is marked in staging.)"""
    ((order_id,),) = query(
        flow.warehouse,
        "select o.order_id from raw_shop.orders as o"
        " join raw_shop.order_items as i on i.order_id = o.order_id"
        " where o._dlt_load_id = (select max(load_id) from raw_shop._dlt_loads)"
        " and i._dlt_load_id < o._dlt_load_id"
        " and o.order_id in (select order_id from marts.fct_orders) limit 1",
    )
    traced = lineage(flow, order_id)
    (row,) = traced["rows"]
    upstream = {u["raw_table"]: u for u in traced["upstream"]}
    orders, items = upstream["raw_shop.orders"], upstream["raw_shop.order_items"]
    (current,) = [v for v in orders["raw_rows"] if v["in_staging"]]
    assert current["_dlt_load_id"] == max(v["_dlt_load_id"] for v in orders["raw_rows"])
    assert row["dlt_load_id"] == current["_dlt_load_id"]
    assert {r["order_item_id"] for r in items["raw_rows"] if r["in_staging"]} == {
        r["order_item_id"] for r in items["staging_rows"]
    }
    loads = {load["load_id"]: load for load in traced["loads"]}
    tick_run, first_run = last_run_id(flow.warehouse, "load"), first_load_run(flow.warehouse)
    assert loads[current["_dlt_load_id"]]["run"]["run_id"] == tick_run
    item_runs = {loads[r["_dlt_load_id"]]["run"]["run_id"] for r in items["raw_rows"]}
    assert first_run in item_runs
    assert all(load["completed"] and load["loaded_at"] for load in loads.values() if load["source"])
    human = run_elt("lineage", "fct_orders", str(order_id), env={**flow.env, "COLUMNS": "200"})
    assert tick_run[:8] in human.stdout and first_run[:8] in human.stdout


def lineage(flow: Flow, order_id: int) -> dict:
    args = ("lineage", "fct_orders", str(order_id), "--format", "json")
    return json.loads(run_elt(*args, env=flow.env, check=True).stdout)


def first_load_run(warehouse) -> str:
    return query(
        warehouse,
        "select run_id from elt_audit.runs where command = 'load' order by started_at limit 1",
    )[0][0]


def test_lineage_of_an_order_with_a_web_session_names_the_file_and_line(flow):
    ((order_id,),) = query(
        flow.warehouse,
        "select order_id from staging.stg_marketing__web_sessions where order_id in"
        " (select order_id from marts.fct_orders) limit 1",
    )
    traced = lineage(flow, order_id)
    sessions = next(u for u in traced["upstream"] if u["source"] == "marketing.web_sessions")
    (row,) = [r for r in sessions["raw_rows"] if r["in_staging"]]
    assert row["_elt_file"].startswith("web_sessions/") and row["_elt_line"] >= 1
    line = (flow.landing / row["_elt_file"]).read_text().splitlines()[row["_elt_line"] - 1]
    assert json.loads(line)["session_id"] == row["session_id"]


def test_a_stopped_payments_api_posts_one_alert_naming_the_source_and_the_cause(flow):
    flow.api.stop()
    first = run_elt("load", env=flow.env)
    again = run_elt("load", env=flow.env)
    assert first.returncode == again.returncode == 2, first.stderr
    (alert,) = flow.webhook.bodies()
    failed = query(
        flow.warehouse,
        "select run_id from elt_audit.runs where status = 'error' order by started_at limit 1",
    )[0][0]
    assert alert["run_id"] == failed and alert["kind"] == "run_error"
    assert alert["source"] == "payments" and alert["command"] == "load"
    assert "load payments" in alert["cause"] and "Connection" in alert["cause"]
    assert "payments" in alert["text"] and alert["next"]
    assert TOKEN not in json.dumps(alert)
    found = samples(flow.textfile.read_text())
    assert found[("elt_load_status", ("source", "payments"), ("status", "failed"))] == 1
    assert found[("elt_run_status", ("command", "load"), ("status", "error"))] == 1
    shown = show(flow, failed)
    assert shown["error"].startswith("load payments:")
    assert {s["source"]: s["status"] for s in shown["sources"]}["payments"] == "failed"
