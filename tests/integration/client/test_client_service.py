"""``PushClient`` and ``AsyncPushClient`` against the running service (uvicorn on
127.0.0.1 over moto, ECR fidelity layer installed): every result, every error the
service can really answer, files sent byte for byte, the typed reads, and
``PUSHGATE_URL`` / ``PUSHGATE_TOKEN``. Each test runs on both clients (``make_client``)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from locks import LeaseLock, LockConfig
from service.client import (
    ApiError,
    HistoryEntry,
    HistoryPage,
    InvalidRequest,
    LeaseTimeout,
    ManifestRejected,
    PushClient,
    PushResult,
    QuotaExceeded,
    RegistryError,
    RegistryThrottled,
    RepositoryNotFound,
    RetryPolicy,
    ServiceUnreachable,
    TagImmutable,
    TagNotFound,
    TagStatus,
)
from service.domain.models import ImageRef, manifest_digest
from tests.integration.client.conftest import Driver, Service
from tests.integration.service.helpers import closed_port_url, manifest
from tests.uvicorn_server import serve

pytestmark = pytest.mark.integration

MakeClient = Callable[..., Driver]
#: short, yet long enough for the service's own registry retries to answer once
SHORT = RetryPolicy(deadline=2.0, base=0.05)


@pytest.fixture
def client(make_client: MakeClient, service: Service) -> Driver:
    return make_client(service.url)


# --- results ------------------------------------------------------------------------


async def test_first_push_is_pushed(client: Driver, service: Service, tag: str) -> None:
    """A first push answers ``pushed`` with the digest of the manifest's bytes."""
    text = manifest(1, tag)
    result = await client.push(service.repo, tag, text, sequence=5)
    assert isinstance(result, PushResult)
    assert ("pushed", manifest_digest(text), None, 5, service.repo, tag) == (
        result.outcome,
        result.digest,
        result.previous_digest,
        result.sequence,
        result.repository,
        result.tag,
    )


async def test_repush_is_unchanged(client: Driver, service: Service, tag: str) -> None:
    """Pushing the same manifest again is ``unchanged``, a result and not an error."""
    text = manifest(1, tag)
    first = await client.push(service.repo, tag, text, sequence=5)
    again = await client.push(service.repo, tag, text, sequence=5)
    assert ("unchanged", first.digest) == (again.outcome, again.digest)
    assert again.token > first.token


async def test_older_sequence_is_superseded(client: Driver, service: Service, tag: str) -> None:
    """A push with a lower sequence is ``superseded``, names what the tag still holds, and
    leaves the tag where it was."""
    newer = await client.push(service.repo, tag, manifest(2, tag), sequence=42)
    older = await client.push(service.repo, tag, manifest(1, tag), sequence=41)
    status = await client.tag(service.repo, tag)
    assert ("superseded", newer.digest, 42) == (
        older.outcome,
        older.current_digest,
        older.current_sequence,
    )
    assert (newer.digest, 42) == (status.digest, status.sequence)


# --- errors -------------------------------------------------------------------------


async def test_bad_tag_is_invalid_request_naming_the_field(
    client: Driver, service: Service
) -> None:
    """A tag ECR would refuse is ``InvalidRequest`` naming ``tag``."""
    with pytest.raises(InvalidRequest) as caught:
        await client.push(service.repo, "-not-a-tag", manifest(1))
    assert (422, "invalid_request", "tag") == (
        caught.value.status,
        caught.value.code,
        caught.value.field,
    )


async def test_missing_repository_is_repository_not_found(client: Driver, tag: str) -> None:
    """A push to a repository ECR does not have is ``RepositoryNotFound``."""
    with pytest.raises(RepositoryNotFound) as caught:
        await client.push(f"team/missing-{tag}", "v1", manifest(1))
    assert (404, "repository_not_found") == (caught.value.status, caught.value.code)


async def test_immutable_tag_is_tag_immutable_with_existing_digest(
    client: Driver, service: Service, tag: str
) -> None:
    """Another manifest on an IMMUTABLE repository's tag is ``TagImmutable`` carrying the
    digest the tag keeps."""
    first = await client.push(service.immutable_repo, tag, manifest(1, tag))
    with pytest.raises(TagImmutable) as caught:
        await client.push(service.immutable_repo, tag, manifest(2, tag))
    assert (409, first.digest) == (caught.value.status, caught.value.existing_digest)


async def test_immutable_tag_same_manifest_is_unchanged(
    client: Driver, service: Service, tag: str
) -> None:
    """The same manifest again on an IMMUTABLE tag is ``unchanged``, not an error."""
    text = manifest(1, tag)
    await client.push(service.immutable_repo, tag, text)
    again = await client.push(service.immutable_repo, tag, text)
    assert "unchanged" == again.outcome


async def test_lease_held_elsewhere_is_lease_timeout(
    make_client: MakeClient, service: Service, tag: str
) -> None:
    """While another holder keeps the repo:tag lease, a push with a short wait is
    ``LeaseTimeout`` (503 with Retry-After) once the client's deadline is spent; ECR is
    never called."""
    lock = LeaseLock(
        service.settings.lease_table,
        client=service.dynamodb,
        config=LockConfig(lease_seconds=30.0),
        owner="another-pushgate",
    )
    client = make_client(service.url, retry=SHORT)
    ecr_calls = service.fidelity.count(service.repo)
    with (
        lock.acquire(ImageRef(service.repo, tag).key, timeout=5.0),
        pytest.raises(LeaseTimeout) as caught,
    ):
        await client.push(service.repo, tag, manifest(1, tag), wait_seconds=0.2)
    assert (503, "lease_timeout") == (caught.value.status, caught.value.code)
    assert caught.value.retry_after is not None
    assert ecr_calls == service.fidelity.count(service.repo)


async def test_never_pushed_tag_is_tag_not_found(
    client: Driver, service: Service, tag: str
) -> None:
    """``tag()`` of a tag pushgate never recorded is ``TagNotFound``."""
    with pytest.raises(TagNotFound) as caught:
        await client.tag(service.repo, tag)
    assert (404, "tag_not_found") == (caught.value.status, caught.value.code)


@pytest.mark.parametrize(
    ("code", "times", "expected", "error"),
    [
        ("LayersNotFoundException", 1, ManifestRejected, "layers_not_found"),
        ("LimitExceededException", 1, QuotaExceeded, "quota_exceeded"),
        ("ServerException", 60, RegistryError, "registry_error"),
        ("ThrottlingException", 60, RegistryThrottled, "registry_throttled"),
    ],
)
async def test_registry_failure_maps_to_its_exception(
    make_client: MakeClient,
    service: Service,
    tag: str,
    code: str,
    times: int,
    expected: type[ApiError],
    error: str,
) -> None:
    """Each ECR failure (injected by the fidelity layer) reaches the caller as its own
    exception class with the API's code; retryable ones once the deadline is spent."""
    service.fidelity.inject(service.repo, code, "injected failure", times=times)
    client = make_client(service.url, retry=SHORT)
    try:
        with pytest.raises(expected) as caught:
            await client.push(service.repo, tag, manifest(1, tag))
    finally:
        service.fidelity.clear()
    assert error == caught.value.code


async def test_a_single_registry_fault_is_retried_to_success(
    make_client: MakeClient, service: Service, tag: str
) -> None:
    """A 502 the service answers once (KMS fault) is retried by the client: the push
    lands, because a push is idempotent."""
    service.fidelity.inject(
        service.repo, "KmsException", members={"kmsError": "KMSDisabledException"}
    )
    client = make_client(service.url, retry=RetryPolicy(deadline=10.0, base=0.05))
    try:
        result = await client.push(service.repo, tag, manifest(1, tag))
    finally:
        service.fidelity.clear()
    assert "pushed" == result.outcome


# --- files and reads ----------------------------------------------------------------


async def test_push_file_sends_the_bytes_verbatim(
    client: Driver, service: Service, tag: str, tmp_path: Path
) -> None:
    """``push_file`` sends the file's exact bytes: CRLF, tabs, trailing blank lines and
    non-ASCII text survive into ECR, and the digest is sha256 of the file."""
    document = json.loads(manifest(7, tag))
    document["annotations"]["note"] = "café ☕"
    text = json.dumps(document, indent="\t", ensure_ascii=False).replace("\n", "\r\n")
    path = tmp_path / "manifest.json"
    path.write_bytes(("  " + text + " \r\n\n\n").encode())
    result = await client.push_file(service.repo, tag, path, sequence=1)
    status = await client.tag(service.repo, tag)
    stored = service.ecr.batch_get_image(repositoryName=service.repo, imageIds=[{"imageTag": tag}])
    expected = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert (expected, expected) == (result.digest, status.digest)
    assert path.read_bytes().decode() == stored["images"][0]["imageManifest"]


async def test_tag_returns_the_typed_record(client: Driver, service: Service, tag: str) -> None:
    """``tag()`` is a ``TagStatus`` naming the last push's digest, sequence and token."""
    pushed = await client.push(service.repo, tag, manifest(3, tag), sequence=9)
    status = await client.tag(service.repo, tag)
    assert isinstance(status, TagStatus)
    assert (service.repo, tag, pushed.digest, 9, pushed.token) == (
        status.repository,
        status.tag,
        status.digest,
        status.sequence,
        status.token,
    )
    assert status.updated_at
    assert status.request_id


async def test_tag_named_history_is_read_as_a_tag(
    client: Driver, service: Service, tag: str
) -> None:
    """A tag literally named ``history`` (a valid OCI tag) of a repository with a slash is
    read as that tag, not as the history of another one."""
    repo = f"{service.repo}/{tag}"
    service.ecr.create_repository(repositoryName=repo)
    pushed = await client.push(repo, "history", manifest(4))
    status = await client.tag(repo, "history")
    assert (repo, "history", pushed.digest) == (status.repository, status.tag, status.digest)


async def test_history_pages_newest_first(client: Driver, service: Service, tag: str) -> None:
    """``history(limit=2)`` is a ``HistoryPage`` of typed entries, newest first, with a
    cursor to the rest."""
    for sequence in (1, 2, 3):
        await client.push(service.repo, tag, manifest(sequence, tag), sequence=sequence)
    for _ in range(200):  # each entry is appended just after its push is answered
        if len((await client.history(service.repo, tag, limit=10)).items) == 3:
            break
        await asyncio.sleep(0.025)
    first = await client.history(service.repo, tag, limit=2)
    rest = await client.history(service.repo, tag, limit=2, cursor=first.next_cursor)
    assert isinstance(first, HistoryPage)
    assert all(isinstance(item, HistoryEntry) for item in first.items + rest.items)
    assert [3, 2, 1] == [item.sequence for item in first.items + rest.items]
    assert ["pushed"] * 3 == [item.outcome for item in first.items + rest.items]
    assert first.next_cursor is not None
    assert rest.next_cursor is None


# --- configuration ------------------------------------------------------------------


class Recorder:
    """An ASGI app that records each request's path and headers and answers a tag."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["path"], headers))
        body = {
            "repository": "team/app",
            "tag": "v1",
            "digest": "sha256:" + "a" * 64,
            "sequence": 1,
            "token": 7,
            "caller": "ci",
            "request_id": "r1",
            "updated_at": "2026-01-01T00:00:00Z",
        }
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


async def test_env_url_and_token_are_honoured(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no arguments the client calls ``PUSHGATE_URL`` and sends ``PUSHGATE_TOKEN`` as
    a bearer token."""
    recorder = Recorder()
    with serve(recorder) as url:
        monkeypatch.setenv("PUSHGATE_URL", url + "/")
        monkeypatch.setenv("PUSHGATE_TOKEN", "s3cret")
        status = await make_client().tag("team/app", "v1")
    assert "sha256:" + "a" * 64 == status.digest
    assert ["Bearer s3cret"] == [headers.get("authorization") for _, headers in recorder.requests]


async def test_arguments_win_over_env(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit URL and token replace ``PUSHGATE_URL`` and ``PUSHGATE_TOKEN``; no token
    at all sends no Authorization header."""
    recorder = Recorder()
    with serve(recorder) as url:
        monkeypatch.setenv("PUSHGATE_URL", "http://127.0.0.1:9")
        monkeypatch.setenv("PUSHGATE_TOKEN", "from-env")
        await make_client(url, "from-arg").tag("team/app", "v1")
        monkeypatch.delenv("PUSHGATE_TOKEN")
        await make_client(url).tag("team/app", "v1")
    assert ["Bearer from-arg", None] == [
        headers.get("authorization") for _, headers in recorder.requests
    ]


async def test_env_deadline_bounds_the_retries(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PUSHGATE_DEADLINE_SECONDS`` replaces the default 120 s deadline: an unreachable
    service is reported within it, the planned waits fitting in it."""
    monkeypatch.setenv("PUSHGATE_DEADLINE_SECONDS", "0.3")
    delays: list[float] = []
    client = make_client(closed_port_url(), on_retry=lambda _e, delay, _l: delays.append(delay))
    with pytest.raises(ServiceUnreachable):
        await client.tag("team/app", "v1")
    assert 0.3 == client.client.retry.deadline
    assert sum(delays) < 0.3


@pytest.mark.parametrize("value", ["soon", "-1", "0", "nan"])
def test_env_deadline_must_be_seconds(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """A ``PUSHGATE_DEADLINE_SECONDS`` that is not a positive number of seconds is a
    ValueError naming the variable (the CLI's exit 2)."""
    monkeypatch.setenv("PUSHGATE_DEADLINE_SECONDS", value)
    with pytest.raises(ValueError, match="PUSHGATE_DEADLINE_SECONDS"):
        PushClient("http://127.0.0.1:9")


class SlowApp:
    """Reads a request, then holds its answer until ``released`` (a server that has
    the push but answers late); counts the answers it sent."""

    def __init__(self) -> None:
        self.released = False
        self.answered = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        for _ in range(600):  # at most 30 s, so a client that waits gets its answer
            if self.released:
                break
            await asyncio.sleep(0.05)
        body = {"error": "lease_timeout", "message": "answered late"}
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})
        self.answered += 1


async def test_the_deadline_bounds_a_request_the_server_answers_late(
    make_client: MakeClient,
) -> None:
    """A server that has read the push but holds its answer cannot keep the client past
    its deadline: the client gives up with ``ServiceUnreachable`` before any answer,
    although its I/O timeout and the lease wait it allows are longer."""
    app = SlowApp()
    with serve(app) as url:
        client = make_client(url, timeout=60.0, retry=RetryPolicy(deadline=0.5))
        try:
            with pytest.raises(ServiceUnreachable):
                await client.push("team/app", "v1", manifest(1), wait_seconds=30.0)
            answered = app.answered
        finally:
            app.released = True
    assert 0 == answered


async def test_a_push_naming_its_wait_takes_lease_timeout_as_final(
    make_client: MakeClient, service: Service, tag: str
) -> None:
    """A push with ``wait_seconds`` whose tag stays busy raises ``LeaseTimeout`` after
    that one wait, without retrying to the client's (longer) deadline."""
    retries: list[Exception] = []
    lock = LeaseLock(
        service.settings.lease_table,
        client=service.dynamodb,
        config=LockConfig(lease_seconds=30.0),
        owner="another-pushgate",
    )
    client = make_client(
        service.url,
        retry=RetryPolicy(deadline=20.0, base=0.05),
        on_retry=lambda error, _delay, _left: retries.append(error),
    )
    with (
        lock.acquire(ImageRef(service.repo, tag).key, timeout=5.0),
        pytest.raises(LeaseTimeout),
    ):
        await client.push(service.repo, tag, manifest(1, tag), wait_seconds=0.3)
    assert [] == retries


async def test_history_of_a_tag_never_pushed_is_tag_not_found(
    client: Driver, service: Service, tag: str
) -> None:
    """``history()`` of a tag with no recorded push raises ``TagNotFound``, as ``tag()``
    does, rather than answering an empty page."""
    with pytest.raises(TagNotFound) as caught:
        await client.history(service.repo, tag)
    assert "tag_not_found" == caught.value.code


async def test_an_answer_that_is_not_pushgates_is_a_client_error(make_client: MakeClient) -> None:
    """A 200 answer of another shape (``PUSHGATE_URL`` naming some other service) raises
    the client's own root error, never a bare KeyError."""
    with serve(Recorder()) as url:
        client = make_client(url)
        with pytest.raises(ApiError) as caught:
            await client.push("team/app", "v1", manifest(1))
    assert (200, "unexpected_answer") == (caught.value.status, caught.value.code)
