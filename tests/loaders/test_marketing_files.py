"""The marketing loader against a real Postgres: every input row of every delivery ends up
either in its raw table or in elt_audit.quarantine, exactly once."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import fresh_databases
from raw_log import visible
from support import execute, query

from loaders import pipeline

FEEDS = {
    "spend": {
        "file_glob": "spend/**/*.csv",
        "format": "csv",
        "primary_key": ["day", "campaign"],
        "columns": {"day": "date", "campaign": "text", "clicks": "bigint", "cost": "decimal(10,2)"},
    },
    "visits": {
        "file_glob": "visits/*.jsonl",
        "format": "jsonl",
        "primary_key": ["visit_id"],
        "columns": {"visit_id": "text", "at": "timestamp", "pages": "bigint"},
    },
    "budgets": {
        "file_glob": "budgets/*.parquet",
        "format": "parquet",
        "primary_key": ["campaign"],
        "columns": {"campaign": "text", "budget": "decimal(10,2)"},
    },
}
HEADER = "day,campaign,clicks,cost"


@pytest.fixture(scope="module")
def databases(server):
    """One pair of databases for the module (creating them is the slow part)..."""
    with fresh_databases(server) as pair:
        yield pair


@pytest.fixture(autouse=True)
def empty_warehouse(databases):
    """...and every test starts without the marketing datasets and the quarantine."""
    for schema in ("raw_marketing", "raw_marketing_staging", "elt_audit"):
        execute(databases[0].url, f"drop schema if exists {schema} cascade")


@pytest.fixture
def landing(tmp_path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


def load(env, landing: Path, feeds=None, **overrides) -> pipeline.LoadReport:
    return pipeline.run(
        "marketing",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
        source_overrides={"feeds": feeds or FEEDS, "bucket_url": str(landing), **overrides},
    )


def replay(env, landing: Path, feeds=None) -> pipeline.LoadReport:
    from loaders.marketing import replay as replay_source

    overrides = {"feeds": feeds or FEEDS, "bucket_url": str(landing)}
    return pipeline.run(
        "marketing",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
        source_overrides=overrides,
        build=lambda p: replay_source(p, overrides),
    )


def write(path: Path, data: bytes | str, *, later_than: Path | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if later_than is not None:  # file systems with coarse mtimes: make the change visible
        stamp = later_than.stat().st_mtime + 2
        os.utime(path, (stamp, stamp))
    return path


def current(warehouse, feed: str, columns: str) -> list[tuple]:
    """`columns` of the feed's current versions, as staging reads them (raw is a log)."""
    key = FEEDS[feed]["primary_key"]
    return visible(warehouse, "raw_marketing", feed, key, columns, "_elt_file_modified_at")


def loaded_lines(warehouse, feed: str, file: str) -> list[int]:
    rows = current(warehouse, feed, "_elt_file, _elt_line")
    return sorted(line for each, line in rows if each == file)


def quarantined(warehouse, feed: str, file: str, status: str = "open") -> dict[int, str]:
    rows = query(
        warehouse,
        "select line, reason from elt_audit.quarantine"
        " where source = 'marketing' and feed = %s and file = %s and status = %s",
        (feed, file, status),
    )
    return dict(rows)


def assert_each_row_once(warehouse, feed: str, file: str, rows: list[int]) -> None:
    """The file's input rows, by line, are each either loaded or quarantined, never both."""
    loaded = loaded_lines(warehouse, feed, file)
    bad = sorted(quarantined(warehouse, feed, file))
    assert sorted(loaded + bad) == rows
    assert not set(loaded) & set(bad)


def test_a_malformed_csv_loads_its_good_rows_and_quarantines_each_bad_one(
    elt_env, warehouse, landing
):
    lines = [
        HEADER,
        "2024-01-01,good-1,10,1.50",
        "2024-01-01,short,10",  # too few fields: never padded
        "2024-01-01,long,10,1.50,extra",
        '2024-01-01,str"ay,1,1.00',
        '2024-01-01,"unclosed,1,1.00',
        '2024-01-01,"closed"after,1,1.00',
        "2024-01-01,number,ten,1.00",
        "2024-02-30,date,1,1.00",
        "2024-01-01,cents,1,1.005",
        "",  # a blank line is not a row
        "2024-01-01,,1,1.00",
        "2024-01-02,good-2,,",  # empty fields are NULL
    ]
    data = "\n".join(lines).encode() + b"\n2024-01-01,caf\xe9,1,1.00\n2024-01-03,nul\x00,1,1.00\n"
    write(landing / "spend" / "day1.csv", data)

    report = load(elt_env, landing)

    reasons = quarantined(warehouse, "spend", "spend/day1.csv")
    assert reasons == {
        3: "expected 4 fields, got 3",
        4: "expected 4 fields, got 5",
        5: "broken quoting: a quote inside an unquoted field or after a closing quote",
        6: "broken quoting: unterminated quoted field",
        7: "broken quoting: a quote inside an unquoted field or after a closing quote",
        8: "column clicks: 'ten' is not a valid bigint",
        9: "column day: '2024-02-30' is not a valid date (expected YYYY-MM-DD)",
        10: "column cost: '1.005' is not a valid decimal(10,2)",
        12: "key column campaign is empty",
        14: "not valid utf-8: byte 0xe9 at position 14",
        15: "column campaign: contains a NUL character (Postgres text cannot store it)",
    }
    assert_each_row_once(warehouse, "spend", "spend/day1.csv", [*range(2, 11), *range(12, 16)])
    assert report.quarantine["spend"] == {
        "files": 1,
        "rows": 13,
        "loaded": 2,
        "quarantined": 11,
        "share": 0.8462,
        "max_share": 0.1,
        "exceeded": True,
    }
    assert report.rows == {"spend": 2}
    raw = query(
        warehouse,
        "select raw_text, raw_base64 is not null from elt_audit.quarantine"
        " where line in (3, 14, 15) order by line",
    )
    assert raw == [
        ("2024-01-01,short,10", False),
        ("2024-01-01,caf\\xe9,1,1.00", True),
        ("2024-01-03,nul\\x00,1,1.00", True),
    ]
    nulls = query(
        warehouse, "select clicks, cost from raw_marketing.spend where campaign = 'good-2'"
    )
    assert nulls == [(None, None)]


def test_malformed_jsonl_lines_are_quarantined_one_by_one(elt_env, warehouse, landing):
    lines = [
        b'{"visit_id": "v1", "at": "2024-01-01T10:00:00Z", "pages": 3}',
        b'{"visit_id": "v2", "at": ',
        b"[1, 2]",
        b'{"visit_id": "v4", "at": "2024-01-01T10:00:00"}',
        b'{"visit_id": "v5", "pages": 2.5}',
        b'{"visit_id": "v6", "pages": "7", "referrer": "caf\xe9"}',
        b'{"at": "2024-01-01T10:00:00+01:00"}',
        b'{"visit_id": "v8", "at": "2024-01-01T10:00:00+01:00", "pages": 99999999999999999999}',
        b'{"visit_id": "v9", "pages": true}',
    ]
    write(landing / "visits" / "a.jsonl", b"\n".join(lines) + b"\n")

    load(elt_env, landing)

    reasons = quarantined(warehouse, "visits", "visits/a.jsonl")
    assert reasons[2].startswith("invalid JSON: ")
    assert reasons[3] == "expected a JSON object, got list"
    assert reasons[4].startswith("column at: '2024-01-01T10:00:00' is not a valid timestamp")
    assert reasons[5] == "column pages: '2.5' is not a valid bigint"
    assert reasons[6] == "not valid utf-8: byte 0xe9 at position 49"
    assert reasons[7] == "key column visit_id is empty"
    assert reasons[8] == "column pages: '99999999999999999999' is not a valid bigint"
    assert reasons[9] == "column pages: 'true' is not a valid bigint"
    assert_each_row_once(warehouse, "visits", "visits/a.jsonl", list(range(1, 10)))
    assert query(warehouse, "select visit_id, pages from raw_marketing.visits") == [("v1", 3)]


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_a_parquet_type_change_is_reported_and_values_that_do_not_fit_are_quarantined(
    elt_env, warehouse, landing
):
    budgets = pa.table({"campaign": ["a", "b", "c"], "budget": ["10.50", "n/a", "7"]})
    write(landing / "budgets" / "text.parquet", _parquet(budgets))
    whole = _parquet(pa.table({"campaign": ["x"], "budget": pa.array([1], pa.int64())}))
    write(landing / "budgets" / "truncated.parquet", whole[: len(whole) // 2])

    report = load(elt_env, landing)

    assert report.file_type_changes == [
        {
            "feed": "budgets",
            "file": "budgets/text.parquet",
            "column": "budget",
            "declared": "decimal(10,2)",
            "found": "string",
        }
    ]
    assert quarantined(warehouse, "budgets", "budgets/text.parquet") == {
        2: "column budget: 'n/a' is not a valid decimal(10,2)"
    }
    assert_each_row_once(warehouse, "budgets", "budgets/text.parquet", [1, 2, 3])
    (reason,) = quarantined(warehouse, "budgets", "budgets/truncated.parquet").values()
    assert reason.startswith("unreadable Parquet file: ")
    budgets = query(warehouse, "select campaign, budget from raw_marketing.budgets order by 1")
    assert [(c, str(b)) for c, b in budgets] == [("a", "10.50"), ("c", "7.00")]


def test_a_second_load_without_new_files_loads_nothing(elt_env, landing):
    write(landing / "spend" / "day1.csv", f"{HEADER}\n2024-01-01,a,1,1.00\n")
    assert load(elt_env, landing).rows == {"spend": 1}
    again = load(elt_env, landing)
    assert again.rows == {} and again.load_ids == [] and again.quarantine == {}


def test_a_redelivered_file_does_not_duplicate_rows(elt_env, warehouse, landing):
    first = write(
        landing / "spend" / "day1.csv", f"{HEADER}\n2024-01-01,a,1,1.00\n2024-01-01,b,x,2.00\n"
    )
    load(elt_env, landing)
    # the same content again: under another name, and the original touched
    write(landing / "spend" / "day1 (1).csv", first.read_bytes(), later_than=first)
    write(first, first.read_bytes(), later_than=first)

    report = load(elt_env, landing)

    assert report.quarantine["spend"]["files"] == 2
    assert current(warehouse, "spend", "campaign") == [("a",)]
    # the older delivery's bad row is superseded by the newer one's, not counted twice
    assert quarantined(warehouse, "spend", "spend/day1.csv", "superseded") == {
        3: "column clicks: 'x' is not a valid bigint"
    }
    for file in ("spend/day1.csv", "spend/day1 (1).csv"):
        assert quarantined(warehouse, "spend", file) == {
            3: "column clicks: 'x' is not a valid bigint"
        }
    assert query(warehouse, "select count(*) from elt_audit.quarantine where status = 'open'") == [
        (2,)
    ]


def test_a_modified_file_is_loaded_again(elt_env, warehouse, landing):
    path = write(
        landing / "spend" / "day1.csv", f"{HEADER}\n2024-01-01,a,1,1.00\n2024-01-01,b,x,2.00\n"
    )
    load(elt_env, landing)
    write(
        path,
        f"{HEADER}\n2024-01-01,a,5,5.00\n2024-01-01,b,2,2.00\n2024-01-01,c,3,3.00\n",
        later_than=path,
    )

    report = load(elt_env, landing)

    assert report.rows == {"spend": 3}
    assert current(warehouse, "spend", "campaign, clicks") == [("a", 5), ("b", 2), ("c", 3)]
    assert quarantined(warehouse, "spend", "spend/day1.csv") == {}
    assert list(quarantined(warehouse, "spend", "spend/day1.csv", "superseded")) == [3]
    assert_each_row_once(warehouse, "spend", "spend/day1.csv", [2, 3, 4])


def test_a_new_column_in_a_later_file_is_added_as_text_and_reported(elt_env, warehouse, landing):
    first = write(landing / "spend" / "day1.csv", f"{HEADER}\n2024-01-01,a,1,1.00\n")
    load(elt_env, landing)
    write(
        landing / "spend" / "day2.csv",
        f"{HEADER},device\n2024-01-02,a,1,1.00,mobile\n",
        later_than=first,
    )

    report = load(elt_env, landing)

    assert report.new_columns == [{"table": "spend", "column": "device", "data_type": "text"}]
    rows = query(warehouse, "select day::text, device from raw_marketing.spend order by 1")
    assert rows == [("2024-01-01", None), ("2024-01-02", "mobile")]


def test_a_link_out_of_the_landing_folder_is_not_followed(elt_env, warehouse, landing, tmp_path):
    outside = tmp_path / "outside"
    write(outside / "secret.csv", f"{HEADER}\n2024-01-01,secret,1,1.00\n")
    write(landing / "spend" / "day1.csv", f"{HEADER}\n2024-01-01,a,1,1.00\n")
    (landing / "spend" / "linked.csv").symlink_to(outside / "secret.csv")
    (landing / "spend" / "linked_dir").symlink_to(outside, target_is_directory=True)

    report = load(elt_env, landing)

    assert sorted(f["file"] for f in report.skipped_files) == [
        "spend/linked.csv",
        "spend/linked_dir/secret.csv",
    ]
    assert all("outside the landing folder" in f["reason"] for f in report.skipped_files)
    assert query(warehouse, "select campaign from raw_marketing.spend") == [("a",)]
    assert query(warehouse, "select count(*) from elt_audit.quarantine") == [(0,)]


def test_a_glob_out_of_the_landing_folder_is_refused(elt_env, landing):
    feeds = {"spend": {**FEEDS["spend"], "file_glob": "../*.csv"}}
    with pytest.raises(ValueError, match=r"file_glob '\.\./\*\.csv' must stay inside bucket_url"):
        load(elt_env, landing, feeds)


def test_replay_after_the_rules_are_fixed_loads_the_rows_that_now_pass(elt_env, warehouse, landing):
    write(
        landing / "spend" / "export.csv",
        f"{HEADER}\n05/01/2024,a,1,1.00\n06/01/2024,b,2,2.\x80\n2024-01-07,c,x,3.00\n".encode(
            "latin-1"
        ),
    )
    load(elt_env, landing)
    assert sorted(quarantined(warehouse, "spend", "spend/export.csv")) == [2, 3, 4]

    unchanged = replay(elt_env, landing)  # same rules: nothing passes, nothing changes
    assert unchanged.replayed == {"spend": {"loaded": 0, "quarantined": 3}}
    assert unchanged.rows == {}

    fixed = {
        "spend": {
            **FEEDS["spend"],
            "encoding": "cp1252",
            "columns": {**FEEDS["spend"]["columns"], "day": "date(%d/%m/%Y)"},
        }
    }
    report = replay(elt_env, landing, fixed)

    assert report.replayed == {"spend": {"loaded": 1, "quarantined": 2}}
    assert report.rows == {"spend": 1}
    assert quarantined(warehouse, "spend", "spend/export.csv") == {
        3: "column cost: '2.€' is not a valid decimal(10,2)",
        4: "column day: '2024-01-07' is not a valid date(%d/%m/%Y); "
        "column clicks: 'x' is not a valid bigint",
    }
    assert list(quarantined(warehouse, "spend", "spend/export.csv", "replayed")) == [2]
    assert query(warehouse, "select day::text, _elt_line from raw_marketing.spend") == [
        ("2024-01-05", 2)
    ]
    assert_each_row_once(warehouse, "spend", "spend/export.csv", [2, 3, 4])
    assert replay(elt_env, landing, fixed).rows == {}


def test_a_declared_type_cannot_change_under_a_loaded_column(elt_env, landing):
    write(landing / "spend" / "day1.csv", f"{HEADER}\n2024-01-01,a,1,1.00\n")
    load(elt_env, landing)
    feeds = {
        "spend": {**FEEDS["spend"], "columns": {**FEEDS["spend"]["columns"], "clicks": "text"}}
    }
    with pytest.raises(
        Exception, match=r"column clicks is declared text but raw_marketing\.spend\.clicks"
    ):
        load(elt_env, landing, feeds)


def test_quarantine_publishing_catches_up_after_a_run_killed_before_it(elt_env, warehouse, landing):
    write(landing / "spend" / "day1.csv", f"{HEADER}\n2024-01-01,a,x,1.00\n")
    load(elt_env, landing)
    execute(warehouse.url, "truncate elt_audit.quarantine")  # as if publish never ran

    assert load(elt_env, landing).rows == {}

    assert list(quarantined(warehouse, "spend", "spend/day1.csv")) == [2]


def test_feed_tables_exist_before_the_first_file_lands(elt_env, warehouse, landing):
    report = load(elt_env, landing)
    assert sorted(report.new_tables) == ["budgets", "spend", "visits"]
    assert query(warehouse, "select count(*) from raw_marketing.visits") == [(0,)]
    write(landing / "visits" / "a.jsonl", '{"visit_id": "v1", "pages": 1}\n')
    assert load(elt_env, landing).rows == {"visits": 1}


def test_state_survives_an_ephemeral_runner(elt_env, landing):
    write(landing / "spend" / "day1.csv", f"{HEADER}\n2024-01-01,a,1,1.00\n")
    load(elt_env, landing)
    shutil.rmtree(elt_env["ELT_PIPELINES_DIR"])
    time.sleep(0.01)
    assert load(elt_env, landing).rows == {}
