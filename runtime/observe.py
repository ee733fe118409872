"""What happens at the start and the end of every audited run, in one place.

Start: who and where (host, the project's git commit) and the run's JSON-lines log.
End: metrics published (textfile, Pushgateway), alerts sent for a failure, the log
closed with a summary. Each step is bounded in time and caught: observing a run never
changes its outcome or its exit code.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from typing import Any

from runtime import runlog
from runtime.project import project_dir

log = logging.getLogger("elt")


def run_started(run: Any, args: dict[str, Any]) -> None:
    """Fill in the run's arguments and provenance, and open its log."""
    run.started_monotonic = time.monotonic()
    run.args = args
    run.host = socket.gethostname()
    run.commit = project_commit()
    path = runlog.start(run.run_id, run.command, args=run.args, host=run.host, commit=run.commit)
    run.log_path = str(path) if path else None


def run_ended(warehouse: Any, run: Any, status: str, exit_code: int, error: str | None) -> None:
    """Publish the run's metrics, alert on its failure, close its log. Never raises."""
    from runtime import alerts, metrics

    seconds = time.monotonic() - getattr(run, "started_monotonic", time.monotonic())
    outcome = {"status": status, "exit_code": exit_code, "error": error, "seconds": seconds}
    for step, action in (
        ("metrics", lambda: metrics.publish_run(warehouse, run, outcome)),
        ("alerts", lambda: alerts.alert_run(warehouse, run, outcome)),
    ):
        try:
            action()
        except Exception as exc:  # observing must never turn a run into a failure
            log.warning(f"{step}: skipped ({type(exc).__name__}: {exc})")
    runlog.finish({"run_id": run.run_id, "command": run.command, **outcome})


def project_commit() -> str | None:
    """The project's git commit (with `-dirty` for uncommitted changes), else None."""
    try:
        found = subprocess.run(
            ["git", "-C", str(project_dir()), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            timeout=3,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None
