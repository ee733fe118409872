"""Helpers for the run-control tests: elt in the background, watched line by line, and
the audit rows and locks it leaves in the warehouse."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from conftest import demo_payments_api, elt_environment, fresh_databases, landing_dir
from support import PROJECT, query, run_elt

from runtime.warehouse import Warehouse

STOPPED_LINE = "stopped by signal: rerun resumes"


@contextlib.contextmanager
def every_source(server: Warehouse, pipelines, orders: int, *, load: bool) -> Iterator[tuple]:
    """Fresh databases with the demo shop (`orders`), its marketing files and payments API
    (`elt transform` needs every source); loaded once when `load`."""
    from demo import marketing, shop

    with fresh_databases(server) as (warehouse, shop_url):
        env = elt_environment(warehouse, shop_url, pipelines)
        shop.seed(shop_url, orders)
        marketing.seed(landing_dir(pipelines), shop_url)
        with demo_payments_api(shop_url, env) as env:
            if load:
                run_elt("load", env=env, check=True)
            yield warehouse, shop_url, env


class Background:
    """`elt ARGS` running in its own process group; its stderr is collected as it comes."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "elt", *args],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.stdout = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, needle: str, timeout: float = 120) -> None:
        wait_until(
            lambda: any(needle in line for line in self.lines) or self.proc.poll() is not None,
            timeout,
            f"`{needle}` on the stderr of elt {' '.join(self.args)}",
        )
        assert any(needle in line for line in self.lines), (
            f"elt {' '.join(self.args)} exited {self.proc.returncode} before `{needle}`:\n"
            + self.stderr
        )

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the whole group (elt and anything it started)."""
        os.killpg(self.proc.pid, signal.SIGKILL)

    def finish(self, timeout: float = 300) -> int:
        try:
            self.stdout = self.proc.stdout.read() if self.proc.stdout else ""
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
            raise
        self._reader.join(timeout=10)
        return code

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:  # a failed test leaves no process running
            self.kill()
            self.proc.wait()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def lock_holder_pid(warehouse: Warehouse, name: str) -> int | None:
    """The pid `elt_audit.locks` names for lock `name` while the lock is really held."""
    from runtime import locks

    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('elt_audit.locks')")
            if cur.fetchone()[0] is None:
                return None
        found = locks.holder(conn, name)
    finally:
        conn.close()
    return found.pid if found else None


def runs(warehouse: Warehouse, command: str | None = None) -> list[dict[str, Any]]:
    """Audit rows, oldest first, read straight from the table."""
    rows = query(
        warehouse,
        "select run_id, command, status, exit_code, error, pid from elt_audit.runs"
        " where %s is null or command = %s order by started_at",
        (command, command),
    )
    keys = ("run_id", "command", "status", "exit_code", "error", "pid")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]
