"""Poison files and true counts in the marketing loader, against a real Postgres and
real files: a file no row of which can be trusted is quarantined whole, the feed's other
files load, and every report's counts add up."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from conftest import fresh_databases
from support import execute, query

from loaders import pipeline

FEEDS = {
    "spend": {
        "file_glob": "spend/*.csv*",
        "format": "csv",
        "primary_key": ["day", "campaign"],
        "columns": {"day": "date", "campaign": "text", "clicks": "bigint"},
    },
    "visits": {
        "file_glob": "visits/*.jsonl",
        "format": "jsonl",
        "primary_key": ["visit_id"],
        "columns": {"visit_id": "text", "pages": "bigint"},
    },
}


@pytest.fixture(scope="module")
def databases(server):
    with fresh_databases(server) as pair:
        yield pair


@pytest.fixture(autouse=True)
def empty_warehouse(databases):
    for schema in ("raw_marketing", "raw_marketing_staging", "elt_audit"):
        execute(databases[0].url, f"drop schema if exists {schema} cascade")


@pytest.fixture
def landing(tmp_path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


def load(env, landing: Path, **overrides) -> pipeline.LoadReport:
    return pipeline.run(
        "marketing",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
        source_overrides={"feeds": FEEDS, "bucket_url": str(landing), **overrides},
    )


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def skipped(report) -> dict[str, str]:
    return {s["file"]: s["reason"] for s in report.skipped_files}


def assert_counts_add_up(report) -> None:
    for feed, counts in report.counts.items():
        assert counts["read"] == (
            counts["loaded"] + counts["quarantined"] + counts.get("duplicates_in_batch", 0)
        ), feed


def test_a_jsonl_file_nested_5000_deep_is_quarantined_by_name_and_the_others_load(
    elt_env, warehouse, landing
):
    write(landing / "visits/a.jsonl", '{"visit_id": "v1", "pages": 1}\n')
    deep = '{"visit_id": "v2", "pages": ' + "[" * 5000 + "]" * 5000 + "}\n"
    write(landing / "visits/deep.jsonl", '{"visit_id": "v3", "pages": 2}\n' + deep)
    write(landing / "visits/c.jsonl", '{"visit_id": "v4", "pages": 3}\n')
    report = load(elt_env, landing)
    reason = skipped(report)["visits/deep.jsonl"]
    assert reason.startswith("quarantined whole: line 2: JSON nested too deep")
    assert query(warehouse, "select visit_id from raw_marketing.visits order by 1") == [
        ("v1",),
        ("v4",),
    ]
    assert report.counts["visits"] == {
        "read": 2,
        "loaded": 2,
        "quarantined": 0,
        "duplicates_in_batch": 0,
    }
    # the next run is clean: nothing new, the poison file is not read again
    again = load(elt_env, landing)
    assert again.skipped_files == [] and again.rows == {}


def test_a_header_whose_names_collide_quarantines_that_file_naming_both(
    elt_env, warehouse, landing
):
    write(landing / "spend/a.csv", "day,campaign,clicks\n2026-01-01,c1,5\n")
    write(landing / "spend/b.csv", "day,campaign,clicks,Order,order\n2026-01-02,c1,5,x,y\n")
    report = load(elt_env, landing)
    reason = skipped(report)["spend/b.csv"]
    assert "'Order' and 'order' both become raw column order" in reason
    assert query(warehouse, "select count(*) from raw_marketing.spend") == [(1,)]


def test_a_gzip_that_expands_past_the_ratio_limit_is_quarantined_whole(elt_env, warehouse, landing):
    rows = "".join(f"2026-01-01,c{i % 3},1\n" for i in range(200_000))
    write(landing / "spend/bomb.csv.gz", gzip.compress(("day,campaign,clicks\n" + rows).encode()))
    write(landing / "spend/ok.csv", "day,campaign,clicks\n2026-01-01,c9,5\n")
    report = load(elt_env, landing, max_decompression_ratio=20)
    assert "over max_decompression_ratio 20" in skipped(report)["spend/bomb.csv.gz"]
    assert query(warehouse, "select campaign from raw_marketing.spend") == [("c9",)]


def test_duplicates_in_one_file_keep_the_last_line_and_are_counted(elt_env, warehouse, landing):
    body = "day,campaign,clicks\n" + "".join(f"2026-01-01,c1,{i}\n" for i in range(1, 6))
    write(landing / "spend/dupes.csv.gz", gzip.compress(body.encode()))
    report = load(elt_env, landing)
    assert report.counts["spend"] == {
        "read": 5,
        "loaded": 1,
        "quarantined": 0,
        "duplicates_in_batch": 4,
    }
    assert report.rows["spend"] == 1
    assert query(warehouse, "select clicks, _elt_line from raw_marketing.spend") == [(5, 6)]
    assert any("the last line wins" in note for note in report.notes)
    assert_counts_add_up(report)


def test_empty_and_header_only_files_are_reported_as_such(elt_env, landing):
    write(landing / "spend/header_only.csv", "day,campaign,clicks\n")
    write(landing / "visits/empty.jsonl", "")
    report = load(elt_env, landing)
    notes = "\n".join(report.notes)
    assert "spend file spend/header_only.csv: header only: no rows" in notes
    assert "visits file visits/empty.jsonl: empty file: no rows" in notes
    assert_counts_add_up(report)


def test_quarantined_and_loaded_rows_add_up_to_rows_read_per_file(elt_env, warehouse, landing):
    write(landing / "spend/mixed.csv", "day,campaign,clicks\n2026-01-01,c1,x\n2026-01-02,c1,3\n")
    report = load(elt_env, landing)
    assert report.counts["spend"]["read"] == 2
    assert report.counts["spend"]["quarantined"] == 1
    files = query(
        warehouse,
        "select rows_in, rows_loaded, rows_quarantined, duplicates_in_batch"
        " from raw_marketing._elt_files where file = 'spend/mixed.csv'",
    )
    assert files == [(2, 1, 1, 0)]
    assert_counts_add_up(report)
