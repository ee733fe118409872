"""Small real HTTP servers on 127.0.0.1 for the observability tests: a webhook receiver
and a Pushgateway-compatible receiver (PUT/POST /metrics/job/<job>/<label>/<value>...),
each recording what it was sent. (A hung peer: doctor_servers' `blackhole` fixture.)"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What a receiver got; `statuses` are answered in turn (then 200)."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def bodies(self) -> list[dict]:
        return [request.json() for request in self.requests if request.method == "POST"]


@contextlib.contextmanager
def receiver(path: str = "/", statuses: list[int] | None = None) -> Iterator[Receiver]:
    """An HTTP server recording every PUT/POST; the Pushgateway answers PUT and POST alike."""
    record = Receiver(url="", statuses=list(statuses or []))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _store(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with lock:
                record.requests.append(
                    Received(self.command, self.path, body, dict(self.headers.items()))
                )
                status = record.statuses.pop(0) if record.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_POST = _store

        def log_message(self, *_args) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    record.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
