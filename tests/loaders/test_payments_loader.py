"""The payments loader against the demo payments API on 127.0.0.1 and a real warehouse.

Each test starts its own API in a thread, over a small seeded shop, and loads with small
pages, a short rate-limit budget and fast backoff, so faults cost fractions of a second.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import dlt
import pytest
from conftest import elt_environment, fresh_databases
from dlt.pipeline.exceptions import PipelineStepFailed
from raw_log import visible
from requests import Timeout
from support import PROJECT, execute, fetch, query

from demo import payments, shop
from demo.payments_api import PaymentsAPI
from loaders import pipeline
from loaders.payments.paginator import PaginationError
from loaders.payments.responses import EndpointHTTPError, UnexpectedContent
from runtime.warehouse import Warehouse

TOKEN = "test-token-7f3a9c"
PAGE_SIZE = 5


def small_pages() -> dict:
    """The committed resource defaults, with pages of PAGE_SIZE records."""
    with (PROJECT / ".dlt" / "config.toml").open("rb") as handle:
        defaults = tomllib.load(handle)["sources"]["payments"]["resource_defaults"]
    defaults["endpoint"]["params"]["limit"] = PAGE_SIZE
    return defaults


FAST = {
    "resource_defaults": small_pages(),
    "request_max_attempts": 3,
    "request_backoff_factor": 0.01,
    "request_timeout": 5,
    "rate_limit_budget_seconds": 3,
}


@dataclass
class Run:
    """What a test loads from and into; the shop and its API are shared by the module."""

    api: PaymentsAPI
    env: dict[str, str]
    warehouse: Warehouse
    shop_url: str


@pytest.fixture(scope="module")
def demo_shop(server):
    with fresh_databases(server) as (warehouse, shop_url):
        shop.seed(shop_url, 40)
        payments.seed(shop_url)
        with PaymentsAPI(shop_url, TOKEN) as api:
            yield warehouse, shop_url, api


@pytest.fixture
def run(demo_shop, tmp_path, monkeypatch) -> Run:
    """A warehouse without raw_payments, a fresh dlt working dir, an API without faults."""
    warehouse, shop_url, api = demo_shop
    execute(warehouse.url, "drop schema if exists raw_payments cascade")
    api.reset()
    env = {
        **elt_environment(warehouse, shop_url, tmp_path / "pipelines"),
        "SOURCES__PAYMENTS__BASE_URL": api.url,
        "SOURCES__PAYMENTS__TOKEN": TOKEN,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Run(api, env, warehouse, shop_url)


def load(env: dict, **overrides) -> pipeline.LoadReport:
    return pipeline.run(
        "payments",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
        source_overrides={**FAST, **overrides},
    )


def failure(env: dict, **overrides) -> BaseException:
    """The root cause of a load that must fail in extraction."""
    with pytest.raises(PipelineStepFailed) as raised:
        load(env, **overrides)
    cause: BaseException = raised.value
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return cause


def source_rows(shop_url: str, endpoint: str) -> dict[str, object]:
    key = {"payments": "payment_id", "refunds": "refund_id"}[endpoint]
    return dict(fetch(shop_url, f"select {key}, updated_at from payments_api.{endpoint}"))


def raw_rows(warehouse, endpoint: str) -> dict[str, object]:
    """The current version of each key, as staging reads it (raw is a log of versions)."""
    key = {"payments": "payment_id", "refunds": "refund_id"}[endpoint]
    rows = visible(warehouse, "raw_payments", endpoint, key, f"{key}, updated_at")
    assert len(rows) == len({row[0] for row in rows}), f"duplicate ids in {endpoint}"
    return dict(rows)


def cursor(env: dict, endpoint: str) -> str:
    """The incremental cursor the pipeline's state holds for `endpoint`."""
    state = dlt.attach("elt_payments", pipelines_dir=env["ELT_PIPELINES_DIR"]).state
    resource = state["sources"]["payments"]["resources"][endpoint]
    return resource["incremental"]["updated_at"]["last_value"]


def test_pagination_brings_every_record(run):
    report = load(run.env)
    for endpoint in ("payments", "refunds"):
        expected = source_rows(run.shop_url, endpoint)
        assert expected, f"the demo shop has no {endpoint}"
        assert raw_rows(run.warehouse, endpoint) == expected
        assert report.rows[endpoint] == len(expected)
        assert len(run.api.requests_to(endpoint)) == math.ceil(len(expected) / PAGE_SIZE)
    assert query(run.warehouse, "select distinct _elt_source from raw_payments.payments") == [
        ("payments",)
    ]


def test_incremental_run_fetches_only_what_changed(run):
    load(run.env)
    cursor_before = cursor(run.env, "payments")
    shop.tick(run.shop_url)
    changes = payments.tick(run.shop_url)
    requests_before = len(run.api.requests_to("payments"))
    report = load(run.env)
    assert report.rows["payments"] == changes["payments_inserted"] + changes["payments_updated"]
    assert report.rows["refunds"] == changes["refunds_inserted"] + changes["refunds_updated"]
    first = run.api.requests_to("payments")[requests_before]
    assert first.params["updated_since"] == cursor_before
    assert raw_rows(run.warehouse, "payments") == source_rows(run.shop_url, "payments")


def test_429_then_200_succeeds_after_the_advertised_wait(run):
    run.api.faults.fail(429, retry_after=1, after=1, path="payments")
    report = load(run.env)
    assert not report.stops
    assert raw_rows(run.warehouse, "payments") == source_rows(run.shop_url, "payments")
    calls = run.api.requests_to("payments")
    limited = next(i for i, call in enumerate(calls) if call.status == 429)
    assert calls[limited + 1].status == 200
    assert calls[limited + 1].at - calls[limited].at >= 0.95


def test_the_apis_own_rate_limit_is_waited_out(run, monkeypatch):
    with PaymentsAPI(run.shop_url, TOKEN, rate_limit=4, burst=6) as limited:
        monkeypatch.setenv("SOURCES__PAYMENTS__BASE_URL", limited.url)
        report = load(run.env, rate_limit_budget_seconds=60)
    assert not report.stops
    assert any(call.status == 429 for call in limited.requests)
    assert raw_rows(run.warehouse, "payments") == source_rows(run.shop_url, "payments")


def test_retry_after_beyond_the_budget_stops_rate_limited_keeping_what_was_loaded(
    run,
):
    run.api.faults.fail(429, retry_after=3600, after=2, path="payments")
    report = load(run.env)
    first = report.stops[0]
    assert (first.resource, first.cause) == ("payments", "rate_limited")
    assert "3600s" in report.stops[0].detail
    assert run.api.requests[-1].status == 429, "a request was sent after the stop"
    loaded = raw_rows(run.warehouse, "payments")
    assert len(loaded) == 2 * PAGE_SIZE
    newest = max(loaded.values()).astimezone(UTC).isoformat(timespec="microseconds")
    assert cursor(run.env, "payments") == newest

    run.api.faults.clear()
    resumed = load(run.env)
    assert not resumed.stops
    assert raw_rows(run.warehouse, "payments") == source_rows(run.shop_url, "payments")
    assert raw_rows(run.warehouse, "refunds") == source_rows(run.shop_url, "refunds")


def test_503_asking_for_a_wait_beyond_the_budget_stops_unavailable(run):
    run.api.faults.fail(503, retry_after=600, after=1, path="payments")
    report = load(run.env)
    first = report.stops[0]
    assert (first.resource, first.cause) == ("payments", "unavailable")
    assert first.detail.startswith("answered 503 asking to wait 600s (Retry-After)")
    assert [call.status for call in run.api.requests_to("payments")] == [200, 503]
    assert len(raw_rows(run.warehouse, "payments")) == PAGE_SIZE


def test_429_on_every_attempt_stops_rate_limited(run):
    run.api.faults.fail(429, times=None, path="refunds")
    report = load(run.env, request_max_attempts=2)
    (stop,) = [stop for stop in report.stops if stop.resource == "refunds"]
    assert stop.cause == "rate_limited"
    assert "after 2 attempts" in stop.detail
    assert len(run.api.requests_to("refunds")) == 2


def test_5xx_then_200_succeeds(run):
    run.api.faults.fail(503, times=2, after=1, path="payments")
    report = load(run.env)
    assert not report.stops
    assert [call.status for call in run.api.requests_to("payments")][1:4] == [503, 503, 200]
    assert raw_rows(run.warehouse, "payments") == source_rows(run.shop_url, "payments")


def test_500_forever_fails_with_the_cursor_unchanged(run):
    load(run.env)
    before = cursor(run.env, "payments"), raw_rows(run.warehouse, "payments")
    shop.tick(run.shop_url)
    payments.tick(run.shop_url)
    run.api.faults.fail(500, times=None, path="payments")
    calls_before = len(run.api.requests_to("payments"))
    cause = failure(run.env)
    assert isinstance(cause, EndpointHTTPError)
    assert str(cause) == (
        "payments endpoint `payments` answered HTTP 500 Internal Server Error (attempt 3 of 3)"
    )
    assert len(run.api.requests_to("payments")) - calls_before == 3
    assert (cursor(run.env, "payments"), raw_rows(run.warehouse, "payments")) == before


@pytest.mark.parametrize("status", [401, 403, 404])
def test_client_errors_fail_at_once_with_one_request_naming_the_status(run, monkeypatch, status):
    if status == 401:
        monkeypatch.setenv("SOURCES__PAYMENTS__TOKEN", "not-the-token")
    else:
        run.api.faults.fail(status, times=None)
    cause = failure(run.env)
    assert isinstance(cause, EndpointHTTPError)
    assert f"answered HTTP {status}" in str(cause)
    assert "not-the-token" not in str(cause) and TOKEN not in str(cause)
    assert all(len(run.api.requests_to(name)) <= 1 for name in ("payments", "refunds"))
    assert len(run.api.requests) >= 1


def test_html_with_status_200_fails_naming_the_endpoint(run):
    run.api.faults.html(after=1, path="payments")
    cause = failure(run.env)
    assert isinstance(cause, UnexpectedContent)
    assert str(cause) == "payments endpoint `payments` answered HTTP 200 with text/html, not JSON"


def test_a_repeated_cursor_fails_naming_the_endpoint(run):
    run.api.faults.repeat_cursor(path="payments")
    cause = failure(run.env)
    assert isinstance(cause, PaginationError)
    assert "endpoint `payments` repeated a cursor after page 2" in str(cause)
    assert len(run.api.requests_to("payments")) == 2


def test_has_more_without_a_cursor_fails_instead_of_stopping_early(run):
    run.api.faults.drop_cursor(path="payments")
    cause = failure(run.env)
    assert isinstance(cause, PaginationError)
    assert "endpoint `payments` said it has more after page 1 but gave no cursor" in str(cause)


def test_a_silent_server_hits_the_timeout(run):
    run.api.faults.slow(2, path="payments")
    cause = failure(run.env, request_timeout=0.3, request_max_attempts=2)
    assert isinstance(cause, Timeout)
    assert len(run.api.requests_to("payments")) <= 2
