"""Nothing waits forever on a source: hostile servers on 127.0.0.1 against real loads.

A Postgres host that accepts and never answers, a source table locked by another
session, a connection reset mid-extract, a REST server trickling its answer (body or
headers) and one paging forever: each fails the load within its bound, with one line
naming the source, the cause and the setting, and leaves raw as it was.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg2
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from hostile_servers import (
    endless_pages_server,
    resetting_proxy,
    silent_server,
    trickling_http_server,
)
from support import query, run_elt

from demo import shop
from loaders import pipeline
from loaders.payments.deadline import RequestDeadlineExceeded
from loaders.payments.paginator import PaginationError
from loaders.shop.timeouts import with_timeouts


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_timeouts_ride_in_the_source_url_and_an_explicit_one_wins():
    url = with_timeouts("postgresql+psycopg2://u:p@h:5/db?connect_timeout=3", 10, 1.5)
    assert "connect_timeout=3" in url and "connect_timeout=10" not in url
    assert "options=-cstatement_timeout%3D1500" in url


def test_a_postgres_host_that_never_answers_fails_within_the_connect_timeout(elt_env):
    with silent_server() as server:
        env = {
            **elt_env,
            "SOURCES__SHOP__CREDENTIALS": f"postgresql://shop:pw@127.0.0.1:{server.port}/shop",
            "SOURCES__SHOP__CONNECT_TIMEOUT_SECONDS": "2",
        }
        started = time.monotonic()
        result = run_elt("load", "shop", env=env, timeout=120)
        elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: load shop:")
    assert "did not answer within the connect timeout (connect_timeout_seconds)" in line
    assert "pw" not in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 60  # the process start and dlt's import are most of it


def test_a_locked_source_table_fails_within_the_statement_timeout(elt_env, shop_url, warehouse):
    shop.seed(shop_url, 50)
    holder = psycopg2.connect(shop_url)
    try:
        with holder.cursor() as cur:
            cur.execute("lock table orders in access exclusive mode")
        env = {**elt_env, "SOURCES__SHOP__STATEMENT_TIMEOUT_SECONDS": "2"}
        result = run_elt("load", "shop", env=env, timeout=300)
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 2, result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: load shop:")
    assert "statement timeout (statement_timeout_seconds)" in line
    # nothing of the failed extract reached raw as visible data
    assert not query(
        warehouse,
        "select 1 from information_schema.tables where table_schema = 'raw_shop'"
        " and table_name = '_dlt_loads'",
    ) or query(warehouse, "select count(*) from raw_shop._dlt_loads") == [(0,)]


def test_a_connection_reset_mid_extract_fails_the_load_with_one_line(elt_env, shop_url, server):
    """A reset (RST) mid-stream ends connectorx's read with an error, not a hang. (A peer
    that silently stops forwarding mid-stream is another matter: neither connectorx nor
    psycopg2 has a client-side read timeout, and connectorx waits holding the GIL.)"""
    shop.seed(shop_url, 2_000)
    database = shop_url.rsplit("/", 1)[1]
    with resetting_proxy(server.port, reset_after_bytes=64 * 1024) as proxy:
        env = {
            **elt_env,
            "SOURCES__SHOP__CREDENTIALS": f"postgresql://{server.user}@127.0.0.1:{proxy.port}"
            f"/{database}",
            "SOURCES__SHOP__CONNECT_TIMEOUT_SECONDS": "2",
            "SOURCES__SHOP__STATEMENT_TIMEOUT_SECONDS": "5",
        }
        started = time.monotonic()
        result = run_elt("load", "shop", env=env, timeout=300)
        elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: load shop: extract")
    assert "Traceback" not in result.stderr
    assert elapsed < 90


def payments_overrides(base_url: str, **extra) -> dict:
    return {
        "base_url": base_url,
        "token": "t",
        "request_timeout": 5,
        "request_max_attempts": 2,
        "request_backoff_factor": 0.01,
        "resources": {"payments": {"primary_key": "payment_id", "endpoint": {"path": "payments"}}},
        **extra,
    }


def load_payments(env: dict, overrides: dict) -> BaseException:
    with pytest.raises(PipelineStepFailed) as raised:
        pipeline.run(
            "payments",
            destination_url=env["ELT_WAREHOUSE_URL"],
            pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
            source_overrides=overrides,
        )
    cause: BaseException = raised.value
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return cause


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_a_trickling_rest_server_is_cut_at_the_request_deadline(elt_env, in_headers):
    # one byte every 0.3 s: the 5 s read timeout never trips, the 2 s deadline does
    with trickling_http_server(0.3, in_headers=in_headers) as server:
        started = time.monotonic()
        cause = load_payments(
            elt_env,
            payments_overrides(f"http://127.0.0.1:{server.port}", request_deadline_seconds=2),
        )
        elapsed = time.monotonic() - started
    assert isinstance(cause, RequestDeadlineExceeded)
    assert "payments endpoint `payments` did not finish answering within 2s" in str(cause)
    assert elapsed < 15  # one attempt: a deadline is not retried


def test_a_cursor_that_never_ends_is_cut_at_max_pages(elt_env):
    with endless_pages_server() as server:
        cause = load_payments(
            elt_env,
            payments_overrides(
                f"http://127.0.0.1:{server.port}",
                max_pages=20,
                resource_defaults={
                    "endpoint": {
                        "data_selector": "data",
                        "paginator": {
                            "type": "cursor",
                            "cursor_path": "next_cursor",
                            "cursor_param": "cursor",
                            "has_more_path": "has_more",
                        },
                    }
                },
            ),
        )
        requests = list(server.requests)
    assert isinstance(cause, PaginationError)
    assert "endpoint `payments` still had more after 20 pages" in str(cause)
    assert len(requests) == 20


def test_a_merge_write_disposition_is_refused_naming_the_key(elt_env):
    with pytest.raises(ValueError, match=r"sources\.payments\.resource_defaults: write_disp"):
        pipeline.run(
            "payments",
            destination_url=elt_env["ELT_WAREHOUSE_URL"],
            pipelines_dir=Path(elt_env["ELT_PIPELINES_DIR"]),
            source_overrides=payments_overrides(
                "http://127.0.0.1:9", resource_defaults={"write_disposition": "merge"}
            ),
        )
