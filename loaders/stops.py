"""Clean early stops: a source that stops extracting on purpose tells the runner why.

A source stops early when carrying on would break a promise (a rate limit asks for a
wait beyond the time budget). What it extracted until then is loaded, and its cursor
covers exactly that; the runner reports the stop so the run can exit non-zero.
Extraction may run in worker threads, hence a lock rather than a context variable.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

RATE_LIMITED = "rate_limited"  # 429 with a wait beyond the budget, or on every attempt
UNAVAILABLE = "unavailable"  # 5xx asking (Retry-After) for a wait beyond the budget


@dataclass(frozen=True)
class Stop:
    source: str
    resource: str
    cause: str  # a stable token for machines, e.g. rate_limited
    detail: str  # one human sentence; never a URL, a body or a secret

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


_stops: list[Stop] = []
_lock = threading.Lock()


def record(stop: Stop) -> None:
    with _lock:
        if stop not in _stops:
            _stops.append(stop)


def take(source: str) -> list[Stop]:
    """The stops `source` recorded since the last call, removed from the record."""
    with _lock:
        taken = [stop for stop in _stops if stop.source == source]
        _stops[:] = [stop for stop in _stops if stop.source != source]
    return taken
