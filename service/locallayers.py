"""moto's ECR layer upload, corrected toward ECR (``service.localecr`` installs it).

==================================================== ====================================
moto departure                                       corrected here
==================================================== ====================================
a declared digest other than the bytes' is accepted  InvalidLayerException
completing a layer the repository holds succeeds     LayerAlreadyExistsException
no minimum part size                                 LayerPartTooSmallException (a part
                                                     but the last under 5 MiB)
an empty upload completes                            EmptyUploadException
==================================================== ====================================

moto still lacks GetDownloadUrlForLayer (pushgate then serves no blob redirect).
"""

from __future__ import annotations

import hashlib
from typing import Any

from moto.ecr import models as ecr_models
from moto.ecr.exceptions import RepositoryNotFoundException, UploadNotFoundException

MIN_PART = 5 * 1024 * 1024

_original_upload_part = ecr_models.ECRBackend.upload_layer_part


def install(error: type[Exception]) -> None:
    """Patch moto's backend; ``error(code, message)`` builds an ECR error answer."""

    def upload_layer_part(
        backend: Any, repository_name: str, upload_id: str, *args: Any, **kwargs: Any
    ) -> Any:
        answer = _original_upload_part(backend, repository_name, upload_id, *args, **kwargs)
        upload = backend.repositories[repository_name].uploads[upload_id]
        blob = kwargs.get("layer_part_blob", args[2] if len(args) > 2 else b"")  # noqa: PLR2004
        sizes = getattr(upload, "part_sizes", [])
        upload.part_sizes = [*sizes, len(blob or b"")]
        return answer

    def complete_layer_upload(
        backend: Any,
        repository_name: str,
        upload_id: str,
        layer_digests: list[str],
        registry_id: str | None = None,
    ) -> dict[str, Any]:
        repository = backend.repositories.get(repository_name)
        if repository is None:
            raise RepositoryNotFoundException(repository_name, backend.account_id)
        upload = repository.uploads.get(upload_id)
        if upload is None:
            raise UploadNotFoundException(upload_id, repository_name, repository.registry_id)
        data = bytes(upload.layer_parts)
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        declared = layer_digests[0] if layer_digests else ""
        if not data:
            raise error("EmptyUploadException", "The upload holds no layer parts.")
        if any(size < MIN_PART for size in getattr(upload, "part_sizes", [])[:-1]):
            raise error("LayerPartTooSmallException", "Layer parts must be at least 5 MiB in size.")
        if declared != actual:
            raise error(
                "InvalidLayerException",
                f"The layer digest '{declared[:80]}' does not match the uploaded bytes.",
            )
        del repository.uploads[upload_id]
        if actual in repository.layers:
            raise error("LayerAlreadyExistsException", f"The layer '{actual}' already exists.")
        repository.layers[actual] = len(data)
        return {
            "registryId": registry_id or repository.registry_id,
            "repositoryName": repository_name,
            "uploadId": upload_id,
            "layerDigest": actual,
        }

    ecr_models.ECRBackend.upload_layer_part = upload_layer_part  # type: ignore[method-assign,assignment]
    ecr_models.ECRBackend.complete_layer_upload = complete_layer_upload  # type: ignore[method-assign,assignment]
