"""Reading images to push (``service.client._image_source``) and streaming their blobs
(``service.client.images._Reader``), on files only: no server."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import threading
from pathlib import Path

import pytest

from service.client._image_source import Blob, LayoutError, open_image
from service.client.images import PIECE, BlobMismatch, _Reader
from tests.image_archives import (
    digest_of,
    docker_save,
    layer,
    oci_index_layout,
    oci_layout,
    tar_directory,
)


@pytest.fixture
def layers() -> list[bytes]:
    return [layer("a", 700), layer("b", 900)]


def test_gzipped_docker_save_reads_as_the_plain_one(layers: list[bytes], tmp_path: Path) -> None:
    """A gzipped ``docker save`` tar gives the same manifest as the plain tar."""
    plain = tmp_path / "image.tar"
    docker_save(plain, layers)
    zipped = tmp_path / "image.tar.gz"
    with plain.open("rb") as source, gzip.open(zipped, "wb") as target:
        shutil.copyfileobj(source, target)
    assert open_image(plain).top == open_image(zipped).top


def test_gzipped_tar_streams_its_blobs(layers: list[bytes], tmp_path: Path) -> None:
    """A blob of a gzipped tar reads back as its bytes."""
    plain = tmp_path / "image.tar"
    docker_save(plain, layers)
    zipped = tmp_path / "image.tar.gz"
    with plain.open("rb") as source, gzip.open(zipped, "wb") as target:
        shutil.copyfileobj(source, target)
    image = open_image(zipped)
    blob = image.blobs[digest_of(layers[1])]
    with image.store.open(blob.path) as stream:
        assert layers[1] == stream.read(blob.size)


def test_an_oci_layout_in_a_docker_save_tar_wins(layers: list[bytes], tmp_path: Path) -> None:
    """A Docker 25+ ``docker save`` tar holds an OCI layout and a manifest.json: the OCI
    manifest (the one Docker built) is pushed."""
    layout = oci_layout(tmp_path / "image", layers)
    saved = [{"Config": "x.json", "RepoTags": ["app:1"], "Layers": []}]
    (layout.path / "manifest.json").write_text(json.dumps(saved))
    archive = tar_directory(layout.path, tmp_path / "image.tar")
    assert layout.digest == open_image(archive).top.digest


def test_an_index_lists_children_before_it(tmp_path: Path) -> None:
    """A multi-arch layout: the children to push by digest, then the index on top."""
    layout = oci_index_layout(tmp_path / "i", {"amd64": [layer("a", 10)], "arm": [layer("b", 9)]})
    image = open_image(layout.path)
    assert (layout.children, layout.digest) == (
        [child.digest for child in image.children],
        image.top.digest,
    )


def test_a_layout_naming_two_images_is_refused(layers: list[bytes], tmp_path: Path) -> None:
    """index.json naming two images: which to push is ambiguous, so it is refused."""
    layout = oci_layout(tmp_path / "image", layers)
    index = json.loads((layout.path / "index.json").read_text())
    index["manifests"].append(index["manifests"][0])
    (layout.path / "index.json").write_text(json.dumps(index))
    with pytest.raises(LayoutError, match="exactly one image"):
        open_image(layout.path)


def _two_named_images(root: Path) -> tuple[str, str]:
    """A layout whose index.json names two images, ``v1`` and ``v2``."""
    first = oci_layout(root / "v1", [layer("a", 10)], label="1")
    second = oci_layout(root / "v2", [layer("a", 10)], label="2")
    for blob in (second.path / "blobs" / "sha256").iterdir():
        shutil.copy(blob, first.path / "blobs" / "sha256" / blob.name)
    entries = []
    for layout, name in ((first, "v1"), (second, "v2")):
        entry = json.loads((layout.path / "index.json").read_text())["manifests"][0]
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
        entries.append(entry)
    (first.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return first.digest, second.digest


def test_a_ref_name_picks_one_image_of_several(tmp_path: Path) -> None:
    """In a layout naming several images, ``ref`` picks one by its ref name."""
    _, second = _two_named_images(tmp_path)
    assert second == open_image(tmp_path / "v1", "v2").top.digest


def test_an_unknown_ref_name_is_refused(tmp_path: Path) -> None:
    """A ref name no image of the layout carries is refused."""
    _two_named_images(tmp_path)
    with pytest.raises(LayoutError, match="named 'v3'"):
        open_image(tmp_path / "v1", "v3")


def test_a_missing_blob_is_refused(layers: list[bytes], tmp_path: Path) -> None:
    """A layer the manifest names but the layout lacks is refused before any upload."""
    layout = oci_layout(tmp_path / "image", layers)
    layout.blob_file(digest_of(layers[0])).unlink()
    with pytest.raises(LayoutError, match="missing"):
        open_image(layout.path)


def test_a_blob_of_another_size_is_refused(layers: list[bytes], tmp_path: Path) -> None:
    """A blob whose size differs from its descriptor's is refused before any upload."""
    layout = oci_layout(tmp_path / "image", layers)
    layout.blob_file(digest_of(layers[0])).write_bytes(layers[0] + b"x")
    with pytest.raises(LayoutError, match="descriptor says"):
        open_image(layout.path)


def test_a_damaged_manifest_is_refused(layers: list[bytes], tmp_path: Path) -> None:
    """A manifest whose bytes do not match its digest is refused."""
    layout = oci_layout(tmp_path / "image", layers)
    path = layout.blob_file(layout.digest)
    path.write_bytes(path.read_bytes().replace(b"schemaVersion", b"schemaversion"))
    with pytest.raises(LayoutError, match="does not match its digest"):
        open_image(layout.path)


def test_a_layer_path_outside_the_directory_is_refused(tmp_path: Path) -> None:
    """A docker save directory whose manifest.json names a file outside it is refused."""
    (tmp_path / "secret").write_text("no")
    root = tmp_path / "saved"
    root.mkdir()
    config = {"rootfs": {"diff_ids": ["sha256:" + "0" * 64]}}
    (root / "c.json").write_text(json.dumps(config))
    saved = [{"Config": "c.json", "Layers": ["../secret"]}]
    (root / "manifest.json").write_text(json.dumps(saved))
    with pytest.raises(LayoutError, match="outside"):
        open_image(root)


def test_a_symlinked_layer_in_a_tar_is_followed(layers: list[bytes], tmp_path: Path) -> None:
    """A layer stored once and linked from a second layer directory (as older ``docker
    save`` writes repeated layers) reads as the linked file."""
    archive_path = tmp_path / "image.tar"
    docker_save(archive_path, layers)
    with tarfile.open(archive_path) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]
    saved = json.loads(members["manifest.json"])
    target = saved[0]["Layers"][1]
    saved[0]["Layers"][1] = "linked/layer.tar"
    members["manifest.json"] = json.dumps(saved).encode()
    with tarfile.open(archive_path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("linked/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = f"../{target}"
        archive.addfile(link)
    image = open_image(archive_path)
    blob = image.blobs[digest_of(layers[1])]
    with image.store.open(blob.path) as stream:
        assert layers[1] == stream.read(blob.size)


class Recording(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads.append(-1 if size is None else size)
        return super().read(size)


def _reader(data: bytes, digest: str) -> tuple[_Reader, Recording]:
    stream = Recording(data)
    blob = Blob(digest, len(data), "blob")
    return _Reader(stream, blob, lambda _size: None, threading.Event()), stream


def test_a_blob_is_read_a_piece_at_a_time() -> None:
    """However large the blob, no read asks for more than one piece (memory per upload
    stays a piece, not the blob)."""
    data = bytes(3 * PIECE + 17)
    reader, stream = _reader(data, digest_of(data))
    assert data == b"".join(reader.body(len(data), last=True))
    assert PIECE == max(stream.reads)


def test_a_damaged_blob_never_sends_its_last_piece() -> None:
    """A blob that does not match its digest raises before its last piece is handed to
    the connection, so the registry never receives the whole (wrong) blob."""
    data = bytes(2 * PIECE + 10)
    reader, _ = _reader(data, "sha256:" + "1" * 64)
    sent: list[bytes] = []
    with pytest.raises(BlobMismatch):
        sent.extend(reader.body(len(data), last=True))
    assert 2 * PIECE == sum(len(piece) for piece in sent)


def test_a_chunk_that_is_not_last_is_sent_whole_unchecked() -> None:
    """A chunk before the last is sent in full; the digest is checked at the last."""
    data = bytes(PIECE + 5)
    reader, _ = _reader(data, "sha256:" + "1" * 64)
    assert PIECE == len(b"".join(reader.body(PIECE, last=False)))
