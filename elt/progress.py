"""Load progress: a rich display on a terminal, nothing in CI (the summary says it all).

Sources load concurrently (elt/commands/load.py), and a terminal holds one live display:
their collectors share one `Progress`, started by the first step and stopped by the last.
"""

from __future__ import annotations

import threading
from typing import Any

from elt import output

_lock = threading.Lock()
_shared: dict[str, Any] = {"progress": None, "users": 0}


def _acquire() -> Any:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with _lock:
        if _shared["progress"] is None:
            _shared["progress"] = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed:,}"),
                TimeElapsedColumn(),
                console=output.stderr,
                transient=True,
            )
            _shared["progress"].start()
        _shared["users"] += 1
        return _shared["progress"]


def _release(progress: Any, tasks: dict[str, Any]) -> None:
    with _lock:
        for task in tasks.values():
            progress.remove_task(task)
        _shared["users"] -= 1
        if _shared["users"] == 0:
            progress.stop()
            _shared["progress"] = None


def dlt_collector(source: str = "") -> Any:
    """A dlt `Collector` drawing rich progress on stderr, or None when not on a terminal."""
    if not output.stderr.is_terminal:
        return None
    from dlt.common.runtime.collector_base import Collector

    prefix = f"{source}: " if source else ""

    class RichCollector(Collector):
        def __init__(self) -> None:
            self.step = ""
            self.progress: Any = None
            self.tasks: dict[str, Any] = {}
            self.totals: dict[str, int] = {}

        def update(self, name, inc=1, total=None, inc_total=None, message=None, label=None):
            if self.progress is None:
                return
            key = f"{name}[{label}]" if label else name
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(f"{prefix}{self.step} {key}", total=total)
            task = self.tasks[key]
            if inc_total:
                self.totals[key] = (self.totals.get(key) or total or 0) + inc_total
                self.progress.update(task, total=self.totals[key])
            self.progress.advance(task, inc)

        def _start(self, step: str) -> None:
            self.tasks, self.totals = {}, {}
            self.progress = _acquire()

        def _stop(self) -> None:
            if self.progress is not None:
                _release(self.progress, self.tasks)
            self.progress = None
            self.tasks = {}

    return RichCollector()
