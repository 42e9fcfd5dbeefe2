"""Helpers of the service's integration tests."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from service.settings import Settings

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def manifest(n: int, salt: str = "") -> str:
    """A distinct OCI manifest per (n, salt)."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{n:064x}",
                "size": n,
            },
            "layers": [],
            "annotations": {"salt": salt},
        }
    )


def tag_digest(ecr: Any, repository: str, tag: str) -> str | None:
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


def held_leases(dynamodb: Any, settings: Settings, repository: str) -> list[dict[str, Any]]:
    """Lease items of ``repository``'s tags still in force (a released item has
    expires_at 0; a bad request never creates one)."""
    now_ms = time.time() * 1000
    items = dynamodb.scan(TableName=settings.lease_table, ConsistentRead=True)["Items"]
    return [
        item
        for item in items
        if item["pk"]["S"].startswith(f"{repository}:")
        and float(item.get("expires_at", {"N": "0"})["N"]) > now_ms
    ]


def lease_items(dynamodb: Any, settings: Settings, repository: str) -> list[dict[str, Any]]:
    """Every lease item of ``repository``'s tags, released or not."""
    items = dynamodb.scan(TableName=settings.lease_table, ConsistentRead=True)["Items"]
    return [item for item in items if item["pk"]["S"].startswith(f"{repository}:")]


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
