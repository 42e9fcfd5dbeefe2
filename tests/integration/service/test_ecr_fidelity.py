"""The ECR fidelity layer itself (tests/ecr_fidelity.py): moto corrected toward ECR, as
seen by a plain boto3 client over HTTP."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config

from service.domain.models import manifest_digest
from tests.ecr_fidelity import EcrFidelity
from tests.integration.service.helpers import manifest, tag_digest

pytestmark = pytest.mark.integration


@pytest.fixture
def plain(service_moto: str) -> Any:
    """An ECR client that never retries, so every injected error is seen."""
    return boto3.client(
        "ecr",
        endpoint_url=service_moto,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def error_code(exc: pytest.ExceptionInfo[Any]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_digest_is_sha256_of_the_manifest(plain: Any, repo: str) -> None:
    """The image digest is sha256 of the manifest bytes, not of the layer digests."""
    text = manifest(1)
    answer = plain.put_image(repositoryName=repo, imageManifest=text, imageTag="a")
    assert manifest_digest(text) == answer["image"]["imageId"]["imageDigest"]


def test_same_digest_on_same_tag_is_image_already_exists(plain: Any, repo: str) -> None:
    """Re-putting the image a tag holds is ImageAlreadyExistsException."""
    plain.put_image(repositoryName=repo, imageManifest=manifest(1), imageTag="a")
    with pytest.raises(plain.exceptions.ImageAlreadyExistsException):
        plain.put_image(repositoryName=repo, imageManifest=manifest(1), imageTag="a")


def test_immutable_conflict_is_image_tag_already_exists(plain: Any, immutable_repo: str) -> None:
    """Another image on an immutable tag is ImageTagAlreadyExistsException."""
    plain.put_image(repositoryName=immutable_repo, imageManifest=manifest(1), imageTag="a")
    with pytest.raises(plain.exceptions.ImageTagAlreadyExistsException):
        plain.put_image(repositoryName=immutable_repo, imageManifest=manifest(2), imageTag="a")


def test_moved_tag_keeps_old_image_untagged(plain: Any, repo: str) -> None:
    """When a tag moves, the old image stays in the repository without a tag."""
    old = manifest(1)
    plain.put_image(repositoryName=repo, imageManifest=old, imageTag="a")
    plain.put_image(repositoryName=repo, imageManifest=manifest(2), imageTag="a")
    images = plain.batch_get_image(
        repositoryName=repo, imageIds=[{"imageDigest": manifest_digest(old)}]
    )["images"]
    assert [old] == [image["imageManifest"] for image in images]
    assert manifest_digest(manifest(2)) == tag_digest(plain, repo, "a")


def test_missing_repository_is_repository_not_found(plain: Any, suffix: str) -> None:
    """A missing repository is RepositoryNotFoundException, not a 500."""
    with pytest.raises(plain.exceptions.RepositoryNotFoundException):
        plain.put_image(repositoryName=f"nope-{suffix}", imageManifest=manifest(1), imageTag="a")


def test_wrong_digest_is_image_digest_does_not_match(plain: Any, repo: str) -> None:
    """An imageDigest that is not the manifest's is ImageDigestDoesNotMatchException."""
    with pytest.raises(plain.exceptions.ImageDigestDoesNotMatchException):
        plain.put_image(
            repositoryName=repo,
            imageManifest=manifest(1),
            imageTag="a",
            imageDigest="sha256:" + "0" * 64,
        )


def test_non_json_manifest_is_invalid_parameter(plain: Any, repo: str) -> None:
    """A manifest that is not JSON is InvalidParameterException, not a 500."""
    with pytest.raises(plain.exceptions.InvalidParameterException):
        plain.put_image(repositoryName=repo, imageManifest="nope", imageTag="a")


@pytest.mark.parametrize(
    ("code", "status"), [("ThrottlingException", 400), ("ServerException", 500)]
)
def test_injected_error_arrives_with_code_and_status(
    plain: Any, repo: str, fidelity: EcrFidelity, code: str, status: int
) -> None:
    """An injected error reaches the client with its code and HTTP status, once."""
    fidelity.inject(repo, code, "injected")
    with pytest.raises(plain.exceptions.ClientError) as caught:
        plain.put_image(repositoryName=repo, imageManifest=manifest(1), imageTag="a")
    assert (code, status) == (
        error_code(caught),
        caught.value.response["ResponseMetadata"]["HTTPStatusCode"],
    )
    plain.put_image(repositoryName=repo, imageManifest=manifest(1), imageTag="a")
