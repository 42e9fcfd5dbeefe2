"""What ``push_image`` pushes, read from an OCI image layout or a ``docker save`` archive.

Sources: an OCI image layout as a directory or a tar (``oci-layout``, ``index.json``,
``blobs/sha256/...``; ``docker save`` of Docker 25 and later writes one), and the older
``docker save`` tar (``manifest.json``, a config JSON, one tar per layer), whose image
becomes a Docker v2 schema 2 manifest with its layers as saved (uncompressed tars, digests
from the config's ``rootfs.diff_ids``). Gzipped tars are read too.

Only manifests and configs are read whole (they are small and bounded); blobs are opened
as streams when they are uploaded, and their digests are checked then (``images``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import posixpath
import re
import tarfile
from dataclasses import dataclass, field
from io import BufferedIOBase
from pathlib import Path
from typing import Any

DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
MAX_DOCUMENT = 16 * 1024 * 1024  # index.json, a manifest or a config
MAX_DEPTH = 4  # an index of indexes of manifests is as deep as layouts go in practice
INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
REF_NAME = "org.opencontainers.image.ref.name"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"


class LayoutError(ValueError):
    """The source is not an image this client can push (or is damaged)."""


@dataclass(frozen=True)
class Blob:
    """A blob to upload: its digest, size and where the source holds it."""

    digest: str
    size: int
    path: str


@dataclass(frozen=True)
class Manifest:
    """A manifest or index, as exact bytes (its digest is of these bytes)."""

    digest: str
    media_type: str
    data: bytes


class Store:
    """Files of a directory or a tar, by relative POSIX path."""

    def size(self, path: str) -> int | None:
        raise NotImplementedError

    def open(self, path: str) -> BufferedIOBase:
        """A stream positioned at the file's first byte; read at most ``size`` bytes."""
        raise NotImplementedError

    def read(self, path: str, limit: int = MAX_DOCUMENT) -> bytes:
        size = self.size(path)
        if size is None:
            raise LayoutError(f"{path} is missing")
        if size > limit:
            raise LayoutError(f"{path} is larger than {limit} bytes")
        with self.open(path) as stream:
            data = stream.read(size)
        if len(data) != size:
            raise LayoutError(f"{path} is truncated")
        return data


class DirStore(Store):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _file(self, path: str) -> Path:
        candidate = (self.root / path).resolve()
        if not candidate.is_relative_to(self.root):
            raise LayoutError(f"{path} points outside the layout")
        return candidate

    def size(self, path: str) -> int | None:
        candidate = self._file(path)
        return candidate.stat().st_size if candidate.is_file() else None

    def open(self, path: str) -> BufferedIOBase:
        return self._file(path).open("rb")


class TarStore(Store):
    """A tar's regular files (links resolved) by name; each ``open`` is a new handle, so
    uploads in parallel threads do not share a file position."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as head:
            self.gzipped = head.read(2) == b"\x1f\x8b"
        with tarfile.open(path, "r:*") as archive:
            members = {_normal(m.name): m for m in archive.getmembers()}
        self.files: dict[str, tarfile.TarInfo] = {}
        for name in members:
            target = _resolve(name, members)
            if target is not None:
                self.files[name] = target

    def size(self, path: str) -> int | None:
        member = self.files.get(_normal(path))
        return None if member is None else member.size

    def open(self, path: str) -> BufferedIOBase:
        member = self.files[_normal(path)]
        # the caller closes it (``with store.open(path) as stream``)
        stream: BufferedIOBase = (
            gzip.open(self.path, "rb") if self.gzipped else self.path.open("rb")  # noqa: SIM115
        )
        stream.seek(member.offset_data)  # gzip seeks forward by decompressing
        return stream


def _normal(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")).removeprefix("./")


def _resolve(name: str, members: dict[str, tarfile.TarInfo]) -> tarfile.TarInfo | None:
    """The regular file ``name`` stands for, following links a few hops."""
    member = members.get(name)
    for _ in range(8):
        if member is None or member.isfile():
            return member
        if member.issym():
            target = posixpath.join(posixpath.dirname(member.name), member.linkname)
        elif member.islnk():
            target = member.linkname
        else:
            return None
        member = members.get(_normal(target))
    return None


@dataclass
class Image:
    """Blobs (each once), manifests to push by digest (children first) and the top
    manifest or index, pushed under the tags."""

    store: Store
    top: Manifest
    children: list[Manifest] = field(default_factory=list)
    blobs: dict[str, Blob] = field(default_factory=dict)


def open_image(path: str | Path, ref: str | None = None) -> Image:
    """The image at ``path``: an OCI layout (directory or tar) or a ``docker save`` tar.
    ``ref`` picks an image of a layout naming several by its ref name."""
    source = Path(path)
    if source.is_dir():
        store: Store = DirStore(source)
    elif source.is_file():
        try:
            store = TarStore(source)
        except tarfile.TarError as exc:
            raise LayoutError(f"{source} is neither a directory nor a tar archive") from exc
    else:
        raise LayoutError(f"{source} does not exist")
    if store.size("index.json") is not None and store.size("oci-layout") is not None:
        return _oci_image(store, ref)
    if store.size("manifest.json") is not None:
        if ref is not None:
            raise LayoutError("a ref name picks an image of an OCI layout; this is a docker save")
        return _docker_image(store)
    raise LayoutError(f"{source} holds neither an OCI layout nor a docker save manifest.json")


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise LayoutError(f"{what} is not JSON") from exc


def _digest(value: Any, what: str) -> str:
    if not isinstance(value, str) or not DIGEST_RE.fullmatch(value):
        raise LayoutError(f"{what}: expected a sha256 digest, got {str(value)[:80]!r}")
    return value


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _oci_image(store: Store, ref: str | None) -> Image:
    index = _json(store.read("index.json"), "index.json")
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list):
        raise LayoutError("index.json lists no manifests")
    if ref is not None:
        entries = [entry for entry in entries if _ref_name(entry) == ref]
    if len(entries) != 1:
        named = f" named {ref!r}" if ref is not None else ""
        raise LayoutError(
            f"index.json must name exactly one image{named} to push; it names {len(entries)}"
            + ("" if ref is not None else " (choose one by its ref name)")
        )
    image = Image(store, Manifest("", "", b""))
    image.top = _walk(image, entries[0], depth=0)
    return image


def _ref_name(entry: Any) -> str | None:
    """An index.json entry's name (``org.opencontainers.image.ref.name``, e.g. the tag
    ``skopeo copy ... oci:DIR:TAG`` wrote)."""
    annotations = entry.get("annotations") if isinstance(entry, dict) else None
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    return name if isinstance(name, str) else None


def _walk(image: Image, descriptor: Any, *, depth: int) -> Manifest:
    """Read the manifest ``descriptor`` names, its blobs and children (children first)."""
    if not isinstance(descriptor, dict):
        raise LayoutError("a manifest descriptor is not an object")
    digest = _digest(descriptor.get("digest"), "manifest descriptor")
    data = image.store.read(_blob_path(digest))
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise LayoutError(f"manifest {digest} does not match its digest")
    document = _json(data, f"manifest {digest}")
    if not isinstance(document, dict):
        raise LayoutError(f"manifest {digest} is not a JSON object")
    media_type = document.get("mediaType") or descriptor.get("mediaType")
    if media_type in INDEX_TYPES:
        if depth >= MAX_DEPTH:
            raise LayoutError(f"index {digest} nests deeper than {MAX_DEPTH}")
        for child in document.get("manifests") or []:
            manifest = _walk(image, child, depth=depth + 1)
            if manifest.digest not in {m.digest for m in image.children}:
                image.children.append(manifest)
    elif media_type in MANIFEST_TYPES:
        for blob in [document.get("config"), *(document.get("layers") or [])]:
            _add_blob(image, blob, digest)
    else:
        raise LayoutError(f"manifest {digest} has an unknown media type {media_type!r}")
    return Manifest(digest, str(media_type), data)


def _add_blob(image: Image, descriptor: Any, manifest: str) -> None:
    if not isinstance(descriptor, dict):
        raise LayoutError(f"manifest {manifest}: a blob descriptor is not an object")
    digest = _digest(descriptor.get("digest"), f"manifest {manifest}")
    size = descriptor.get("size")
    path = _blob_path(digest)
    held = image.store.size(path)
    if held is None:
        raise LayoutError(f"blob {digest} (of manifest {manifest}) is missing from the layout")
    if size != held:
        raise LayoutError(f"blob {digest} holds {held} bytes; its descriptor says {size}")
    image.blobs.setdefault(digest, Blob(digest, held, path))


def _docker_image(store: Store) -> Image:
    """The one image of a ``docker save`` archive, as a Docker v2 schema 2 manifest."""
    saved = _json(store.read("manifest.json"), "manifest.json")
    if not isinstance(saved, list) or len(saved) != 1 or not isinstance(saved[0], dict):
        count = len(saved) if isinstance(saved, list) else 0
        raise LayoutError(f"manifest.json must hold exactly one image to push; it holds {count}")
    entry = saved[0]
    config_path, layer_paths = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_path, str) or not isinstance(layer_paths, list):
        raise LayoutError("manifest.json: an image needs Config and Layers")
    config_data = store.read(config_path)
    config = _json(config_data, config_path)
    diff_ids = config.get("rootfs", {}).get("diff_ids") if isinstance(config, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_paths):
        raise LayoutError(f"{config_path}: rootfs.diff_ids must list one digest per layer")
    config_blob = Blob(
        "sha256:" + hashlib.sha256(config_data).hexdigest(), len(config_data), config_path
    )
    image = Image(store, Manifest("", "", b""), blobs={config_blob.digest: config_blob})
    layers = []
    for layer_path, diff_id in zip(layer_paths, diff_ids, strict=True):
        digest = _digest(diff_id, f"{config_path} rootfs.diff_ids")
        size = store.size(str(layer_path))
        if size is None:
            raise LayoutError(f"layer {layer_path} is missing from the archive")
        image.blobs.setdefault(digest, Blob(digest, size, str(layer_path)))
        layers.append({"mediaType": DOCKER_LAYER, "size": size, "digest": digest})
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": DOCKER_CONFIG,
            "size": config_blob.size,
            "digest": config_blob.digest,
        },
        "layers": layers,
    }
    data = json.dumps(document, indent=3).encode()
    image.top = Manifest("sha256:" + hashlib.sha256(data).hexdigest(), DOCKER_MANIFEST, data)
    return image
