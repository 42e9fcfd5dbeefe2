"""``push_image`` on images written by a tool nobody here wrote: skopeo turns a ``docker
save`` tarball into an OCI layout (directory, and tar) with its own manifests (gzipped
layers, a ref name in index.json); pushgate then holds exactly skopeo's manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from service.client.images import push_image
from tests.image_archives import docker_save, layer
from tests.integration.client.conftest import Service

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
]


@pytest.fixture
def repository(service: Service) -> str:
    name = f"team/skopeo-{uuid.uuid4().hex[:10]}"
    service.ecr.create_repository(repositoryName=name)
    return name


def _skopeo(source: str, target: str) -> None:
    done = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", source, target],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr


def _layout_digest(layout: Path, ref: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for entry in index["manifests"]:
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
            return str(entry["digest"])
    raise AssertionError(f"{ref} not in {layout}")


def _tagged(service: Service, repository: str, tag: str) -> str:
    images = service.ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])
    return str(images["images"][0]["imageId"]["imageDigest"])


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    docker_save(tmp_path / "app.tar", [layer("etc/a", 3000), layer("usr/b", 7000)])
    return tmp_path / "app.tar"


def test_a_layout_skopeo_wrote_is_pushed_as_is(
    service: Service, repository: str, tag: str, saved: Path, tmp_path: Path
) -> None:
    """A layout from ``skopeo copy docker-archive:... oci:DIR:v1``: the tag names the
    manifest skopeo wrote."""
    _skopeo(f"docker-archive:{saved}", f"oci:{tmp_path / 'layout'}:v1")
    result = push_image(service.url, tmp_path / "layout", repository, [tag])
    expected = _layout_digest(tmp_path / "layout", "v1")
    assert (expected, expected) == (result.digest, _tagged(service, repository, tag))


def test_an_oci_archive_skopeo_wrote_is_pushed_as_is(
    service: Service, repository: str, tag: str, saved: Path, tmp_path: Path
) -> None:
    """An OCI layout tar from ``skopeo copy ... oci-archive:FILE``: the same manifest as
    skopeo's layout directory."""
    _skopeo(f"docker-archive:{saved}", f"oci:{tmp_path / 'layout'}:v1")
    _skopeo(f"oci:{tmp_path / 'layout'}:v1", f"oci-archive:{tmp_path / 'app-oci.tar'}:v1")
    result = push_image(service.url, tmp_path / "app-oci.tar", repository, [tag])
    assert _layout_digest(tmp_path / "layout", "v1") == result.digest


def test_ref_picks_one_image_of_a_shared_layout(
    service: Service, repository: str, tag: str, saved: Path, tmp_path: Path
) -> None:
    """Two images copied into one layout under two names: ``ref`` picks the one pushed."""
    other = tmp_path / "other.tar"
    docker_save(other, [layer("etc/c", 2000)])
    _skopeo(f"docker-archive:{saved}", f"oci:{tmp_path / 'layout'}:one")
    _skopeo(f"docker-archive:{other}", f"oci:{tmp_path / 'layout'}:two")
    push_image(service.url, tmp_path / "layout", repository, [tag], ref="two")
    assert _layout_digest(tmp_path / "layout", "two") == _tagged(service, repository, tag)
