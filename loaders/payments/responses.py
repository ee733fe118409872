"""What dlt's REST client lacks for a rate-limited API: a wait budget, a clean stop, clear errors.

dlt's retrying session already retries 429 and 5xx with backoff and honours `Retry-After`.
`ResponseGuard` adds, as a response hook (a rest_api `response_actions` callable):

- a time budget for `Retry-After` waits: a 429 whose wait would overrun what is left of
  the budget (or the last attempt's 429) stops the run cleanly instead of sleeping or
  failing: it records a `rate_limited` stop and ends pagination through dlt's own
  `IgnoreResponseException`, so the pages already read are loaded and the incremental
  cursor covers exactly them; after that the session sends no request at all. A 5xx
  asking for such a wait (503 with `Retry-After`) stops the same way, as `unavailable`;
- error statuses as one line naming the endpoint and the status, never the body, the URL
  or the token (401, 403 and 404 are not retried: dlt retries only 429 and 5xx);
- a 200 that is not JSON (an HTML maintenance page) as an error naming the endpoint,
  never an empty page.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from dlt.sources.helpers.requests.retry import wait_exponential_retry_after
from dlt.sources.helpers.rest_client.exceptions import IgnoreResponseException
from requests import HTTPError, Response, Session

from loaders import stops

_HINTS = {
    401: "check the token (SOURCES__PAYMENTS__TOKEN or .dlt/secrets.toml)",
    403: "check the token's permissions for this endpoint",
    404: "check base_url and the endpoint path in .dlt/config.toml",
}


class EndpointHTTPError(HTTPError):
    """An error status; an HTTPError carrying the response, so dlt's retry still sees it."""

    def __init__(self, source: str, endpoint: str, response: Response, attempt: str = "") -> None:
        reason = f" {response.reason}" if response.reason else ""
        super().__init__(
            f"{source} endpoint `{endpoint}` answered HTTP {response.status_code}{reason}{attempt}",
            response=response,
        )
        status = response.status_code
        self.hint = _HINTS.get(status) or (
            "the API is failing; rerun later: the cursor did not move" if status >= 500 else None
        )


class UnexpectedContent(Exception):
    """A success status whose body is not JSON: a proxy or maintenance page, not data."""

    hint = "check base_url; the API may be down for maintenance"


class ResponseGuard:
    """Shared by every endpoint of one source run: one budget, one stop for all of them."""

    def __init__(
        self,
        source: str,
        *,
        budget_seconds: float,
        max_attempts: int,
        backoff_factor: float,
        max_delay: float,
    ) -> None:
        self.source = source
        self.budget_seconds = budget_seconds
        self.max_attempts = max_attempts
        self.backoff_factor = backoff_factor
        self.max_delay = max_delay
        self.waited = 0.0  # seconds of Retry-After (or backoff) granted so far
        self.stop_reason: tuple[str, str] | None = None  # (cause, why)
        self._attempts: dict[str, int] = {}  # consecutive retryable answers per endpoint
        self._lock = threading.Lock()

    def hook(self, endpoint: str) -> Callable[[Response], None]:
        """The response hook of `endpoint`."""

        def check(response: Response, *args: Any, **kwargs: Any) -> None:
            status = response.status_code
            retryable = status == 429 or status >= 500
            with self._lock:
                attempt = self._attempts.get(endpoint, 0) + 1 if retryable else 0
                self._attempts[endpoint] = attempt
            if status == 429:
                self._grant_wait_or_stop(endpoint, response, attempt, stops.RATE_LIMITED)
            elif retryable and response.headers.get("Retry-After"):
                self._grant_wait_or_stop(endpoint, response, attempt, stops.UNAVAILABLE)
            if status >= 400:
                suffix = f" (attempt {attempt} of {self.max_attempts})" if retryable else ""
                raise EndpointHTTPError(self.source, endpoint, response, suffix)
            if not _is_json(response):
                kind = response.headers.get("Content-Type", "no content type")
                raise UnexpectedContent(
                    f"{self.source} endpoint `{endpoint}` answered HTTP {status} with"
                    f" {kind.split(';')[0]}, not JSON"
                )

        return check

    def _grant_wait_or_stop(
        self, endpoint: str, response: Response, attempt: int, cause: str
    ) -> None:
        header = response.headers.get("Retry-After")
        advertised = _retry_after_seconds(header) if header else None
        # what dlt's retry will sleep: the advertised wait, else its exponential backoff
        wait = (
            advertised
            if advertised is not None
            else min(self.max_delay, self.backoff_factor * 2 ** (attempt - 1))
        )
        with self._lock:
            left = self.budget_seconds - self.waited
            if attempt >= self.max_attempts:
                if cause != stops.RATE_LIMITED:
                    return  # the last attempt's 5xx fails the run: the API is broken, not busy
                reason = f"still answering 429 after {attempt} attempts"
            elif wait > left:
                told = "Retry-After" if advertised is not None else "backoff"
                reason = (
                    f"answered {response.status_code} asking to wait {wait:g}s ({told}),"
                    f" beyond the {left:g}s left of the {self.budget_seconds:g}s wait budget"
                )
            else:
                self.waited += wait
                return
        self._stop(endpoint, cause, reason)

    def _stop(self, endpoint: str, cause: str, reason: str) -> None:
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = (cause, f"`{endpoint}` {reason}")
        stops.record(stops.Stop(self.source, endpoint, cause, reason))
        raise IgnoreResponseException

    def guard_session(self, session: Session, endpoint_of: Callable[[Any], str]) -> Session:
        """Make `session` send nothing more once the run stopped: no requests into a limit."""
        send = session.send

        def send_unless_stopped(request: Any, **kwargs: Any) -> Response:
            if self.stop_reason is not None:
                cause, reason = self.stop_reason
                stops.record(
                    stops.Stop(self.source, endpoint_of(request), cause, f"not requested: {reason}")
                )
                raise IgnoreResponseException
            return send(request, **kwargs)

        session.send = send_unless_stopped  # type: ignore[method-assign]
        return session


def shape(value: Any) -> str:
    """What a JSON value looks like, never what it holds: `a JSON object of 3 keys`.
    Error messages say this instead of quoting a body, which carries row values."""
    if isinstance(value, dict):
        return f"a JSON object of {len(value)} key{'s' if len(value) != 1 else ''}"
    if isinstance(value, list):
        return f"a JSON array of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, bool):
        return "a JSON boolean"
    if value is None:
        return "JSON null"
    if isinstance(value, int | float):
        return "a JSON number"
    return f"a JSON string of {len(str(value))} characters"


def _retry_after_seconds(header: str) -> float | None:
    """Seconds from a `Retry-After` header (seconds or HTTP date), parsed as dlt's retry does."""
    return wait_exponential_retry_after()._parse_retry_after(header)


def _is_json(response: Response) -> bool:
    if "json" in response.headers.get("Content-Type", "").lower():
        return True
    try:
        json.loads(response.content)
    except ValueError:
        return False
    return True
