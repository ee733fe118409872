"""Load progress: a rich display on a terminal, nothing in CI (the summary says it all)."""

from __future__ import annotations

from typing import Any

from elt import output


def dlt_collector() -> Any:
    """A dlt `Collector` drawing rich progress on stderr, or None when not on a terminal."""
    if not output.stderr.is_terminal:
        return None
    from dlt.common.runtime.collector_base import Collector
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    class RichCollector(Collector):
        def __init__(self) -> None:
            self.step = ""
            self.progress: Progress | None = None
            self.tasks: dict[str, Any] = {}

        def update(self, name, inc=1, total=None, inc_total=None, message=None, label=None):
            if self.progress is None:
                return
            key = f"{name}[{label}]" if label else name
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(f"{self.step} {key}", total=total)
            task = self.tasks[key]
            if inc_total:
                current = self.progress.tasks[task].total or 0
                self.progress.update(task, total=current + inc_total)
            self.progress.advance(task, inc)

        def _start(self, step: str) -> None:
            self.tasks = {}
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed:,}"),
                TimeElapsedColumn(),
                console=output.stderr,
                transient=True,
            )
            self.progress.start()

        def _stop(self) -> None:
            if self.progress is not None:
                self.progress.stop()
            self.progress = None

    return RichCollector()
