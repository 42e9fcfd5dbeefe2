"""The local ECR (``python -m service.localaws``, as ``--local`` and compose run it)
answers like ECR with no test fixture installed: it runs in its own process here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from service.domain.models import manifest_digest
from tests.servers import ROOT, free_port, wait_for_port

pytestmark = pytest.mark.integration

OCI = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def ecr() -> Iterator[Any]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.localaws", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_for_port(port, timeout=30)
        client = boto3.client(
            "ecr",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )
        yield client
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def manifest(n: int) -> str:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI, "layers": [], "n": n})


def code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_missing_repository_is_repository_not_found(ecr: Any) -> None:
    """Plain moto fails with a 500 and an HTML page; ECR answers RepositoryNotFoundException."""
    with pytest.raises(ClientError) as caught:
        ecr.put_image(repositoryName="nowhere", imageManifest=manifest(1), imageTag="v1")
    assert "RepositoryNotFoundException" == code(caught)


def test_digest_is_that_of_the_manifest_bytes_and_moved_tags_keep_old_images(ecr: Any) -> None:
    """The digest is sha256 of the exact bytes (moto's is of the layers); moving a tag
    leaves the old image in the repository, untagged (moto deletes it)."""
    ecr.create_repository(repositoryName="local-digests")
    first = ecr.put_image(repositoryName="local-digests", imageManifest=manifest(1), imageTag="v")
    ecr.put_image(repositoryName="local-digests", imageManifest=manifest(2), imageTag="v")
    images = ecr.list_images(repositoryName="local-digests")["imageIds"]
    assert manifest_digest(manifest(1)) == first["image"]["imageId"]["imageDigest"]
    assert {manifest_digest(manifest(1)), manifest_digest(manifest(2))} == {
        i["imageDigest"] for i in images
    }


def test_immutable_tag_conflict_is_image_tag_already_exists(ecr: Any) -> None:
    """Another image on an immutable tag: ImageTagAlreadyExistsException, as ECR."""
    ecr.create_repository(repositoryName="local-immutable", imageTagMutability="IMMUTABLE")
    ecr.put_image(repositoryName="local-immutable", imageManifest=manifest(1), imageTag="v")
    with pytest.raises(ClientError) as caught:
        ecr.put_image(repositoryName="local-immutable", imageManifest=manifest(2), imageTag="v")
    assert "ImageTagAlreadyExistsException" == code(caught)
