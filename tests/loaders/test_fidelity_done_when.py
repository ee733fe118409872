"""The issue's Done-when scenario, through the CLI as a new user runs it: an `infinity`
timestamp and a `NaN` numeric in shop.orders are quarantined with table, column and
reason while the other rows load, and after `elt demo --tick` the next load is normal."""

from __future__ import annotations

import json

from conftest import demo_payments_api, elt_environment, landing_dir
from support import execute, fetch, query, run_elt

from demo import marketing, shop

BAD_ROWS = """
insert into orders (order_id, customer_id, status, ordered_at, currency, shipping_amount,
                    created_at)
select 900001, customer_id, status, 'infinity', currency, shipping_amount, created_at
from orders where order_id = 1
union all
select 900002, customer_id, status, ordered_at, currency, 'NaN', created_at
from orders where order_id = 2
"""


def test_infinity_and_nan_are_quarantined_then_the_next_tick_loads_normally(databases, tmp_path):
    warehouse, shop_url = databases
    pipelines = tmp_path / "pipelines"
    env = elt_environment(warehouse, shop_url, pipelines)
    shop.seed(shop_url, 200)
    marketing.seed(landing_dir(pipelines), shop_url)
    with demo_payments_api(shop_url, env) as env:
        run_elt("load", "shop", env=env, check=True)
        execute(shop_url, BAD_ROWS)
        result = run_elt("load", "shop", "--format", "json", env=env)
        assert result.returncode == 0, result.stderr
        (report,) = json.loads(result.stdout)["sources"]
        assert report["counts"]["orders"] == {"read": 2, "loaded": 0, "quarantined": 2}
        notes = " ".join(report["notes"])
        assert "orders: 2 row(s) quarantined" in notes
        assert "column ordered_at: timestamp outside the warehouse range" in notes
        assert "column shipping_amount: NaN or Infinity" in notes
        assert "infinity" not in notes.replace("no infinity", "")  # no value printed
        assert query(
            warehouse,
            "select row_key, column_name from elt_audit.quarantine where source = 'shop'"
            " order by 1",
        ) == [("order_id=900001", "ordered_at"), ("order_id=900002", "shipping_amount")]
        human = run_elt("load", "shop", env=env)  # nothing new: no error, no repeat
        assert human.returncode == 0, human.stderr
        run_elt("demo", "--tick", env=env, check=True)
        after = run_elt("load", "shop", "--format", "json", env=env)
        assert after.returncode == 0, after.stderr
        (report,) = json.loads(after.stdout)["sources"]
        assert report["rows"]["orders"] > 0
        # only the two bad rows are ever quarantined (again if the tick touched them)
        assert {
            key
            for (key,) in query(
                warehouse, "select row_key from elt_audit.quarantine where source = 'shop'"
            )
        } == {"order_id=900001", "order_id=900002"}
        counts = report["counts"]["orders"]
        assert counts["read"] == counts["loaded"] + counts["quarantined"]
        assert counts["quarantined"] <= 2
        # raw and staging hold exactly the good rows
        assert query(
            warehouse, "select count(*) from raw_shop.orders where order_id in (900001, 900002)"
        ) == [(0,)]
        run_elt(
            "dbt",
            "--",
            "build",
            "-s",
            "stg_shop__orders",
            "--indirect-selection",
            "cautious",
            env=env,
            check=True,
        )  # only the tests of this one model (others read models it does not build)
        staged = query(warehouse, "select order_id, is_deleted from staging.stg_shop__orders")
        source = {key for (key,) in fetch(shop_url, "select order_id from orders")}
        # the tick hard-deletes orders too: staging keeps them, flagged deleted
        assert all(deleted for key, deleted in staged if key not in source)
        assert {key for key, _ in staged if key in source} == source - {900001, 900002}


def test_a_jsonl_file_nested_5000_deep_in_the_landing_folder_is_quarantined_by_name(
    databases, tmp_path
):
    warehouse, shop_url = databases
    pipelines = tmp_path / "pipelines"
    env = elt_environment(warehouse, shop_url, pipelines)
    landing = landing_dir(pipelines)
    marketing.seed(landing, shop_url)
    deep = '{"session_id": "deep-1", "pageviews": ' + "[" * 5000 + "]" * 5000 + "}\n"
    (landing / "web_sessions" / "zz_deep.jsonl").write_text(deep)
    files = sorted(p.name for p in (landing / "web_sessions").glob("*.jsonl"))
    result = run_elt("load", "marketing", env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "skipped web_sessions file web_sessions/zz_deep.jsonl: quarantined whole: line 1:"
        " JSON nested too deep to parse" in result.stdout
    )
    loaded = query(warehouse, "select distinct _elt_file from raw_marketing.web_sessions")
    assert sorted(f.split("/")[-1] for (f,) in loaded) == [f for f in files if f != "zz_deep.jsonl"]
