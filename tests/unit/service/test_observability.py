"""One log event per push, Prometheus metrics, and the body cap on streamed bodies."""

from __future__ import annotations

import httpx
import structlog
from structlog.testing import LogCapture

from tests.unit.service.fakes import World, manifest


def body(**extra: object) -> dict[str, object]:
    return {"repository": "team/app", "tag": "v1", "manifest": manifest(1), **extra}


async def test_one_push_event_with_the_fields_operators_need(api: httpx.AsyncClient) -> None:
    """Each push logs one `push` event with request id, ref, digest, sequence, token,
    outcome, lease wait and ECR time."""
    capture = LogCapture()
    old = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        await api.post("/v1/pushes", json=body(sequence=4), headers={"x-request-id": "r-9"})
    finally:
        structlog.configure(**old)
    events = [e for e in capture.entries if e["event"] == "push"]
    assert 1 == len(events)
    event = events[0]
    fields = {
        "request_id",
        "repo",
        "tag",
        "digest",
        "sequence",
        "token",
        "outcome",
        "waited_ms",
        "ecr_ms",
    }
    assert set() == fields - set(event)
    assert ("r-9", 4, "pushed") == (event["request_id"], event["sequence"], event["outcome"])


async def test_metrics_expose_histograms_and_gauges(api: httpx.AsyncClient) -> None:
    """/metrics has push duration and lease wait histograms, in-flight, lost and throttles."""
    await api.post("/v1/pushes", json=body())
    text = (await api.get("/metrics")).text
    for name in (
        "pushgate_push_seconds_count 1.0",
        "pushgate_lease_wait_seconds_count 1.0",
        "pushgate_pushes_in_flight 0.0",
        "pushgate_leases_lost_total 0.0",
        "pushgate_put_image_throttles_total 0.0",
    ):
        assert name in text, name


async def test_streamed_body_past_the_cap_is_413(api: httpx.AsyncClient, world: World) -> None:
    """A chunked body (no Content-Length) is cut off with 413 once it passes the cap."""

    async def chunks():
        for _ in range(40):
            yield b"x" * (1024 * 1024)

    answer = await api.post(
        "/v1/pushes", content=chunks(), headers={"content-type": "application/json"}
    )
    assert (413, "payload_too_large") == (answer.status_code, answer.json()["error"])
    assert [] == world.leases.granted
