"""``POST /v1/promotions``, and ``POST /v1/pushes`` with ``tags`` or without a tag.

A promotion names an image already in ECR by digest and the tags to move to it:
pushgate reads the exact manifest bytes and media type with BatchGetImage and runs each
tag through the push use case under that tag's lease (``service.domain.promote``).

Answers. Whatever concerns the whole request is an error answer in the documented
shape: bad input (422), ``image_not_found`` or ``repository_not_found`` (404), a
manifest ECR refuses at the first tag (``layers_not_found``...), 401/403. Once the tags
were tried, the answer is 200 with ``status`` ``ok`` (every tag succeeded), ``partial``
or ``failed`` and each tag's outcome or error: a multi-status answer (207) is foreign to
most HTTP clients, and one tag's error says nothing of the others. The CLI exits 0 on
``ok``, else with the exit code of the first failed tag's error code.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Request

from service.adapters.layers import EcrLayers
from service.api.deps import IdentityDep, RequestIdDep, ServicesDep, get_services
from service.api.errors import bounded
from service.api.pushing import caller_of, observed
from service.api.schemas import (
    DigestPushResponse,
    ErrorResponse,
    PromoteBody,
    PushBody,
    TagsResponse,
)
from service.domain.errors import InvalidRequest, RegistryError, RegistryFault
from service.domain.limits import MAX_CALLER_CHARS
from service.domain.models import ImageRef, PushRequest, PushResult
from service.domain.ports import PutStatus
from service.domain.promote import (
    ANY_TAG,
    PushOne,
    check_expected,
    push_by_digest,
    push_tags,
    read_image,
    tag_refs,
)
from service.registry.protocol import RegistryError as OciError

log = structlog.get_logger("pushgate.api")

router = APIRouter(tags=["pushes"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "layers_not_found (the target lacks the image's layers), quota_exceeded",
        404: "image_not_found, repository_not_found",
        422: "invalid_request (with field and reason), digest_mismatch",
        502: "registry_error, registry_timeout, kms_error",
        503: "registry_throttled, backend_unavailable; Retry-After",
    }.items()
}


@router.post("/v1/promotions", response_model=TagsResponse, responses=_ERRORS)
async def create_promotion(
    body: PromoteBody,
    request: Request,
    services: ServicesDep,
    request_id: RequestIdDep,
    identity: IdentityDep,
    x_pushgate_caller: Annotated[str | None, Header(max_length=MAX_CALLER_CHARS)] = None,
) -> TagsResponse:
    """Move each tag to the image ``digest`` already in ECR, one tag at a time.

    ``source_repository``: read the image there and put it into ``repository`` (same
    registry; ECR refuses it unless ``repository`` holds the image's layers)."""
    source = body.source_repository or body.repository
    identity.check(body.repository)
    identity.check(source)
    caller = caller_of(body.caller, request, identity, x_pushgate_caller)
    refs = tag_refs(body.repository, body.tags)
    ImageRef(source, ANY_TAG)  # the source's name rules, before ECR is asked
    settings = services.settings
    if body.wait_seconds is not None and body.wait_seconds > settings.max_wait_seconds:
        raise InvalidRequest("wait_seconds", f"must be between 0 and {settings.max_wait_seconds}")
    structlog.contextvars.bind_contextvars(repo=body.repository, digest=body.digest)
    manifest, media_type = await read_image(services.registry, source, body.digest)
    push_request = PushRequest.create(
        repository=body.repository,
        tag=ANY_TAG,
        manifest=manifest,
        media_type=media_type,
        sequence=body.sequence,
        wait_seconds=None if body.wait_seconds is None else float(body.wait_seconds),
        default_wait_seconds=settings.default_wait_seconds,
        max_wait_seconds=settings.max_wait_seconds,
    )
    check_expected(push_request, body.digest)  # ECR's bytes are the image's
    result = await push_tags(
        push_request,
        refs,
        _push_one(request, caller, request_id),
        source_repository=source if source != body.repository else None,
    )
    log.info("promotion", status=result.status.value, tags=len(refs), source=source)
    return _bounded(TagsResponse.of(result, body.sequence))


async def push_untagged(
    body: PushBody,
    push_request: PushRequest,
    request: Request,
    caller: str,
    request_id: str,
) -> TagsResponse | DigestPushResponse:
    """``POST /v1/pushes`` with ``tags`` (each under its lease) or with no tag at all
    (by digest). ``push_request`` is validated with a stand-in tag."""
    check_expected(push_request, body.expected_digest)
    if body.tags is not None:
        refs = tag_refs(push_request.ref.repository, body.tags)
        result = await push_tags(push_request, refs, _push_one(request, caller, request_id))
        return _bounded(TagsResponse.of(result, push_request.sequence))
    services = get_services(request)
    answer = await push_by_digest(
        push_request,
        _DigestPuts(services.layers),
        services.history,
        caller=caller,
        request_id=request_id,
        clock=time.time,
    )
    log.info("push_by_digest", outcome=answer.outcome.value, digest=answer.digest)
    return DigestPushResponse.of(answer)


def _push_one(request: Request, caller: str, request_id: str) -> PushOne:
    services = get_services(request)

    async def push_one(push_request: PushRequest) -> PushResult:
        structlog.contextvars.bind_contextvars(tag=push_request.ref.tag)

        async def run() -> PushResult:
            # defer=None: verify and release before the next tag's lease (one at a time)
            return await services.push.push(push_request, caller=caller, request_id=request_id)

        return await observed(run, services.metrics, caller)

    return push_one


def _bounded(answer: TagsResponse) -> TagsResponse:
    """Each tag's error details cut to size, as every error answer is."""
    for item in answer.tags:
        if item.details is not None:
            item.details = bounded(item.details)
    return answer


class _DigestPuts:
    """``EcrLayers.put_by_digest`` with its spec-shaped failures (no answer, a timeout)
    as the push API's ``registry_error``."""

    def __init__(self, layers: EcrLayers | None) -> None:
        self._layers = layers

    async def put_by_digest(
        self, repository: str, manifest: str, media_type: str, digest: str
    ) -> PutStatus:
        if self._layers is None:
            raise RegistryError("This service has no ECR client for pushes by digest.")
        try:
            return await self._layers.put_by_digest(repository, manifest, media_type, digest)
        except OciError as exc:
            cause = str(exc.detail.get("ecr") or exc.code)
            raise RegistryFault("The registry failed PutImage.", cause_code=cause) from exc
