"""The marketing feeds through the CLI, as a new user meets them: `elt demo` files,
`elt load`, a malformed file dropped into the landing folder, `elt quarantine list` and
`elt quarantine replay`. (The dbt side runs in test_shop_flow.py, whose `elt transform`
and `elt test` build and test the marketing models on the same demo files.)

One warehouse for the module; the scenarios build on each other in file order.
"""

from __future__ import annotations

import json

import pytest
from conftest import elt_environment, fresh_databases, landing_dir
from support import query, run_elt


@pytest.fixture(scope="module")
def flow(server, tmp_path_factory):
    with fresh_databases(server) as (warehouse, shop_url):
        pipelines = tmp_path_factory.mktemp("pipelines")
        env = elt_environment(warehouse, shop_url, pipelines)
        yield warehouse, env, landing_dir(pipelines)


def test_the_demo_files_load_with_the_one_malformed_row_quarantined(flow):
    _, env, landing = flow
    demo = json.loads(
        run_elt("demo", "--orders", "300", "--format", "json", env=env, check=True).stdout
    )
    assert demo["marketing"]["action"] == "written"
    assert len(list((landing / "ad_spend").glob("*.csv"))) == demo["marketing"]["days"]

    loaded = json.loads(run_elt("load", "--format", "json", env=env, check=True).stdout)
    (marketing,) = [s for s in loaded["sources"] if s["source"] == "marketing"]
    assert marketing["quarantine"]["ad_spend"]["quarantined"] == 1  # well under the threshold
    assert marketing["rows"] == {
        "ad_spend": demo["marketing"]["ad_spend_rows"] - 1,
        "web_sessions": demo["marketing"]["web_sessions_rows"],
        "campaigns": demo["marketing"]["campaigns"],
    }


def test_a_dropped_malformed_csv_loads_its_good_rows_and_lists_the_bad_ones(flow):
    warehouse, env, landing = flow
    header = "spend_date,campaign_id,channel,impressions,clicks,spend,currency"
    good = [f"2024-05-{day:02d},SRCH-BRAND,search,100,5,9.99,EUR" for day in range(1, 9)]
    bad = [
        "2024-05-09,SRCH-BRAND,search,100,5",
        "2024-05-10,SRCH-BRAND,search,lots,5,1.00,EUR",
        "2024-05-11,SRCH-BRAND,search,100,5,1.00,\u20ac",  # saved from Excel on Windows
    ]
    data = "\n".join([header, *good, *bad]) + "\n"
    (landing / "ad_spend" / "manual_upload.csv").write_bytes(data.encode("cp1252"))

    result = run_elt("load", "marketing", "--format", "json", env=env)

    assert result.returncode == 1, result.stderr  # 3 of 11 rows: above the 10% threshold
    payload = json.loads(result.stdout)
    assert payload["status"] == "failed"
    assert payload["sources"][0]["quarantine"]["ad_spend"]["quarantined"] == 3
    error = result.stderr.strip().splitlines()[-1]
    assert "feed ad_spend quarantined 3 of 11 rows (27.3%)" in error
    assert "elt quarantine list --feed ad_spend" in error

    listed = json.loads(
        run_elt(
            "quarantine", "list", "--feed", "ad_spend", "--format", "json", env=env, check=True
        ).stdout
    )
    rows = [r for r in listed["rows"] if r["file"] == "ad_spend/manual_upload.csv"]
    assert [(r["line"], r["reason"]) for r in rows] == [
        (10, "expected 7 fields, got 5"),
        (11, "column impressions: 'lots' is not a valid bigint"),
        (12, "not valid utf-8: byte 0x80 at position 40"),
    ]
    assert rows[0]["raw_text"] == bad[0]
    loaded = query(
        warehouse,
        "select count(*) from raw_marketing.ad_spend"
        " where _elt_file = 'ad_spend/manual_upload.csv'",
    )
    assert loaded[0][0] + len(rows) == len(good) + len(bad)

    human = run_elt("quarantine", "list", env={**env, "COLUMNS": "200"}, check=True)
    assert "manual_upload.csv" in human.stdout and "expected 7 fields, got 5" in human.stdout


def test_replay_names_an_unknown_feed_and_loads_rows_once_the_rule_is_fixed(flow):
    warehouse, env, _ = flow
    unknown = run_elt("quarantine", "replay", "--feed", "nosuch", env=env)
    assert unknown.returncode == 2
    assert "unknown feed nosuch" in unknown.stderr

    as_exported = {**env, "SOURCES__MARKETING__FEEDS__AD_SPEND__ENCODING": "cp1252"}
    replayed = json.loads(
        run_elt("quarantine", "replay", "--format", "json", env=as_exported, check=True).stdout
    )
    # the euro line now decodes; the short rows and 'lots' still fail
    assert replayed["sources"][0]["replayed"]["ad_spend"] == {"loaded": 1, "quarantined": 3}
    euro = query(
        warehouse,
        "select currency, _elt_line from raw_marketing.ad_spend"
        " where _elt_file = 'ad_spend/manual_upload.csv' and spend_date = '2024-05-11'",
    )
    assert euro == [("\u20ac", 12)]
    statuses = query(
        warehouse,
        "select status, count(*) from elt_audit.quarantine"
        " where file = 'ad_spend/manual_upload.csv' group by 1 order by 1",
    )
    assert statuses == [("open", 2), ("replayed", 1)]


def test_a_tick_adds_the_next_day(flow):
    warehouse, env, _ = flow
    before = query(
        warehouse,
        "select max(spend_date) from raw_marketing.ad_spend where spend_date > '2025-01-01'",
    )
    ticked = json.loads(run_elt("demo", "--tick", "--format", "json", env=env, check=True).stdout)
    loaded = json.loads(
        run_elt("load", "marketing", "--format", "json", env=env, check=True).stdout
    )
    assert loaded["sources"][0]["rows"]["ad_spend"] == 12
    after = query(warehouse, "select max(spend_date) from raw_marketing.ad_spend")
    assert str(after[0][0]) == ticked["marketing"]["day"] > str(before[0][0])
