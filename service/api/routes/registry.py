"""``/v2/``: the push side of the OCI Distribution API (spec v1.1) over ECR.

Served: ``GET /v2/``; blob ``HEAD`` (and ``GET`` as a redirect to ECR's download URL where
ECR gives one); uploads: monolithic ``POST ?digest=``, ``POST`` + ``PUT``, chunked
``POST``/``PATCH``/``PUT``, ``GET`` of an upload's status, ``DELETE`` of an upload, and
``POST ?mount=&from=`` (201 when the repository holds the blob already, else an ordinary
upload: 202); manifests ``PUT``, ``GET`` and ``HEAD`` by tag and by digest.

A manifest by tag runs the push use case under the tag's lease, with the build's
sequence from the ``Pushgate-Sequence`` header or the ``dev.pushgate.sequence``
annotation. Every outcome is a success for the spec (201); the outcome is in the
``Pushgate-Outcome`` header, and a ``superseded`` manifest is still stored by digest so
the pushing tool finds what it pushed. A manifest by digest is a PutImage without a tag:
no lease, one slot of the PutImage budget.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from service.adapters.layers import EcrLayers
from service.api.errors import bounded
from service.api.pushing import after_answer, caller_of, observed
from service.auth import Authenticator, AuthError, Identity
from service.domain.errors import PushError
from service.domain.limits import MAX_MANIFEST_BYTES
from service.domain.models import Outcome, PushRequest, PushResult, manifest_digest
from service.domain.promote import push_by_digest
from service.domain.push import PushService
from service.registry.parts import give_back_freed_parts, parts, read_ahead
from service.registry.protocol import (
    MIN_CHUNK,
    SEQUENCE_HEADER,
    RegistryError,
    Upload,
    check_content_range,
    check_digest,
    check_name,
    check_reference,
    is_digest,
    sequence_of,
)
from service.settings import Settings

log = structlog.get_logger("pushgate.registry")
router = APIRouter(include_in_schema=False)
API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}


async def identity(request: Request) -> Identity:
    """The caller: Basic (``user:TOKEN``, as ``docker login`` sends) or Bearer; 401 with a
    Basic challenge when auth is on and neither is valid."""
    auth: Authenticator = request.app.state.auth
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII input
            password = ""
        header = f"Bearer {password}" if password else ""
    try:
        return await auth.authenticate(header or None)
    except AuthError as exc:
        code = "UNAUTHORIZED" if exc.status == 401 else "DENIED"  # noqa: PLR2004
        raise RegistryError(code, exc.message) from exc
    except PushError as exc:  # an OIDC issuer's keys could not be fetched: retry
        raise RegistryError(
            "UNAVAILABLE", exc.message, headers={"Retry-After": _retry_after(exc)}
        ) from exc


IdentityDep = Annotated[Identity, Depends(identity)]


def _layers(request: Request) -> EcrLayers:
    layers: EcrLayers | None = request.app.state.services.layers
    if layers is None:
        raise RegistryError("UNSUPPORTED", "This pushgate has no ECR layer API configured.")
    return layers


def _repository(identity: Identity, name: str) -> str:
    check_name(name)
    try:
        identity.check(name)
    except AuthError as exc:
        raise RegistryError("DENIED", exc.message) from exc
    return name


@router.get("/v2/")
@router.get("/v2")
async def version(_identity: IdentityDep) -> Response:
    return JSONResponse({}, headers=API_VERSION)


@router.head("/v2/{name:path}/blobs/{digest}")
@router.get("/v2/{name:path}/blobs/{digest}")
async def blob(request: Request, name: str, digest: str, caller: IdentityDep) -> Response:
    """HEAD: whether the repository holds the blob. GET: a redirect to ECR's download URL;
    pushgate itself serves no blob bytes."""
    repository = _repository(caller, name)
    check_digest(digest, code="BLOB_UNKNOWN")
    layers = _layers(request)
    size = await layers.size(repository, digest)
    if size is None:
        raise RegistryError("BLOB_UNKNOWN", "No such blob in the repository.")
    headers = {"Docker-Content-Digest": digest, "Content-Length": str(size)}
    if request.method == "HEAD":
        return Response(headers=headers, media_type="application/octet-stream")
    url = await layers.download_url(repository, digest)
    if url is None:
        raise RegistryError("UNSUPPORTED", "Blobs are not served here; pull them from ECR.")
    return RedirectResponse(url, status_code=307, headers={"Docker-Content-Digest": digest})


@router.post("/v2/{name:path}/blobs/uploads/")
@router.post("/v2/{name:path}/blobs/uploads")
async def start_upload(request: Request, name: str, caller: IdentityDep) -> Response:
    """Open an upload (202), mount a blob the repository holds (201), or take the whole
    blob in this request when ``digest`` is given (201)."""
    repository = _repository(caller, name)
    layers = _layers(request)
    mount = request.query_params.get("mount")
    if mount is not None:
        check_digest(mount)
        if await layers.size(repository, mount) is not None:
            return _blob_created(repository, mount)
        # ECR mounts nothing across repositories: an ordinary upload follows (202)
    digest = request.query_params.get("digest")
    if digest is not None:
        check_digest(digest)  # before ECR opens an upload
    upload = Upload(await layers.initiate(repository), 0)
    if digest is not None:
        return await _finish(request, layers, repository, upload, digest)
    return _accepted(repository, upload, {"OCI-Chunk-Min-Length": str(MIN_CHUNK)})


@router.patch("/v2/{name:path}/blobs/uploads/{session}")
async def upload_chunk(request: Request, name: str, session: str, caller: IdentityDep) -> Response:
    """Append the body (streamed to ECR in parts) to the upload."""
    repository = _repository(caller, name)
    upload = Upload.parse(session)
    check_content_range(request.headers.get("content-range"), upload)
    upload = await _send(request, _layers(request), repository, upload)
    return _accepted(repository, upload)


@router.put("/v2/{name:path}/blobs/uploads/{session}")
async def finish_upload(request: Request, name: str, session: str, caller: IdentityDep) -> Response:
    """Close the upload as ``digest``, with a last chunk in the body or none."""
    repository = _repository(caller, name)
    upload = Upload.parse(session)
    digest = check_digest(request.query_params.get("digest") or "")
    return await _finish(request, _layers(request), repository, upload, digest)


@router.get("/v2/{name:path}/blobs/uploads/{session}")
async def upload_status(name: str, session: str, caller: IdentityDep) -> Response:
    repository = _repository(caller, name)
    return Response(status_code=204, headers=_upload_headers(repository, Upload.parse(session)))


@router.delete("/v2/{name:path}/blobs/uploads/{session}")
async def cancel_upload(name: str, session: str, caller: IdentityDep) -> Response:
    """ECR has no call to abort an upload; it expires unused. Answered as the spec asks."""
    _repository(caller, name)
    Upload.parse(session)
    return Response(status_code=204)


async def _send(request: Request, layers: EcrLayers, repository: str, upload: Upload) -> Upload:
    """Stream the body to ECR in parts. At most ``PUSHGATE_MAX_BLOB_UPLOADS`` bodies stream
    at once in this replica (each holds a few parts): past that, 429 and come back."""
    streams: asyncio.Semaphore = request.app.state.blob_streams
    if streams.locked():
        raise RegistryError(
            "TOOMANYREQUESTS",
            "This replica is receiving its most blob uploads at once; retry shortly.",
            headers={"Retry-After": "2"},
        )
    offset = upload.offset
    async with streams, contextlib.aclosing(read_ahead(parts(_body(request)))) as cut:
        async for part in cut:
            offset = await layers.upload_part(repository, upload.upload_id, offset, part)
    return Upload(upload.upload_id, offset)


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def _finish(
    request: Request, layers: EcrLayers, repository: str, upload: Upload, digest: str
) -> Response:
    upload = await _send(request, layers, repository, upload)
    await layers.complete(repository, upload.upload_id, digest)
    return _blob_created(repository, digest)


def _upload_headers(repository: str, upload: Upload) -> dict[str, str]:
    return {
        "Location": upload.location(repository),
        "Range": upload.range_header(),
        "Docker-Upload-UUID": upload.upload_id,
    }


def _accepted(repository: str, upload: Upload, extra: dict[str, str] | None = None) -> Response:
    headers = _upload_headers(repository, upload) | {"Content-Length": "0"}
    return Response(status_code=202, headers=headers | (extra or {}))


def _blob_created(repository: str, digest: str) -> Response:
    return Response(
        status_code=201,
        headers={"Location": f"/v2/{repository}/blobs/{digest}", "Docker-Content-Digest": digest},
    )


@router.head("/v2/{name:path}/manifests/{reference}")
@router.get("/v2/{name:path}/manifests/{reference}")
async def get_manifest(
    request: Request, name: str, reference: str, caller: IdentityDep
) -> Response:
    repository = _repository(caller, name)
    check_reference(reference)
    found = await _layers(request).manifest(repository, reference)
    if found is None:
        raise RegistryError("MANIFEST_UNKNOWN", "No such manifest in the repository.")
    text, media_type, digest = found
    body = text.encode()
    headers = {"Docker-Content-Digest": digest, "Content-Length": str(len(body))}
    if request.method == "HEAD":
        return Response(headers=headers, media_type=media_type)
    return Response(body, headers=headers, media_type=media_type)


@router.put("/v2/{name:path}/manifests/{reference}")
async def put_manifest(
    request: Request, name: str, reference: str, caller: IdentityDep, background: BackgroundTasks
) -> Response:
    repository = _repository(caller, name)
    check_reference(reference)
    body = await _bounded_body(request, MAX_MANIFEST_BYTES)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise RegistryError("MANIFEST_INVALID", "The manifest is not UTF-8 text.") from exc
    media_type = (request.headers.get("content-type") or "").split(";")[0].strip() or None
    digest = manifest_digest(text)
    try:
        if is_digest(reference):
            if reference != digest:
                raise RegistryError(
                    "DIGEST_INVALID", "The manifest's bytes do not match the digest."
                )
            return await _put_by_digest(request, repository, text, media_type, caller)
        return await _put_by_tag(
            request, repository, reference, text, media_type, caller, background
        )
    except PushError as exc:
        raise push_error(exc) from exc


async def _put_by_digest(
    request: Request, repository: str, text: str, media_type: str | None, caller: Identity
) -> Response:
    """PutImage without a tag (no lease, one budget slot), recorded in history under
    ``repository:@sha256:...`` as ``POST /v1/pushes`` without a tag is."""
    services = request.app.state.services
    settings: Settings = services.settings
    checked = await asyncio.to_thread(
        PushRequest.create,
        repository=repository,
        tag="by-digest",  # validation only: the manifest goes in without a tag
        manifest=text,
        media_type=media_type,
        default_wait_seconds=settings.default_wait_seconds,
        max_wait_seconds=settings.max_wait_seconds,
    )
    answer = await push_by_digest(
        checked,
        _layers(request),
        services.history,
        caller=caller_of(None, request, caller, None),
        request_id=_request_id(request),
        clock=time.time,
    )
    log.info("manifest_by_digest", repo=repository, digest=answer.digest)
    return _manifest_created(repository, answer.digest, answer.outcome.value)


async def _put_by_tag(
    request: Request,
    repository: str,
    tag: str,
    text: str,
    media_type: str | None,
    caller: Identity,
    background: BackgroundTasks,
) -> Response:
    services = request.app.state.services
    settings: Settings = services.settings
    push: PushService = services.push

    def checked() -> PushRequest:
        return PushRequest.create(
            repository=repository,
            tag=tag,
            manifest=text,
            media_type=media_type,
            sequence=sequence_of(text.encode(), request.headers.get(SEQUENCE_HEADER)),
            default_wait_seconds=settings.default_wait_seconds,
            max_wait_seconds=settings.max_wait_seconds,
        )

    # hashing, parsing and bounding a 4 MiB manifest take a while: not on the loop
    push_request = await asyncio.to_thread(checked)
    structlog.contextvars.bind_contextvars(repo=repository, tag=tag)
    name = caller_of(None, request, caller, None)
    async with after_answer(background) as jobs:

        async def run() -> PushResult:
            return await push.push(
                push_request, caller=name, request_id=_request_id(request), defer=jobs.append
            )

        result = await observed(run, services.metrics, name)
        if result.outcome is Outcome.SUPERSEDED:
            # the tag stays on the newer build: its lease goes first, then the image itself
            # is stored by digest for its tool (that may wait for a PutImage slot)
            for job in jobs:
                await job()
            jobs.clear()
            await _layers(request).put_by_digest(
                repository, text, push_request.media_type, push_request.digest
            )
    log.info("manifest_by_tag", repo=repository, tag=tag, outcome=result.outcome.value)
    return _manifest_created(repository, result.digest, result.outcome.value)


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "-")


def _manifest_created(repository: str, digest: str, outcome: str | None) -> Response:
    headers = {"Location": f"/v2/{repository}/manifests/{digest}", "Docker-Content-Digest": digest}
    if outcome is not None:
        headers["Pushgate-Outcome"] = outcome
    return Response(status_code=201, headers=headers)


async def _bounded_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RegistryError("SIZE_INVALID", f"The manifest exceeds {limit} bytes.", status=413)
    return bytes(body)


#: pushgate's code -> the spec's, for the manifest routes
_PUSH_CODES = {
    "invalid_request": "MANIFEST_INVALID",
    "layers_not_found": "MANIFEST_BLOB_UNKNOWN",
    "referenced_images_not_found": "MANIFEST_BLOB_UNKNOWN",
    "digest_mismatch": "DIGEST_INVALID",
    "repository_not_found": "NAME_UNKNOWN",
    "tag_immutable": "DENIED",
    "quota_exceeded": "DENIED",
}


def push_error(exc: PushError) -> RegistryError:
    """A push use case error in the spec's shape, pushgate's code and details in ``detail``."""
    detail: dict[str, Any] = {"pushgate": exc.code, **bounded(exc.details())}
    if exc.code in _PUSH_CODES:
        return RegistryError(_PUSH_CODES[exc.code], exc.message, detail=detail)
    if exc.retryable:
        return RegistryError(
            "TOOMANYREQUESTS",
            exc.message,
            detail=detail,
            headers={"Retry-After": _retry_after(exc)},
        )
    return RegistryError("UNKNOWN", exc.message, detail=detail, status=502)


def _retry_after(exc: PushError) -> str:
    """Whole seconds, rounded up: a client never comes back too early."""
    return str(max(1, math.ceil(exc.retry_after or 1)))


async def registry_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RegistryError)  # noqa: S101 - registered for RegistryError only
    headers = dict(exc.headers)
    if exc.code == "UNAUTHORIZED":
        headers["WWW-Authenticate"] = 'Basic realm="pushgate"'
    headers.pop("Location", None)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers | API_VERSION)


def install(app: FastAPI, *, max_blob_uploads: int) -> None:
    give_back_freed_parts()
    app.state.blob_streams = asyncio.Semaphore(max_blob_uploads)
    app.include_router(router)
    app.add_exception_handler(RegistryError, registry_error_handler)
