"""Retries against a real HTTP server that answers 503 (with Retry-After) before 200."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from service.client import AsyncPushClient, PushClient, RetryPolicy, ServiceUnreachable
from service.client.errors import LeaseTimeout
from tests.servers import free_port
from tests.uvicorn_server import serve

pytestmark = pytest.mark.integration

OK = {
    "outcome": "pushed",
    "repository": "team/app",
    "tag": "v1",
    "digest": "sha256:" + "a" * 64,
    "previous_digest": None,
    "sequence": 3,
    "token": 7,
    "waited_ms": 1.5,
}


class FlakyApp:
    """Answers 503 lease_timeout with Retry-After ``failures`` times, then 200."""

    def __init__(self, failures: int, retry_after: str = "0.3") -> None:
        self.failures = failures
        self.retry_after = retry_after
        self.arrivals: list[float] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.arrivals.append(time.monotonic())
        if len(self.arrivals) <= self.failures:
            status = 503
            body: dict[str, Any] = {"error": "lease_timeout", "message": "busy"}
            headers = [(b"retry-after", self.retry_after.encode())]
        else:
            status, body, headers = 200, OK, []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *headers],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def test_sync_client_retries_503_and_waits_retry_after() -> None:
    """Two 503s with Retry-After 0.3 s, then success: one result, gaps at least 0.3 s."""
    app = FlakyApp(failures=2)
    with serve(app) as url, PushClient(url) as client:
        result = client.push("team/app", "v1", "{}", sequence=3)
    gaps = [b - a for a, b in zip(app.arrivals, app.arrivals[1:], strict=False)]
    assert ("pushed", 3) == (result.outcome, len(app.arrivals))
    assert all(gap >= 0.3 for gap in gaps), gaps


async def test_async_client_retries_503_and_waits_retry_after() -> None:
    """The async client retries the same way."""
    app = FlakyApp(failures=2)
    with serve(app) as url:
        async with AsyncPushClient(url) as client:
            result = await client.push("team/app", "v1", "{}", sequence=3)
    gaps = [b - a for a, b in zip(app.arrivals, app.arrivals[1:], strict=False)]
    assert ("pushed", 3) == (result.outcome, len(app.arrivals))
    assert all(gap >= 0.3 for gap in gaps), gaps


def test_retries_stop_at_the_deadline_with_the_last_error() -> None:
    """A server that stays busy gives the last error once the deadline would pass."""
    app = FlakyApp(failures=1000, retry_after="0.2")
    with (
        serve(app) as url,
        PushClient(url, retry=RetryPolicy(deadline=1.0)) as client,
        pytest.raises(LeaseTimeout),
    ):
        client.push("team/app", "v1", "{}")
    assert 2 <= len(app.arrivals) <= 6


def test_unreachable_service_is_a_clear_error() -> None:
    """Nothing listening: ServiceUnreachable naming the URL, after retrying to the deadline."""
    url = f"http://127.0.0.1:{free_port()}"
    with (
        PushClient(url, retry=RetryPolicy(deadline=0.5, base=0.05)) as client,
        pytest.raises(ServiceUnreachable, match=r"127\.0\.0\.1"),
    ):
        client.tag("team/app", "v1")


def test_refused_connections_are_retried_briefly() -> None:
    """Nothing listening, with the default 120 s deadline: a few attempts whose planned
    waits fit in the 5 s connection budget, then ServiceUnreachable."""
    delays: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"
    with (
        PushClient(url, on_retry=lambda _error, delay, _left: delays.append(delay)) as client,
        pytest.raises(ServiceUnreachable),
    ):
        client.tag("team/app", "v1")
    assert 120.0 == client.retry.deadline
    assert len(delays) >= 2, delays
    assert sum(delays) <= 5.0, delays


def test_503s_are_retried_past_the_connection_budget() -> None:
    """The short budget is for refused connections only: answers that say busy keep
    being retried within the deadline."""
    app = FlakyApp(failures=3, retry_after="0.2")
    retry = RetryPolicy(deadline=10.0, connect_deadline=0.1)
    with serve(app) as url, PushClient(url, retry=retry) as client:
        result = client.push("team/app", "v1", "{}")
    assert ("pushed", 4) == (result.outcome, len(app.arrivals))


class BusyThenSilent:
    """Answers the first request 503 lease_timeout, then holds every answer until
    ``released``."""

    def __init__(self) -> None:
        self.requests = 0
        self.released = False

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.requests += 1
        for _ in range(600 if self.requests > 1 else 0):  # at most 30 s
            if self.released:
                break
            await asyncio.sleep(0.05)
        body = json.dumps({"error": "lease_timeout", "message": "busy"}).encode()
        headers = [(b"content-type", b"application/json"), (b"retry-after", b"0.1")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def test_an_attempt_cut_by_the_deadline_reports_the_last_answer() -> None:
    """When the deadline cuts a retry short, the error is the service's last answer
    (busy: LeaseTimeout), not a bare "did not answer"."""
    app = BusyThenSilent()
    with serve(app) as url, PushClient(url, retry=RetryPolicy(deadline=1.0)) as client:
        try:
            with pytest.raises(LeaseTimeout):
                client.push("team/app", "v1", "{}")
        finally:
            app.released = True
    assert 2 == app.requests
