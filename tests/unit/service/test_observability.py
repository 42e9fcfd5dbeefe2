"""One log event per push, Prometheus metrics, and the body cap on streamed bodies."""

from __future__ import annotations

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import LogCapture

from service.main import VERSION
from service.metrics import Metrics
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


def _series(text: str) -> dict[str, float]:
    """Each sample as `name{label="value",...}` (labels sorted) -> value."""
    return {
        sample.name + _labels(sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _labels(labels: dict[str, str]) -> str:
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{{{inner}}}" if inner else ""


async def test_http_requests_are_timed_by_route_method_and_status(api: httpx.AsyncClient) -> None:
    """Each request is counted under its route template, method and status."""
    await api.post("/v1/pushes", json=body(sequence=1))
    await api.get("/v1/tags/team/app/v1/history")
    series = _series((await api.get("/metrics")).text)
    name = "pushgate_http_request_duration_seconds_count"
    assert 1.0 == series[f'{name}{{method="POST",route="/v1/pushes",status="200"}}']
    route = "/v1/tags/{repository:path}/{tag}/history"
    assert 1.0 == series[f'{name}{{method="GET",route="{route}",status="200"}}']


async def test_unknown_paths_and_methods_keep_labels_bounded(api: httpx.AsyncClient) -> None:
    """A path no route serves is `unmatched` and an odd method `OTHER`: a scanner cannot
    grow the label set."""
    await api.get("/no/such/path/x1")
    await api.get("/no/such/path/x2")
    await api.request("BREW", "/v1/pushes")
    series = _series((await api.get("/metrics")).text)
    name = "pushgate_http_request_duration_seconds_count"
    assert 2.0 == series[f'{name}{{method="GET",route="unmatched",status="404"}}']
    assert 1.0 == series[f'{name}{{method="OTHER",route="/v1/pushes",status="405"}}']


async def test_build_info_names_the_version(api: httpx.AsyncClient) -> None:
    """`pushgate_build_info{version=...} 1` carries the running version."""
    series = _series((await api.get("/metrics")).text)
    assert 1.0 == series[f'pushgate_build_info{{version="{VERSION}"}}']


async def test_no_created_series(api: httpx.AsyncClient) -> None:
    """Counters and histograms expose no `_created` series."""
    await api.post("/v1/pushes", json=body())
    text = (await api.get("/metrics")).text
    assert [] == [line for line in text.splitlines() if "_created" in line]


def test_names_follow_prometheus_conventions() -> None:
    """One spelling of PutImage (`put_image`), counters end in `_total`, durations in
    `_seconds`, every name under `pushgate_`."""
    families = list(Metrics().registry.collect())
    assert [] == [f.name for f in families if "putimage" in f.name]
    assert [] == [f.name for f in families if not f.name.startswith("pushgate_")]
    counters = [f.name for f in families if f.type == "counter"]
    assert all(
        sample.name.endswith("_total")
        for f in families
        if f.type == "counter"
        for sample in f.samples
    ), counters
    histograms = [f.name for f in families if f.type == "histogram"]
    assert [] == [name for name in histograms if not name.endswith("_seconds")]
