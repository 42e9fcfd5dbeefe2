"""moto's ECR, corrected toward ECR where pushgate relies on it.

``LocalAWS`` installs this, so ``pushgate serve --local``, the compose file's moto and
the tests all talk to an ECR that answers like ECR. moto keeps its backend in this
process, so patching ``moto.ecr.models.ECRBackend.put_image`` reaches every server here.

Corrected: the digest is that of the exact manifest bytes, a duplicate is the same digest
(``ImageAlreadyExistsException``, also for a put without a tag of an image already there,
where moto cleared the image's tag), an immutable tag answers
``ImageTagAlreadyExistsException``, exclusion filters are globs, a moved tag leaves the
old image untagged, a missing repository and a non-JSON manifest get ECR's errors,
``imageDigest`` is checked, and an index naming an image the repository lacks gets
``ReferencedImagesNotFoundException``; layer uploads are corrected in
``service.locallayers``. Each moto departure, and what is left to moto (a manifest's
layers, throttling, KMS, 5xx: the tests inject those), is in docs/ecr.md, "moto is not
ECR".
"""

from __future__ import annotations

import fnmatch
import json
import threading
from typing import Any

from moto.core.exceptions import ServiceException
from moto.ecr import models as ecr_models
from moto.ecr.exceptions import (
    ImageAlreadyExistsException,
    InvalidParameterException,
    RepositoryNotFoundException,
)

from service import locallayers
from service.domain.models import manifest_digest

INDEX_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
_install_lock = threading.Lock()
_installed: list[bool] = []  # once per process; later wrappers (tests' faults) stay on top


class EcrError(ServiceException):
    """An error code of ECR's model that moto does not define, serialized with it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def install() -> None:
    """Put the corrected ``put_image`` on moto's ECR backend (idempotent)."""
    with _install_lock:
        if _installed:
            return
        ecr_models.ECRBackend.put_image = put_image  # type: ignore[method-assign,assignment]
        locallayers.install(EcrError)
        _installed.append(True)


def put_image(
    backend: Any,
    repository_name: str,
    image_manifest: str,
    image_tag: str | None,
    image_manifest_mediatype: str | None = None,
    digest: str | None = None,
) -> Any:
    """``ECRBackend.put_image`` as ECR behaves (the table above)."""
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
    media_type = image_manifest_mediatype
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
    if media_type in INDEX_MEDIA_TYPES:
        _check_references(repository, parsed)
    existing = next((i for i in repository.images if i.get_image_digest() == actual), None)
    if image_tag is None:  # by digest: content-addressed, no tag to move
        return _put_untagged(backend, repository, image_manifest, media_type, actual)
    holder = next((i for i in repository.images if image_tag in i.image_tags), None)
    if holder is not None and holder.get_image_digest() == actual:
        raise ImageAlreadyExistsException(
            registry_id=repository.registry_id,
            image_tag=image_tag,
            digest=actual,
            repository_name=repository_name,
        )
    if holder is not None and tag_immutable(repository, image_tag):
        raise EcrError(
            "ImageTagAlreadyExistsException",
            f"The image tag '{image_tag}' already exists in the '{repository_name}' "
            "repository and cannot be overwritten because the repository is immutable.",
        )
    if holder is not None:  # real ECR keeps the old image, untagged
        holder.remove_tag(image_tag)
        if not holder.image_tags:
            holder.image_tag = None
    if existing is not None:
        existing.update_tag(image_tag)
        return existing
    image = ecr_models.Image(
        backend.account_id, image_tag, image_manifest, repository_name, media_type, actual
    )
    repository.images.append(image)
    return image


def _put_untagged(
    backend: Any, repository: Any, image_manifest: str, media_type: str, digest: str
) -> Any:
    """PutImage without a tag: a new untagged image, or ImageAlreadyExists."""
    if any(i.get_image_digest() == digest for i in repository.images):
        raise ImageAlreadyExistsException(
            registry_id=repository.registry_id,
            image_tag="",
            digest=digest,
            repository_name=repository.name,
        )
    image = ecr_models.Image(
        backend.account_id,
        None,  # type: ignore[arg-type]  # moto keeps untagged images so
        image_manifest,
        repository.name,
        media_type,
        digest,
    )
    repository.images.append(image)
    return image


def _check_references(repository: Any, index: Any) -> None:
    """ECR refuses an index naming a manifest the repository does not hold."""
    children = index.get("manifests") if isinstance(index, dict) else None
    held = {image.get_image_digest() for image in repository.images}
    missing = [
        str(child.get("digest"))
        for child in (children if isinstance(children, list) else [])
        if isinstance(child, dict) and child.get("digest") not in held
    ]
    if missing:
        raise EcrError(
            "ReferencedImagesNotFoundException",
            f"Some of the images referenced by the index are not in the repository: "
            f"{', '.join(missing[:10])}",
        )


def tag_immutable(repository: Any, tag: str) -> bool:
    """Whether ``tag`` may not move in ``repository``, exclusion filters as globs."""
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
