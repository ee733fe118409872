"""Row parsers for CSV, JSONL and Parquet that never fail a whole file for one bad row.

Each reads a binary stream in bounded memory (blocks of 2 MiB, chunks of `chunk_rows`
rows) and yields `Batch`es: the rows that load, typed and numbered, and the rows that
do not, with the reason and their raw text. Every input row lands in exactly one of
the two, so loaded + rejected == rows read, file by file.

What a row is: a CSV record (one physical line, or several where `multiline_fields`
allows quoted line breaks) after the header line; a JSONL line; a Parquet row. Blank
lines are not rows. Line numbers are physical, 1-based, the CSV header being line 1; a
Parquet row's number is its 1-based position in the file.
"""

from __future__ import annotations

import csv
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from loaders.marketing.feeds import Feed
from loaders.marketing.poison import PoisonFile, name_collision
from loaders.marketing.rows import Batch, Rejected, all_true, type_rows

BLOCK_BYTES = 2 * 1024 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024
DEFAULT_CHUNK_ROWS = 25_000

# (line number, text or None, the rejection when the line could not be read)
Line = tuple[int, str | None, Rejected | None]


def read_blocks(
    stream: IO[bytes], encoding: str
) -> Iterator[tuple[int, bytes | None, Rejected | None]]:
    """Blocks of whole lines: (number of the block's first line, its bytes without the
    final line break, None); a line longer than MAX_LINE_BYTES is (its number, None, its
    rejection), and is skipped without being held in memory."""
    number = 1
    rest = b""
    skipping = False  # inside a line longer than MAX_LINE_BYTES
    while True:
        block = stream.read(BLOCK_BYTES)
        if not block:
            break
        data = rest + block
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = b"" if skipping else data
            if len(rest) > MAX_LINE_BYTES:
                reason = f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB"
                yield number, None, Rejected.of_bytes(number, reason, rest[:1024], encoding)
                number += 1
                rest, skipping = b"", True
            continue
        complete, rest = data[:cut], data[cut + 1 :]
        if skipping:  # drop the remainder of the over-long line
            skipping = False
            if b"\n" not in complete:
                continue
            complete = complete.split(b"\n", 1)[1]
        yield number, complete, None
        number += complete.count(b"\n") + 1
    if rest and not skipping:
        yield number, rest, None


def read_lines(stream: IO[bytes], encoding: str) -> Iterator[Line]:
    """Physical lines without their line break, decoded block-wise; a line that is not
    valid `encoding` is yielded as a rejection, its neighbours are unaffected."""
    for number, data, rejected in read_blocks(stream, encoding):
        if data is None:
            yield number, None, rejected
        else:
            yield from _decode_lines(data, number - 1, encoding)


def _decode_lines(data: bytes, number: int, encoding: str) -> Iterator[Line]:
    try:
        lines = data.decode(encoding).split("\n")
    except UnicodeDecodeError:
        for raw in data.split(b"\n"):
            number += 1
            try:
                yield number, _clean(raw.decode(encoding), number), None
            except UnicodeDecodeError as exc:
                reason = (
                    f"not valid {encoding}: byte 0x{raw[exc.start]:02x} at position {exc.start}"
                )
                yield number, None, Rejected.of_bytes(number, reason, raw, encoding)
        return
    for text in lines:
        number += 1
        yield number, _clean(text, number), None


def _clean(text: str, number: int) -> str:
    if text.endswith("\r"):
        text = text[:-1]
    if number == 1 and text.startswith("\ufeff"):
        text = text[1:]
    return text


class _Pushback:
    """An iterator one can put items back into (multi-line CSV records give up lines)."""

    def __init__(self, items: Iterable[Line]) -> None:
        self._items = iter(items)
        self._back: deque[Line] = deque()

    def __iter__(self) -> Iterator[Line]:
        return self

    def __next__(self) -> Line:
        return self._back.popleft() if self._back else next(self._items)

    def push(self, items: list[Line]) -> None:
        self._back.extendleft(reversed(items))


# ---- CSV ----


def _record_pattern(delimiter: str) -> re.Pattern[str]:
    """RFC 4180: a field is quoted ("" escapes a quote) or holds no quote and no delimiter."""
    d = re.escape(delimiter)
    field_re = rf'(?:"(?:[^"]|"")*"|[^"{d}\n]*)'
    return re.compile(rf"{field_re}(?:{d}{field_re})*", re.DOTALL)


def _open_quote_at_end(text: str, delimiter: str) -> bool:
    """True when the record's last field opens a quote that this line does not close."""
    d = re.escape(delimiter)
    return re.search(rf'(?:^|{d})"(?:[^"]|"")*$', text) is not None


class CsvRecords:
    """Splits CSV lines into records and fields, one rejection per malformed record."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.pattern = _record_pattern(feed.delimiter)

    def split(self, text: str) -> list[str] | str:
        """The record's fields, or why it cannot be split."""
        if '"' not in text:
            return text.split(self.feed.delimiter)
        if text.count('"') % 2 and _open_quote_at_end(text, self.feed.delimiter):
            return "broken quoting: unterminated quoted field"
        if not self.pattern.fullmatch(text):
            return "broken quoting: a quote inside an unquoted field or after a closing quote"
        try:
            return next(csv.reader([text], delimiter=self.feed.delimiter, strict=True))
        except csv.Error as exc:  # pragma: no cover - the pattern above rejects these first
            return f"broken quoting: {exc}"

    def records(self, lines: Iterator[Line]) -> Iterator[tuple[int, str | None, Rejected | None]]:
        """(first line number, record text, rejection); blank lines are skipped."""
        source = _Pushback(lines)
        for number, text, rejected in source:
            if rejected is not None or text is None:
                yield number, None, rejected
                continue
            if not text:
                continue
            if (
                self.feed.multiline_fields
                and text.count('"') % 2
                and _open_quote_at_end(text, self.feed.delimiter)
            ):
                first, text = text, self._continue_record(number, text, source)
                if text is None:
                    reason = (
                        "broken quoting: unterminated quoted field (not closed within "
                        f"{self.feed.max_record_lines} lines)"
                    )
                    yield number, None, Rejected.of_text(number, reason, first, self.feed.encoding)
                    continue
            yield number, text, None

    def _continue_record(self, number: int, first: str, source: _Pushback) -> str | None:
        """Join following lines until the quote closes; None (lines given back) if it never does."""
        taken: list[Line] = []
        parts = [first]
        quotes = first.count('"')
        while len(taken) + 1 < self.feed.max_record_lines:
            try:
                item = next(source)
            except StopIteration:
                break
            taken.append(item)
            if item[1] is None:
                break
            parts.append(item[1])
            quotes += item[1].count('"')
            if quotes % 2 == 0:
                return "\n".join(parts)
        source.push(taken)
        return None


def parse_csv(
    stream: IO[bytes], feed: Feed, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[Batch]:
    """Batches of a CSV file whose first line is the header.

    A clean block (UTF-8, no quote, every row of the header's width and every value of its
    type) is read by arrow's CSV reader. Any other block is split by arrow
    (`split_pattern`), the lines with a quote in Python, and one with bytes not valid in
    the encoding line by line, so each bad line is named. With `multiline_fields` every
    line goes through Python, a record may span lines.
    """
    if feed.multiline_fields:
        yield from _parse_csv_lines(stream, feed, chunk_rows)
        return
    splitter = CsvRecords(feed)
    header: tuple[str | None, list[str], str | None] | None = None  # text, names, problem
    for number, data, rejected in read_blocks(stream, feed.encoding):
        if header is None:
            if data is None:
                header = (None, [], f"header (line {number}) is unreadable: {rejected.reason}")
                continue
            first, _, data = data.partition(b"\n")
            header = _header_of(first, feed)
            number += 1
            if not data:
                continue
        if data is None:
            yield Batch(None, [rejected], 1)
            continue
        text, names, problem = header
        fast = _fast_block(feed, names, data, number, chunk_rows) if problem is None else None
        if fast is not None:
            yield from fast
            continue
        try:
            lines = data.decode(feed.encoding).split("\n")
        except UnicodeDecodeError:
            lines = None
        if lines is None or problem is not None:
            records = (
                line for line in _decode_lines(data, number - 1, feed.encoding) if line[1] != ""
            )
            yield from parse_csv_records(records, feed, text, names, problem, chunk_rows)
            continue
        for start in range(0, len(lines), chunk_rows):
            part = lines[start : start + chunk_rows]
            yield _csv_chunk(feed, names, splitter, part, number + start)


def _fast_block(
    feed: Feed, names: list[str], data: bytes, number: int, chunk_rows: int
) -> list[Batch] | None:
    """A block parsed and typed by arrow's CSV reader (C++, threaded), or None when any line
    of it needs the exact path: a quote, a blank line, a stray carriage return, a row of
    the wrong width, bytes that are not UTF-8, or a value that does not fit its type (the
    exact path names the line and keeps its text). Lines are numbered from `number`."""
    import pyarrow.csv as pcsv

    if feed.encoding.replace("_", "-").lower() not in ("utf-8", "utf8"):
        return None
    if b'"' in data or b"\n\n" in data or data[:1] == b"\n" or data.endswith(b"\n"):
        return None
    if b"\r" in data and (
        b"\n\r\n" in data
        or data[:1] == b"\r"
        or data.count(b"\r") != data.count(b"\r\n") + data.endswith(b"\r")
    ):
        return None
    try:
        table = pcsv.read_csv(
            pa.py_buffer(data),
            read_options=pcsv.ReadOptions(column_names=names),
            parse_options=pcsv.ParseOptions(
                delimiter=feed.delimiter, quote_char=False, ignore_empty_lines=False
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    batches = []
    for start in range(0, table.num_rows, chunk_rows):
        part = table.slice(start, chunk_rows)
        columns = {name: part.column(name).combine_chunks() for name in names}
        lines = _numbers(number + start, part.num_rows)
        typed, problems = type_rows(feed, columns, lines)
        if problems:
            return None
        batches.append(Batch(typed, [], typed.num_rows))
    return batches


def _numbers(first: int, count: int) -> pa.Array:
    """first, first + 1, ... (count values), without a Python int per row."""
    ones = pa.repeat(pa.scalar(1, pa.int64()), count)
    return pc.add(pc.cumulative_sum(ones), first - 1)


def _header_of(raw: bytes, feed: Feed) -> tuple[str | None, list[str], str | None]:
    try:
        text = _clean(raw.decode(feed.encoding), 1)
    except UnicodeDecodeError as exc:
        return None, [], f"header (line 1) is not valid {feed.encoding}: {exc.reason}"
    names, problem = csv_header(text, feed)
    return text, names, problem


def _csv_chunk(
    feed: Feed, names: list[str], splitter: CsvRecords, lines: list[str], first: int
) -> Batch:
    """Type up to chunk_rows decoded lines: arrow splits those without quotes."""
    texts = pc.utf8_rtrim(pa.array(lines, pa.string()), characters="\r")
    numbers = pa.array(range(first, first + len(lines)), pa.int64())
    present = pc.not_equal(texts, "")  # blank lines are not rows
    texts, numbers = texts.filter(present), numbers.filter(present)
    quoted = pc.match_substring(texts, '"')
    plain_texts, plain_numbers = texts.filter(pc.invert(quoted)), numbers.filter(pc.invert(quoted))
    parts = pc.split_pattern(plain_texts, pattern=feed.delimiter)
    counts = pc.list_value_length(parts)
    fits = pc.equal(counts, len(names))
    chunk = _Chunk(feed)
    if not all_true(fits):
        misfits = pc.invert(fits)
        for number, text, count in zip(
            plain_numbers.filter(misfits).to_pylist(),
            plain_texts.filter(misfits).to_pylist(),
            counts.filter(misfits).to_pylist(),
            strict=True,
        ):
            chunk.reject(number, f"expected {len(names)} fields, got {count}", text)
        parts, plain_texts, plain_numbers = (
            parts.filter(fits),
            plain_texts.filter(fits),
            plain_numbers.filter(fits),
        )
    columns = {name: pc.list_element(parts, i) for i, name in enumerate(names)}
    for number, text in zip(
        numbers.filter(quoted).to_pylist(), texts.filter(quoted).to_pylist(), strict=True
    ):
        fields = splitter.split(text)
        if isinstance(fields, str):
            chunk.reject(number, fields, text)
        elif len(fields) != len(names):
            chunk.reject(number, f"expected {len(names)} fields, got {len(fields)}", text)
        else:
            chunk.keep(number, text, fields)
    if chunk.values:  # the quoted lines that split: after the plain ones
        values = list(zip(*chunk.values, strict=True))
        columns = {
            name: pa.concat_arrays([columns[name], pa.array(values[i], pa.string())])
            for i, name in enumerate(names)
        }
        plain_numbers = pa.concat_arrays([plain_numbers, pa.array(chunk.numbers, pa.int64())])
        plain_texts = pa.concat_arrays([plain_texts, pa.array(chunk.texts, pa.string())])
    return chunk.typed(columns, plain_numbers, plain_texts)


def _parse_csv_lines(stream: IO[bytes], feed: Feed, chunk_rows: int) -> Iterator[Batch]:
    """Line by line, records spanning lines where a quoted field holds a line break."""
    lines = read_lines(stream, feed.encoding)
    records = CsvRecords(feed)
    header_text: str | None = None
    problem: str | None = None
    names: list[str] = []
    for number, text, rejected in lines:
        if rejected is not None or text is None:
            problem = f"header (line {number}) is unreadable: {rejected.reason if rejected else ''}"
        else:
            header_text = text
            names, problem = csv_header(text, feed)
        break
    yield from parse_csv_records(
        records.records(lines), feed, header_text, names, problem, chunk_rows
    )


def csv_header(text: str | None, feed: Feed) -> tuple[list[str], str | None]:
    """The column names of a header line, and why the file's rows cannot load under it."""
    if text is None:
        return [], "header is unreadable"
    fields = CsvRecords(feed).split(text)
    if isinstance(fields, str):
        return [], f"header: {fields}"
    names = [name.strip() for name in fields]
    if any(not name for name in names):
        return names, "header: a column name is empty"
    clash = name_collision(names)
    if clash is not None:
        raise PoisonFile(f"header: {clash}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        return names, f"header: duplicate column(s) {', '.join(duplicates)}"
    missing = [name for name in feed.columns if name not in names]
    if missing:
        return names, f"header lacks declared column(s) {', '.join(missing)}"
    return names, None


def parse_csv_records(
    records: Iterable[tuple[int, str | None, Rejected | None]],
    feed: Feed,
    header_text: str | None,
    names: list[str],
    problem: str | None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[Batch]:
    """Type CSV records under a header; with a header `problem` every record is rejected."""
    splitter = CsvRecords(feed)

    def split(chunk: _Chunk, number: int, text: str) -> None:
        if problem is not None:
            return chunk.reject(number, problem, text)
        fields = splitter.split(text)
        if isinstance(fields, str):
            return chunk.reject(number, fields, text)
        if len(fields) != len(names):
            return chunk.reject(number, f"expected {len(names)} fields, got {len(fields)}", text)
        return chunk.keep(number, text, fields)

    def columns(rows: list[list[str]]) -> dict[str, pa.Array]:
        values = list(zip(*rows, strict=True))
        return {name: pa.array(values[i], pa.string()) for i, name in enumerate(names)}

    yield from _chunked(records, feed, chunk_rows, split, columns)


@dataclass
class _Chunk:
    """Rows waiting to be typed (parsed values, line numbers, raw texts) and rows rejected."""

    feed: Feed
    values: list[Any] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values) + len(self.rejected)

    def keep(self, number: int, text: str, value: Any) -> None:
        self.values.append(value)
        self.numbers.append(number)
        self.texts.append(text)

    def reject(self, number: int, reason: str, text: str) -> None:
        self.rejected.append(Rejected.of_text(number, reason, text, self.feed.encoding))

    def batch(self, columns: Callable[[list[Any]], dict[str, pa.Array]]) -> Batch:
        if not self.values:
            return Batch(None, self.rejected, len(self.rejected))
        numbers = pa.array(self.numbers, pa.int64())
        return self.typed(columns(self.values), numbers, pa.array(self.texts, pa.string()))

    def typed(self, columns: dict[str, pa.Array], numbers: pa.Array, texts: pa.Array) -> Batch:
        """Type the columns; rows that do not fit join the rejected ones."""
        if not len(numbers):
            return Batch(None, self.rejected, len(self.rejected))
        table, problems = type_rows(self.feed, columns, numbers)
        for index, reason in sorted(problems.items()):
            self.reject(numbers[index].as_py(), reason, texts[index].as_py())
        self.rejected.sort(key=lambda row: row.line)
        return Batch(table, self.rejected, table.num_rows + len(self.rejected))


def _chunked(
    lines: Iterable[tuple[int, str | None, Rejected | None]],
    feed: Feed,
    chunk_rows: int,
    parse: Callable[[_Chunk, int, str], None],
    columns: Callable[[list[Any]], dict[str, pa.Array]],
) -> Iterator[Batch]:
    """Feed lines to `parse` and yield a typed batch every `chunk_rows` rows."""
    chunk = _Chunk(feed)
    for number, text, rejected in lines:
        if rejected is not None:
            chunk.rejected.append(rejected)
        elif text is not None:
            parse(chunk, number, text)
        if len(chunk) >= chunk_rows:
            yield chunk.batch(columns)
            chunk = _Chunk(feed)
    if len(chunk):
        yield chunk.batch(columns)


# ---- JSONL ----


def parse_jsonl(
    stream: IO[bytes], feed: Feed, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[Batch]:
    """Batches of a JSON Lines file: one JSON object per line."""
    yield from parse_jsonl_lines(read_lines(stream, feed.encoding), feed, chunk_rows)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load_json(text: str) -> Any:
    """Strict JSON with exact numbers: big integers stay integers, decimals stay decimal."""
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def parse_jsonl_lines(
    lines: Iterable[Line], feed: Feed, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[Batch]:
    def parse(chunk: _Chunk, number: int, text: str) -> None:
        if not text.strip():
            return None
        try:
            value = _load_json(text)
        except RecursionError:
            raise PoisonFile(f"line {number}: JSON nested too deep to parse") from None
        except ValueError as exc:
            return chunk.reject(number, f"invalid JSON: {exc}", text)
        if not isinstance(value, dict):
            return chunk.reject(number, f"expected a JSON object, got {type(value).__name__}", text)
        return chunk.keep(number, text, value)

    def columns(objects: list[dict[str, Any]]) -> dict[str, pa.Array]:
        names = dict.fromkeys([*feed.columns, *(key for obj in objects for key in obj)])
        clash = name_collision(names)
        if clash is not None:
            raise PoisonFile(f"keys: {clash}")
        return {
            name: pa.array([_json_text(obj.get(name)) for obj in objects], pa.string())
            for name in names
        }

    yield from _chunked(lines, feed, chunk_rows, parse, columns)


def _json_text(value: Any) -> str | None:
    """A JSON value as the text the declared type is parsed from (lossless): a scalar as
    written, an object or array as compact JSON with its numbers exactly as written."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}:{_json_nested(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    return "[" + ",".join(_json_nested(v) for v in value) + "]"


def _json_nested(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return _json_text(value) or "null"


# ---- Parquet ----


def parse_parquet(
    stream: IO[bytes], feed: Feed, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[Batch]:
    """Batches of a Parquet file, cast to the declared types; a file (or the rest of a
    file) that cannot be read is one rejection saying from which row on."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream)
    except Exception as exc:
        yield Batch(None, [Rejected(1, f"unreadable Parquet file: {_first_line(exc)}", None)], 1)
        return
    schema = parquet.schema_arrow
    clash = name_collision(schema.names)
    if clash is not None:
        raise PoisonFile(f"schema: {clash}")
    missing = [name for name in feed.columns if name not in schema.names]
    problem = f"file lacks declared column(s) {', '.join(missing)}" if missing else None
    changes = _type_changes(feed, schema)
    row = 0
    batches = parquet.iter_batches(batch_size=chunk_rows)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as exc:
            reason = f"unreadable Parquet from row {row + 1} on: {_first_line(exc)}"
            yield Batch(None, [Rejected(row + 1, reason, None)], 1, changes)
            return
        numbers = list(range(row + 1, row + 1 + batch.num_rows))
        row += batch.num_rows
        if problem is not None:
            texts = _row_texts(batch, range(batch.num_rows))
            rejected = [
                Rejected.of_text(n, problem, t) for n, t in zip(numbers, texts, strict=True)
            ]
            yield Batch(None, rejected, len(rejected), changes)
        else:
            columns = {name: batch.column(name) for name in batch.schema.names}
            table, problems = type_rows(feed, columns, pa.array(numbers, pa.int64()))
            texts = _row_texts(batch, sorted(problems))
            rejected = [
                Rejected.of_text(numbers[i], problems[i], text)
                for i, text in zip(sorted(problems), texts, strict=True)
            ]
            yield Batch(table, rejected, table.num_rows + len(rejected), changes)
        changes = []  # reported once per file


def _type_changes(feed: Feed, schema: pa.Schema) -> list[dict[str, str]]:
    """Declared columns whose Parquet type is of another kind than declared."""
    changes = []
    for name, declared in feed.columns.items():
        if name not in schema.names:
            continue
        found = schema.field(name).type
        if _kind(found) != _kind(declared.arrow):
            changes.append({"column": name, "declared": declared.name, "found": str(found)})
    return changes


def _kind(arrow_type: pa.DataType) -> str:
    for kind, test in (
        ("integer", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("decimal", pa.types.is_decimal),
        ("date", pa.types.is_date),
        ("text", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
        ("boolean", pa.types.is_boolean),
    ):
        if test(arrow_type):
            return kind
    if pa.types.is_timestamp(arrow_type):
        return "timestamp" if arrow_type.tz else "timestamp without time zone"
    return str(arrow_type)


def _row_texts(batch: pa.RecordBatch, indexes: Iterable[int]) -> list[str]:
    """Rows as JSON objects: the raw text of a Parquet row, and what replay parses."""
    import orjson

    return [
        orjson.dumps(
            batch.slice(i, 1).to_pylist()[0], default=str, option=orjson.OPT_NON_STR_KEYS
        ).decode()
        for i in indexes
    ]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


PARSERS = {"csv": parse_csv, "jsonl": parse_jsonl, "parquet": parse_parquet}
