"""``push_image`` and ``pushgate push-image`` against the real service over HTTP (uvicorn on
127.0.0.1, ECR in the session's moto server): OCI layouts (directory and tar), ``docker
save`` tarballs, multi-arch indexes, re-pushes and damaged layouts, checked in ECR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from service.client import TagImmutable, Unauthorized
from service.client.images import BlobMismatch, ImagePushResult, apush_image, push_image
from service.codes import Exit
from tests.image_archives import (
    Layout,
    digest_of,
    docker_save,
    layer,
    oci_index_layout,
    oci_layout,
    tar_directory,
)
from tests.integration.client.conftest import Service
from tests.integration.registry.conftest import OTHER_TOKEN, TOKEN, Front, front

__all__ = ["front"]  # the registry's tokens-on replicas, for the auth tests

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def repository(service: Service) -> str:
    """A fresh repository per test, so counts of ECR calls are this test's own."""
    name = f"team/image-{uuid.uuid4().hex[:10]}"
    service.ecr.create_repository(repositoryName=name)
    return name


@pytest.fixture
def small_layers() -> list[bytes]:
    return [layer("etc/a", 3000), layer("usr/b", 5000)]


def _push(service: Service, path: Path, repository: str, *tags: str, **options: Any) -> Any:
    return push_image(service.url, path, repository, list(tags), **options)


def _tagged_digest(service: Service, repository: str, tag: str) -> str | None:
    images = service.ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])[
        "images"
    ]
    return images[0]["imageId"]["imageDigest"] if images else None


def _available(service: Service, repository: str, digests: list[str]) -> dict[str, int]:
    answer = service.ecr.batch_check_layer_availability(
        repositoryName=repository, layerDigests=digests
    )
    return {
        item["layerDigest"]: item["layerSize"]
        for item in answer["layers"]
        if item.get("layerAvailability") == "AVAILABLE"
    }


def test_oci_layout_lands_in_ecr_under_its_tag(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """An OCI layout directory is pushed: ECR holds the tag at the manifest's digest."""
    layout = oci_layout(tmp_path / "image", small_layers)
    result = _push(service, layout.path, repository, tag)
    assert (tag, "pushed", layout.digest) == (
        result.tags[0].tag,
        result.tags[0].outcome,
        result.tags[0].digest,
    )
    assert layout.digest == _tagged_digest(service, repository, tag)


def test_every_blob_lands_in_ecr_with_its_size(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """Every blob of the layout (config and layers) is in ECR with its size."""
    layout = oci_layout(tmp_path / "image", small_layers)
    _push(service, layout.path, repository, tag)
    expected = {digest: len(data) for digest, data in layout.blobs.items()}
    assert expected == _available(service, repository, list(expected))


def test_a_layer_over_the_chunk_size_goes_in_chunks(
    service: Service, repository: str, tag: str, tmp_path: Path
) -> None:
    """A layer larger than the chunk size (5 MiB here) is sent in PATCH chunks and a
    final PUT; ECR computes the same digest from the parts."""
    big = layer("opt/big", 6 * MIB + 123)
    layout = oci_layout(tmp_path / "image", [big])
    result = _push(service, layout.path, repository, tag, chunk_size=5 * MIB)
    assert {digest_of(big): len(big)} == _available(service, repository, [digest_of(big)])
    assert layout.digest == _tagged_digest(service, repository, tag)
    assert sum(len(data) for data in layout.blobs.values()) == result.bytes_uploaded


def test_a_large_tar_member_goes_in_chunks_from_the_tar(
    service: Service, repository: str, tag: str, tmp_path: Path
) -> None:
    """A layer over the chunk size inside a ``docker save`` tar is streamed from its tar
    member in chunks; ECR holds it under its diff_id."""
    big = layer("opt/big", 6 * MIB + 7, seed=3)
    docker_save(tmp_path / "image.tar", [layer("etc/a", 100), big])
    _push(service, tmp_path / "image.tar", repository, tag, chunk_size=5 * MIB)
    assert {digest_of(big): len(big)} == _available(service, repository, [digest_of(big)])


def test_a_repush_uploads_nothing_and_is_unchanged(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """Pushing the same image again HEADs every blob, uploads none, and the tag answers
    ``unchanged``."""
    layout = oci_layout(tmp_path / "image", small_layers)
    _push(service, layout.path, repository, tag)
    again = _push(service, layout.path, repository, tag)
    assert ("unchanged", 0, 0, len(layout.blobs)) == (
        again.tags[0].outcome,
        again.blobs_uploaded,
        again.bytes_uploaded,
        again.blobs_skipped,
    )


def test_docker_save_tarball_becomes_a_docker_v2_manifest(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """A classic ``docker save`` tarball is pushed as a Docker v2 schema 2 manifest whose
    layers are the saved tars (their digests are the config's diff_ids)."""
    config_data = docker_save(tmp_path / "image.tar", small_layers)
    result = _push(service, tmp_path / "image.tar", repository, tag)
    images = service.ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])[
        "images"
    ]
    manifest = json.loads(images[0]["imageManifest"])
    expected = {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": digest_of(config_data),
        "layers": [
            ("application/vnd.docker.image.rootfs.diff.tar", digest_of(data), len(data))
            for data in small_layers
        ],
        "digest": result.digest,
    }
    assert expected == {
        "mediaType": manifest["mediaType"],
        "config": manifest["config"]["digest"],
        "layers": [(x["mediaType"], x["digest"], x["size"]) for x in manifest["layers"]],
        "digest": images[0]["imageId"]["imageDigest"],
    }


def test_docker_save_layers_land_in_ecr(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """The saved layers and config of a ``docker save`` tarball are in ECR."""
    config_data = docker_save(tmp_path / "image.tar", small_layers)
    _push(service, tmp_path / "image.tar", repository, tag)
    expected = {digest_of(data): len(data) for data in [config_data, *small_layers]}
    assert expected == _available(service, repository, list(expected))


def test_oci_layout_tarball_is_pushed_like_its_directory(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """An OCI layout in a tar (as ``docker save`` of Docker 25+ writes) pushes the same
    manifest as the directory it was made from."""
    layout = oci_layout(tmp_path / "image", small_layers)
    archive = tar_directory(layout.path, tmp_path / "image.tar")
    result = _push(service, archive, repository, tag)
    assert (layout.digest, layout.digest) == (
        result.digest,
        _tagged_digest(service, repository, tag),
    )


def _index(tmp_path: Path, *, label: str = "", sequence: int | None = None) -> Layout:
    images = {
        "amd64": [layer("bin/app", 4000, seed=1), layer("etc/conf", 1000)],
        "arm64": [layer("bin/app", 4100, seed=2), layer("etc/conf", 1000)],
    }
    return oci_index_layout(tmp_path / "index", images, label=label, sequence=sequence)


def test_multi_arch_index_is_tagged_and_its_children_stored(
    service: Service, repository: str, tag: str, tmp_path: Path
) -> None:
    """A multi-arch index: each child manifest is in ECR by digest, the tag names the
    index."""
    layout = _index(tmp_path)
    result = _push(service, layout.path, repository, tag)
    children = service.ecr.batch_get_image(
        repositoryName=repository,
        imageIds=[{"imageDigest": digest} for digest in layout.children],
    )["images"]
    assert (layout.children, sorted(layout.children), layout.digest) == (
        list(result.manifests),
        sorted(image["imageId"]["imageDigest"] for image in children),
        _tagged_digest(service, repository, tag),
    )


def test_multi_arch_shared_layer_is_uploaded_once(
    service: Service, repository: str, tag: str, tmp_path: Path
) -> None:
    """A layer both architectures share is uploaded once."""
    layout = _index(tmp_path)
    result = _push(service, layout.path, repository, tag)
    assert len(layout.blobs) == result.blobs_uploaded  # 2 configs, 3 distinct layers


def test_every_tag_gets_the_image_with_the_sequence(
    service: Service, repository: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """Several tags: each names the image; an older build (lower sequence) pushed after
    is ``superseded`` on every tag, which stays on the newer one."""
    newer = oci_layout(tmp_path / "newer", small_layers, label="newer")
    older = oci_layout(tmp_path / "older", small_layers, label="older")
    tags = ["1.0", "latest"]
    _push(service, newer.path, repository, *tags, sequence=7)
    result = _push(service, older.path, repository, *tags, sequence=6)
    assert (["superseded", "superseded"], [newer.digest, newer.digest]) == (
        [item.outcome for item in result.tags],
        [_tagged_digest(service, repository, name) for name in tags],
    )


def test_sequence_in_the_index_annotation_orders_builds(
    service: Service, repository: str, tag: str, tmp_path: Path
) -> None:
    """The ``dev.pushgate.sequence`` annotation of an index orders builds without the
    header: an older index after a newer one is superseded."""
    newer = _index(tmp_path / "a", label="newer", sequence=20)
    older = _index(tmp_path / "b", label="older", sequence=19)
    _push(service, newer.path, repository, tag)
    result = _push(service, older.path, repository, tag)
    assert ("superseded", newer.digest) == (
        result.tags[0].outcome,
        _tagged_digest(service, repository, tag),
    )


def test_a_damaged_blob_is_refused_before_any_manifest(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """A blob whose bytes do not match its digest stops the push: no manifest reaches
    ECR and the damaged bytes are not stored."""
    layout = oci_layout(tmp_path / "image", small_layers)
    damaged = digest_of(small_layers[1])
    data = bytearray(small_layers[1])
    data[-1] ^= 0xFF
    layout.blob_file(damaged).write_bytes(bytes(data))
    with pytest.raises(BlobMismatch):
        _push(service, layout.path, repository, tag)
    assert (0, {}) == (
        service.fidelity.count(repository, "put_image"),
        _available(service, repository, [damaged, digest_of(bytes(data))]),
    )


class Recorder:
    def __init__(self) -> None:
        self.plan: tuple[int, int] | None = None
        self.sent = 0
        self.done: list[str] = []

    def planned(self, blobs: int, size: int) -> None:
        self.plan = (blobs, size)

    def advanced(self, size: int) -> None:
        self.sent += size

    def blob_done(self, digest: str) -> None:
        self.done.append(digest)


def test_progress_is_told_the_plan_bytes_and_blobs(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """The progress receiver hears the blobs to upload, every byte sent and each blob
    done."""
    layout = oci_layout(tmp_path / "image", small_layers)
    recorder = Recorder()
    _push(service, layout.path, repository, tag, progress=recorder, parallel=2)
    size = sum(len(data) for data in layout.blobs.values())
    assert ((len(layout.blobs), size), size, sorted(layout.blobs)) == (
        recorder.plan,
        recorder.sent,
        sorted(recorder.done),
    )


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PUSHGATE_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("PUSHGATE_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-c", "from service.cli import main; main()", "push-image", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_json_prints_one_document_with_each_tag(
    service: Service, repository: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """``pushgate push-image --json`` prints one JSON document: each tag's outcome and
    digest, blobs uploaded and skipped, bytes."""
    docker_save(tmp_path / "image.tar", small_layers)
    done = _cli(
        service.url, str(tmp_path / "image.tar"), f"{repository}:a", f"{repository}:b", "--json"
    )
    document = json.loads(done.stdout)
    digest = document["digest"]
    assert (0, [("a", "pushed", digest), ("b", "pushed", digest)], 3, 0) == (
        done.returncode,
        [(t["tag"], t["outcome"], t["digest"]) for t in document["tags"]],
        document["blobs_uploaded"],
        document["blobs_skipped"],
    )


def test_cli_names_the_outcome_of_each_tag(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """Without ``--json`` the command prints a line per tag with its outcome."""
    layout = oci_layout(tmp_path / "image", small_layers)
    done = _cli(service.url, str(layout.path), f"{repository}:{tag}", "--sequence", "3")
    assert (0, f"pushed: {repository}:{tag} {layout.digest}") == (
        done.returncode,
        done.stdout.splitlines()[-1].split(" (")[0],
    )


def test_cli_refuses_a_damaged_layout_with_invalid_input(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """A damaged layout exits with the invalid-input code and one sentence."""
    layout = oci_layout(tmp_path / "image", small_layers)
    layout.blob_file(digest_of(small_layers[0])).write_bytes(b"x" * len(small_layers[0]))
    done = _cli(service.url, str(layout.path), f"{repository}:{tag}")
    assert (Exit.INVALID, 1) == (done.returncode, len(done.stderr.strip().splitlines()))


def test_cli_refuses_tags_of_different_repositories(
    service: Service, small_layers: list[bytes], tmp_path: Path
) -> None:
    """All tags must be of one repository: else invalid input, nothing pushed."""
    layout = oci_layout(tmp_path / "image", small_layers)
    done = _cli(service.url, str(layout.path), "team/a:1", "team/b:1")
    assert Exit.INVALID == done.returncode


def test_result_is_a_frozen_summary(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """The result names the repository, digest and media type of what was pushed."""
    layout = oci_layout(tmp_path / "image", small_layers)
    result = _push(service, layout.path, repository, tag)
    assert isinstance(result, ImagePushResult)
    assert (repository, layout.digest, layout.media_type) == (
        result.repository,
        result.digest,
        result.media_type,
    )


def test_a_token_in_scope_pushes(front: Front, small_layers: list[bytes], tmp_path: Path) -> None:
    """With tokens on, a token whose scope covers the repository pushes the image."""
    repository = front.repository()
    layout = oci_layout(tmp_path / "image", small_layers)
    result = push_image(front.url, layout.path, repository, ["1"], token=TOKEN)
    assert "pushed" == result.tags[0].outcome


def test_a_token_out_of_scope_is_refused(
    front: Front, small_layers: list[bytes], tmp_path: Path
) -> None:
    """A token of another team's repositories is refused before any blob is sent."""
    repository = front.repository()
    layout = oci_layout(tmp_path / "image", small_layers)
    with pytest.raises(Unauthorized):
        push_image(front.url, layout.path, repository, ["1"], token=OTHER_TOKEN)


def test_cli_without_a_token_exits_unauthorized(
    front: Front, small_layers: list[bytes], tmp_path: Path
) -> None:
    """With tokens on and none given, the command exits with the not-authorized code."""
    repository = front.repository()
    layout = oci_layout(tmp_path / "image", small_layers)
    done = _cli(front.url, str(layout.path), f"{repository}:1")
    assert Exit.UNAUTHORIZED == done.returncode


def test_an_immutable_tag_on_another_image_is_a_conflict(
    service: Service, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """On an IMMUTABLE repository, a tag holding another image refuses the push with
    ``TagImmutable`` (pushgate's code, carried in the registry error's detail)."""
    first = oci_layout(tmp_path / "first", small_layers, label="first")
    second = oci_layout(tmp_path / "second", small_layers, label="second")
    _push(service, first.path, service.immutable_repo, tag)
    with pytest.raises(TagImmutable):
        _push(service, second.path, service.immutable_repo, tag)


async def test_the_async_twin_pushes_the_same_way(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """``apush_image`` pushes from asyncio with the same result."""
    layout = oci_layout(tmp_path / "image", small_layers)
    result = await apush_image(service.url, layout.path, repository, [tag], sequence=1)
    assert ("pushed", layout.digest) == (
        result.tags[0].outcome,
        _tagged_digest(service, repository, tag),
    )


def test_a_passing_registry_fault_is_retried(
    service: Service, repository: str, tag: str, small_layers: list[bytes], tmp_path: Path
) -> None:
    """ECR failing the tag's PutImage more times than pushgate retries (a 5xx answer) is
    retried by the client, and the push lands."""
    layout = oci_layout(tmp_path / "image", small_layers)
    attempts = service.settings.ecr_attempts
    service.fidelity.inject(repository, "ServerException", times=attempts)
    result = _push(service, layout.path, repository, tag)
    assert ("pushed", layout.digest) == (
        result.tags[0].outcome,
        _tagged_digest(service, repository, tag),
    )
