"""The demo payments API: a real HTTP server on 127.0.0.1 serving demo/payments.py's tables.

    GET /v1/payments?limit=100&updated_since=<ISO 8601>&cursor=<opaque>
    GET /v1/refunds?...         same shape
    GET /health                 no auth; for readiness checks

    Authorization: Bearer <token>               401 without it
    200 {"data": [...], "next_cursor": "..." | null, "has_more": bool}

Records come in (updated_at, id) order; `updated_since` is inclusive; `cursor` continues
after the last record of the previous page (keyset pagination, so rows changing during
a read are not skipped). Timestamps are UTC ISO 8601 with microseconds, amounts integer
cents. Above `rate_limit` requests per second (after a burst) the API answers 429 with
`Retry-After` in whole seconds.

Tests run `PaymentsAPI` in a thread and switch on faults (`api.faults`): bursts of any
status, slow responses, an HTML page with status 200, a repeated or a missing cursor.
`elt demo` runs it as a background process (`python -m demo.payments_api`), its pid,
port and token in `.elt/payments_api.json`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/v1/"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
STATE_FILE = "payments_api.json"
SHOP_URL_ENV = "ELT_DEMO_SHOP_URL"
TOKEN_ENV = "ELT_DEMO_PAYMENTS_TOKEN"

# endpoint -> (table, id column, columns served in this order)
_TIMES = ("created_at", "updated_at")
_PAYMENT_COLUMNS = "payment_id order_id amount currency payment_method status"
_REFUND_COLUMNS = "refund_id payment_id order_id amount currency reason status"
ENDPOINTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "payments": ("payments_api.payments", "payment_id", (*_PAYMENT_COLUMNS.split(), *_TIMES)),
    "refunds": ("payments_api.refunds", "refund_id", (*_REFUND_COLUMNS.split(), *_TIMES)),
}

HTML_PAGE = b"<!doctype html><html><body><h1>Scheduled maintenance</h1></body></html>"


@dataclass
class Fault:
    kind: str  # status | html | slow | repeat_cursor | drop_cursor
    remaining: int | None  # None: forever
    skip: int = 0  # let this many matching requests through first
    path: str | None = None  # endpoint name; None: every endpoint
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0


class Faults:
    """Switchable misbehaviour; each rule applies to the matching requests in order."""

    def __init__(self) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()

    def fail(
        self,
        status: int,
        *,
        times: int | None = 1,
        after: int = 0,
        retry_after: float | str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer `status` (with `Retry-After` if given) `times` times (None: forever)."""
        header = None if retry_after is None else str(retry_after)
        self._add(Fault("status", times, after, path, status=status, retry_after=header))

    def html(self, *, times: int | None = 1, after: int = 0, path: str | None = None) -> None:
        """Answer an HTML maintenance page with status 200."""
        self._add(Fault("html", times, after, path))

    def slow(
        self, seconds: float, *, times: int | None = None, after: int = 0, path: str | None = None
    ) -> None:
        """Wait `seconds` before answering."""
        self._add(Fault("slow", times, after, path, seconds=seconds))

    def repeat_cursor(self, *, path: str | None = None) -> None:
        """Hand back the request's own cursor as the next one: a client that trusts it loops."""
        self._add(Fault("repeat_cursor", None, 0, path))

    def drop_cursor(self, *, times: int | None = 1, path: str | None = None) -> None:
        """Say `has_more` but give no cursor: a client that trusts the cursor stops early."""
        self._add(Fault("drop_cursor", times, 0, path))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._rules.append(fault)

    def take(self, endpoint: str) -> list[Fault]:
        """The faults that apply to this request, counting it against each rule."""
        applied = []
        with self._lock:
            for rule in self._rules:
                if rule.path not in (None, endpoint) or rule.remaining == 0:
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                applied.append(rule)
        return applied


class TokenBucket:
    """`rate` requests per second after a burst of `burst`; `take` says how long to wait."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = float(burst), time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a request may pass now, else the seconds until it may."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


@dataclass(frozen=True)
class RequestRecord:
    at: float  # time.monotonic()
    endpoint: str
    params: dict[str, str]
    status: int


@dataclass
class PaymentsAPI:
    """The API in this process: `start()` serves it from a thread until `stop()`."""

    shop_dsn: str
    token: str
    host: str = "127.0.0.1"
    port: int = 0
    rate_limit: float | None = None  # requests per second; None: unlimited
    burst: int = 10
    quiet: bool = True
    faults: Faults = field(default_factory=Faults)
    requests: list[RequestRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._bucket = TokenBucket(self.rate_limit, self.burst) if self.rate_limit else None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._pool: Any = None
        self._log_lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL of the endpoints (`<url>payments`, `<url>refunds`)."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    def bind(self) -> PaymentsAPI:
        from psycopg2.pool import ThreadedConnectionPool

        self._pool = ThreadedConnectionPool(1, 8, self.shop_dsn, application_name="elt-demo-api")
        self._server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        return self

    def start(self) -> PaymentsAPI:
        self.bind()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.05)  # stop() returns within 50 ms

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._pool is not None:
            self._pool.closeall()
            self._pool = None

    def __enter__(self) -> PaymentsAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """No faults, an empty request log: a clean slate for the next test."""
        self.faults.clear()
        with self._log_lock:
            self.requests.clear()

    def requests_to(self, endpoint: str) -> list[RequestRecord]:
        with self._log_lock:
            return [record for record in self.requests if record.endpoint == endpoint]

    def record(self, endpoint: str, params: dict[str, str], status: int) -> None:
        with self._log_lock:
            self.requests.append(RequestRecord(time.monotonic(), endpoint, params, status))

    def rate_limited(self) -> float:
        return self._bucket.take() if self._bucket else 0.0

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        conn = self._pool.getconn()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                yield cur
        finally:
            self._pool.putconn(conn)

    def page(
        self, endpoint: str, limit: int, updated_since: str | None, after: tuple[str, str] | None
    ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        """One page of records and the (updated_at, id) key to continue after, if any."""
        table, key, columns = ENDPOINTS[endpoint]
        with self.cursor() as cur:
            cur.execute(
                f"""
                select {", ".join(columns)} from {table}
                where updated_at >= %(since)s::timestamptz
                    and (updated_at, {key}) > (%(after_at)s::timestamptz, %(after_id)s)
                order by updated_at, {key}
                limit %(limit)s
                """,
                {
                    "since": updated_since or "-infinity",
                    "after_at": after[0] if after else "-infinity",
                    "after_id": after[1] if after else "",
                    "limit": limit + 1,
                },
            )
            rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
        records = [{name: _json_value(value) for name, value in row.items()} for row in rows]
        more = len(records) > limit
        records = records[:limit]
        last = records[-1] if more else None
        return records, ((last["updated_at"], last[key]) if last else None)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def _encode_cursor(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    padded = cursor + "=" * (-len(cursor) % 4)
    updated_at, key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    return str(updated_at), str(key)


class _BadRequest(Exception):
    pass


def _handler_for(api: PaymentsAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "elt-demo-payments/1"

        def log_message(self, format: str, *args: Any) -> None:
            if not api.quiet:
                super().log_message(format, *args)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/health":
                self._json(HTTPStatus.OK, {"status": "ok"})
                return
            endpoint = parts.path.removeprefix(API_PREFIX).strip("/")
            params = {name: values[-1] for name, values in parse_qs(parts.query).items()}
            try:
                status = self._serve(endpoint, params)
            except Exception:  # the database went away: an honest 500, not a dropped line
                status = self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal", "try later")
            api.record(endpoint, params, status)

        def _serve(self, endpoint: str, params: dict[str, str]) -> int:
            if self.headers.get("Authorization", "") != f"Bearer {api.token}":
                return self._error(HTTPStatus.UNAUTHORIZED, "unauthorized", "bad or no token")
            if endpoint not in ENDPOINTS:
                return self._error(HTTPStatus.NOT_FOUND, "not_found", "no such endpoint")
            wait = api.rate_limited()
            if wait:
                headers = {"Retry-After": str(max(1, math.ceil(wait)))}
                return self._error(
                    HTTPStatus.TOO_MANY_REQUESTS, "rate_limited", "slow down", headers
                )
            faults = api.faults.take(endpoint)
            for fault in faults:
                if fault.kind == "slow":
                    time.sleep(fault.seconds)
            for fault in faults:
                if fault.kind == "status":
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    return self._error(fault.status, "injected", "injected fault", headers)
                if fault.kind == "html":
                    self._send(HTTPStatus.OK, HTML_PAGE, "text/html; charset=utf-8")
                    return HTTPStatus.OK
            try:
                limit = int(params.get("limit", DEFAULT_PAGE_SIZE))
                if not 1 <= limit <= MAX_PAGE_SIZE:
                    raise _BadRequest(f"limit must be 1..{MAX_PAGE_SIZE}")
                since = params.get("updated_since")
                if since is not None:
                    datetime.fromisoformat(since)
                after = _decode_cursor(params["cursor"]) if params.get("cursor") else None
            except (ValueError, TypeError, _BadRequest) as exc:
                return self._error(HTTPStatus.BAD_REQUEST, "invalid_request", str(exc))
            records, next_key = api.page(endpoint, limit, since, after)
            next_cursor = _encode_cursor(next_key) if next_key else None
            has_more = bool(next_cursor)
            if next_cursor and any(fault.kind == "repeat_cursor" for fault in faults):
                next_cursor = params.get("cursor") or next_cursor
            if any(fault.kind == "drop_cursor" for fault in faults):
                next_cursor = None
            body = {"data": records, "next_cursor": next_cursor, "has_more": has_more}
            self._json(HTTPStatus.OK, body)
            return HTTPStatus.OK

        def _error(
            self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
        ) -> int:
            self._json(status, {"error": {"type": kind, "message": message}}, headers)
            return status

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(body).encode(), "application/json", headers)

        def _send(
            self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
        ) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout): nothing to answer

    return Handler


# ---- the background process `elt demo` starts, and its state file ----


def state_path(home: Path) -> Path:
    return home / STATE_FILE


def running(home: Path) -> dict[str, Any] | None:
    """The state of the background API started under `home` if it is alive, else None."""
    path = state_path(home)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _is_our_process(state.get("pid")):
        return None
    try:
        with urllib.request.urlopen(f"http://{state['host']}:{state['port']}/health", timeout=2):
            return state
    except OSError:
        return None


def _is_our_process(pid: Any) -> bool:
    import psutil

    try:
        return isinstance(pid, int) and "demo.payments_api" in " ".join(
            psutil.Process(pid).cmdline()
        )
    except (psutil.Error, OSError):
        return False


def ensure_running(
    home: Path, shop_dsn: str, shop_identity: str, *, rate_limit: float = 10, burst: int = 10
) -> tuple[dict[str, Any], bool]:
    """Start the API in the background unless it runs for this shop; (state, started)."""
    state = running(home)
    if state and state.get("shop") == shop_identity:
        return state, False
    if state:
        stop(home)
    home.mkdir(parents=True, exist_ok=True)
    path = state_path(home)
    path.unlink(missing_ok=True)
    env = {**os.environ, SHOP_URL_ENV: shop_dsn, TOKEN_ENV: secrets.token_urlsafe(24)}
    with (home / "payments_api.log").open("ab") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "demo.payments_api", "--state", str(path)),
                *("--shop", shop_identity, "--rate-limit", str(rate_limit), "--burst", str(burst)),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives `elt demo`, not killed by its terminal
            cwd=Path(__file__).resolve().parents[1],
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        state = running(home)
        if state and state["pid"] == process.pid:
            return state, True
        if process.poll() is not None:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    raise RuntimeError(f"the demo payments API did not start; see {home / 'payments_api.log'}")


def stop(home: Path) -> int | None:
    """Stop the background API; its pid, or None when none was running.

    The state file stays: it says where the demo API was, so `elt doctor` reports it
    down (a connectivity FAIL with the command that starts it) rather than unconfigured.
    `running()` tells a stopped API by its pid; `elt demo` writes the file anew.
    """
    path = state_path(home)
    try:
        pid = json.loads(path.read_text()).get("pid")
    except (OSError, ValueError):
        return None
    stopped = None
    if _is_our_process(pid):
        import psutil

        process = psutil.Process(pid)
        process.terminate()
        try:
            process.wait(timeout=10)
        except psutil.TimeoutExpired:
            process.kill()
        stopped = pid
    return stopped


def main(argv: list[str] | None = None) -> None:
    """The background process: the DSN and token arrive in the environment, never in argv."""
    parser = argparse.ArgumentParser(prog="python -m demo.payments_api")
    parser.add_argument("--state", type=Path, required=True, help="where to write pid and port")
    parser.add_argument("--shop", default="", help="which shop database (no password)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate-limit", type=float, default=10)
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args(argv)
    api = PaymentsAPI(
        os.environ[SHOP_URL_ENV],
        os.environ[TOKEN_ENV],
        port=args.port,
        rate_limit=args.rate_limit or None,
        burst=args.burst,
        quiet=False,
    ).bind()
    state = {
        "pid": os.getpid(),
        "host": api.host,
        "port": api.port,
        "url": api.url,
        "token": api.token,
        "shop": args.shop,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    partial = args.state.with_suffix(".tmp")
    partial.write_text(json.dumps(state))
    partial.chmod(0o600)  # holds the token
    partial.replace(args.state)

    def _shutdown(signum: int, frame: Any) -> None:
        threading.Thread(target=api.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    # the state file outlives the process: it tells `elt doctor` where the API was
    api.serve_forever()


if __name__ == "__main__":
    main()
