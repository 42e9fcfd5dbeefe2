"""The client's pure half: references, Retry-After, error mapping, retry decisions."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.client import errors
from service.client._base import (
    BaseClient,
    Call,
    RetryPolicy,
    api_error,
    read_manifest,
    retry_after_seconds,
    retryable,
    split_ref,
)

ROOT = Path(__file__).resolve().parents[3]
PUSH = Call("POST", "/v1/pushes", read_timeout=150.0)


def test_split_ref_takes_the_last_colon() -> None:
    """A registry-style repository with a port-like colon keeps everything before the last colon."""
    assert ("team/app", "v1.2") == split_ref("team/app:v1.2")


@pytest.mark.parametrize("ref", ["no-tag", ":tag", "repo:", "repo:a/b"])
def test_split_ref_rejects_what_is_not_repository_colon_tag(ref: str) -> None:
    """Anything without both halves is a clear ValueError."""
    with pytest.raises(ValueError, match="REPOSITORY:TAG"):
        split_ref(ref)


def test_retry_after_delta_seconds() -> None:
    """Retry-After in seconds is read as a float."""
    response = httpx.Response(503, headers={"retry-after": "3"})
    assert 3.0 == retry_after_seconds(response)


def test_retry_after_http_date_is_relative_to_the_date_header() -> None:
    """Retry-After as an HTTP date is measured from the answer's own Date header."""
    response = httpx.Response(
        503,
        headers={
            "retry-after": "Wed, 21 Oct 2026 07:28:05 GMT",
            "date": "Wed, 21 Oct 2026 07:28:00 GMT",
        },
    )
    assert 5.0 == retry_after_seconds(response)


def test_retry_after_garbage_is_ignored() -> None:
    """A Retry-After that is neither a number nor a date means no hint."""
    assert retry_after_seconds(httpx.Response(503, headers={"retry-after": "soon"})) is None


def test_error_document_maps_to_its_class_with_details() -> None:
    """tag_immutable becomes TagImmutable carrying the existing digest."""
    response = httpx.Response(
        409,
        json={
            "error": "tag_immutable",
            "message": "v1 is immutable.",
            "existing_digest": "sha256:" + "a" * 64,
        },
    )
    error = api_error(response)
    assert isinstance(error, errors.TagImmutable)
    assert ("tag_immutable", "sha256:" + "a" * 64) == (error.code, error.existing_digest)


def test_invalid_request_names_the_field() -> None:
    """invalid_request keeps the field and reason the server gave."""
    response = httpx.Response(
        422,
        json={"error": "invalid_request", "message": "bad", "field": "tag", "reason": "too long"},
    )
    error = api_error(response)
    assert isinstance(error, errors.InvalidRequest)
    assert ("tag", "too long") == (error.field, error.reason)


def test_unknown_error_body_falls_back_on_the_status() -> None:
    """An answer that is not our error document still maps by status (a proxy's 502)."""
    error = api_error(httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(error, errors.RegistryError)
    assert "http_502" == error.code


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("lease_timeout", errors.LeaseTimeout),
        ("registry_throttled", errors.RegistryThrottled),
        ("repository_not_found", errors.RepositoryNotFound),
        ("layers_not_found", errors.ManifestRejected),
        ("quota_exceeded", errors.QuotaExceeded),
        ("kms_error", errors.RegistryError),
    ],
)
def test_each_code_has_its_class(code: str, cls: type[errors.ApiError]) -> None:
    """Every error code of the API maps to one exception class."""
    assert cls is type(api_error(httpx.Response(400, json={"error": code, "message": "m"})))


def test_retry_policy_honours_retry_after_over_backoff() -> None:
    """A server's Retry-After is waited out even when the backoff is shorter."""
    assert 4.0 == RetryPolicy(base=0.1).delay(0, retry_after=4.0, remaining=60, jitter=0.0)


def test_retry_policy_gives_up_past_the_deadline() -> None:
    """No retry is planned that would end after the total deadline."""
    assert RetryPolicy().delay(0, retry_after=10.0, remaining=5.0, jitter=0.5) is None


def test_retry_policy_backoff_is_capped_and_jittered() -> None:
    """Backoff doubles per attempt up to the cap, scaled to between half and all of it."""
    policy = RetryPolicy(base=1.0, cap=4.0)
    assert (0.5, 4.0) == (
        policy.delay(0, None, 100, jitter=0.0),
        policy.delay(10, None, 100, jitter=1.0),
    )


def test_read_manifest_keeps_bytes(tmp_path) -> None:
    """The manifest file is read as text exactly as stored: whitespace and key order intact."""
    path = tmp_path / "m.json"
    raw = '{ "schemaVersion":2,\n  "b":1, "a":2 }\n'
    path.write_bytes(raw.encode())
    assert raw == read_manifest(path)


def test_read_manifest_rejects_non_utf8(tmp_path) -> None:
    """A manifest that is not UTF-8 is refused before anything is sent."""
    path = tmp_path / "m.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match="UTF-8"):
        read_manifest(path)


def test_client_package_imports_no_server_dependencies() -> None:
    """service.client needs only httpx: no FastAPI, aioboto3 or boto3 on import."""
    code = (
        "import sys, service.client, service.commands;"
        "heavy=[m for m in sys.modules if m.split('.')[0] in "
        "('fastapi','starlette','aioboto3','aiobotocore','boto3','moto','pynamodb')];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "" == out.stdout.strip()


def _answer(status: int, code: str) -> errors.ApiError:
    return api_error(httpx.Response(status, json={"error": code, "message": "m"}))


def _unreachable(cause: Exception) -> errors.ServiceUnreachable:
    error = errors.ServiceUnreachable("no answer")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_unreachable(httpx.ConnectError("refused")), True),
        (_unreachable(httpx.ReadTimeout("late")), True),
        (_answer(503, "backend_unavailable"), True),
        (_answer(503, "lease_timeout"), True),
        (_answer(502, "http_502"), True),
        (_answer(404, "tag_not_found"), False),
        (_answer(409, "tag_immutable"), False),
        (_answer(422, "invalid_request"), False),
    ],
)
def test_retryable_answers(error: Exception, expected: bool) -> None:
    """No answer, a 502/503/504 or a retryable code is retried; a client error is not."""
    assert expected == retryable(error, PUSH)


def test_lease_timeout_is_final_when_the_push_named_its_wait() -> None:
    """A push that named ``wait_seconds`` does not retry its lease_timeout."""
    call = Call("POST", "/v1/pushes", lease_wait=5.0)
    assert retryable(_answer(503, "lease_timeout"), call) is False


def test_each_phase_of_a_request_gets_at_most_what_is_left_of_the_deadline() -> None:
    """With 1 s of a 10 s deadline left, neither connecting nor reading a push's
    answer (I/O timeout 30 s plus its lease wait) may take longer than that second."""
    client = BaseClient("http://pushgate", timeout=30.0, retry=RetryPolicy(deadline=10.0))
    timeout = client._request(PUSH, started=time.monotonic() - 9.0)["timeout"]
    assert max(timeout.connect, timeout.read, timeout.write, timeout.pool) <= 1.0


@pytest.mark.parametrize("deadline", [0.0, -1.0, float("inf"), float("nan")])
def test_retry_policy_deadline_must_be_positive_seconds(deadline: float) -> None:
    """A deadline of zero (no request could finish) or not finite is refused."""
    with pytest.raises(ValueError, match="deadline"):
        RetryPolicy(deadline=deadline)


def test_sync_client_is_generated_from_the_async_one() -> None:
    """``_sync.py`` is what ``scripts/unasync.py`` makes of ``_async.py``: the
    twins cannot drift (regenerate it after editing ``_async.py``)."""
    script = ROOT / "scripts/unasync.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert (0, "") == (result.returncode, result.stdout)
