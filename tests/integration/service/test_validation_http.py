"""Bad input through HTTP: 4xx naming the field, and no lease ever taken."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from service.settings import Settings
from tests.ecr_fidelity import EcrFidelity
from tests.integration.service.helpers import OCI_MANIFEST, lease_items, manifest

pytestmark = pytest.mark.integration

BIG = json.dumps({"mediaType": OCI_MANIFEST, "pad": "x" * (4 * 1024 * 1024)})
DEEP = f'{{"mediaType": "{OCI_MANIFEST}", "x": {"[" * 5000}{"]" * 5000}}}'
# under 4 MiB characters, over 4 MiB bytes: ECR counts bytes
WIDE = json.dumps({"mediaType": OCI_MANIFEST, "pad": "é" * (2 * 1024 * 1024)}, ensure_ascii=False)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"repository": "Team/App"}, "repository"),
        ({"repository": "x"}, "repository"),
        ({"tag": "bad tag"}, "tag"),
        ({"tag": "t" * 129}, "tag"),
        ({"manifest": BIG}, "manifest"),
        ({"manifest": "this is not json"}, "manifest"),
        ({"manifest": '["an", "array"]'}, "manifest"),
        ({"manifest": '{"schemaVersion": 2}'}, "media_type"),
        ({"media_type": "application/json"}, "media_type"),
        ({"sequence": -1}, "sequence"),
        ({"sequence": "12"}, "sequence"),
        ({"wait_seconds": 11}, "wait_seconds"),
        ({"surprise": True}, "surprise"),
        ({"sequence": 10**127}, "sequence"),
        ({"sequence": 2**63}, "sequence"),
        ({"wait_seconds": 10**400}, "wait_seconds"),
        ({"manifest": DEEP}, "manifest"),
        ({"manifest": WIDE}, "manifest"),
        ({"caller": "ci\x1b[31mred"}, "caller"),
    ],
)
async def test_bad_field_is_4xx_without_lease(
    client: httpx.AsyncClient,
    repo: str,
    dynamodb: Any,
    settings: Settings,
    fidelity: EcrFidelity,
    overrides: dict[str, Any],
    field: str,
) -> None:
    """Each bad field is 422 invalid_request naming it; no lease item exists afterwards and
    ECR is never called."""
    body = {"repository": repo, "tag": "v1", "manifest": manifest(1), **overrides}
    answer = await client.post("/v1/pushes", json=body)
    assert (422, "invalid_request", field) == (
        answer.status_code,
        answer.json()["error"],
        answer.json()["field"],
    )
    assert [] == lease_items(dynamodb, settings, body["repository"])
    assert 0 == fidelity.count(repo)


async def test_deep_history_cursor_is_422(client: httpx.AsyncClient, repo: str) -> None:
    """A history cursor whose JSON nests deeper than the parser's recursion is 422
    cursor, not a 500."""
    cursor = base64.urlsafe_b64encode(b"[" * 1536).decode()
    answer = await client.get(f"/v1/tags/{repo}/v1/history", params={"cursor": cursor})
    assert (422, "invalid_request", "cursor") == (
        answer.status_code,
        answer.json()["error"],
        answer.json()["field"],
    )
