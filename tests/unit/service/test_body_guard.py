"""The body guard at the ASGI level: a body that stops coming is 408, in the error shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

from service.main import create_app
from tests.unit.service.fakes import SETTINGS, World, services_of


async def call(messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]]) -> list[Any]:
    """POST /v1/pushes to the app over fakes; ``receive`` hands out ``messages`` and then
    waits forever, as a client that stopped sending does."""
    settings = SETTINGS.model_copy(update={"body_timeout_seconds": 0.2})
    app = create_app(settings, services=services_of(World()))
    app.state.services = services_of(World())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/pushes",
        "raw_path": b"/v1/pushes",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    pending = list(messages)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()
        raise AssertionError  # pragma: no cover - never set

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_stalled_body_is_408() -> None:
    """Content-Length 100, 13 bytes sent, then nothing: 408 request_timeout, closing."""
    sent = await call(
        [{"type": "http.request", "body": b'{"repository"', "more_body": True}],
        [(b"content-length", b"100")],
    )
    start, body = sent
    assert (408, "request_timeout", True) == (
        start["status"],
        json.loads(body["body"])["error"],
        (b"connection", b"close") in start["headers"],
    )


async def test_streamed_body_over_the_cap_is_413() -> None:
    """A chunked body passing PUSHGATE_MAX_BODY_BYTES is 413 before the app parses it."""
    chunk = {"type": "http.request", "body": b"x" * SETTINGS.max_body_bytes, "more_body": True}
    sent = await call([chunk, chunk], [])
    assert 413 == sent[0]["status"]
