"""``Registry`` over an aioboto3 ECR client, with ECR's error codes mapped in one table.

Retries. The ECR client is built with ``retries={"mode": "standard", "total_max_attempts": 1}``
(see ``service.adapters.aws.ecr_config``): botocore's standard and adaptive modes count
``LimitExceededException`` as throttling and would retry a quota error that waiting cannot
cure, and their quick retries cannot respect the lease's remaining time. So botocore makes
one attempt, and the use case (``service.domain.push``) retries only what
``PushError.retryable`` marks — throttling, ``ServerException``/5xx, connection faults and
timeouts — with full-jitter backoff, each attempt timed to end well inside the lease.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from service.domain.errors import (
    DigestMismatch,
    InvalidRequest,
    KmsFailure,
    LayersNotFound,
    PushError,
    QuotaExceeded,
    ReferencedImagesNotFound,
    RegistryError,
    RegistryFault,
    RegistryThrottled,
    RegistryTimeout,
    RepositoryNotFound,
)
from service.domain.models import DIGEST_RE, MANIFEST_MEDIA_TYPES, ImageRef
from service.domain.ports import PutStatus
from service.metrics import record_call

if TYPE_CHECKING:
    from types_aiobotocore_ecr import ECRClient

log = structlog.get_logger("pushgate.ecr")


@dataclass(frozen=True, slots=True)
class _Failure:
    """An ECR ClientError with the context the error table needs."""

    code: str
    message: str
    status: int
    repository: str
    digest: str | None
    response: dict[str, Any]


def _invalid_parameter(failure: _Failure) -> PushError:
    field = "request"
    match = re.search(r"'(\w+)'", failure.message)
    if match:
        field = _ECR_FIELDS.get(match.group(1), match.group(1))
    return InvalidRequest(field, f"the registry refused it: {failure.message}")


_ECR_FIELDS = {
    "imageTag": "tag",
    "imageManifest": "manifest",
    "imageManifestMediaType": "media_type",
    "repositoryName": "repository",
    "imageDigest": "digest",
}

ALREADY_EXISTS = PutStatus.ALREADY_EXISTS
ErrorFactory = Callable[[_Failure], PushError]

#: Every ECR error code of ``shared/ECR.md``'s table, and what a push answers.
#: ImageAlreadyExists / ImageTagAlreadyExists are not errors: the use case compares the
#: tag's digest with the pushed one (-> ``unchanged``, or 409 ``tag_immutable``).
ERROR_TABLE: dict[str, PutStatus | ErrorFactory] = {
    "ImageAlreadyExistsException": ALREADY_EXISTS,
    "ImageTagAlreadyExistsException": ALREADY_EXISTS,
    "LayersNotFoundException": lambda f: LayersNotFound(
        DIGEST_RE.findall(f.message), registry_message=f.message
    ),
    "ReferencedImagesNotFoundException": lambda f: ReferencedImagesNotFound(
        registry_message=f.message
    ),
    "ImageDigestDoesNotMatchException": lambda f: DigestMismatch(
        f.digest or "", registry_message=f.message
    ),
    "RepositoryNotFoundException": lambda f: RepositoryNotFound(f.repository),
    "InvalidParameterException": _invalid_parameter,
    "LimitExceededException": lambda f: QuotaExceeded(f.message),
    "ThrottlingException": lambda f: RegistryThrottled(
        "The registry is throttling requests.", cause_code=f.code
    ),
    "TooManyRequestsException": lambda f: RegistryThrottled(
        "The registry is throttling requests.", cause_code=f.code
    ),
    "ServerException": lambda f: RegistryFault("The registry failed.", cause_code=f.code),
    "KmsException": lambda f: KmsFailure(str(f.response.get("kmsError", "")), f.message),
}


def translate(exc: ClientError, *, repository: str, digest: str | None) -> PutStatus | PushError:
    """Map one ECR ClientError through ``ERROR_TABLE``; an unknown 5xx is a retryable
    ``RegistryFault``, an unknown 4xx (AccessDenied, say) a ``RegistryError``
    (``registry_refused``): retrying it cannot help. Their answers name ECR's code but
    not its text, which can hold account ids and role ARNs; the log has it."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    failure = _Failure(
        code=code,
        message=str(error.get("Message", "")),
        status=int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)),
        repository=repository,
        digest=digest,
        response=dict(exc.response),
    )
    entry = ERROR_TABLE.get(code)
    if isinstance(entry, PutStatus):
        return entry
    if entry is not None:
        return entry(failure)
    log.warning("ecr_failed", code=code, status=failure.status, error=failure.message[:1000])
    if failure.status >= 500:  # noqa: PLR2004 - HTTP server errors
        return RegistryFault(f"The registry failed ({code}).", cause_code=code)
    return RegistryError(
        f"The registry refused the call ({code}); retrying will not help: check the "
        "service's permissions.",
        cause_code=code,
    )


def _raise_error(exc: ClientError, *, repository: str, digest: str | None) -> PushError:
    answer = translate(exc, repository=repository, digest=digest)
    if isinstance(answer, PutStatus):  # "already exists" outside put_image: unexpected
        return RegistryError("The registry answered 'already exists'.", cause_code="AlreadyExists")
    return answer


def _unreachable(exc: BotoCoreError) -> RegistryFault:
    """No answer from ECR; the answer leaves out botocore's text (it names the endpoint)."""
    log.warning("ecr_unreachable", error=str(exc)[:1000])
    return RegistryFault("The registry is unreachable.", cause_code=type(exc).__name__)


class EcrRegistry:
    """ECR over one aioboto3 client; ``read_timeout`` bounds the non-put calls."""

    def __init__(
        self, client: ECRClient, *, registry_id: str | None = None, read_timeout: float = 5.0
    ) -> None:
        self._client = client
        self._registry_id = registry_id
        self._read_timeout = read_timeout

    def _registry(self) -> dict[str, str]:
        return {"registryId": self._registry_id} if self._registry_id else {}

    async def put_image(
        self,
        ref: ImageRef,
        *,
        manifest: str,
        media_type: str | None,
        digest: str,
        timeout: float,
    ) -> PutStatus:
        extra: dict[str, Any] = self._registry()
        if media_type:
            extra["imageManifestMediaType"] = media_type
        started = time.perf_counter()
        throttled = False
        try:
            async with asyncio.timeout(timeout):
                await self._client.put_image(
                    repositoryName=ref.repository,
                    imageManifest=manifest,
                    imageTag=ref.tag,
                    imageDigest=digest,
                    **extra,
                )
        except TimeoutError as exc:
            raise RegistryTimeout(
                f"PutImage did not answer within {timeout:.1f} s.", cause_code="Timeout"
            ) from exc
        except ClientError as exc:
            answer = translate(exc, repository=ref.repository, digest=digest)
            if isinstance(answer, PutStatus):
                return answer
            throttled = isinstance(answer, RegistryThrottled)
            raise answer from exc
        except BotoCoreError as exc:
            raise _unreachable(exc) from exc
        finally:
            record_call("PutImage", time.perf_counter() - started, throttled=throttled)
        return PutStatus.PUSHED

    async def _batch_get(self, repository: str, image_id: dict[str, str]) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._read_timeout):
                answer = await self._client.batch_get_image(
                    repositoryName=repository,
                    imageIds=[image_id],  # type: ignore[list-item]
                    acceptedMediaTypes=sorted(MANIFEST_MEDIA_TYPES),
                    **self._registry(),
                )
        except TimeoutError as exc:
            raise RegistryTimeout("BatchGetImage did not answer in time.") from exc
        except ClientError as exc:
            raise _raise_error(exc, repository=repository, digest=None) from exc
        except BotoCoreError as exc:
            raise _unreachable(exc) from exc
        finally:
            record_call("BatchGetImage", time.perf_counter() - started)
        images = answer.get("images", [])
        return dict(images[0]) if images else None

    async def reserve(self, ref: ImageRef, digest: str) -> None:
        """No budget here: ``BudgetedRegistry`` adds one."""

    async def tag_digest(self, ref: ImageRef) -> str | None:
        image = await self._batch_get(ref.repository, {"imageTag": ref.tag})
        if image is None:
            return None
        digest = image.get("imageId", {}).get("imageDigest")
        return str(digest) if digest else None

    async def manifest(self, repository: str, digest: str) -> tuple[str, str | None] | None:
        image = await self._batch_get(repository, {"imageDigest": digest})
        if image is None or "imageManifest" not in image:
            return None
        media_type = image.get("imageManifestMediaType")
        return str(image["imageManifest"]), str(media_type) if media_type else None

    async def ping(self) -> None:
        """One cheap authenticated call: the registry answers at all."""
        try:
            async with asyncio.timeout(self._read_timeout):
                await self._client.describe_repositories(maxResults=1, **self._registry())
        except TimeoutError as exc:
            raise RegistryTimeout("DescribeRepositories did not answer in time.") from exc
        except ClientError as exc:
            raise _raise_error(exc, repository="", digest=None) from exc
        except BotoCoreError as exc:
            raise _unreachable(exc) from exc
