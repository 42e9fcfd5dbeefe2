"""The oras Python SDK pushes an artifact through pushgate's /v2/."""

from __future__ import annotations

from pathlib import Path

import oras.client
import pytest

from tests.integration.registry.conftest import TOKEN, Front

pytestmark = pytest.mark.integration


def test_oras_push_lands_in_ecr(front: Front, tmp_path: Path) -> None:
    """oras (Basic auth, monolithic POST+PUT uploads) pushes two files as an artifact; the
    tag names its manifest and ECR holds both blobs."""
    repository = front.repository()
    files = []
    for name, size in (("a.bin", 3000), ("b.txt", 10)):
        path = tmp_path / name
        path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        files.append(str(path))
    client = oras.client.OrasClient(hostname=front.host, insecure=True, auth_backend="basic")
    # set directly: login() also asks a Docker daemon for credentials, which is not here
    client.auth.set_basic_auth("ci", TOKEN)
    answer = client.push(
        target=f"{front.host}/{repository}:artifact",
        files=files,
        disable_path_validation=True,
        quiet=True,
    )
    assert 201 == answer.status_code
    digest = answer.headers["Docker-Content-Digest"]
    images = front.ecr.batch_get_image(
        repositoryName=repository, imageIds=[{"imageTag": "artifact"}]
    )["images"]
    assert digest == images[0]["imageId"]["imageDigest"]
    pulled = client.get_manifest(f"{front.host}/{repository}:artifact")
    layer_digests = [layer["digest"] for layer in pulled["layers"]]
    available = front.ecr.batch_check_layer_availability(
        repositoryName=repository, layerDigests=layer_digests
    )
    assert 2 == len(available["layers"])
