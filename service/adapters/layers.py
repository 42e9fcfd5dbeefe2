"""ECR's layer API and manifests by reference, for the registry front door.

Blobs go through BatchCheckLayerAvailability, InitiateLayerUpload, UploadLayerPart and
CompleteLayerUpload: ECR computes the layer's digest from the bytes and refuses a
declared digest that differs (InvalidLayerException), so pushgate does not hash blobs
itself and any replica can continue an upload. ECR's errors become the spec's codes
(``service.registry.protocol.RegistryError``) here; PutImage's go through
``service.adapters.ecr.translate`` like every other push.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from service.adapters.budget import PutImageBudget, take_slot
from service.adapters.ecr import translate
from service.domain.errors import RegistryThrottled
from service.domain.models import MANIFEST_MEDIA_TYPES
from service.domain.ports import PutStatus
from service.metrics import record_call
from service.registry.protocol import RegistryError

if TYPE_CHECKING:
    from types_aiobotocore_ecr import ECRClient

log = structlog.get_logger("pushgate.registry")

#: ECR error code -> (OCI code, message) for the layer calls
_LAYER_ERRORS = {
    "RepositoryNotFoundException": ("NAME_UNKNOWN", "No such repository in the registry."),
    "UploadNotFoundException": ("BLOB_UPLOAD_UNKNOWN", "No such upload (it may have expired)."),
    "InvalidLayerPartException": (
        "RANGE_INVALID",
        "The chunk does not start where the upload stands.",
    ),
    "InvalidLayerException": ("DIGEST_INVALID", "The blob's bytes do not match its digest."),
    "LayerPartTooSmallException": (
        "BLOB_UPLOAD_INVALID",
        "Every chunk but the last must be at least 5 MiB (OCI-Chunk-Min-Length).",
    ),
    "EmptyUploadException": ("SIZE_INVALID", "The upload holds no bytes."),
    "InvalidParameterException": ("BLOB_UPLOAD_INVALID", "The registry refused the upload."),
    "LayersNotFoundException": ("BLOB_UNKNOWN", "No such blob in the repository."),
    "LayerInaccessibleException": ("BLOB_UNKNOWN", "The blob cannot be read."),
}
_THROTTLES = {"ThrottlingException", "LimitExceededException", "TooManyRequestsException"}

_PART_KEY = "pushgate_layer_part"


def _hold_part(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """botocore ``before-parameter-build`` hook: the part waits in the call's context and
    an empty blob goes through botocore's serializer (see ``_part_body``)."""
    part = params.get("layerPartBlob")
    if isinstance(part, bytes) and part:
        context[_PART_KEY] = part
        params["layerPartBlob"] = b""


def _part_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """botocore ``before-call`` hook: the part's JSON body written as bytes directly.

    botocore's JSON serializer turns a part's base64 into text, scans that text for
    characters to escape and encodes it back to bytes: three times the work of the base64
    itself, the largest CPU cost of a blob upload (bench/registry_bench.py). Here the
    body gets the part's base64, which needs no escaping, in place of the empty blob.
    Validation, signing, the endpoint and errors stay botocore's."""
    part = context.pop(_PART_KEY, None)
    if part is None:
        return
    fields = json.loads(params["body"])  # small: the blob in it is empty
    fields.pop("layerPartBlob", None)
    head = json.dumps(fields).encode()[:-1]  # without its closing brace
    params["body"] = b"".join([head, b', "layerPartBlob": "', base64.b64encode(part), b'"}'])


def layer_error(exc: ClientError | BotoCoreError | TimeoutError, operation: str) -> RegistryError:
    """The spec's answer to an ECR failure of a layer call."""
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    log.info("ecr_layer_call_failed", operation=operation, code=code or type(exc).__name__)
    if code in _LAYER_ERRORS:
        oci, message = _LAYER_ERRORS[code]
        return RegistryError(oci, message, detail={"ecr": code})
    if code in _THROTTLES:
        return RegistryError(
            "TOOMANYREQUESTS",
            f"ECR is throttling {operation}; retry later.",
            detail={"ecr": code},
            headers={"Retry-After": "2"},
        )
    return RegistryError(
        "UNKNOWN",
        f"The registry failed {operation}; retry later.",
        detail={"ecr": code or type(exc).__name__},
        status=502,
    )


class EcrLayers:
    """The layer calls and manifest reads of one ECR client; ``timeout`` bounds each call."""

    def __init__(
        self,
        client: ECRClient,
        *,
        registry_id: str | None = None,
        timeout: float = 60.0,
        budget: PutImageBudget | None = None,
        budget_max_wait: float = 30.0,
        budget_forget_after: float = 0.05,
    ) -> None:
        """``budget_forget_after``: how late past its slot a woken call may still start
        (``BudgetedRegistry``'s ``forget_after_seconds``)."""
        self._client = client
        self._extra: dict[str, Any] = {"registryId": registry_id} if registry_id else {}
        self._timeout = timeout
        self._budget = budget
        self._budget_max_wait = budget_max_wait
        self._budget_forget_after = budget_forget_after
        events = client.meta.events
        events.register(
            "before-parameter-build.ecr.UploadLayerPart", _hold_part, unique_id="pushgate-part"
        )
        events.register("before-call.ecr.UploadLayerPart", _part_body, unique_id="pushgate-body")

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(self._client, _snake(operation))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                return dict(await method(**params, **self._extra))
        except (ClientError, BotoCoreError, TimeoutError) as exc:
            raise layer_error(exc, operation) from exc
        finally:
            record_call(operation, time.perf_counter() - started)

    async def size(self, repository: str, digest: str) -> int | None:
        """The blob's size when the repository holds it, else None."""
        answer = await self._call(
            "BatchCheckLayerAvailability", repositoryName=repository, layerDigests=[digest]
        )
        for layer in answer.get("layers", []):
            if layer.get("layerAvailability") == "AVAILABLE" and layer.get("layerDigest") == digest:
                return int(layer.get("layerSize", 0))
        return None

    async def initiate(self, repository: str) -> str:
        answer = await self._call("InitiateLayerUpload", repositoryName=repository)
        return str(answer["uploadId"])

    async def upload_part(self, repository: str, upload_id: str, first: int, part: bytes) -> int:
        """Send ``part`` as bytes ``first..``; answer the offset after it."""
        await self._call(
            "UploadLayerPart",
            repositoryName=repository,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(part) - 1,
            layerPartBlob=part,
        )
        return first + len(part)

    async def complete(self, repository: str, upload_id: str, digest: str) -> None:
        """Close the upload as ``digest``; a layer ECR holds already is a success."""
        try:
            await self._call(
                "CompleteLayerUpload",
                repositoryName=repository,
                uploadId=upload_id,
                layerDigests=[digest],
            )
        except RegistryError as exc:
            if exc.detail.get("ecr") != "LayerAlreadyExistsException":
                raise

    async def download_url(self, repository: str, digest: str) -> str | None:
        """Where ECR serves the blob (a presigned URL), or None where it offers none."""
        try:
            answer = await self._call(
                "GetDownloadUrlForLayer", repositoryName=repository, layerDigest=digest
            )
        except RegistryError as exc:
            if exc.code == "UNKNOWN":
                return None  # emulators without the call
            raise
        url = answer.get("downloadUrl")
        return str(url) if url else None

    async def manifest(self, repository: str, reference: str) -> tuple[str, str, str] | None:
        """(manifest text, media type, digest) of a tag or digest, or None."""
        image_id = {"imageDigest" if reference.startswith("sha256:") else "imageTag": reference}
        answer = await self._call(
            "BatchGetImage",
            repositoryName=repository,
            imageIds=[image_id],
            acceptedMediaTypes=sorted(MANIFEST_MEDIA_TYPES),
        )
        for image in answer.get("images", []):
            text = image.get("imageManifest")
            if text is not None:
                media_type = image.get("imageManifestMediaType") or _embedded_media_type(text)
                return str(text), str(media_type), str(image["imageId"]["imageDigest"])
        return None

    async def put_by_digest(
        self, repository: str, manifest: str, media_type: str, digest: str
    ) -> PutStatus:
        """PutImage without a tag (content-addressed: no lease), after a slot of the shared
        PutImage budget when there is one."""
        if self._budget is not None:
            await take_slot(
                self._budget, self._budget_max_wait, forget_after=self._budget_forget_after
            )
        started = time.perf_counter()
        throttled = False
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.put_image(
                    repositoryName=repository,
                    imageManifest=manifest,
                    imageManifestMediaType=media_type,
                    imageDigest=digest,
                    **self._extra,
                )
        except ClientError as exc:
            answer = translate(exc, repository=repository, digest=digest)
            if isinstance(answer, PutStatus):
                return answer
            throttled = isinstance(answer, RegistryThrottled)
            raise answer from exc
        except (BotoCoreError, TimeoutError) as exc:
            raise layer_error(exc, "PutImage") from exc
        finally:
            record_call("PutImage", time.perf_counter() - started, throttled=throttled)
        return PutStatus.PUSHED


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def _embedded_media_type(text: str) -> str:
    import json  # noqa: PLC0415 - rare path: ECR answered without a media type

    try:
        parsed = json.loads(text)
    except ValueError:
        return "application/octet-stream"
    value = parsed.get("mediaType") if isinstance(parsed, dict) else None
    return str(value) if isinstance(value, str) else "application/vnd.oci.image.manifest.v1+json"
