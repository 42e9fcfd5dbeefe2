"""``POST /v1/pushes``: validate every field, then run the use case."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, BackgroundTasks, Header, Request, Security

from service.api.deps import BEARER, IdentityDep, MetricsDep, PushDep, RequestIdDep, SettingsDep
from service.api.routes import promote
from service.api.schemas import (
    DigestPushResponse,
    PushBody,
    PushResponse,
    TagsResponse,
    error_responses,
)
from service.auth import Identity
from service.domain.errors import InvalidRequest, PushError
from service.domain.limits import MAX_CALLER_CHARS, printable
from service.domain.models import PushRequest, PushResult
from service.domain.promote import ANY_TAG, check_expected
from service.metrics import CALL_STATS, CallStats, Metrics
from service.settings import Settings

log = structlog.get_logger("pushgate.api")

router = APIRouter(tags=["pushes"], dependencies=[Security(BEARER)])

_ERRORS = error_responses(
    {
        400: "layers_not_found, referenced_images_not_found, quota_exceeded",
        404: "repository_not_found",
        409: "tag_immutable (with existing_digest)",
        422: "invalid_request (with field and reason), digest_mismatch",
        502: "registry_error, registry_timeout, kms_error",
        503: "lease_timeout, lease_lost, registry_throttled, backend_unavailable; Retry-After",
    }
)


@router.post(
    "/v1/pushes",
    response_model=PushResponse | TagsResponse | DigestPushResponse,
    responses=_ERRORS,
)
async def create_push(
    body: PushBody,
    request: Request,
    push: PushDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    request_id: RequestIdDep,
    identity: IdentityDep,
    background: BackgroundTasks,
    x_pushgate_caller: Annotated[str | None, Header(max_length=MAX_CALLER_CHARS)] = None,
) -> PushResponse | TagsResponse | DigestPushResponse:
    """Put the manifest on repository:tag under the tag's lease.

    Answers ``pushed``, ``unchanged`` or ``superseded``; a bad request never takes a lease.
    With ``tags``: each tag in turn, answered as a promotion is (``routes.promote``);
    with neither ``tag`` nor ``tags``: put by digest alone.
    """
    identity.check(body.repository)  # 403 before anything else is looked at
    caller = _caller(body, request, identity, x_pushgate_caller)
    if body.tag is None:
        untagged = _push_request(body, settings)
        return await promote.push_untagged(body, untagged, request, caller, request_id)
    # Verifying the tag and releasing the lease run after the answer is sent (background
    # tasks); an answer that fails on the way out carries none, so they run here then.
    jobs: list[Callable[[], Awaitable[None]]] = []

    async def run() -> PushResult:
        # hashing, parsing and bounding a 4 MiB manifest take a while: not on the loop
        push_request = await asyncio.to_thread(_push_request, body, settings)
        check_expected(push_request, body.expected_digest)
        structlog.contextvars.bind_contextvars(
            repo=push_request.ref.repository, tag=push_request.ref.tag
        )
        return await push.push(
            push_request, caller=caller, request_id=request_id, defer=jobs.append
        )

    try:
        answer = PushResponse.of(await _observed(run, metrics, caller))
    except BaseException:
        for job in jobs:
            await job()
        raise
    for job in jobs:
        background.add_task(job)
    return answer


def _push_request(body: PushBody, settings: Settings) -> PushRequest:
    """The domain's request; raises ``InvalidRequest`` (422) for what the schema lets by."""
    return PushRequest.create(
        repository=body.repository,
        tag=ANY_TAG if body.tag is None else body.tag,  # without one: checked per tag
        manifest=body.manifest,
        media_type=body.media_type,
        sequence=body.sequence,
        wait_seconds=None if body.wait_seconds is None else float(body.wait_seconds),
        default_wait_seconds=settings.default_wait_seconds,
        max_wait_seconds=settings.max_wait_seconds,
    )


def _caller(body: PushBody, request: Request, identity: Identity, header: str | None) -> str:
    """Who pushes, for history: the body's or header's name, else the client address;
    with auth on, the token's name comes first."""
    client = request.client.host if request.client else "unknown"
    if header is not None and not (header and printable(header)):
        raise InvalidRequest("x-pushgate-caller", "must be printable characters")
    caller = body.caller or header or client
    if identity.entry is not None:
        caller = identity.name if caller == client else f"{identity.name} ({caller})"
    return caller


async def _observed(
    run: Callable[[], Awaitable[PushResult]], metrics: Metrics, caller: str
) -> PushResult:
    """Run the push with its metrics and its one ``push`` log event."""
    stats = CallStats()
    CALL_STATS.set(stats)
    started = time.perf_counter()
    metrics.in_flight.inc()
    try:
        result = await run()
    except PushError as exc:
        metrics.pushes.labels(outcome=exc.code).inc()
        if exc.code == "lease_lost":
            metrics.leases_lost.inc()
        metrics.observe_push(stats, time.perf_counter() - started, None)
        log.info("push", outcome=exc.code, ecr_ms=round(stats.ecr_seconds * 1000, 1))
        raise
    finally:
        metrics.in_flight.dec()
    metrics.pushes.labels(outcome=result.outcome.value).inc()
    if result.repaired:
        metrics.repairs.inc()
    metrics.observe_push(stats, time.perf_counter() - started, result.waited_ms)
    log.info(
        "push",
        outcome=result.outcome.value,
        digest=result.digest,
        previous_digest=result.previous_digest,
        sequence=result.sequence,
        token=result.token,
        waited_ms=round(result.waited_ms, 1),
        ecr_ms=round(stats.ecr_seconds * 1000, 1),
        put_image_calls=stats.put_image_calls,
        caller=caller,
    )
    return result
