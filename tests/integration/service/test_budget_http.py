"""The PutImage budget and coalescing against the moto server: two apps (replicas, each
with its own clients and budget object) share one budget table."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import httpx
import pytest
from fastapi import FastAPI

from service.adapters.aws import open_clients
from service.adapters.budget import ensure_budget_table
from service.domain.models import manifest_digest
from service.main import create_app
from service.settings import Settings
from tests.ecr_fidelity import EcrFidelity, slow_calls
from tests.integration.service.helpers import manifest, tag_digest

pytestmark = pytest.mark.integration

RATE = 4.0  # PutImage/s: low, so a few pushes queue for seconds, not minutes
PUSHES = 14


def sliding_max(times: list[float], window: float = 1.0) -> int:
    """The most calls in any half-open window [t, t + window) starting at a call."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, sum(1 for t in ordered[i:] if t < start + window))
    return best


def test_sliding_max_counts_half_open_windows() -> None:
    """Calls exactly one window apart are not in one window."""
    assert (2, 1) == (sliding_max([0.0, 0.5, 1.0, 2.5]), sliding_max([0.0, 1.0, 2.0]))


@contextlib.asynccontextmanager
async def replica(
    settings: Settings, session: aioboto3.Session, calls: list[float]
) -> AsyncIterator[httpx.AsyncClient]:
    """One app with its lifespan running; every PutImage it sends is timed in ``calls``."""
    app: FastAPI = create_app(settings, session=session)
    async with app.router.lifespan_context(app):

        def record(**_: Any) -> None:
            calls.append(time.monotonic())

        app.state.clients.ecr.meta.events.register("before-parameter-build.ecr.PutImage", record)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pushgate", timeout=60
        ) as http:
            yield http


@pytest.fixture
async def budget_settings(settings: Settings, suffix: str) -> Settings:
    """The session's tables with a fresh budget table at RATE/s (share 1), and an ECR
    timeout long enough to queue every push of a test for its slot."""
    custom = settings.model_copy(
        update={
            "budget_table": f"budget-{suffix}",
            "putimage_rate_per_second": RATE,
            "putimage_budget_share": 1.0,
            "lease_seconds": 20.0,
            "ecr_timeout_seconds": 10.0,
            "budget_max_wait_seconds": 9.0,
        }
    )
    async with open_clients(custom) as clients:
        await ensure_budget_table(clients.dynamodb, custom.budget_table)
    return custom


async def test_two_replicas_never_exceed_the_rate(
    budget_settings: Settings, aws_session: aioboto3.Session, repo: str, ecr: Any
) -> None:
    """14 pushes of 14 tags at once, split over two replicas, at a 4/s budget: every push
    succeeds, and no sliding 1 s window holds more than 4 PutImage calls + 1.

    Tolerance (+1): slots are spaced exactly 1/RATE apart, and a call may start up to
    0.4/RATE after its slot (the reservation's round trip and the intent write run before
    it), so a 1 s window can hold floor(1.1 x RATE) + 1 = RATE + 1 calls. Calls are timed
    as the ECR client starts building the request (``before-parameter-build``), after the
    replica wakes up for its slot."""
    calls: list[float] = []
    async with (
        replica(budget_settings, aws_session, calls) as one,
        replica(budget_settings, aws_session, calls) as two,
    ):
        answers = await asyncio.gather(
            *(
                (one, two)[i % 2].post(
                    "/v1/pushes",
                    json={
                        "repository": repo,
                        "tag": f"t{i}",
                        "manifest": manifest(i, repo),
                        "sequence": 1,
                    },
                )
                for i in range(PUSHES)
            )
        )
    assert [200] * PUSHES == [a.status_code for a in answers], [a.json() for a in answers[:3]]
    assert {"pushed"} == {a.json()["outcome"] for a in answers}
    assert PUSHES == len(calls)
    assert sliding_max(calls) <= RATE + 1
    assert tag_digest(ecr, repo, "t0") is not None


async def test_budget_table_has_ttl(budget_settings: Settings, dynamodb: Any) -> None:
    """ensure_budget_table turns on TTL on cleanup_at, and is idempotent."""
    async with open_clients(budget_settings) as clients:
        await ensure_budget_table(clients.dynamodb, budget_settings.budget_table)
    ttl = dynamodb.describe_time_to_live(TableName=budget_settings.budget_table)
    assert "cleanup_at" == ttl["TimeToLiveDescription"]["AttributeName"]


async def test_coalescing_over_http_spends_two_put_images_on_five_pushes(
    budget_settings: Settings,
    aws_session: aioboto3.Session,
    repo: str,
    ecr: Any,
    fidelity: EcrFidelity,
) -> None:
    """With coalescing on, five pushes of one tag while the first is in a slow PutImage
    cost two PutImage calls; history holds all five; the tag ends on the highest."""
    settings = budget_settings.model_copy(update={"coalesce": True})
    calls: list[float] = []
    async with replica(settings, aws_session, calls) as http:
        app_ecr = http._transport.app.state.clients.ecr  # type: ignore[attr-defined]
        slow = slow_calls(app_ecr, repo, 1.5, times=1)  # all four arrive meanwhile

        def push(seq: int) -> Any:
            body = {"repository": repo, "tag": "v1", "manifest": manifest(seq), "sequence": seq}
            return http.post("/v1/pushes", json=body)

        first = asyncio.create_task(push(1))
        await asyncio.wait_for(slow.started.wait(), 10)
        rest = await asyncio.gather(*(push(seq) for seq in (2, 5, 3, 4)))
        answers = [await first, *rest]
        history = (await http.get(f"/v1/tags/{repo}/v1/history", params={"limit": 20})).json()
    outcomes = {a.json()["sequence"]: a.json()["outcome"] for a in answers}
    assert {1: "pushed", 2: "superseded", 3: "superseded", 4: "superseded", 5: "pushed"} == (
        outcomes
    )
    assert 2 == fidelity.count(repo)
    assert 5 == len(history["items"])
    assert manifest_digest(manifest(5)) == tag_digest(ecr, repo, "v1")
