"""OCI image layouts made in tests: random layers, a config, a manifest (or an index of
several), written as a directory that skopeo (``oci:DIR:TAG``) and oras read."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


class Layout:
    """An OCI layout directory; ``add_*`` write blobs, ``tag`` names a root in index.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.refs: list[dict[str, Any]] = []

    def add_blob(self, data: bytes, media_type: str) -> Blob:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return Blob(f"sha256:{digest}", len(data), media_type)

    def add_image(
        self, *, layer_sizes: tuple[int, ...] = (1024,), build: int = 0, sequence: int | None = None
    ) -> Blob:
        """A manifest with random layers; ``build`` varies the config (a distinct image)."""
        # gzip of random bytes: already compressed, so tools push the layer as it is
        layers = [
            self.add_blob(gzip.compress(os.urandom(size), compresslevel=0), LAYER)
            for size in layer_sizes
        ]
        config = self.add_blob(
            json.dumps({"architecture": "amd64", "os": "linux", "build": build}).encode(), CONFIG
        )
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor() for layer in layers],
        }
        if sequence is not None:
            manifest["annotations"] = {"dev.pushgate.sequence": str(sequence)}
        return self.add_blob(json.dumps(manifest).encode(), MANIFEST)

    def add_index(self, children: list[Blob], *, sequence: int | None = None) -> Blob:
        platforms = [{"architecture": arch, "os": "linux"} for arch in ("amd64", "arm64", "s390x")]
        index: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                child.descriptor(platform=platforms[n % len(platforms)])
                for n, child in enumerate(children)
            ],
        }
        if sequence is not None:
            index["annotations"] = {"dev.pushgate.sequence": str(sequence)}
        return self.add_blob(json.dumps(index).encode(), INDEX)

    def tag(self, root: Blob, name: str) -> None:
        self.refs.append(root.descriptor(annotations={"org.opencontainers.image.ref.name": name}))
        (self.root / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": self.refs})
        )
