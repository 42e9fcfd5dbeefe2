"""Slow clients over a real socket (``service.server``'s uvicorn): late headers close the
connection, a body that does not arrive whole in time is answered 408, and neither holds
the server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from service.main import create_app
from service.server import Server, server_config
from tests.servers import free_port
from tests.unit.service.fakes import SETTINGS, World, services_of

pytestmark = pytest.mark.integration


@pytest.fixture
def port() -> Iterator[int]:
    """The app over fakes, served as ``pushgate serve`` serves it, with short timeouts."""
    settings = SETTINGS.model_copy(
        update={"header_timeout_seconds": 0.5, "body_timeout_seconds": 0.5}
    )
    port = free_port()
    started = threading.Event()
    config = server_config(
        create_app(settings, services=services_of(World())), settings, host="127.0.0.1", port=port
    )
    server = Server(config, started.set)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert started.wait(30)
    yield port
    server.should_exit = True
    thread.join(timeout=15)


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes (the test's own limit: 20 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_short_body_is_408_and_closed(port: int) -> None:
    """A Content-Length larger than the body sent: 408 request_timeout, connection closed."""
    head = b"POST /v1/pushes HTTP/1.1\r\nhost: pg\r\ncontent-type: application/json\r\n"
    answer = exchange(port, head + b"content-length: 100\r\n\r\n" + b'{"repository"')
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"error": "request_timeout"' in answer


def test_late_headers_close_the_connection(port: int) -> None:
    """Headers that never finish: the server closes the connection, answering nothing."""
    assert b"" == exchange(port, b"POST /v1/pushes HTTP/1.1\r\nhost: pg\r\n")


def test_silent_connection_is_closed(port: int) -> None:
    """A connection that sends nothing at all is closed too."""
    assert b"" == exchange(port, b"")


def test_late_headers_after_a_request_close_the_connection(port: int) -> None:
    """On a kept-alive connection, a second request whose headers stall is closed as well
    (the keep-alive timer stops at its first byte)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: pg\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert b"" == sock.recv(65536)
