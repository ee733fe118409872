"""SIGTERM and SIGINT: stop at the next safe point; a second signal exits at once.

cron, CI and systemd stop a run with SIGTERM, a person with Ctrl-C. A stopped run must
leave what a rerun resumes from, and its audit row must say `stopped`. So:

- The first signal is noted (`requested()`). Where an exception is a safe point anywhere
  (dbt, which cancels its running queries on KeyboardInterrupt; read-only commands) it
  raises `Stopped` at once. In a load (`install(defer=True)`) it is only noted: the load
  stops at its next `checkpoint()` (between sources), and dlt, told the same signal,
  stops between items, stages and jobs as it does under its own handler (which is off:
  `RUNTIME__INTERCEPT_SIGNALS=false`, so the signal reaches this module, not only dlt).
- A run that reaches its end after a first signal (the signal came after its last safe
  point) still ends as stopped: a signal always means exit 2 and `stopped`, never a
  success the operator did not wait for.
- A second signal runs the registered last words (the audit's `stopped`, the JSON
  envelope) and exits 2 at once. It is seen by a thread reading the wakeup fd, so it
  works while the main thread sits in a long C call (a connectorx read, a query).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

EXIT_CODE = 2
MESSAGE = "stopped by signal: rerun resumes"
SIGNALS = (signal.SIGTERM, signal.SIGINT)

_received: int | None = None
_count = 0
_defer = False
_raised = False
_last_words: list[Callable[[], None]] = []
_lock = threading.Lock()


class Stopped(KeyboardInterrupt):
    """The run stopped on a signal. A KeyboardInterrupt, so dbt cancels its queries and no
    `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(MESSAGE)
        self.signum = signum


def install(*, defer: bool) -> None:
    """Handle SIGTERM/SIGINT for this process (main thread only, once per command)."""
    global _defer
    _defer = defer
    os.environ.setdefault("RUNTIME__INTERCEPT_SIGNALS", "false")
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read_end,), name="elt-signals", daemon=True).start()


def defer_stops() -> None:
    """From now on a first signal is only noted: the run is recording how it ended."""
    global _defer
    _defer = True


def requested() -> int | None:
    """The signal that asked this run to stop, or None."""
    return _received


def name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum else "signal"


def checkpoint() -> None:
    """A safe point: raise `Stopped` if a signal asked to stop."""
    if _received is not None:
        raise Stopped(_received)


@contextlib.contextmanager
def last_words(callback: Callable[[], None]) -> Iterator[None]:
    """Run `callback` before a second signal ends the process (newest first)."""
    _last_words.append(callback)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            _last_words.remove(callback)


def _note(signum: int) -> None:
    """Remember the first signal and tell dlt, whose loops check its own flag."""
    global _received
    with _lock:
        if _received is None:
            _received = signum
    dlt_signals = sys.modules.get("dlt.common.runtime.signals")
    if dlt_signals is not None:
        dlt_signals.set_received_signal(signum)
        dlt_signals.wake_all()


def _on_signal(signum: int, _frame: object) -> None:
    """The Python-level handler (main thread): raise where raising is the safe point."""
    global _raised
    _note(signum)
    if not _defer and not _raised:
        _raised = True
        raise Stopped(signum)


def _watch(read_end: int) -> None:
    """Count signals as they arrive (even while the main thread is in C); exit on the second."""
    global _count
    while True:
        try:
            data = os.read(read_end, 64)
        except OSError:
            return
        for signum in data:
            if signum not in SIGNALS or signal.getsignal(signum) is not _on_signal:
                continue  # a command that installed its own handler stops on its own terms
            _note(signum)
            _count += 1
            if _count >= 2:
                _exit_now()


def _exit_now() -> None:
    for callback in reversed(list(_last_words)):
        with contextlib.suppress(BaseException):
            callback()
    with contextlib.suppress(OSError):
        os.write(2, f"{MESSAGE}\n".encode())
    os._exit(EXIT_CODE)
