"""Locks: one run per source loads, one run transforms; a second run says who holds the lock.

Hostile on purpose: two runs started at the same instant, a holder killed with SIGKILL,
a stale holder row left behind. Real processes, the real warehouse.
"""

from __future__ import annotations

import json
import re
import signal

import pytest
from run_control import Background, error_lines, every_source, lock_holder_pid, runs, wait_until
from support import fetch, query, run_elt

from demo import shop
from runtime import locks
from runtime.audit import Run

HOLDER = (
    r"locked by `elt {command}` pid {pid} on host \S+ since \d\d:\d\d:\d\d UTC"
    r" \(run [0-9a-f]{{8}}\)"
)


@pytest.fixture(scope="module")
def loaded(server, tmp_path_factory):
    """A warehouse with every source loaded once: ready for `elt transform`."""
    with every_source(server, tmp_path_factory.mktemp("pipelines"), 300, load=True) as world:
        yield world


def test_two_transforms_at_once_one_exits_2_naming_the_holder_and_no_order_twice(loaded):
    warehouse, shop_url, env = loaded
    with Background("transform", env=env) as first, Background("transform", env=env) as second:
        first.finish()
        second.finish()
    refused = [run for run in (first, second) if run.proc.returncode == 2]
    ran = [run for run in (first, second) if run.proc.returncode == 0]
    assert len(refused) == 1 and len(ran) == 1, first.stderr + "\n---\n" + second.stderr
    (line,) = error_lines(refused[0].stderr)
    assert re.match(
        "error: transform: " + HOLDER.format(command="transform", pid=ran[0].pid), line
    ), line
    assert "--wait" in line
    (dupes,) = query(warehouse, "select count(*) - count(distinct order_id) from marts.fct_orders")
    assert dupes == (0,)
    (orders,) = fetch(shop_url, "select count(*) from orders where deleted_at is null")
    assert query(warehouse, "select count(*) from marts.fct_orders") == [orders]
    refused_row = [row for row in runs(warehouse, "transform") if row["pid"] == refused[0].pid]
    assert refused_row[0]["status"] == "error" and "locked by" in refused_row[0]["error"]


def test_transform_waits_for_the_lock_with_wait_then_runs(loaded):
    warehouse, _shop_url, env = loaded
    holder = Run(run_id="f" * 32, command="test")
    waiting: Background | None = None
    try:
        with locks.hold(warehouse, "transform", run=holder):
            refused = run_elt("test", "--wait", "0.5", env=env)
            assert refused.returncode == 2, refused.stderr
            (line,) = error_lines(refused.stderr)
            assert "transform: locked by `elt test`" in line and "(run ffffffff)" in line
            waiting = Background("transform", "--wait", "300", env=env)
            waiting.wait_for_line("transform: locked by `elt test`")
            assert waiting.proc.poll() is None  # still waiting while the lock is held
        assert waiting.finish() == 0, waiting.stderr  # the holder ended: it went on
    finally:
        if waiting is not None:
            waiting.__exit__()
    assert "waiting up to 300s" in waiting.stderr


def test_a_source_waiting_for_its_lock_does_not_hold_up_the_others(loaded):
    """Sources load side by side: marketing loads while shop waits for the lock another
    run holds (one after another, marketing could not start before shop ended)."""
    warehouse, _shop_url, env = loaded
    holder = Run(run_id="e" * 32, command="test")
    waiting: Background | None = None
    try:
        with locks.hold(warehouse, "load:shop", run=holder):
            waiting = Background("load", "shop", "marketing", "--wait", "300", env=env)
            waiting.wait_for_line("load shop: locked by `elt test`")
            waiting.wait_for_line("load marketing: bookkeeping")
            assert waiting.proc.poll() is None  # shop still waits
        assert waiting.finish() == 0, waiting.stderr
    finally:
        if waiting is not None:
            waiting.__exit__()


@pytest.fixture
def shop_only(elt_env, shop_url):
    shop.seed(shop_url, 2_000)
    return elt_env


def raw_versions_once(warehouse, shop_url) -> None:
    """Every source version of an order exactly once in raw (completed loads)."""
    rows = query(
        warehouse,
        "select count(*), count(distinct (o.order_id, o.updated_at)) from raw_shop.orders as o"
        " join raw_shop._dlt_loads as l on l.load_id = o._dlt_load_id and l.status = 0",
    )
    (total, distinct) = rows[0]
    assert total == distinct, f"{total - distinct} versions twice in raw_shop.orders"
    source = set(fetch(shop_url, "select order_id, updated_at from orders"))
    raw = set(query(warehouse, "select order_id, updated_at from raw_shop.orders"))
    assert source <= raw


def test_two_loads_of_a_source_at_once_one_exits_2_naming_the_holder(
    shop_only, warehouse, shop_url
):
    with (
        Background("load", "shop", env=shop_only) as a,
        Background("load", "shop", env=shop_only) as b,
    ):
        a.finish()
        b.finish()
    codes = sorted([a.proc.returncode, b.proc.returncode])
    assert codes == [0, 2], a.stderr + "\n---\n" + b.stderr
    refused, ran = (a, b) if a.proc.returncode == 2 else (b, a)
    (line,) = error_lines(refused.stderr)
    assert re.match("error: load shop: " + HOLDER.format(command="load", pid=ran.pid), line), line
    raw_versions_once(warehouse, shop_url)


def test_two_loads_with_wait_both_run_in_turn_and_raw_holds_each_version_once(
    shop_only, warehouse, shop_url
):
    run_elt("load", "shop", env=shop_only, check=True)
    shop.tick(shop_url)
    with (
        Background("load", "shop", "--wait", "300", env=shop_only) as a,
        Background("load", "shop", "--wait", "300", env=shop_only) as b,
    ):
        assert (a.finish(), b.finish()) == (0, 0), a.stderr + "\n---\n" + b.stderr
    assert "waiting up to 300s" in a.stderr + b.stderr
    raw_versions_once(warehouse, shop_url)


def test_a_stale_holder_row_is_never_named(shop_only, warehouse):
    # a row left by a run that died: its backend holds nothing
    conn = warehouse.connect()
    conn.autocommit = True
    locks.run_ddl(conn, locks.DDL)
    with conn.cursor() as cur:
        cur.execute(
            "insert into elt_audit.locks values ('load:shop', 999999, 'elt load', 4242,"
            " 'ghost-host', now(), 'deadbeefdeadbeef')"
        )
        # the lock held by a backend that never recorded itself
        cur.execute("select pg_advisory_lock(%s, %s)", (locks.NAMESPACE, locks.key("load:shop")))
        cur.execute("select pg_backend_pid()")
        (backend,) = cur.fetchone()
    try:
        refused = run_elt("load", "shop", env=shop_only)
    finally:
        conn.close()
    assert refused.returncode == 2
    (line,) = error_lines(refused.stderr)
    assert f"load shop: locked by another run (warehouse backend pid {backend})" in line
    assert "ghost-host" not in refused.stderr and "4242" not in refused.stderr
    loaded = run_elt("load", "shop", env=shop_only)  # the lock died with its connection
    assert loaded.returncode == 0, loaded.stderr


def test_a_killed_load_releases_its_lock_and_its_run_becomes_abandoned(shop_only, warehouse):
    with Background("load", "shop", env=shop_only) as victim:
        wait_until(
            lambda: lock_holder_pid(warehouse, "load:shop") == victim.pid, 120, "the load's lock"
        )
        listed = json.loads(run_elt("runs", "--format", "json", env=shop_only).stdout)
        (alive,) = [row for row in listed["runs"] if row["command"] == "load"]
        assert alive["status"] == "running"  # a live run is never marked abandoned
        victim.kill()
        victim.proc.wait()
    assert victim.proc.returncode == -signal.SIGKILL
    listed = json.loads(run_elt("runs", "--format", "json", env=shop_only).stdout)
    (dead,) = [row for row in listed["runs"] if row["command"] == "load"]
    assert dead["status"] == "abandoned" and dead["ended_at"] is not None
    assert dead["error"].startswith("abandoned:")
    rerun = run_elt("load", "shop", env=shop_only)
    assert rerun.returncode == 0, rerun.stderr
    assert [row["status"] for row in runs(warehouse, "load")] == ["abandoned", "success"]


def test_a_killed_run_is_abandoned_by_the_next_command_too(shop_only, warehouse):
    with Background("load", "shop", env=shop_only) as victim:
        wait_until(
            lambda: lock_holder_pid(warehouse, "load:shop") == victim.pid, 120, "the load's lock"
        )
        victim.kill()
        victim.proc.wait()
    rerun = run_elt("load", "shop", env=shop_only)  # not `elt runs`: any command sweeps
    assert rerun.returncode == 0, rerun.stderr
    statuses = {row["pid"]: row["status"] for row in runs(warehouse, "load")}
    assert statuses[victim.pid] == "abandoned"
