"""The marketing row parsers on their own: every input row either typed or rejected, once."""

from __future__ import annotations

import io
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders.marketing import parsers
from loaders.marketing.feeds import column_type, parse_feeds

FEED = parse_feeds(
    {
        "spend": {
            "file_glob": "spend/*.csv",
            "format": "csv",
            "primary_key": ["day", "campaign"],
            "columns": {
                "day": "date",
                "campaign": "text",
                "clicks": "bigint",
                "cost": "decimal(10,2)",
            },
        }
    }
)["spend"]


def parse(
    data: bytes, feed=FEED, chunk_rows: int = 50_000
) -> tuple[dict[int, dict], dict[int, str]]:
    """{line: loaded row} and {line: reason}, asserting no line is in both."""
    parser = parsers.PARSERS[feed.format]
    loaded, rejected = {}, {}
    for batch in parser(io.BytesIO(data), feed, chunk_rows):
        assert batch.rows_in == batch.rows_loaded + len(batch.rejected)
        for row in batch.table.to_pylist() if batch.table is not None else []:
            loaded[row.pop("_elt_line")] = row
        for row in batch.rejected:
            rejected[row.line] = row.reason
    assert not set(loaded) & set(rejected)
    return loaded, rejected


def test_fields_with_quotes_delimiters_and_escaped_quotes_parse():
    data = b'day,campaign,clicks,cost\n2024-01-01,"a, ""b""",3,1.50\n'
    loaded, rejected = parse(data)
    assert rejected == {}
    assert loaded[2]["campaign"] == 'a, "b"'
    assert loaded[2]["cost"] == Decimal("1.50")


def test_columns_are_matched_by_header_name_and_crlf_and_bom_are_handled():
    data = b"\xef\xbb\xbfcost,clicks,campaign,day\r\n1.00,2,c1,2024-01-01\r\n"
    loaded, rejected = parse(data)
    assert rejected == {}
    assert loaded[2]["campaign"] == "c1" and loaded[2]["clicks"] == 2


def test_a_line_break_inside_quotes_needs_multiline_fields():
    data = b'day,campaign,clicks,cost\n2024-01-01,"two\nlines",1,1.00\n2024-01-02,c2,1,1.00\n'
    loaded, rejected = parse(data)
    assert rejected == {
        2: "broken quoting: unterminated quoted field",
        3: "broken quoting: a quote inside an unquoted field or after a closing quote",
    }
    assert list(loaded) == [4]
    multiline = parse_feeds({"spend": {**_spec(), "multiline_fields": True}})["spend"]
    loaded, rejected = parse(data, multiline)
    assert rejected == {}
    assert loaded[2]["campaign"] == "two\nlines" and list(loaded) == [2, 4]


def test_an_unclosed_quote_gives_back_the_lines_it_tried_to_swallow():
    spec = parse_feeds({"spend": {**_spec(), "multiline_fields": True, "max_record_lines": 3}})
    rows = b"".join(b"2024-01-%02d,c,1,1.00\n" % day for day in range(2, 9))
    data = b'day,campaign,clicks,cost\n2024-01-01,"open,1,1.00\n' + rows
    loaded, rejected = parse(data, spec["spend"])
    assert list(rejected) == [2] and "not closed within 3 lines" in rejected[2]
    assert sorted(loaded) == list(range(3, 10))


def test_lines_are_read_across_block_boundaries_and_chunks(monkeypatch):
    monkeypatch.setattr(parsers, "BLOCK_BYTES", 7)
    lines = [f"2024-01-{day:02d},c{day},{day},{day}.25" for day in range(1, 29)]
    lines[10] = "2024-01-11,c11,eleven,1.00"
    data = ("day,campaign,clicks,cost\n" + "\n".join(lines)).encode()  # no final newline
    loaded, rejected = parse(data, chunk_rows=5)
    assert rejected == {12: "column clicks: 'eleven' is not a valid bigint"}
    assert len(loaded) == 27 and loaded[29]["cost"] == Decimal("28.25")


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_arrow_and_the_exact_path_agree_block_by_block(monkeypatch, newline):
    """Clean blocks go through arrow's CSV reader, blocks with a line the exact path must
    name (a quote, a blank line, a stray CR, a wrong width, a bad value, bad UTF-8) go
    line by line: line numbers, values and reasons are the same as with no fast path."""
    monkeypatch.setattr(parsers, "BLOCK_BYTES", 120)
    lines = [f"2024-01-{day % 28 + 1:02d},c{day},{day},{day}.25".encode() for day in range(60)]
    lines[7] = b'2024-02-01,"quoted, c7",7,7.00'
    lines[15] = b""
    lines[23] = b"2024-02-02,c23,7"
    lines[31] = b"2024-02-03,c31,x,1.00"
    lines[39] = b"2024-02-04,c\r39,1,1.00"
    lines[47] = b"2024-02-05,c\xff47,1,1.00"
    data = newline.join([b"day,campaign,clicks,cost", *lines]) + newline
    used = []
    fast = parsers._fast_block
    monkeypatch.setattr(parsers, "_fast_block", lambda *a: used.append(fast(*a)) or used[-1])
    loaded, rejected = parse(data, chunk_rows=4)
    assert any(batches is not None for batches in used)  # some blocks took the fast path
    assert any(batches is None for batches in used)  # and some did not
    monkeypatch.setattr(parsers, "_fast_block", lambda *a: None)
    assert parse(data, chunk_rows=4) == (loaded, rejected)
    assert sorted(rejected) == [25, 33, 49]
    assert loaded[9]["campaign"] == "quoted, c7" and loaded[61]["clicks"] == 59
    assert len(loaded) == 60 - 1 - 3


def test_a_line_longer_than_the_limit_is_rejected_without_holding_it(monkeypatch):
    monkeypatch.setattr(parsers, "BLOCK_BYTES", 64)
    monkeypatch.setattr(parsers, "MAX_LINE_BYTES", 256)
    data = b"day,campaign,clicks,cost\n" + b"x" * 5000 + b"\n2024-01-01,c,1,1.00\n"
    loaded, rejected = parse(data)
    assert list(rejected) == [2] and "longer than" in rejected[2]
    assert list(loaded) == [3]


def test_several_bad_values_in_one_row_are_all_named():
    loaded, rejected = parse(b"day,campaign,clicks,cost\n2024-13-01,,x,1.234\n")
    assert loaded == {}
    assert rejected[2] == (
        "column day: '2024-13-01' is not a valid date (expected YYYY-MM-DD); "
        "column clicks: 'x' is not a valid bigint; "
        "column cost: '1.234' is not a valid decimal(10,2); "
        "key column campaign is empty"
    )


def test_a_date_format_rejects_dates_strptime_would_roll_over():
    feed = parse_feeds(
        {"spend": {**_spec(), "columns": {**_spec()["columns"], "day": "date(%d/%m/%Y)"}}}
    )
    loaded, rejected = parse(
        b"day,campaign,clicks,cost\n31/01/2024,a,1,1\n30/02/2024,b,1,1\n", feed["spend"]
    )
    assert str(loaded[2]["day"]) == "2024-01-31"
    assert "'30/02/2024' is not a valid date(%d/%m/%Y)" in rejected[3]


def test_a_parquet_float_becomes_a_decimal_only_when_exact():
    feed = parse_feeds(
        {
            "budgets": {
                "file_glob": "*.parquet",
                "format": "parquet",
                "primary_key": ["campaign"],
                "columns": {"campaign": "text", "budget": "decimal(10,2)"},
            }
        }
    )["budgets"]
    sink = io.BytesIO()
    pq.write_table(pa.table({"campaign": ["a", "b", "c"], "budget": [1.5, 0.1, 2.345]}), sink)
    batches = list(parsers.parse_parquet(io.BytesIO(sink.getvalue()), feed))
    assert batches[0].type_changes == [
        {"column": "budget", "declared": "decimal(10,2)", "found": "double"}
    ]
    assert batches[0].table.column("budget").to_pylist() == [Decimal("1.50"), Decimal("0.10")]
    (bad,) = batches[0].rejected
    assert bad.line == 3 and bad.raw_text == '{"campaign":"c","budget":2.345}'


@pytest.mark.parametrize(
    ("spelling", "message"),
    [("money", "unknown type 'money'"), ("decimal(40,2)", "precision must be 1..38")],
)
def test_unknown_declared_types_are_configuration_errors(spelling, message):
    with pytest.raises(ValueError, match=message):
        column_type(spelling)


@pytest.mark.parametrize(
    "glob", ["../elsewhere/*.csv", "/etc/*.csv", "spend/../../*.csv", "~/x.csv"]
)
def test_a_glob_that_leaves_the_landing_folder_is_refused(glob):
    with pytest.raises(ValueError, match="file_glob"):
        parse_feeds({"spend": {**_spec(), "file_glob": glob}})


def _spec() -> dict:
    return {
        "file_glob": "spend/*.csv",
        "format": "csv",
        "primary_key": ["day", "campaign"],
        "columns": {"day": "date", "campaign": "text", "clicks": "bigint", "cost": "decimal(10,2)"},
    }
