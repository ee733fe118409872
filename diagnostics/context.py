"""Everything the checks share for one doctor run, resolved by the CLI and passed in."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diagnostics import pg
from diagnostics.project_config import ProjectConfig
from diagnostics.results import Skipped
from diagnostics.sources import SourceSpec
from runtime.warehouse import Warehouse

HEAVY = 3  # budget multiplier of checks that scan whole tables
WAREHOUSE_CONNECTIONS = 8  # at most this many doctor connections to the warehouse at once
WAREHOUSE_HINT = "fix the warehouse first: `elt doctor --only connectivity`"


class Once:
    """A value computed by the first caller; concurrent callers wait for it."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        self._compute, self._lock, self._done, self._value = compute, threading.Lock(), False, None

    def get(self) -> Any:
        with self._lock:
            if not self._done:
                self._value, self._done = self._compute(), True
        return self._value


@dataclass
class WarehouseProbe:
    ok: bool
    detail: str
    hint: str | None = None
    version: str | None = None
    latency_ms: float | None = None
    ssl: bool | None = None


@dataclass
class Context:
    project: Path
    config: ProjectConfig
    sources: list[SourceSpec]
    pipelines_dir: Path
    timeout: float
    warehouse: Warehouse | None = None
    # why there is no warehouse: (detail, hint), e.g. the embedded server is not running
    warehouse_problem: tuple[str, str] | None = None
    warehouse_misconfigured: bool = False  # the problem is the setting, not the server
    warehouse_data_dir: Path | None = None  # local data directory (embedded), for disk space
    # per source, settings elt falls back on (from the defaults hook, e.g. the demo's)
    source_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    _probe: Once | None = field(default=None, repr=False)
    _connections: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(WAREHOUSE_CONNECTIONS), repr=False
    )

    def __post_init__(self) -> None:
        self._probe = Once(self._probe_warehouse)

    @property
    def io_timeout(self) -> float:
        return pg.io_timeout(self.timeout)

    def source_setting(self, spec: SourceSpec, key: str) -> Any:
        configured = spec.setting(key)
        if configured is not None:
            return configured
        return self.source_defaults.get(spec.name, {}).get(key)

    # -- the warehouse: probed once, then one read-only connection per check ----------

    def _params(self) -> dict[str, Any]:
        assert self.warehouse is not None
        w = self.warehouse
        return {
            "host": w.host,
            "port": w.port,
            "user": w.user,
            "password": w.password or None,
            "dbname": w.database,
            "sslmode": w.sslmode,
        }

    def _probe_warehouse(self) -> WarehouseProbe:
        if self.warehouse is None:
            detail, hint = self.warehouse_problem or ("no warehouse", "set ELT_WAREHOUSE_URL")
            return WarehouseProbe(False, detail, hint)
        where = self.warehouse_name
        started = time.monotonic()
        try:
            with self._connect(self.io_timeout) as conn:
                connected = time.monotonic()
                pg.rows(conn, "select 1")
                latency = (time.monotonic() - connected) * 1000
                version = pg.rows(conn, self._version_sql)[0][0]
                ssl = bool(conn.info.ssl_in_use) if hasattr(conn, "info") else None
        except Exception as exc:
            kind = pg.classify(exc)
            hint = {
                "refused": "start the warehouse, or fix ELT_WAREHOUSE_URL (host, port)",
                "timeout": f"{where} accepts but does not answer: check the server and the network",
                "auth": "fix the password in ELT_WAREHOUSE_URL",
                "missing database": "create the database, or fix ELT_WAREHOUSE_URL",
            }.get(kind, 'check ELT_WAREHOUSE_URL, then `elt sql "select 1"`')
            elapsed = time.monotonic() - started
            return WarehouseProbe(False, f"{where}: {pg.cause(exc)} after {elapsed:.1f}s", hint)
        return WarehouseProbe(True, where, version=version, latency_ms=round(latency, 1), ssl=ssl)

    def warehouse_probe(self) -> WarehouseProbe:
        assert self._probe is not None
        return self._probe.get()

    @contextlib.contextmanager
    def warehouse_connection(self, *, heavy: bool = False) -> Iterator[Any]:
        """A read-only connection, or Skipped when the warehouse check already failed.
        `heavy` checks (scans of whole tables) get HEAVY times the statement timeout."""
        if not self.warehouse_probe().ok:
            raise Skipped("not checked: the warehouse is unreachable", WAREHOUSE_HINT)
        timeout = pg.io_timeout(self.timeout * (HEAVY if heavy else 1))
        with self._connections, self._connect(timeout) as conn:
            yield conn

    @property
    def _version_sql(self) -> str:
        return "show server_version" if self.engine == "postgres" else "select version()"

    @property
    def engine(self) -> str:
        return getattr(self.warehouse, "engine", "postgres")

    @property
    def warehouse_name(self) -> str:
        """Where the warehouse is, without a password: host:port/database, or the file."""
        w = self.warehouse
        if self.engine != "postgres":
            return w.safe_url
        return f"{w.host}:{w.port}/{w.database}"

    def not_on_engine(self, check: str) -> None:
        """Skipped: `check` needs a server this engine does not have (runtime/engines/)."""
        from runtime import engines

        reason = engines.of(self.warehouse).NO_SERVER.get(check) if self.warehouse else None
        if reason:
            raise Skipped(f"not applicable: {reason}")

    def _connect(self, timeout: float) -> contextlib.AbstractContextManager[Any]:
        """A read-only connection: libpq with its options (Postgres), or the engine's."""
        if self.engine == "postgres":
            return pg.connection(timeout=timeout, **self._params())
        from runtime import engines

        return contextlib.closing(engines.read_only(self.warehouse, timeout=timeout))
