"""How ``push_image`` reads ``/v2/`` answers (``service.client._v2``): errors in the
spec's shape, upload locations and retries. Answers are built by hand: no I/O."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.client._v2 import check, retry_hook, upload_location
from service.client.errors import (
    ApiError,
    ManifestRejected,
    RegistryFault,
    RepositoryNotFound,
    Retryable,
    TagImmutable,
    Unauthorized,
)
from service.client.images import push_image

REQUEST = httpx.Request("POST", "http://127.0.0.1:8080/v2/team/app/blobs/uploads/")


def _answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=REQUEST)


def _error(code: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": "refused"}
    if detail is not None:
        error["detail"] = detail
    return {"errors": [error]}


def _raised(response: httpx.Response) -> ApiError:
    with pytest.raises(ApiError) as caught:
        check(response)
    return caught.value


def test_pushgate_code_in_the_detail_wins() -> None:
    """A DENIED answer carrying pushgate's ``tag_immutable`` is a TagImmutable."""
    error = _raised(_answer(403, _error("DENIED", {"pushgate": "tag_immutable"})))
    assert (TagImmutable, "tag_immutable") == (type(error), error.code)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "NAME_UNKNOWN", RepositoryNotFound),
        (400, "MANIFEST_BLOB_UNKNOWN", ManifestRejected),
        (400, "DIGEST_INVALID", ManifestRejected),
        (401, "UNAUTHORIZED", Unauthorized),
        (403, "DENIED", Unauthorized),
        (502, "UNKNOWN", RegistryFault),
    ],
)
def test_the_spec_code_picks_the_error(status: int, code: str, expected: type) -> None:
    """Without pushgate's code, the spec's code (or the status) picks the error."""
    assert expected is type(_raised(_answer(status, _error(code))))


def test_a_bodiless_answer_is_read_by_its_status() -> None:
    """A HEAD's 401 has no body: the status alone makes it Unauthorized."""
    assert Unauthorized is type(_raised(httpx.Response(401, request=REQUEST)))


def test_too_many_requests_is_retried_after_its_retry_after() -> None:
    """A 429 is retried after its ``Retry-After`` seconds."""
    error = _raised(_answer(429, _error("TOOMANYREQUESTS"), **{"retry-after": "3"}))
    assert (True, 3.0) == (isinstance(error, Retryable), retry_hook(error))


def test_a_refused_manifest_is_not_retried() -> None:
    """A manifest the registry refuses fails at once: another attempt would fail too."""
    assert retry_hook(_raised(_answer(400, _error("MANIFEST_INVALID")))) is False


def test_a_location_on_the_server_asked_is_followed() -> None:
    """A relative upload location resolves on the server asked."""
    answer = _answer(202, None, location="/v2/team/app/blobs/uploads/abc_0")
    assert "http://127.0.0.1:8080/v2/team/app/blobs/uploads/abc_0" == upload_location(answer)


def test_a_location_on_another_server_is_refused() -> None:
    """An upload location on another server is refused: the token must not go there."""
    answer = _answer(202, None, location="http://elsewhere.example/v2/x/blobs/uploads/1")
    with pytest.raises(ApiError, match="another server"):
        upload_location(answer)


@pytest.mark.parametrize(("repository", "tag"), [("Team/App", "1"), ("team/app", "-x")])
def test_a_bad_repository_or_tag_is_refused_before_anything(repository: str, tag: str) -> None:
    """An invalid repository name or tag is a ValueError, before the source is read."""
    with pytest.raises(ValueError, match="is not a"):
        push_image("http://127.0.0.1:9", "/nonexistent", repository, [tag])


def test_a_429_with_a_registry_error_code_is_retried() -> None:
    """pushgate's 429 carrying ``registry_error`` (an ECR fault it gave up on) is retried,
    though its class is not a Retryable one."""
    answer = _answer(429, _error("TOOMANYREQUESTS", {"pushgate": "registry_error"}))
    assert retry_hook(_raised(answer)) is True
