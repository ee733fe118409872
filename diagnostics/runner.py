"""Run checks concurrently, each against its own deadline, and keep the report complete.

Every check runs in its own daemon thread from the start, so the report takes about as
long as the slowest check, bounded by its timeout. A check that outlives its deadline is
reported FAIL and abandoned: daemon threads (rather than a ThreadPoolExecutor, whose
workers are joined at interpreter exit) let the process end even if a socket never
answers. Checks bound their own I/O too (connect and statement timeouts), so an
abandoned thread ends soon after anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass

from diagnostics.results import Outcome, Result, Skipped, Status
from runtime.secrets import redact


@dataclass
class Check:
    """A check to run: who it is, the function computing its outcome, its time budget."""

    id: str
    section: str
    name: str
    run: Callable[[], Outcome]
    source: str | None = None
    timeout: float | None = None  # None: the run's default
    timeout_hint: str | None = None


def _start(check: Check) -> Future:
    future: Future = Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        started = time.monotonic()
        try:
            outcome = check.run()
        except BaseException as exc:  # reported as the check's outcome, never raised
            exc.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
            future.set_exception(exc)
        else:
            future.set_result((outcome, time.monotonic() - started))

    threading.Thread(target=target, name=f"doctor:{check.id}", daemon=True).start()
    return future


def run_checks(checks: Iterable[Check], *, timeout: float) -> list[Result]:
    """Results in the order of `checks`, each within its deadline (FAIL when it has none)."""
    checks = list(checks)
    started = time.monotonic()
    futures = [(check, _start(check)) for check in checks]
    results = []
    for check, future in futures:
        budget = check.timeout if check.timeout is not None else timeout
        remaining = max(0.0, started + budget - time.monotonic())
        error: BaseException | None = None
        try:
            outcome, elapsed = future.result(timeout=remaining)
            status, detail, hint = outcome.status, outcome.detail, outcome.hint
            facts = outcome.facts
        except TimeoutError:
            elapsed = budget
            status, detail, facts = Status.FAIL, f"no answer within {budget:g}s", {}
            hint = check.timeout_hint or f"rerun `elt doctor --timeout {int(budget * 4)}`"
        except Skipped as skipped:
            elapsed = getattr(skipped, "elapsed", 0.0)
            status, detail, hint, facts = Status.SKIP, skipped.detail, skipped.hint, {}
        except Exception as exc:  # a bug or an unexpected error: one line, the report goes on
            error, elapsed = exc, getattr(exc, "elapsed", 0.0)
            cause = str(exc).strip().splitlines()
            status = Status.FAIL
            detail = f"check error: {type(exc).__name__}: {cause[0] if cause else ''}"
            hint = "rerun `elt --debug doctor` and report the traceback"
            facts = {}
        results.append(
            Result(
                id=check.id,
                section=check.section,
                name=check.name,
                source=check.source,
                status=status,
                detail=redact(detail),
                hint=redact(hint) if hint else None,
                seconds=elapsed,
                facts=facts,
                error=error,
            )
        )
    return results
