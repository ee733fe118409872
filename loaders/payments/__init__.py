"""The `payments` source: endpoints of a paginated, authenticated, rate-limited REST API.

Built on dlt's rest_api source. Endpoints, their paginators, primary keys and incremental
request parameters are rest_api configuration under `[sources.payments.resources.<name>]`
(and shared `resource_defaults`) in `.dlt/config.toml`: adding an endpoint needs no code.
The bearer token is a secret (`SOURCES__PAYMENTS__TOKEN` or `.dlt/secrets.toml`).

What this adds to rest_api (see responses.py and paginator.py): a time budget for
`Retry-After` waits with a clean `rate_limited` stop, errors naming the endpoint and
status (never the body or the token), non-JSON 200s and repeated cursors as errors, a
total deadline per request (deadline.py: a server trickling bytes is cut, not only a
silent one) and a maximum number of pages per endpoint loop (an endless cursor is cut).
Raw is an append-only log: every endpoint appends (a `write_disposition` other than
append is refused), staging dedupes, compaction drops superseded versions.
Incremental parameters need the API to return records in cursor order (ascending
`updated_at`), so a stop mid-way leaves the cursor at the last record loaded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import dlt
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources import DltResource
from dlt.sources.helpers.requests import Client
from dlt.sources.rest_api import rest_api_resources

from loaders.metadata import add_load_metadata
from loaders.payments.deadline import mount_deadline
from loaders.payments.paginator import CheckedCursorPaginator
from loaders.payments.responses import ResponseGuard

SOURCE_NAME = "payments"


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def payments(
    base_url: str = dlt.config.value,
    token: str = dlt.secrets.value,
    resources: dict[str, Any] = dlt.config.value,
    resource_defaults: dict[str, Any] | None = None,
    request_timeout: float = 30.0,
    request_deadline_seconds: float = 120.0,
    max_pages: int = 10_000,
    request_max_attempts: int = 5,
    request_backoff_factor: float = 1.0,
    rate_limit_budget_seconds: float = 300.0,
) -> Iterator[DltResource]:
    """One rest_api resource per configured endpoint, sharing one retrying session.

    `rate_limit_budget_seconds` bounds the total `Retry-After` wait of a run; a wait
    beyond what is left stops the run cleanly (loaded pages kept, `rate_limited`).
    `request_timeout` bounds every read, so a silent server cannot hang a run;
    `request_deadline_seconds` bounds each request from connect to last byte, so a server
    trickling its answer cannot either; `max_pages` bounds each endpoint's page loop.
    """
    guard = ResponseGuard(
        SOURCE_NAME,
        budget_seconds=rate_limit_budget_seconds,
        max_attempts=request_max_attempts,
        backoff_factor=request_backoff_factor,
        # dlt caps every wait at max_delay: at least the budget, so Retry-After is honoured
        max_delay=max(rate_limit_budget_seconds, RuntimeConfiguration.request_max_retry_delay),
    )
    defaults = copy.deepcopy(dict(resource_defaults or {}))
    _require_append("resource_defaults", defaults)
    defaults["write_disposition"] = "append"
    endpoints = [
        _endpoint(name, spec, defaults, guard, max_pages) for name, spec in resources.items()
    ]
    session = Client(
        raise_for_status=False,  # the guard's hook and rest_api's raise, naming the endpoint
        request_timeout=request_timeout,
        request_max_attempts=request_max_attempts,
        request_backoff_factor=request_backoff_factor,
        request_max_retry_delay=guard.max_delay,
        respect_retry_after_header=True,
    ).session
    paths = {_path_of(spec): spec["name"] for spec in endpoints}

    def endpoint_of(request: Any) -> str:
        return paths.get(_last_path(request.url), "?")

    mount_deadline(session, SOURCE_NAME, request_deadline_seconds, endpoint_of)
    guard.guard_session(session, endpoint_of)
    config = {
        "client": {
            "base_url": base_url,
            "auth": {"type": "bearer", "token": token},
            "session": session,
        },
        "resource_defaults": defaults,
        "resources": endpoints,
    }
    for resource in rest_api_resources(config):
        resource.add_map(add_load_metadata(SOURCE_NAME))
        yield resource


def _require_append(where: str, spec: dict[str, Any]) -> None:
    """Raw is append-only: a merge would delete old versions before the new load is recorded."""
    disposition = spec.get("write_disposition", "append")
    if disposition != "append":
        raise ValueError(
            f"sources.payments.{where}: write_disposition {disposition!r} is not supported:"
            " raw is an append-only log (staging dedupes, `elt compact` drops old versions);"
            " remove the key"
        )


def _endpoint(
    name: str,
    spec: dict[str, Any],
    defaults: dict[str, Any],
    guard: ResponseGuard,
    max_pages: int,
) -> dict[str, Any]:
    """The rest_api resource config of `name`, with the strict paginator and the guard hook."""
    resource = copy.deepcopy(dict(spec))
    _require_append(f"resources.{name}", resource)
    resource["write_disposition"] = "append"
    resource["name"] = name
    endpoint = resource.get("endpoint") or {}
    endpoint = {"path": endpoint} if isinstance(endpoint, str) else dict(endpoint)
    endpoint.setdefault("path", name)
    default_endpoint = defaults.get("endpoint") or {}
    paginator = endpoint.get("paginator", default_endpoint.get("paginator"))
    if paginator == "cursor" or (isinstance(paginator, dict) and paginator.get("type") == "cursor"):
        options = {k: v for k, v in dict(paginator or {}).items() if k != "type"}
        # one instance per endpoint: paginators hold state
        endpoint["paginator"] = CheckedCursorPaginator(
            endpoint=name, max_pages=max_pages, **options
        )
    actions = endpoint.get("response_actions", default_endpoint.get("response_actions")) or []
    endpoint["response_actions"] = [*actions, guard.hook(name)]
    resource["endpoint"] = endpoint
    return resource


def _path_of(spec: dict[str, Any]) -> str:
    return spec["endpoint"]["path"].strip("/").rsplit("/", 1)[-1]


def _last_path(url: str) -> str:
    return urlsplit(url).path.strip("/").rsplit("/", 1)[-1]


def versioning(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each endpoint's key and incremental cursor, as staging dedupes (loaders/compaction.py)."""
    from loaders.compaction import Versioning

    resources = (overrides or {}).get("resources") or dlt.config.get(
        "sources.payments.resources", dict
    )
    found = {}
    for name, spec in resources.items():
        key = spec.get("primary_key")
        if not key:
            continue
        endpoint = spec.get("endpoint") or {}
        params = endpoint.get("params", {}) if isinstance(endpoint, dict) else {}
        cursors = [
            param["cursor_path"]
            for param in params.values()
            if isinstance(param, dict) and param.get("type") == "incremental"
        ]
        keys = (key,) if isinstance(key, str) else tuple(key)
        found[name] = Versioning(keys, cursors[0] if cursors else "updated_at")
    return found
