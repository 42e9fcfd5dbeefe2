"""``POST /v1/pushes``: validate every field, then run the use case."""

from __future__ import annotations

import asyncio
from typing import Annotated

import structlog
from fastapi import APIRouter, BackgroundTasks, Header, Request, Security

from service.api.deps import BEARER, IdentityDep, MetricsDep, PushDep, RequestIdDep, SettingsDep
from service.api.pushing import after_answer, caller_of, observed
from service.api.routes import promote
from service.api.schemas import (
    DigestPushResponse,
    PushBody,
    PushResponse,
    TagsResponse,
    error_responses,
)
from service.domain.limits import MAX_CALLER_CHARS
from service.domain.models import PushRequest, PushResult
from service.domain.promote import ANY_TAG, check_expected
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
    caller = caller_of(body.caller, request, identity, x_pushgate_caller)
    if body.tag is None:
        untagged = _push_request(body, settings)
        return await promote.push_untagged(body, untagged, request, caller, request_id)
    async with after_answer(background) as jobs:

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

        return PushResponse.of(await observed(run, metrics, caller))


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
