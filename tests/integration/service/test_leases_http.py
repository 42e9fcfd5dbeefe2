"""Leases through HTTP: waiting times out, a lease lost during a slow ECR call is
reported with what ECR really holds, and ECR calls end inside the lease."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from locks import AsyncLeaseLock, LockConfig
from service.domain.models import manifest_digest
from service.settings import Settings
from tests.ecr_fidelity import EcrFidelity, slow_calls
from tests.integration.service.helpers import held_leases, manifest, tag_digest

pytestmark = pytest.mark.integration


async def test_lease_held_elsewhere_times_out_with_503(
    client: httpx.AsyncClient,
    app: FastAPI,
    repo: str,
    settings: Settings,
    fidelity: EcrFidelity,
) -> None:
    """While another holder keeps the repo:tag lease, a push with a short wait is 503
    lease_timeout with Retry-After, and ECR is never called."""
    other = AsyncLeaseLock(
        settings.lease_table,
        client=app.state.clients.dynamodb,
        config=LockConfig(lease_seconds=30.0),
        owner="another-pushgate",
    )
    lease = await other.acquire(f"{repo}:v1", timeout=5.0)
    try:
        answer = await client.post(
            "/v1/pushes",
            json={"repository": repo, "tag": "v1", "manifest": manifest(1), "wait_seconds": 0.3},
        )
    finally:
        await lease.release()
    assert (503, "lease_timeout") == (answer.status_code, answer.json()["error"])
    assert "retry-after" in answer.headers
    assert 0 == fidelity.count(repo)


async def test_lease_lost_during_slow_ecr_call_is_reported(
    client: httpx.AsyncClient,
    app: FastAPI,
    repo: str,
    settings: Settings,
    dynamodb: Any,
    ecr: Any,
) -> None:
    """A lease taken over while PutImage is in flight ends in 503 lease_lost carrying the
    digest read back from ECR; the stale holder writes no record."""
    text = manifest(1)
    slow = slow_calls(app.state.clients.ecr, repo, 1.0)
    pushing = asyncio.create_task(
        client.post("/v1/pushes", json={"repository": repo, "tag": "v1", "manifest": text})
    )
    await asyncio.wait_for(slow.started.wait(), 10)
    # the lease "ran out" and another process took it: a newer token, another owner
    item = dynamodb.get_item(
        TableName=settings.lease_table, Key={"pk": {"S": f"{repo}:v1"}}, ConsistentRead=True
    )["Item"]
    dynamodb.put_item(
        TableName=settings.lease_table,
        Item={
            "pk": {"S": f"{repo}:v1"},
            "owner": {"S": "thief"},
            "token": {"N": str(int(item["token"]["N"]) + 1)},
            "expires_at": {"N": str(int(time.time() * 1000) + 60_000)},
        },
    )
    answer = await pushing
    assert (503, "lease_lost") == (answer.status_code, answer.json()["error"])
    assert manifest_digest(text) == answer.json()["observed_digest"] == tag_digest(ecr, repo, "v1")
    assert 404 == (await client.get(f"/v1/tags/{repo}/v1")).status_code
    history = (await client.get(f"/v1/tags/{repo}/v1/history")).json()["items"]
    assert [("failed", "lease_lost")] == [(i["outcome"], i["error"]) for i in history]


async def test_slow_ecr_call_is_cut_inside_the_lease_and_retried(
    repo: str,
    settings: Settings,
    aws_session: Any,
    dynamodb: Any,
    ecr: Any,
) -> None:
    """A PutImage slower than its timeout is abandoned well inside the lease, the tag is
    read back, and the retry pushes; no lease is left held."""
    from service.main import create_app

    quick = settings.model_copy(update={"ecr_timeout_seconds": 0.3})
    application = create_app(quick, session=aws_session)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://pushgate"
        ) as http,
    ):
        slow_calls(application.state.clients.ecr, repo, 2.0)
        answer = await http.post(
            "/v1/pushes", json={"repository": repo, "tag": "v1", "manifest": manifest(1)}
        )
    assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])
    assert answer.json()["digest"] == tag_digest(ecr, repo, "v1")
    assert [] == held_leases(dynamodb, settings, repo)


async def test_successful_push_releases_its_lease(
    client: httpx.AsyncClient, repo: str, dynamodb: Any, settings: Settings
) -> None:
    """After a push the lease item is released (expires_at 0), its token kept."""
    answer = await client.post(
        "/v1/pushes", json={"repository": repo, "tag": "v1", "manifest": manifest(1)}
    )
    item = dynamodb.get_item(
        TableName=settings.lease_table, Key={"pk": {"S": f"{repo}:v1"}}, ConsistentRead=True
    )["Item"]
    assert ("0", str(answer.json()["token"])) == (item["expires_at"]["N"], item["token"]["N"])


async def test_lease_factory_failure_releases_the_lease(
    app: FastAPI, repo: str, settings: Settings
) -> None:
    """A ``lease_factory`` that raises does not leave its lease held: the provider
    releases it, and the next acquire gets it at once."""
    from locks import AsyncLease
    from service.adapters.leases import LockLease, LockLeaseProvider

    lock = AsyncLeaseLock(settings.lease_table, client=app.state.clients.dynamodb)

    def broken(lease: AsyncLease) -> LockLease:
        raise RuntimeError("observer failed")

    with pytest.raises(RuntimeError):
        await LockLeaseProvider(lock, retry_after=1.0, lease_factory=broken).acquire(
            f"{repo}:v1", timeout=1.0
        )
    lease = await LockLeaseProvider(lock, retry_after=1.0).acquire(f"{repo}:v1", timeout=0.0)
    await lease.release()
