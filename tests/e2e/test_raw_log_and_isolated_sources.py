"""Raw as an append-only log, compaction and isolated sources, as cron and an operator run them.

One warehouse for the module (dbt runs are the slow part); the scenarios build on each
other in file order: a closed shop port and a stopped payments API fail only their
source; a load killed before its `_dlt_loads` row leaves the marts with the old data
(the issue-9 bug published an empty dim_customers); compaction removes superseded
versions and orphans and leaves the marts unchanged; a held load lock is named.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest
from conftest import demo_payments_api, elt_environment, fresh_databases, landing_dir
from support import fetch, query, run_elt

from demo import marketing, shop
from loaders import kill_switch

MARTS = {
    "marts.dim_customers": "customer_id",
    "marts.fct_orders": "order_id",
    "marts.fct_order_items": "order_item_id",
}


@pytest.fixture(scope="module")
def flow(server, tmp_path_factory):
    with fresh_databases(server) as (warehouse, shop_url):
        pipelines = tmp_path_factory.mktemp("pipelines")
        env = elt_environment(warehouse, shop_url, pipelines)
        shop.seed(shop_url, 300)
        marketing.seed(landing_dir(pipelines), shop_url)
        with demo_payments_api(shop_url, env) as env:
            yield warehouse, shop_url, env


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def error_line(stderr: str) -> str:
    (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    return line


def completed_loads(warehouse, source: str) -> int:
    return query(warehouse, f"select count(*) from raw_{source}._dlt_loads where status = 0")[0][0]


def marts(warehouse) -> dict[str, list[tuple]]:
    return {
        table: query(warehouse, f"select * from {table} order by {key}")
        for table, key in MARTS.items()
    }


def test_a_closed_shop_port_fails_only_shop_and_names_it(flow):
    warehouse, _, env = flow
    bad = {**env, "SOURCES__SHOP__CREDENTIALS": f"postgresql://shop@127.0.0.1:{closed_port()}/x"}
    result = run_elt("load", "--format", "json", env=bad)
    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert line.startswith("error: load shop:")
    assert "elt load shop`" in result.stderr  # the hint names the source left unloaded
    payload = json.loads(result.stdout)
    statuses = {source["source"]: source["status"] for source in payload["sources"]}
    assert statuses == {"shop": "failed", "payments": "loaded", "marketing": "loaded"}
    (shop_entry,) = [source for source in payload["sources"] if source["source"] == "shop"]
    assert shop_entry["error"]["message"].startswith("load shop:")
    assert shop_entry["error"]["exit_code"] == 2
    assert completed_loads(warehouse, "payments") == 1
    assert completed_loads(warehouse, "marketing") == 1


def test_a_stopped_payments_api_fails_only_payments(flow):
    warehouse, _, env = flow
    no_api = {
        k: v
        for k, v in env.items()
        if k not in ("SOURCES__PAYMENTS__BASE_URL", "SOURCES__PAYMENTS__TOKEN")
    }
    result = run_elt("load", env=no_api)
    assert result.returncode == 2, result.stderr
    # "no API configured", or the error of a stray demo API another run left in .elt/
    assert error_line(result.stderr).startswith("error: load payments: ")
    assert "`elt load payments`" in result.stderr
    assert "shop" in result.stdout and "loaded" in result.stdout  # the per-source summary
    assert completed_loads(warehouse, "shop") == 1


def test_a_load_killed_before_its_loads_row_leaves_the_marts_with_the_old_data(flow):
    warehouse, shop_url, env = flow
    run_elt("load", env=env, check=True)
    run_elt("transform", env=env, check=True)
    old = marts(warehouse)
    assert old["marts.dim_customers"], "the demo has customers"
    shop.tick(shop_url)
    killed = run_elt("load", "shop", env={**env, kill_switch.ENV: kill_switch.BEFORE_LOADS_ROW})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    shutil.rmtree(Path(env["ELT_PIPELINES_DIR"]) / "elt_shop")  # an ephemeral runner
    run_elt("transform", env=env, check=True)
    assert marts(warehouse) == old


def test_compaction_removes_superseded_versions_and_orphans_and_leaves_the_marts(flow):
    warehouse, shop_url, env = flow
    rerun = run_elt(
        "load", "shop", "--format", "json", env={**env, "SOURCES__SHOP__COMPACT_EVERY_LOADS": "0"}
    )
    assert rerun.returncode == 0, rerun.stderr
    run_elt("transform", env=env, check=True)
    new = marts(warehouse)
    live = fetch(shop_url, "select count(*) from orders where deleted_at is null")[0][0]
    assert len(new["marts.fct_orders"]) == live
    raw_before = query(warehouse, "select count(*), count(distinct order_id) from raw_shop.orders")
    # versions and the killed load's orphans
    assert raw_before[0][0] > raw_before[0][1], (rerun.stdout, shop.counts(shop_url))

    result = run_elt("compact", "shop", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)["sources"]
    removed = report["removed"]["orders"]
    assert removed["orphans"] > 0 and removed["superseded"] > 0
    assert removed["orphans"] + removed["superseded"] == raw_before[0][0] - raw_before[0][1]
    assert query(warehouse, "select count(*) - count(distinct order_id) from raw_shop.orders") == [
        (0,)
    ]
    run_elt("transform", env=env, check=True)
    assert marts(warehouse) == new


def test_a_held_load_lock_is_named_by_load_and_compact(flow):
    from runtime import locks

    warehouse, _, env = flow
    with locks.hold(warehouse, "load:shop"):
        loaded = run_elt("load", "shop", env=env)
        compacted = run_elt("compact", "shop", env=env)
    for result, verb in ((loaded, "load"), (compacted, "compact")):
        assert result.returncode == 2, result.stderr
        line = error_line(result.stderr)
        assert line.startswith(f"error: {verb} shop: locked by `elt`"), line
        assert f"pid {os.getpid()}" in line


def test_a_first_load_racing_another_on_the_audit_table_still_publishes(warehouse, tmp_path):
    """Sources load concurrently: two first loads create elt_audit.quarantine at once. The
    other run here holds its half-done CREATE open; ours must wait, then find the table."""
    import threading
    import time

    import dlt

    from loaders import quarantine
    from runtime import engines

    other = warehouse.connect()  # a concurrent first load, mid-way through the same DDL
    with other.cursor() as cur:
        cur.execute(quarantine._DDL)
    pipeline = dlt.pipeline(
        pipeline_name="race",
        destination=engines.dlt_destination(warehouse.url),
        dataset_name="raw_race",
        pipelines_dir=str(tmp_path),
    )
    failures: list[BaseException] = []

    def ours() -> None:
        try:
            with pipeline.sql_client() as client:
                quarantine.ensure_audit_table(client)
        except BaseException as exc:
            failures.append(exc)

    racer = threading.Thread(target=ours)
    racer.start()
    time.sleep(1.0)  # ours is now blocked behind the other's uncommitted catalog rows
    other.commit()
    other.close()
    racer.join(30)
    assert not racer.is_alive()
    assert failures == []
    assert query(warehouse, "select count(*) from elt_audit.quarantine") == [(0,)]
