"""Files that cannot be parsed at all: quarantined whole, with the reason, and skipped.

A bad row costs its row (loaders/marketing/rows.py); some files have no good rows to
find: a JSON line nested deeper than any parser follows (Python's would raise
RecursionError and fail the whole source on every run), a compressed file that expands
past the configured limits (a small .gz can hold millions of rows), a header whose
names collide once dlt normalizes them (`Order` and `order` are both raw column
`order`). Such a file is recorded in `_elt_files` with status `quarantined` and the
reason, the feed's other files load, and a new delivery of the file is read again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

STATUS = "quarantined"
DEFAULT_MAX_DECOMPRESSED_BYTES = 1024**3
DEFAULT_MAX_DECOMPRESSION_RATIO = 200.0
COMPRESSED_SUFFIXES = (".gz", ".gzip")
_BLOCK = 4 * 1024 * 1024


class PoisonFile(Exception):
    """Raised by a parser for a file none of whose rows can be trusted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def name_collision(names: Iterable[str]) -> str | None:
    """Why names clash once normalized the way dlt names raw columns, or None."""
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    from loaders.identifiers import collisions

    clash = collisions(
        (n for n in names if not n.startswith("_elt_")), NamingConvention().normalize_identifier
    )
    if not clash:
        return None
    first, second, raw = clash[0]
    return (
        f"columns {first!r} and {second!r} both become raw column {raw}; rename one in"
        " the file (or declare one under another name upstream)"
    )


def is_compressed(item: Any) -> bool:
    name = str(item.get("file_name") or item.get("relative_path") or "").lower()
    return item.get("encoding") == "gzip" or name.endswith(COMPRESSED_SUFFIXES)


def decompression_problem(item: Any, max_bytes: int, max_ratio: float) -> str | None:
    """Expand a compressed file once, counting, and stop as soon as a limit is passed."""
    if not is_compressed(item):
        return None
    size = max(int(item.get("size_in_bytes") or 0), 1)
    limit = min(max_bytes, int(size * max_ratio))
    total = 0
    with item.open(mode="rb", compression="enable") as stream:
        while block := _read(stream):
            total += len(block)
            if total > limit:
                which = (
                    f"max_decompressed_bytes {max_bytes:,}"
                    if limit == max_bytes
                    else f"max_decompression_ratio {max_ratio:g} ({size:,} bytes compressed)"
                )
                return f"expands past {limit:,} bytes: over {which}"
    return None


def _read(stream: IO[bytes]) -> bytes:
    return stream.read(_BLOCK)
