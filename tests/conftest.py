"""Test fixtures: a real PostgreSQL server, fresh databases per session, the demo shop.

The suite never touches the checkout's `.elt/`: it gets a home of its own (`ELT_HOME`, a
temporary folder set here, before any test and for every `elt` subprocess), its own
embedded server there, stopped with any demo API at the end and the folder removed, so
no process is left running. Or the server named by `ELT_TEST_SERVER_URL` (a
postgresql:// URL of any database on that server; e.g. the machine's own Postgres).

Under pytest-xdist (`make test` runs two workers, one test module per worker at a time)
each worker imports this file in its own process: its own home, its own embedded server.
What the workers share is the checkout: the first steps that write into it or into the
system (the dbt package subset in `dbt/dbt_packages/`, the server's OS user) run one
worker at a time, under a lock (`pytest_sessionstart`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import embedded
from runtime.project import project_dir
from runtime.warehouse import Warehouse, ensure_database, parse_url

PROJECT = project_dir()
SERVER_ENV = "ELT_TEST_SERVER_URL"
# the suite's own `.elt/`: set at import, before anything resolves a home
SUITE_HOME = Path(tempfile.mkdtemp(prefix="elt-test-home-"))
os.environ[embedded.HOME_ENV] = str(SUITE_HOME)
os.environ["ELT_LOGS__DIR"] = str(SUITE_HOME / "logs")  # run logs (runtime/runlog.py) too


def pytest_sessionstart(session) -> None:
    """One worker at a time: install the dbt package subset into the checkout and start
    this worker's embedded server (the first start creates the server's OS user)."""
    from elt.dbt_packages import ensure_installed

    config = session.config
    if config.option.collectonly or (
        getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
    ):
        return  # collecting, or xdist's controller: no test runs in this process
    lock = Path(tempfile.gettempdir()) / "elt-test-suite-start.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        ensure_installed(PROJECT / "dbt")
        if not os.environ.get(SERVER_ENV):
            embedded.ensure_running(PROJECT)


# The slowest modules, slowest first (their share of a serial run, 29 Nov 2026): `make
# test` hands them out first, so the two workers do not end with one of them running alone.
SLOW_MODULES = (
    "tests/e2e/test_shop_flow.py",
    "tests/e2e/test_raw_log_and_isolated_sources.py",
    "tests/engines/test_identical_marts.py",
    "tests/loaders/test_kill_at_stage_boundaries.py",
    "tests/cli/test_transform_gate.py",
    "tests/e2e/test_quality.py",
    "tests/loaders/test_deletes_replication.py",
    "tests/loaders/test_deletes_reconcile.py",
    "tests/observability/test_observability_flow.py",
    "tests/cli/test_signals.py",
    "tests/security/test_canary.py",
)


def pytest_collection_modifyitems(session, config, items) -> None:
    """SLOW_MODULES first; every module keeps its tests in file order."""
    rank = {path: index for index, path in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


def pytest_sessionfinish(session, exitstatus) -> None:
    """Stop what the suite started in its home (server, demo API) and remove the home."""
    from demo import payments_api

    with contextlib.suppress(Exception):
        payments_api.stop(SUITE_HOME)
    with contextlib.suppress(Exception):
        embedded.stop(PROJECT)
    shutil.rmtree(SUITE_HOME, ignore_errors=True)


def embedded_admin(project: Path = PROJECT) -> Warehouse:
    """The embedded server of `project`'s home (started if needed), as its superuser."""
    port = embedded.ensure_running(project)
    return Warehouse(
        host="127.0.0.1",
        port=port,
        user=embedded.ADMIN,
        password=embedded.password(project),
        database="postgres",
    )


@pytest.fixture(scope="session")
def server() -> Iterator[Warehouse]:
    """A warehouse handle on the test server's `postgres` database."""
    url = os.environ.get(SERVER_ENV)
    if url:
        yield parse_url(url)
        return
    yield embedded_admin()


def _drop_database(server: Warehouse, name: str) -> None:
    conn = server.connect(database="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
    conn.close()


@contextlib.contextmanager
def fresh_databases(server: Warehouse) -> Iterator[tuple[Warehouse, str]]:
    """A fresh warehouse database and a fresh shop source database, dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    warehouse_db, shop_db = f"elt_test_wh_{suffix}", f"elt_test_shop_{suffix}"
    for name in (warehouse_db, shop_db):
        ensure_database(server, name)
    warehouse = dataclasses.replace(server, database=warehouse_db)
    try:
        yield warehouse, warehouse.url_for(shop_db)
    finally:
        for name in (warehouse_db, shop_db):
            _drop_database(server, name)


def elt_environment(warehouse: Warehouse, shop_url: str, pipelines_dir: Path) -> dict[str, str]:
    """Environment pointing elt at the given databases, with its own dlt working dir."""
    return {
        "ELT_WAREHOUSE_URL": warehouse.url,
        "SOURCES__SHOP__CREDENTIALS": shop_url,
        "ELT_PIPELINES_DIR": str(pipelines_dir),
        "SOURCES__MARKETING__BUCKET_URL": str(landing_dir(pipelines_dir)),
        "ELT_PROJECT_DIR": str(PROJECT),
        "DLT_PROJECT_DIR": str(PROJECT),
    }


@contextlib.contextmanager
def demo_payments_api(shop_url: str, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Seed the demo payments beside `shop_url` and serve them on 127.0.0.1; `env` gains the
    API's URL and token (every `elt load` and `elt transform` needs the payments source)."""
    from demo import payments
    from demo.payments_api import PaymentsAPI

    payments.seed(shop_url)
    with PaymentsAPI(shop_url, "e2e-token") as api:
        yield {
            **env,
            "SOURCES__PAYMENTS__BASE_URL": api.url,
            "SOURCES__PAYMENTS__TOKEN": "e2e-token",
        }


def landing_dir(pipelines_dir: Path) -> Path:
    """The marketing landing folder beside a test's dlt working dir (never the project's)."""
    return pipelines_dir.with_name(pipelines_dir.name + "-landing")


@pytest.fixture
def databases(server: Warehouse) -> Iterator[tuple[Warehouse, str]]:
    with fresh_databases(server) as pair:
        yield pair


@pytest.fixture
def elt_env(databases, tmp_path, monkeypatch) -> dict[str, str]:
    env = elt_environment(*databases, tmp_path / "pipelines")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def warehouse(databases) -> Warehouse:
    return databases[0]


@pytest.fixture
def shop_url(databases) -> str:
    return databases[1]


@pytest.fixture(scope="session")
def project() -> Path:
    return PROJECT
