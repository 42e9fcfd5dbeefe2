"""ECR fidelity: a thin, documented layer over moto's ECR backend so tests learn real ECR.

moto 5.2 departs from ECR (``shared/ECR.md``, "moto is not ECR"). While
:class:`EcrFidelity` is installed, the in-process moto backend (``ThreadedMotoServer``
runs in this process, so patching ``moto.ecr.models.ECRBackend`` reaches it) behaves
like ECR on the points the service relies on:

============================================ =============================================
moto departure                               corrected here
============================================ =============================================
digest = sha256 of joined layer digests      digest = sha256 of the exact manifest bytes
                                             (random for layer-less manifests)
duplicate detected by string equality        duplicate = same digest
IMMUTABLE conflict -> ImageAlreadyExists     -> ImageTagAlreadyExistsException; the same
                                             digest on the same tag -> ImageAlreadyExists
exclusion filters as prefix regexes          wildcard filters (``*``) matched as globs
moving a tag deletes the old image           the old image stays in the repository, untagged
missing repository -> plain exception (500)  RepositoryNotFoundException (400)
non-JSON manifest -> plain exception (500)   InvalidParameterException (400)
``imageDigest`` not validated                ImageDigestDoesNotMatchException
no lock on ECR state                         put_image is serialized by a lock
no throttling, KMS, 5xx, missing layers      :meth:`EcrFidelity.inject` raises any ECR error
                                             code for the next N calls on one repository
no slow calls                                :func:`slow_calls` delays a client's requests
============================================ =============================================

Injection is keyed by repository name, so tests sharing one moto server stay isolated.

Slowness is injected on the *client* (an aiobotocore ``before-send`` hook that sleeps
before the request leaves), not in the backend: the session's server
(``service.localaws.LocalAWS``) applies one AWS call at a time, so a sleep inside the
backend would stall every other test's calls. A delayed call still reaches ECR and lands
after the delay, unless the caller gives up first (then it never lands).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import ServiceException
from moto.ecr import models as ecr_models
from moto.ecr.exceptions import (
    ImageAlreadyExistsException,
    InvalidParameterException,
    RepositoryNotFoundException,
)
from werkzeug.exceptions import HTTPException

ECRBackend = ecr_models.ECRBackend
Image = ecr_models.Image


class EcrError(ServiceException):
    """An ECR error code that ECR's model defines, serialized by moto with that model."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


class EcrFault(HTTPException):
    """Any error answer, body and status as given: also codes outside ECR's model
    (``ThrottlingException``), which moto's serializer would warn about and cannot
    give a 5xx status. moto's response layer passes an ``HTTPException`` through."""

    def __init__(self, error_code: str, message: str, status: int, **members: Any) -> None:
        body = {"__type": error_code, "message": message, **members}
        super().__init__(description=json.dumps(body))
        self.code = status

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [("Content-Type", "application/x-amz-json-1.1")]


@dataclass
class Fault:
    code: str | None = None
    message: str = ""
    status: int = 400
    members: dict[str, Any] = field(default_factory=dict)


def manifest_digest(manifest: str) -> str:
    return "sha256:" + hashlib.sha256(manifest.encode("utf-8")).hexdigest()


class EcrFidelity:
    """Installs the corrected ``put_image`` (and fault injection) on moto's ECR backend."""

    def __init__(self) -> None:
        self._state = threading.Lock()  # serializes ECR state changes, as ECR does
        self._faults_lock = threading.Lock()
        self._faults: dict[tuple[str, str], deque[Fault]] = defaultdict(deque)
        self._originals: dict[str, Any] = {}
        self.calls: dict[tuple[str, str], int] = defaultdict(int)

    # --- test API ------------------------------------------------------------

    def inject(
        self,
        repository: str,
        code: str,
        message: str = "injected",
        *,
        times: int = 1,
        status: int | None = None,
        operation: str = "put_image",
        members: dict[str, Any] | None = None,
    ) -> None:
        """The next ``times`` calls of ``operation`` on ``repository`` fail with ``code``
        (HTTP ``status``: 500 for ``ServerException``, else 400 unless given)."""
        if status is None:
            status = 500 if code == "ServerException" else 400
        fault = Fault(code, message, status, dict(members or {}))
        with self._faults_lock:
            self._faults[(operation, repository)].extend(fault for _ in range(times))

    def count(self, repository: str, operation: str = "put_image") -> int:
        """How many calls of ``operation`` reached the backend for ``repository``."""
        return self.calls[(operation, repository)]

    def clear(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    def _take(self, operation: str, repository: str) -> None:
        with self._faults_lock:
            self.calls[(operation, repository)] += 1
            queue = self._faults.get((operation, repository))
            fault = queue.popleft() if queue else None
        if fault is not None and fault.code is not None:
            raise EcrFault(fault.code, fault.message, fault.status, **fault.members)

    # --- installation --------------------------------------------------------

    def install(self) -> None:
        fidelity = self
        self._originals = {
            "put_image": ECRBackend.put_image,
            "batch_get_image": ECRBackend.batch_get_image,
        }
        original_batch_get = ECRBackend.batch_get_image

        def put_image(
            backend: Any,
            repository_name: str,
            image_manifest: str,
            image_tag: str,
            image_manifest_mediatype: str | None = None,
            digest: str | None = None,
        ) -> Any:
            fidelity._take("put_image", repository_name)
            with fidelity._state:
                return _put_image(
                    backend,
                    repository_name,
                    image_manifest,
                    image_tag,
                    image_manifest_mediatype,
                    digest,
                )

        def batch_get_image(
            backend: Any,
            repository_name: str,
            registry_id: str | None = None,
            image_ids: list[dict[str, Any]] | None = None,
        ) -> Any:
            fidelity._take("batch_get_image", repository_name)
            with fidelity._state:
                return original_batch_get(backend, repository_name, registry_id, image_ids)

        ECRBackend.put_image = put_image  # type: ignore[method-assign,assignment]
        ECRBackend.batch_get_image = batch_get_image  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            setattr(ECRBackend, name, original)
        self._originals = {}
        self.clear()


@contextmanager
def ecr_fidelity() -> Iterator[EcrFidelity]:
    """Install the corrected backend for the duration of the block."""
    fidelity = EcrFidelity()
    fidelity.install()
    try:
        yield fidelity
    finally:
        fidelity.uninstall()


def _tag_immutable(repository: Any, tag: str) -> bool:
    mode = str(getattr(repository, "image_tag_mutability", "MUTABLE"))
    filters = [
        f.get("filter", "")
        for f in (getattr(repository, "image_tag_mutability_exclusion_filters", None) or [])
    ]
    excluded = any(fnmatch.fnmatchcase(tag, pattern) for pattern in filters)
    if mode.startswith("IMMUTABLE"):
        return not excluded
    if mode == "MUTABLE_WITH_EXCLUSION":
        return excluded
    return False


def _put_image(
    backend: Any,
    repository_name: str,
    image_manifest: str,
    image_tag: str,
    media_type: str | None,
    digest: str | None,
) -> Any:
    repository = backend.repositories.get(repository_name)
    if repository is None:
        raise RepositoryNotFoundException(repository_name, backend.account_id)
    try:
        parsed = json.loads(image_manifest)
    except ValueError as exc:
        raise InvalidParameterException(
            "Invalid parameter at 'imageManifest' failed to satisfy constraint: "
            "'Invalid JSON syntax'"
        ) from exc
    if not media_type:
        if not isinstance(parsed, dict) or "mediaType" not in parsed:
            raise InvalidParameterException(
                "image manifest mediatype not provided in manifest or parameter"
            )
        media_type = parsed["mediaType"]
    actual = manifest_digest(image_manifest)
    if digest and digest != actual:
        raise EcrError(
            "ImageDigestDoesNotMatchException",
            f"The image digest '{digest}' does not match the digest of the manifest '{actual}'.",
        )
    holder = next((i for i in repository.images if image_tag in i.image_tags), None)
    if holder is not None and holder.get_image_digest() == actual:
        raise ImageAlreadyExistsException(
            registry_id=repository.registry_id,
            image_tag=image_tag,
            digest=actual,
            repository_name=repository_name,
        )
    if holder is not None and _tag_immutable(repository, image_tag):
        raise EcrError(
            "ImageTagAlreadyExistsException",
            f"The image tag '{image_tag}' already exists in the '{repository_name}' "
            "repository and cannot be overwritten because the repository is immutable.",
        )
    if holder is not None:  # real ECR keeps the old image, untagged
        holder.remove_tag(image_tag)
        if not holder.image_tags:
            holder.image_tag = None
    existing = next((i for i in repository.images if i.get_image_digest() == actual), None)
    if existing is not None:
        existing.update_tag(image_tag)
        return existing
    image = Image(
        backend.account_id,
        image_tag,
        image_manifest,
        repository_name,
        media_type,
        actual,
    )
    repository.images.append(image)
    return image


class SlowCalls:
    """Delays the next ``times`` calls of ``operation`` naming ``repository`` on one
    aiobotocore ECR client by ``seconds`` (asyncio sleep before the request is sent).
    ``started`` is set when a delayed call begins waiting."""

    def __init__(self, repository: str, seconds: float, *, times: int, operation: str) -> None:
        self.repository = repository
        self.seconds = seconds
        self.left = times
        self.operation = operation
        self.started = asyncio.Event()

    async def __call__(self, request: Any, **_: Any) -> None:
        body = request.body
        try:
            params = json.loads(body.decode() if isinstance(body, bytes) else body or "{}")
        except ValueError:
            return
        if self.left <= 0 or params.get("repositoryName") != self.repository:
            return
        self.left -= 1
        self.started.set()
        await asyncio.sleep(self.seconds)


def slow_calls(
    client: Any,
    repository: str,
    seconds: float,
    *,
    times: int = 1,
    operation: str = "PutImage",
) -> SlowCalls:
    """Make ``client``'s next ``times`` ``operation`` calls on ``repository`` slow."""
    hook = SlowCalls(repository, seconds, times=times, operation=operation)
    client.meta.events.register(f"before-send.ecr.{operation}", hook)
    return hook
