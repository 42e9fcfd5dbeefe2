"""Small images on disk for the image push tests: OCI image layouts (directory or tar, a
single image or a multi-arch index) and ``docker save`` tarballs (the classic format),
written with ``tarfile`` and ``json`` the way those tools write them."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(name: str, size: int, *, seed: int = 0) -> bytes:
    """An uncompressed layer tar holding one file of ``size`` pseudo-random bytes."""
    content = random.Random(f"{name}-{seed}").randbytes(size)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = size
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def config(layers: list[bytes], *, arch: str = "amd64", label: str = "") -> bytes:
    document = {
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": {"build": label}},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(data) for data in layers]},
    }
    return json.dumps(document, sort_keys=True).encode()


@dataclass
class Layout:
    """What a written layout holds: the top digest, every blob and child manifest."""

    path: Path
    digest: str
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)

    def blob_file(self, digest: str) -> Path:
        return self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        self.blobs: dict[str, bytes] = {}

    def blob(self, data: bytes, media_type: str) -> dict[str, object]:
        digest = digest_of(data)
        (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, layers: list[bytes], *, arch: str, label: str) -> dict[str, object]:
        config_data = config(layers, arch=arch, label=label)
        descriptors = [self.blob(data, OCI_LAYER) for data in layers]
        self.blobs[digest_of(config_data)] = config_data
        for data in layers:
            self.blobs[digest_of(data)] = data
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(config_data, OCI_CONFIG),
            "layers": descriptors,
        }
        return self.blob(json.dumps(manifest, indent=2).encode(), OCI_MANIFEST)

    def finish(self, top: dict[str, object]) -> None:
        (self.root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]}
        (self.root / "index.json").write_text(json.dumps(index))


def oci_layout(root: Path, layers: list[bytes], *, label: str = "") -> Layout:
    """A single-image OCI layout directory."""
    writer = _Writer(root)
    top = writer.image(layers, arch="amd64", label=label)
    writer.finish(top)
    return Layout(root, str(top["digest"]), OCI_MANIFEST, writer.blobs)


def oci_index_layout(
    root: Path, images: dict[str, list[bytes]], *, label: str = "", sequence: int | None = None
) -> Layout:
    """A multi-arch OCI layout: one image per architecture under an image index (with the
    ``dev.pushgate.sequence`` annotation when ``sequence`` is given)."""
    writer = _Writer(root)
    children = []
    for arch, layers in images.items():
        child = writer.image(layers, arch=arch, label=label)
        child["platform"] = {"architecture": arch, "os": "linux"}
        children.append(child)
    index: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    if sequence is not None:
        index["annotations"] = {"dev.pushgate.sequence": str(sequence)}
    top = writer.blob(json.dumps(index, indent=2).encode(), OCI_INDEX)
    writer.finish(top)
    return Layout(
        root, str(top["digest"]), OCI_INDEX, writer.blobs, [str(c["digest"]) for c in children]
    )


def tar_directory(directory: Path, target: Path) -> Path:
    """``directory``'s files in a tar at ``target`` (an OCI layout tarball)."""
    with tarfile.open(target, "w") as archive:
        for path in sorted(directory.rglob("*")):
            archive.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
    return target


def docker_save(target: Path, layers: list[bytes], *, label: str = "") -> bytes:
    """A classic ``docker save`` tarball (manifest.json, ``<id>.json``, ``<id>/layer.tar``)
    of one image; answers its config."""
    config_data = config(layers, label=label)
    config_name = digest_of(config_data).removeprefix("sha256:") + ".json"
    layer_names = [f"{digest_of(data)[7:71]}/layer.tar" for data in layers]
    saved = [{"Config": config_name, "RepoTags": ["app:latest"], "Layers": layer_names}]
    with tarfile.open(target, "w") as archive:
        for name, data in [
            (config_name, config_data),
            *zip(layer_names, layers, strict=True),
            ("manifest.json", json.dumps(saved).encode()),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return config_data
