"""Servers on 127.0.0.1 that misbehave on purpose: they accept and never answer, trickle,
page forever, or reset a proxied connection mid-stream. Each is a context manager that
stops its threads and closes its sockets on exit, so a test leaves nothing running."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
from collections.abc import Callable


class _SocketServer:
    """Accepts on 127.0.0.1 and gives each connection to `handle(conn, stopped)` in a thread."""

    def __init__(self, handle: Callable[[socket.socket, threading.Event], None]) -> None:
        self.handle = handle
        self.stopped = threading.Event()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections.append(conn)
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.handle(conn, self.stopped)

    def __enter__(self) -> _SocketServer:
        self.acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.acceptor.join(5)
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.close()
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


def silent_server() -> _SocketServer:
    """Accepts every connection and never sends a byte (a host that hangs)."""

    def handle(conn: socket.socket, stopped: threading.Event) -> None:
        stopped.wait()

    return _SocketServer(handle)


def _read_request(conn: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1")


def trickling_http_server(every: float, *, in_headers: bool = False) -> _SocketServer:
    """Answers 200 and then sends one byte every `every` seconds, in the body or already in
    the headers: no single read ever waits long, the answer never ends."""

    def handle(conn: socket.socket, stopped: threading.Event) -> None:
        _read_request(conn)
        if in_headers:
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        else:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n"
            )
        while not stopped.wait(every):
            conn.sendall(b"a" if in_headers else b" ")

    return _SocketServer(handle)


def endless_pages_server() -> _SocketServer:
    """Every request gets an empty page, `has_more` and a cursor it never handed out before."""
    counter = iter(range(10**9))
    requests: list[str] = []

    def handle(conn: socket.socket, stopped: threading.Event) -> None:
        while not stopped.is_set():
            request = _read_request(conn)
            if not request:
                return
            requests.append(request.split("\r\n", 1)[0])
            body = json.dumps(
                {"data": [], "has_more": True, "next_cursor": f"c{next(counter)}"}
            ).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )

    server = _SocketServer(handle)
    server.requests = requests  # type: ignore[attr-defined]
    return server


def resetting_proxy(target_port: int, reset_after_bytes: int) -> _SocketServer:
    """Forwards to 127.0.0.1:`target_port`; a connection whose answers pass
    `reset_after_bytes` is reset (RST) on both sides, as a dropped network would.

    One thread per connection moves both directions (select), so no other thread sits
    in a recv on the socket when it is closed: the close then sends the RST at once."""

    def handle(client: socket.socket, stopped: threading.Event) -> None:
        upstream = socket.create_connection(("127.0.0.1", target_port))
        sent = 0
        try:
            while not stopped.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in ready:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    if sock is upstream:
                        sent += len(chunk)
                        if sent > reset_after_bytes:
                            for each in (client, upstream):
                                each.setsockopt(
                                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                                )
                                each.close()
                            return
                        client.sendall(chunk)
                    else:
                        upstream.sendall(chunk)
        finally:
            with contextlib.suppress(OSError):
                upstream.close()

    return _SocketServer(handle)
