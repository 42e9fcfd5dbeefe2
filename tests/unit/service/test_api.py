"""The HTTP API over fakes: shapes of answers and errors, statuses, headers."""

from __future__ import annotations

import json

import httpx
import pytest
import structlog
from structlog.testing import LogCapture

from service.api.errors import status_of
from service.domain import errors
from service.domain.errors import RegistryThrottled, TagImmutable
from service.main import create_app
from tests.unit.service.fakes import SETTINGS, World, manifest, services_of


def body(n: int = 1, **extra: object) -> dict[str, object]:
    return {"repository": "team/app", "tag": "v1", "manifest": manifest(n), **extra}


async def test_push_answers_outcome_and_digest(api: httpx.AsyncClient) -> None:
    """POST /v1/pushes answers 200 with the outcome, digest and token."""
    answer = await api.post("/v1/pushes", json=body(sequence=3))
    assert 200 == answer.status_code
    data = answer.json()
    assert ("pushed", "team/app", "v1", 3) == (
        data["outcome"],
        data["repository"],
        data["tag"],
        data["sequence"],
    )
    assert data["digest"].startswith("sha256:")


async def test_unknown_route_answers_in_the_error_shape(api: httpx.AsyncClient) -> None:
    """No such endpoint: 404 with a code and a sentence, like every other error."""
    answer = await api.get("/v1/nothing-here")
    assert (404, "not_found") == (answer.status_code, answer.json()["error"])
    assert "/docs" in answer.json()["message"]


async def test_wrong_method_answers_in_the_error_shape(api: httpx.AsyncClient) -> None:
    """A method the endpoint does not take: 405 naming the allowed one, in the error shape."""
    answer = await api.delete("/v1/pushes")
    assert (405, "method_not_allowed", "POST") == (
        answer.status_code,
        answer.json()["error"],
        answer.headers.get("allow"),
    )


async def test_pydantic_error_is_invalid_request_naming_field(api: httpx.AsyncClient) -> None:
    """A wrongly typed field is a 422 invalid_request that names it."""
    answer = await api.post("/v1/pushes", json=body(sequence="seven"))
    assert 422 == answer.status_code
    assert ("invalid_request", "sequence") == (answer.json()["error"], answer.json()["field"])


async def test_missing_field_is_named(api: httpx.AsyncClient) -> None:
    """A missing required field is named."""
    answer = await api.post("/v1/pushes", json={"repository": "team/app", "tag": "v1"})
    assert ("invalid_request", "manifest") == (answer.json()["error"], answer.json()["field"])


async def test_unknown_field_is_refused(api: httpx.AsyncClient) -> None:
    """A misspelt field is refused rather than ignored."""
    answer = await api.post("/v1/pushes", json=body(sequnce=1))
    assert (422, "sequnce") == (answer.status_code, answer.json()["field"])


async def test_body_without_a_json_content_type_says_so(api: httpx.AsyncClient) -> None:
    """JSON text sent as text/plain: 422 whose reason names the content type to send."""
    answer = await api.post(
        "/v1/pushes", content=json.dumps(body()), headers={"content-type": "text/plain"}
    )
    assert (422, "body") == (answer.status_code, answer.json()["field"])
    assert "content-type: application/json" in answer.json()["reason"]


async def test_body_that_is_not_json_is_invalid_request(api: httpx.AsyncClient) -> None:
    """A body that is not JSON at all is a 422 naming the body."""
    answer = await api.post(
        "/v1/pushes", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert (422, "invalid_request", "body") == (
        answer.status_code,
        answer.json()["error"],
        answer.json()["field"],
    )


async def test_domain_validation_is_invalid_request(api: httpx.AsyncClient, world: World) -> None:
    """A manifest that is not JSON is refused with 422 before any lease."""
    answer = await api.post("/v1/pushes", json=body() | {"manifest": "nope"})
    assert (422, "manifest") == (answer.status_code, answer.json()["field"])
    assert [] == world.leases.granted


async def test_tag_immutable_is_409_with_existing_digest(
    api: httpx.AsyncClient, world: World
) -> None:
    """An immutable conflict is a 409 carrying the digest the tag holds."""
    world.registry.failures = [TagImmutable("team/app", "v1", existing_digest="sha256:x")]
    answer = await api.post("/v1/pushes", json=body())
    assert (409, "tag_immutable", "sha256:x") == (
        answer.status_code,
        answer.json()["error"],
        answer.json()["existing_digest"],
    )


async def test_throttled_is_503_with_retry_after(api: httpx.AsyncClient, world: World) -> None:
    """Persistent throttling is a 503 registry_throttled with Retry-After."""
    world.registry.failures = [RegistryThrottled("slow") for _ in range(4)]
    answer = await api.post("/v1/pushes", json=body())
    assert (503, "registry_throttled", "2") == (
        answer.status_code,
        answer.json()["error"],
        answer.headers["retry-after"],
    )


async def test_lease_timeout_is_503_with_retry_after(api: httpx.AsyncClient, world: World) -> None:
    """A busy lease is a 503 lease_timeout with Retry-After."""
    world.leases.busy.add("team/app:v1")
    answer = await api.post("/v1/pushes", json=body(wait_seconds=0))
    assert (503, "lease_timeout") == (answer.status_code, answer.json()["error"])
    assert "retry-after" in answer.headers


async def test_request_id_is_echoed_and_recorded(api: httpx.AsyncClient, world: World) -> None:
    """X-Request-ID is echoed and written to history."""
    answer = await api.post("/v1/pushes", json=body(), headers={"x-request-id": "abc-123"})
    assert "abc-123" == answer.headers["x-request-id"]
    assert "abc-123" == world.history.entries[-1].request_id


async def test_caller_header_is_recorded(api: httpx.AsyncClient, world: World) -> None:
    """X-Pushgate-Caller names the caller in history."""
    await api.post("/v1/pushes", json=body(), headers={"x-pushgate-caller": "ci-7"})
    assert "ci-7" == world.history.entries[-1].caller


async def test_push_logs_bind_request_context(api: httpx.AsyncClient) -> None:
    """Log events of a push carry request_id, repo and tag."""
    capture = LogCapture()
    old = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        await api.post("/v1/pushes", json=body(), headers={"x-request-id": "rid-1"})
    finally:
        structlog.configure(**old)
    finished = next(e for e in capture.entries if e["event"] == "push_finished")
    assert ("rid-1", "team/app", "v1", "pushed") == (
        finished["request_id"],
        finished["repo"],
        finished["tag"],
        finished["outcome"],
    )


async def test_tag_record_by_path(api: httpx.AsyncClient) -> None:
    """GET /v1/tags/{repository}/{tag} returns the record; slashes in the name work."""
    pushed = (await api.post("/v1/pushes", json=body(sequence=4))).json()
    answer = await api.get("/v1/tags/team/app/v1")
    assert 200 == answer.status_code
    assert (pushed["digest"], 4, pushed["token"]) == (
        answer.json()["digest"],
        answer.json()["sequence"],
        answer.json()["token"],
    )


async def test_tag_record_by_query(api: httpx.AsyncClient) -> None:
    """The query form finds the same record."""
    await api.post("/v1/pushes", json=body())
    answer = await api.get("/v1/tags", params={"repository": "team/app", "tag": "v1"})
    assert 200 == answer.status_code


async def test_unknown_tag_is_404(api: httpx.AsyncClient) -> None:
    """A tag never pushed is 404 tag_not_found."""
    answer = await api.get("/v1/tags/team/app/nope")
    assert (404, "tag_not_found") == (answer.status_code, answer.json()["error"])


async def test_history_is_newest_first_and_paginated(api: httpx.AsyncClient) -> None:
    """History lists newest first and pages with a cursor."""
    for n in range(3):
        await api.post("/v1/pushes", json=body(n, sequence=n))
    first = (await api.get("/v1/tags/team/app/v1/history", params={"limit": 2})).json()
    assert [2, 1] == [item["sequence"] for item in first["items"]]
    second = (
        await api.get(
            "/v1/tags/team/app/v1/history", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    assert ([0], None) == ([item["sequence"] for item in second["items"]], second["next_cursor"])


async def test_healthz(api: httpx.AsyncClient) -> None:
    """/healthz answers while the process is up."""
    assert 200 == (await api.get("/healthz")).status_code


async def test_readyz_with_healthy_ports(api: httpx.AsyncClient) -> None:
    """/readyz is 200 when every probe answers."""
    answer = await api.get("/readyz")
    assert (200, "ready") == (answer.status_code, answer.json()["status"])


async def test_metrics_count_outcomes(api: httpx.AsyncClient) -> None:
    """/metrics counts pushes by outcome."""
    await api.post("/v1/pushes", json=body())
    text = (await api.get("/metrics")).text
    assert 'pushgate_pushes_total{outcome="pushed"} 1.0' in text


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (errors.InvalidRequest, 422),
        (errors.RepositoryNotFound, 404),
        (errors.TagImmutable, 409),
        (errors.LayersNotFound, 400),
        (errors.ReferencedImagesNotFound, 400),
        (errors.DigestMismatch, 422),
        (errors.QuotaExceeded, 400),
        (errors.LeaseTimeout, 503),
        (errors.RegistryThrottled, 503),
        (errors.RegistryFault, 502),
        (errors.KmsFailure, 502),
    ],
)
def test_status_of_error(cls: type[errors.PushError], status: int) -> None:
    """Each error class answers with the status the issue names."""
    assert status == status_of(errors.PushError.__new__(cls))


async def test_oversized_body_is_413_before_reading(api: httpx.AsyncClient, world: World) -> None:
    """A body declared larger than max_body_bytes is refused with 413, no lease taken."""
    answer = await api.post(
        "/v1/pushes",
        content=b"x",
        headers={"content-type": "application/json", "content-length": str(64 * 1024 * 1024)},
    )
    assert (413, "payload_too_large") == (answer.status_code, answer.json()["error"])
    assert [] == world.leases.granted


async def test_openapi_document_is_served(api: httpx.AsyncClient) -> None:
    """/openapi.json builds and lists the push, tag, history and health routes."""
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert {
        "/v1/pushes",
        "/v1/tags/{repository}/{tag}",
        "/v1/tags/{repository}/{tag}/history",
        "/healthz",
        "/readyz",
    } <= set(paths)


async def post_answering_errors(world: World) -> httpx.Response:
    """One push to an app over the fakes whose unexpected errors come back as answers
    (the test transport would raise them otherwise)."""
    app = create_app(SETTINGS, services=services_of(world))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://pushgate") as http,
    ):
        return await http.post("/v1/pushes", json=body())


async def test_unexpected_error_is_500_json(world: World) -> None:
    """A bug inside a route is answered 500 internal_error in the usual JSON shape."""

    async def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    world.registry.put_image = crash  # type: ignore[method-assign,assignment]
    answer = await post_answering_errors(world)
    assert (500, "internal_error") == (answer.status_code, answer.json()["error"])
    assert [] == world.leases.held()


async def test_answer_failing_after_the_push_still_releases_the_lease(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease's release runs after the answer; when building the answer fails, the
    500 carries no background tasks, so the release runs before it: no lease is left."""

    def broken(result: object) -> None:
        raise RuntimeError("answer lost")

    monkeypatch.setattr("service.api.routes.push.PushResponse.of", broken)
    answer = await post_answering_errors(world)
    assert (500, []) == (answer.status_code, world.leases.held())
    assert world.leases.granted[0].released


async def test_lease_is_released_once_the_answer_is_sent(
    world: World, api: httpx.AsyncClient
) -> None:
    """A pushed answer leaves the lease to the response's background task, which
    releases it (the test transport runs it before returning)."""
    answer = await api.post("/v1/pushes", json=body())
    assert (200, [], True) == (
        answer.status_code,
        world.leases.held(),
        world.leases.granted[0].released,
    )
