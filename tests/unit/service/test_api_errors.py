"""Error answers over fakes: every code is the table's, every answer is bounded, and a
permanent backend refusal is neither retryable nor left out of /readyz."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from service import codes
from service.api import errors as api_errors
from service.domain.errors import (
    BackendRejected,
    BackendUnavailable,
    InvalidRequest,
    RepositoryNotFound,
)
from tests.unit.service.fakes import World, manifest

JSON = {"content-type": "application/json"}


def body(**extra: object) -> dict[str, object]:
    return {"repository": "team/app", "tag": "v1", "manifest": manifest(1), **extra}


def assert_documented(answer: httpx.Response) -> None:
    """The answer's code is in the table, at the table's status."""
    assert answer.status_code == codes.code(answer.json()["error"]).status


def reading_fails(world: World, error: Exception) -> None:
    async def read(*args: object, **kwargs: object) -> Any:
        raise error

    world.records.read = read  # type: ignore[method-assign]


async def test_body_that_is_not_utf8_is_invalid_request(api: httpx.AsyncClient) -> None:
    """A body that is not UTF-8 is a documented 422 invalid_request naming the body, not
    an undocumented 400."""
    answer = await api.post("/v1/pushes", content=b'{"tag": "\xff"}', headers=JSON)
    assert (422, "invalid_request", "body") == (
        answer.status_code,
        answer.json()["error"],
        answer.json()["field"],
    )


async def test_deeply_nested_body_is_invalid_request(api: httpx.AsyncClient) -> None:
    """JSON nested deeper than the parser goes is a documented 422, not a 400 or 500."""
    nested = b"[" * 100_000 + b"]" * 100_000
    answer = await api.post("/v1/pushes", content=nested, headers=JSON)
    assert (422, "invalid_request") == (answer.status_code, answer.json()["error"])


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nothing"), ("DELETE", "/v1/pushes"), ("PUT", "/healthz")],
)
async def test_framework_answers_use_documented_codes(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    """No such route and a wrong method answer codes of the table at their status."""
    assert_documented(await api.request(method, path))


async def test_an_unlisted_framework_status_becomes_a_documented_code() -> None:
    """An HTTPException with a status the table does not list (418) is answered as the
    table's code for it (4xx: invalid_request at 422), never as a code of its own."""
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    answer = await api_errors.http_error_handler(request, HTTPException(418, "teapot"))
    assert (422, "invalid_request") == (answer.status_code, json.loads(bytes(answer.body))["error"])


async def test_many_unknown_fields_bring_a_small_answer(api: httpx.AsyncClient) -> None:
    """20,000 unknown fields bring one 422 listing at most MAX_ERRORS of them, with
    their count, in a few KB."""
    fields = {f"unknown_{i}": 1 for i in range(20_000)}
    answer = await api.post("/v1/pushes", json=body(**fields))
    data = answer.json()
    assert (422, api_errors.MAX_ERRORS, 20_000) == (
        answer.status_code,
        len(data["errors"]),
        data["error_count"],
    )
    assert len(answer.content) < 4096


async def test_long_field_name_is_cut_in_the_answer(api: httpx.AsyncClient) -> None:
    """An unknown field named with 100,000 characters comes back cut to MAX_TEXT."""
    answer = await api.post("/v1/pushes", json=body(**{"x" * 100_000: 1}))
    assert (422, api_errors.MAX_TEXT) == (answer.status_code, len(answer.json()["field"]))
    assert len(answer.content) < 4096


async def test_echoed_values_are_bounded(api: httpx.AsyncClient, world: World) -> None:
    """A domain error carrying a 200 KB value is answered in well under 2 KB: the
    message and every echoed value are cut."""
    world.registry.failures = [RepositoryNotFound("r" * 200_000)]
    answer = await api.post("/v1/pushes", json=body())
    data = answer.json()
    assert (404, "repository_not_found", api_errors.MAX_TEXT) == (
        answer.status_code,
        data["error"],
        len(data["repository"]),
    )
    assert len(answer.content) < 2048


def test_bounded_cuts_lists_and_nesting() -> None:
    """Lists keep MAX_ITEMS entries and nesting stops at MAX_DEPTH."""
    deep: Any = "x"
    for _ in range(10):
        deep = [deep]
    cut = api_errors.bounded({"many": list(range(1000)), "deep": deep})
    assert api_errors.MAX_ITEMS == len(cut["many"])
    assert "x" not in json.dumps(cut["deep"])


async def test_backend_rejected_is_500_without_retry_after(
    api: httpx.AsyncClient, world: World
) -> None:
    """A DynamoDB refusal retrying cannot cure is 500 backend_rejected, with no
    Retry-After: nothing invites a client to retry it."""
    reading_fails(
        world, BackendRejected("refused", cause_code="AccessDeniedException", deployment=True)
    )
    answer = await api.post("/v1/pushes", json=body())
    assert (500, "backend_rejected", None) == (
        answer.status_code,
        answer.json()["error"],
        answer.headers.get("retry-after"),
    )
    assert [] == world.leases.held()


async def test_backend_unavailable_stays_retryable(api: httpx.AsyncClient, world: World) -> None:
    """A DynamoDB failure worth retrying is still 503 with Retry-After."""
    reading_fails(world, BackendUnavailable("down", cause_code="InternalServerError"))
    answer = await api.post("/v1/pushes", json=body())
    assert (503, "backend_unavailable", "1") == (
        answer.status_code,
        answer.json()["error"],
        answer.headers.get("retry-after"),
    )


async def test_deployment_fault_makes_readyz_not_ready(
    api: httpx.AsyncClient, world: World
) -> None:
    """After a push is refused for a deployment fault the probes cannot see (here, a
    permission), /readyz answers 503 naming it."""
    reading_fails(
        world,
        BackendRejected("DynamoDB refused GetItem", cause_code="AccessDenied", deployment=True),
    )
    await api.post("/v1/pushes", json=body())
    answer = await api.get("/readyz")
    assert (503, "DynamoDB refused GetItem") == (
        answer.status_code,
        answer.json()["checks"]["dynamodb"],
    )


async def test_data_fault_leaves_readyz_ready(api: httpx.AsyncClient, world: World) -> None:
    """A refusal of one request's data (a ValidationException) does not take the
    replica out of service: one request must not be able to."""
    reading_fails(
        world, BackendRejected("refused", cause_code="ValidationException", deployment=False)
    )
    await api.post("/v1/pushes", json=body())
    assert 200 == (await api.get("/readyz")).status_code


def test_deployment_fault_is_forgotten_after_its_window() -> None:
    """A deployment fault counts for BACKEND_FAULT_SECONDS, so a fixed deployment becomes
    ready again."""
    fault = api_errors.BackendFault("refused", at=100.0)
    app: Any = SimpleNamespace(state=SimpleNamespace(backend_fault=fault))
    later = 100.0 + api_errors.BACKEND_FAULT_SECONDS
    assert ("refused", None) == (
        api_errors.backend_fault(app, now=later),
        api_errors.backend_fault(app, now=later + 1),
    )


async def test_invalid_request_with_long_reason_is_bounded(
    api: httpx.AsyncClient, world: World
) -> None:
    """An InvalidRequest whose reason quotes a long input keeps the answer small."""
    world.registry.failures = [InvalidRequest("manifest", "refused: " + "m" * 100_000)]
    answer = await api.post("/v1/pushes", json=body())
    assert (422, api_errors.MAX_TEXT) == (answer.status_code, len(answer.json()["reason"]))
    assert len(answer.json()["message"]) <= api_errors.MAX_MESSAGE
