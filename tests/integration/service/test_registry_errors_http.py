"""Every row of ECR's error table (docs/ecr.md) through HTTP, by error injection into
moto's ECR backend (tests/ecr_fidelity.py), and DynamoDB refusals retrying cannot cure;
a failed push never leaves a lease held."""

from __future__ import annotations

from typing import Any

import aioboto3
import httpx
import pytest

from service import codes
from service.main import create_app
from service.settings import Settings
from tests.ecr_fidelity import EcrFidelity
from tests.integration.service.helpers import held_leases, manifest, tag_digest

pytestmark = pytest.mark.integration

ATTEMPTS = 3  # settings.ecr_attempts in conftest


async def push(client: httpx.AsyncClient, repo: str, n: int = 1) -> httpx.Response:
    return await client.post(
        "/v1/pushes", json={"repository": repo, "tag": "v1", "manifest": manifest(n)}
    )


@pytest.mark.parametrize(
    ("code", "members", "status", "error"),
    [
        ("LayersNotFoundException", {}, 400, "layers_not_found"),
        ("ReferencedImagesNotFoundException", {}, 400, "referenced_images_not_found"),
        ("ImageDigestDoesNotMatchException", {}, 422, "digest_mismatch"),
        ("InvalidParameterException", {}, 422, "invalid_request"),
        ("LimitExceededException", {}, 400, "quota_exceeded"),
        ("KmsException", {"kmsError": "KMSDisabledException"}, 502, "kms_error"),
    ],
)
async def test_non_retryable_error_is_answered_after_one_call(
    client: httpx.AsyncClient,
    repo: str,
    fidelity: EcrFidelity,
    dynamodb: Any,
    settings: Settings,
    code: str,
    members: dict[str, str],
    status: int,
    error: str,
) -> None:
    """Each non-retryable ECR code maps to its answer after exactly one PutImage, with the
    lease released."""
    fidelity.inject(repo, code, "injected failure", members=members)
    answer = await push(client, repo)
    assert (status, error) == (answer.status_code, answer.json()["error"])
    assert 1 == fidelity.count(repo)
    assert [] == held_leases(dynamodb, settings, repo)


async def test_layers_not_found_lists_the_digests(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity
) -> None:
    """layers_not_found carries the missing layer digests from ECR's message."""
    layer = "sha256:" + "a" * 64
    fidelity.inject(repo, "LayersNotFoundException", f"Layers with digests '[{layer}]' missing")
    answer = await push(client, repo)
    assert [layer] == answer.json()["digests"]


async def test_kms_error_carries_kms_text(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity
) -> None:
    """A KMS failure is 502 with the KMS error code and text."""
    fidelity.inject(
        repo, "KmsException", "The key is disabled", members={"kmsError": "KMSDisabledException"}
    )
    answer = (await push(client, repo)).json()
    assert ("KMSDisabledException", "The key is disabled") == (
        answer["kms_error"],
        answer["kms_message"],
    )


async def test_limit_exceeded_is_not_retried(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity
) -> None:
    """LimitExceededException (which botocore's standard mode would retry) is tried once."""
    fidelity.inject(repo, "LimitExceededException", "images per repository", times=ATTEMPTS)
    answer = await push(client, repo)
    assert (400, "quota_exceeded", 1) == (
        answer.status_code,
        answer.json()["error"],
        fidelity.count(repo),
    )


async def test_missing_repository_is_404(client: httpx.AsyncClient, suffix: str) -> None:
    """A repository that does not exist is 404 repository_not_found."""
    answer = await push(client, f"team/missing-{suffix}")
    assert (404, "repository_not_found") == (answer.status_code, answer.json()["error"])


async def test_throttling_once_is_retried_and_pushed(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity, ecr: Any
) -> None:
    """A ThrottlingException is retried after a backoff and the push succeeds."""
    fidelity.inject(repo, "ThrottlingException", "Rate exceeded")
    answer = await push(client, repo)
    assert (200, "pushed", 2) == (
        answer.status_code,
        answer.json()["outcome"],
        fidelity.count(repo),
    )
    assert answer.json()["digest"] == tag_digest(ecr, repo, "v1")


async def test_persistent_throttling_is_503_with_retry_after(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity, dynamodb: Any, settings: Settings
) -> None:
    """Throttling on every attempt is 503 registry_throttled with Retry-After, lease released."""
    fidelity.inject(repo, "ThrottlingException", "Rate exceeded", times=ATTEMPTS)
    answer = await push(client, repo)
    assert (503, "registry_throttled", "2") == (
        answer.status_code,
        answer.json()["error"],
        answer.headers.get("retry-after"),
    )
    assert ATTEMPTS == fidelity.count(repo)
    assert [] == held_leases(dynamodb, settings, repo)


async def test_server_exception_once_is_retried_and_pushed(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity
) -> None:
    """A 500 ServerException is retried and the push succeeds."""
    fidelity.inject(repo, "ServerException", "internal error")
    answer = await push(client, repo)
    assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])


async def test_persistent_server_exception_is_502(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity, dynamodb: Any, settings: Settings
) -> None:
    """ServerException on every attempt is 502 registry_error, lease released."""
    fidelity.inject(repo, "ServerException", "internal error", times=ATTEMPTS)
    answer = await push(client, repo)
    assert (502, "registry_error", "ServerException") == (
        answer.status_code,
        answer.json()["error"],
        answer.json()["cause"],
    )
    assert [] == held_leases(dynamodb, settings, repo)


async def test_unmodelled_5xx_is_retried(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity
) -> None:
    """Any other 5xx answer is retried like ServerException."""
    fidelity.inject(repo, "InternalFailure", "oops", status=503)
    answer = await push(client, repo)
    assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])


async def test_failed_push_is_in_history(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity
) -> None:
    """A failed push is appended to history with its error code."""
    fidelity.inject(repo, "LayersNotFoundException", "missing")
    await push(client, repo)
    items = (await client.get(f"/v1/tags/{repo}/v1/history")).json()["items"]
    assert [("failed", "layers_not_found")] == [(i["outcome"], i["error"]) for i in items]


async def test_ecr_access_denied_is_500_registry_refused_after_one_call(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity, dynamodb: Any, settings: Settings
) -> None:
    """An ECR refusal that is no fault of the request (AccessDenied) is tried once and
    answered 500 registry_refused, without Retry-After nor ECR's text, lease released."""
    secret = "User: arn:aws:sts::123456789012:assumed-role/pushgate is not authorized"
    fidelity.inject(repo, "AccessDeniedException", secret, times=ATTEMPTS)
    answer = await push(client, repo)
    assert (500, "registry_refused", None, 1) == (
        answer.status_code,
        answer.json()["error"],
        answer.headers.get("retry-after"),
        fidelity.count(repo),
    )
    assert secret not in answer.text
    assert [] == held_leases(dynamodb, settings, repo)


async def test_missing_table_is_500_backend_rejected(
    settings: Settings,
    aws_session: aioboto3.Session,
    repo: str,
    dynamodb: Any,
) -> None:
    """A lease table that does not exist is a permanent DynamoDB refusal: 500
    backend_rejected without Retry-After nor DynamoDB's text, the lease released, and
    /readyz then not ready."""
    broken = settings.model_copy(update={"lease_table": "no-such-lease-table"})
    app = create_app(broken, session=aws_session)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pg") as http,
    ):
        answer = await push(http, repo)
        ready = await http.get("/readyz")
    assert (500, "backend_rejected", "ResourceNotFoundException", None) == (
        answer.status_code,
        answer.json()["error"],
        answer.json()["cause"],
        answer.headers.get("retry-after"),
    )
    assert "Requested resource not found" not in answer.text
    assert codes.code("backend_rejected").status == answer.status_code
    assert (503, []) == (ready.status_code, held_leases(dynamodb, settings, repo))
