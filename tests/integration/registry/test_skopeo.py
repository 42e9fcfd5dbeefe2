"""skopeo (containers/image) copies OCI layouts into ECR through pushgate's /v2/."""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.registry.conftest import OTHER_TOKEN, TOKEN, Front
from tests.oci_layouts import Layout

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
]


def skopeo_copy(
    front: Front, layout: Path, tag: str, repository: str, target: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            *(
                extra
                if any(e.startswith("--dest-creds") for e in extra)
                else (f"--dest-creds=ci:{TOKEN}", *extra)
            ),
            f"oci:{layout}:{tag}",
            f"docker://{front.host}/{repository}:{target}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tag_digest(front: Front, repository: str, tag: str) -> str:
    images = front.ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])
    return images["images"][0]["imageId"]["imageDigest"]


def test_single_image_lands_in_ecr_with_every_layer(front: Front, tmp_path: Path) -> None:
    """skopeo copy of one image: the tag names its manifest digest and ECR holds each layer."""
    layout = Layout(tmp_path / "img")
    manifest = layout.add_image(layer_sizes=(2048, 6 * 1024 * 1024 + 17), build=1)
    layout.tag(manifest, "v1")
    repository = front.repository()
    copied = skopeo_copy(front, layout.root, "v1", repository, "latest")
    assert 0 == copied.returncode, copied.stderr
    assert manifest.digest == tag_digest(front, repository, "latest")
    document = json.loads((layout.root / "blobs/sha256" / manifest.digest[7:]).read_text())
    digests = [layer["digest"] for layer in document["layers"]] + [document["config"]["digest"]]
    available = front.ecr.batch_check_layer_availability(
        repositoryName=repository, layerDigests=digests
    )
    assert sorted(digests) == sorted(layer["layerDigest"] for layer in available["layers"])


def history(front: Front, repository: str, tag: str) -> list[dict]:
    answer = httpx.get(
        f"{front.url}/v1/tags/{repository}/{tag}/history",
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    return answer.json()["items"]


def test_repush_is_unchanged(front: Front, tmp_path: Path) -> None:
    """Copying the same image again succeeds and is recorded ``unchanged``: no blob is sent
    twice and the tag does not move."""
    layout = Layout(tmp_path / "img")
    layout.tag(layout.add_image(build=2), "v1")
    repository = front.repository()
    assert 0 == skopeo_copy(front, layout.root, "v1", repository, "main").returncode
    again = skopeo_copy(front, layout.root, "v1", repository, "main")
    assert 0 == again.returncode, again.stderr
    assert ["unchanged", "pushed"] == [
        entry["outcome"] for entry in history(front, repository, "main")
    ]


def test_multi_arch_index_lands_with_its_children(front: Front, tmp_path: Path) -> None:
    """``skopeo copy --all`` of an index: children by digest first, then the index under
    the tag."""
    layout = Layout(tmp_path / "img")
    children = [layout.add_image(build=10 + n) for n in range(2)]
    index = layout.add_index(children)
    layout.tag(index, "v1")
    repository = front.repository()
    copied = skopeo_copy(front, layout.root, "v1", repository, "multi", "--all")
    assert 0 == copied.returncode, copied.stderr
    assert index.digest == tag_digest(front, repository, "multi")
    found = front.ecr.batch_get_image(
        repositoryName=repository, imageIds=[{"imageDigest": c.digest} for c in children]
    )
    assert sorted(c.digest for c in children) == sorted(
        image["imageId"]["imageDigest"] for image in found["images"]
    )


def test_without_credentials_the_copy_is_refused(front: Front, tmp_path: Path) -> None:
    """Tokens on: no credentials is 401 (a Basic challenge), a token without the
    repository's scope is denied; nothing reaches ECR."""
    layout = Layout(tmp_path / "img")
    layout.tag(layout.add_image(build=3), "v1")
    repository = front.repository()
    anonymous = subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            "--dest-no-creds",
            f"oci:{layout.root}:v1",
            f"docker://{front.host}/{repository}:v1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 != anonymous.returncode
    assert "unauthorized" in anonymous.stderr.lower()
    other = skopeo_copy(front, layout.root, "v1", repository, "v1", f"--dest-creds=x:{OTHER_TOKEN}")
    assert 0 != other.returncode
    assert "403" in other.stderr
    assert [] == front.ecr.list_images(repositoryName=repository)["imageIds"]


def test_eight_concurrent_builds_end_on_the_highest_sequence(front: Front, tmp_path: Path) -> None:
    """8 copies of different builds to one tag at once, sequences in the manifests'
    annotations: every copy succeeds, the tag ends on the highest build, ECR holds every
    build's layers."""
    repository = front.repository()
    builds = []
    for sequence in range(1, 9):
        layout = Layout(tmp_path / f"build-{sequence}")
        manifest = layout.add_image(build=100 + sequence, sequence=sequence)
        layout.tag(manifest, "v1")
        builds.append((layout, manifest))
    with ThreadPoolExecutor(8) as pool:
        copies = list(
            pool.map(lambda b: skopeo_copy(front, b[0].root, "v1", repository, "release"), builds)
        )
    assert [0] * 8 == [copy.returncode for copy in copies], [c.stderr for c in copies]
    assert builds[-1][1].digest == tag_digest(front, repository, "release")
    outcomes = sorted(entry["outcome"] for entry in history(front, repository, "release"))
    assert "pushed" in outcomes
    assert set(outcomes) <= {"pushed", "superseded"}
    for layout, manifest in builds:
        document = json.loads((layout.root / "blobs/sha256" / manifest.digest[7:]).read_text())
        digests = [layer["digest"] for layer in document["layers"]]
        available = front.ecr.batch_check_layer_availability(
            repositoryName=repository, layerDigests=digests
        )
        assert len(digests) == len(available["layers"])
