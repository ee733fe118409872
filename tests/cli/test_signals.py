"""SIGTERM at any phase: stop at the next safe point, exit 2 with one line, audit `stopped`,
and the rerun picks up from there. A second signal exits at once, also when the run is
stuck in a C call. One warehouse for the module: the scenarios build on each other."""

from __future__ import annotations

import signal
import time

import psycopg2
import pytest
from run_control import STOPPED_LINE, Background, every_source, runs
from support import fetch, query, run_elt

from demo import shop


@pytest.fixture(scope="module")
def world(server, tmp_path_factory):
    with every_source(server, tmp_path_factory.mktemp("pipelines"), 5_000, load=False) as world:
        yield world


def stopped_by_sigterm(run: Background, warehouse, command: str) -> None:
    """Exit 2, the one line, no traceback, the audit row `stopped`."""
    assert run.finish() == 2, run.stderr
    assert STOPPED_LINE in run.lines, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    last = runs(warehouse, command)[-1]
    assert last["pid"] == run.pid
    assert (last["status"], last["exit_code"]) == ("stopped", 2)
    assert last["error"] == "stopped by SIGTERM: rerun resumes"


def raw_orders_match_the_source(warehouse, shop_url) -> None:
    source = set(fetch(shop_url, "select order_id, updated_at from orders"))
    raw = query(
        warehouse,
        "select o.order_id, o.updated_at from raw_shop.orders as o"
        " join raw_shop._dlt_loads as l on l.load_id = o._dlt_load_id and l.status = 0",
    )
    assert len(raw) == len(set(raw)), "a version twice in raw_shop.orders"
    assert source <= set(raw)


def test_sigterm_during_extract_exits_2_stopped_and_the_rerun_loads(world):
    warehouse, shop_url, env = world
    with Background("load", "shop", env=env) as run:
        run.wait_for_line("load shop: extracting")
        run.signal(signal.SIGTERM)
        stopped_by_sigterm(run, warehouse, "load")
    rerun = run_elt("load", "shop", env=env)
    assert rerun.returncode == 0, rerun.stderr
    raw_orders_match_the_source(warehouse, shop_url)


def test_sigterm_during_the_load_stage_stops_the_other_sources_at_their_next_safe_point(world):
    """Sources load side by side: the one still running when shop is signalled starts at
    most the stage it was entering (a race with the signal), never another."""
    warehouse, shop_url, env = world
    shop.tick(shop_url)
    with Background("load", "shop", "marketing", env=env) as run:
        run.wait_for_line("load shop: loading")
        run.signal(signal.SIGTERM)
        signalled = len(run.lines)
        stopped_by_sigterm(run, warehouse, "load")
    later = [line for line in run.lines[signalled:] if line.startswith("load marketing:")]
    assert len(later) <= 1, run.stderr
    rerun = run_elt("load", "shop", "marketing", env=env)
    assert rerun.returncode == 0, rerun.stderr
    raw_orders_match_the_source(warehouse, shop_url)


def test_sigterm_during_the_merge_of_the_last_source_still_ends_stopped(world):
    """dlt finishes the job it runs (the merge); no safe point is left, yet the signal is
    not ignored: exit 2, `stopped`, and the rerun finds everything loaded."""
    warehouse, shop_url, env = world
    shop.tick(shop_url)
    with Background("load", "shop", env=env) as run:
        run.wait_for_line("load shop: loading")
        run.signal(signal.SIGTERM)
        stopped_by_sigterm(run, warehouse, "load")
    rerun = run_elt("load", "shop", env=env)
    assert rerun.returncode == 0, rerun.stderr
    raw_orders_match_the_source(warehouse, shop_url)


def test_sigterm_during_a_transform_cancels_dbt_exits_2_and_the_rerun_builds(world):
    warehouse, shop_url, env = world
    run_elt("load", env=env, check=True)
    with Background("transform", env=env) as run:
        run.wait_for_line(" OK ")  # dbt is building
        run.signal(signal.SIGTERM)
        stopped_by_sigterm(run, warehouse, "transform")
    rerun = run_elt("transform", env=env)
    assert rerun.returncode == 0, rerun.stderr
    (orders,) = fetch(shop_url, "select count(*) from orders where deleted_at is null")
    assert query(warehouse, "select count(distinct order_id) from marts.fct_orders") == [orders]
    assert query(warehouse, "select count(*) from marts.fct_orders") == [orders]


def test_a_second_signal_exits_at_once_while_stuck_and_still_records_stopped(world):
    """The shop table is locked: the extract waits inside connectorx (C code) and the
    first SIGTERM cannot stop it; the second exits at once, recording `stopped`."""
    warehouse, shop_url, env = world
    blocker = psycopg2.connect(shop_url)
    try:
        with blocker.cursor() as cur:
            cur.execute("lock table orders in access exclusive mode")
        with Background("load", "shop", env=env) as run:
            run.wait_for_line("load shop: extracting")
            time.sleep(2)  # inside the blocked read
            run.signal(signal.SIGTERM)
            time.sleep(1)
            assert run.proc.poll() is None  # the first signal waits for a safe point
            second = time.monotonic()
            run.signal(signal.SIGTERM)
            assert run.finish(timeout=30) == 2, run.stderr
            assert time.monotonic() - second < 10
            assert STOPPED_LINE in run.lines, run.stderr
    finally:
        blocker.close()
    last = runs(warehouse, "load")[-1]
    assert (last["pid"], last["status"], last["exit_code"]) == (run.pid, "stopped", 2)
    rerun = run_elt("load", "shop", env=env)  # the killed run's lock died with it
    assert rerun.returncode == 0, rerun.stderr
