"""Test hook: `ELT_TEST_KILL_AT=<stage>` makes a load SIGKILL itself at a stage boundary.

The crash tests (tests/loaders/test_kill_at_stage_boundaries.py) need a load to die at an
exact point, deterministically, in a real process: after extraction, after normalization,
between two table writes of the load step, or after the last table write but before the
load's `_dlt_loads` row. Unset (always, outside those tests) this module does nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "ELT_TEST_KILL_AT"
EXTRACTED = "extracted"  # the package is extracted, nothing normalized or loaded
NORMALIZED = "normalized"  # the package is normalized, nothing loaded
BETWEEN_TABLES = "between_tables"  # one data table's job committed, the others not yet
BEFORE_LOADS_ROW = "before_loads_row"  # every table written, the `_dlt_loads` row not yet
STAGES = (EXTRACTED, NORMALIZED, BETWEEN_TABLES, BEFORE_LOADS_ROW)


def at(stage: str) -> None:
    """SIGKILL this process when the hook names `stage`."""
    if os.environ.get(ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    """Arm the two boundaries inside dlt's load step, only when the hook names one."""
    stage = os.environ.get(ENV)
    if stage == BETWEEN_TABLES:
        from dlt.common.destination.client import RunnableLoadJob

        run_managed = RunnableLoadJob.run_managed

        def run_then_kill(self, job_client, done_event, /):  # type: ignore[no-untyped-def]
            run_managed(self, job_client, done_event)
            if self._state == "completed" and not self.load_table_name.startswith("_dlt"):
                at(BETWEEN_TABLES)

        RunnableLoadJob.run_managed = run_then_kill  # type: ignore[method-assign]
    elif stage == BEFORE_LOADS_ROW:
        from dlt.destinations.job_client_impl import SqlJobClientBase

        def kill_before_row(self, load_id):  # type: ignore[no-untyped-def]
            at(BEFORE_LOADS_ROW)

        SqlJobClientBase.complete_load = kill_before_row  # type: ignore[method-assign]
