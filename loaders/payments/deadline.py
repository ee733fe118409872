"""A total deadline per HTTP request: from connect to the last byte, not per socket read.

requests' timeout bounds each socket read, so a server trickling one byte every few
seconds never trips it and holds a run forever. `DeadlineAdapter` reads the whole answer
inside `send` (as requests would right after it) under a timer; when the deadline passes
the timer shuts the connection's socket down, the blocked read returns at once, and the
request fails with `RequestDeadlineExceeded`, naming the endpoint. dlt's retry does not
retry it: a server that slow is not answering, and the next run resumes at the cursor.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# the connection each thread checked out last: the one its current request uses
_checked_out = threading.local()
_RECHECK_SECONDS = 0.2  # a deadline passing while connecting: cut as soon as a socket exists


class RequestDeadlineExceeded(Exception):
    hint = (
        "the API answers too slowly: check it, or raise request_deadline_seconds in"
        " [sources.payments]; the cursor did not move"
    )


def _remember_connection(pool_class: type) -> type:
    class Remembering(pool_class):  # type: ignore[misc, valid-type]
        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)
            box = getattr(_checked_out, "box", None)
            if box is not None:
                box["conn"] = conn
            return conn

    Remembering.__name__ = f"Remembering{pool_class.__name__}"
    return Remembering


_POOLS = {
    "http": _remember_connection(HTTPConnectionPool),
    "https": _remember_connection(HTTPSConnectionPool),
}


class DeadlineAdapter(HTTPAdapter):
    def __init__(
        self,
        source: str,
        seconds: float,
        endpoint_of: Callable[[PreparedRequest], str],
        **kwargs: Any,
    ) -> None:
        self.source, self.seconds, self.endpoint_of = source, seconds, endpoint_of
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def send(self, request: PreparedRequest, stream: bool = False, **kwargs: Any) -> Response:
        box: dict[str, Any] = {}
        _checked_out.box = box
        expired = threading.Event()
        timers: list[threading.Timer] = []

        def cut() -> None:
            expired.set()
            sock = getattr(box.get("conn"), "sock", None)
            if sock is None:  # still connecting (bounded by the connect timeout): look again
                _arm(_RECHECK_SECONDS)
                return
            with contextlib.suppress(OSError):  # already closed: nothing left to cut
                sock.shutdown(socket.SHUT_RDWR)

        def _arm(seconds: float) -> None:
            timer = threading.Timer(seconds, cut)
            timer.daemon = True
            timers.append(timer)
            timer.start()

        _arm(self.seconds)
        try:
            response = super().send(request, stream=True, **kwargs)
            if not stream:
                response.content  # noqa: B018 - read the body under the deadline
        except Exception:
            if expired.is_set():
                raise self._exceeded(request) from None  # the cut socket's error is noise
            raise
        finally:
            for timer in timers:
                timer.cancel()
            _checked_out.box = None
        if expired.is_set():  # a body cut short can look complete (no Content-Length)
            response.close()
            raise self._exceeded(request)
        return response

    def _exceeded(self, request: PreparedRequest) -> RequestDeadlineExceeded:
        return RequestDeadlineExceeded(
            f"{self.source} endpoint `{self.endpoint_of(request)}` did not finish answering"
            f" within {self.seconds:g}s (request_deadline_seconds)"
        )


def mount_deadline(
    session: Session,
    source: str,
    seconds: float,
    endpoint_of: Callable[[PreparedRequest], str],
    pool_maxsize: int = 50,
) -> None:
    """Give every http(s) request of `session` a total deadline of `seconds`."""
    adapter = DeadlineAdapter(source, seconds, endpoint_of, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
