"""A shop load SIGKILLed at every stage boundary: readers see the old data or the new.

Each case runs `elt load shop` in a real process that kills itself (-9) at one boundary
(`ELT_TEST_KILL_AT`, loaders/kill_switch.py): after extract, after normalize, between two
table writes, after the last table write but before the `_dlt_loads` row; on a first load
and on a later one; then reruns with the dlt working dir kept or wiped (an ephemeral
runner). What staging reads is computed with the project's own dedupe macro: after the
kill it is exactly the data before the load, never neither, never a duplicate; after the
rerun (and its compaction) exactly the source, with one raw row per key.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from raw_log import counts, visible
from support import fetch, run_elt

from demo import shop
from loaders import kill_switch, pipeline

TABLES = {
    "customers": "customer_id",
    "products": "product_id",
    "orders": "order_id",
    "order_items": "order_item_id",
}


def staging_view(warehouse) -> dict[str, list[tuple]]:
    """Per table, (key, updated_at) of the current versions: what staging would read (a
    table not created yet reads as empty, as its staging model would)."""
    return {
        table: visible(warehouse, "raw_shop", table, key, f"{key}, updated_at")
        if _exists(warehouse, table)
        else []
        for table, key in TABLES.items()
    }


def _exists(warehouse, table: str) -> bool:
    from support import query

    return bool(
        query(
            warehouse,
            "select 1 from information_schema.tables where table_schema = 'raw_shop'"
            " and table_name = %s",
            (table,),
        )
    )


def source_view(shop_url: str) -> dict[str, list[tuple]]:
    return {
        table: sorted(fetch(shop_url, f"select {key}, updated_at from {table}"))
        for table, key in TABLES.items()
    }


def killed_load(env: dict[str, str], stage: str):
    # one load worker, so "between table writes" is between two tables, deterministically
    result = run_elt(
        "load", "shop", env={**env, kill_switch.ENV: stage, "LOAD__WORKERS": "1"}, timeout=300
    )
    assert result.returncode == -signal.SIGKILL, (
        f"the load was not killed at {stage}: exit {result.returncode}\n{result.stderr}"
    )


@pytest.mark.parametrize("working_dir", ["kept", "wiped"])
@pytest.mark.parametrize("load", ["first", "later"])
@pytest.mark.parametrize("stage", kill_switch.STAGES)
def test_a_load_killed_at_a_stage_boundary_leaves_old_or_new_data_and_a_rerun_converges(
    elt_env, warehouse, shop_url, stage, load, working_dir
):
    shop.seed(shop_url, 150)
    env = elt_env
    if load == "later":
        pipeline.run(
            "shop", destination_url=warehouse.url, pipelines_dir=Path(env["ELT_PIPELINES_DIR"])
        )
        shop.tick(shop_url)
    before = staging_view(warehouse)
    wanted = source_view(shop_url)

    killed_load(env, stage)
    after_kill = staging_view(warehouse)
    assert after_kill == before, f"killed at {stage}: staging would not read the old data"
    if working_dir == "wiped":
        shutil.rmtree(Path(env["ELT_PIPELINES_DIR"]))

    result = run_elt("load", "shop", env=env)
    assert result.returncode == 0, result.stderr
    assert staging_view(warehouse) == wanted
    for table, key in TABLES.items():
        total, distinct = counts(warehouse, "raw_shop", table, key)
        assert total == distinct, f"{table}: superseded versions or orphans left after compaction"
