"""``pushgate init --import-tags-table``: an earlier release's tag records, copied into the
lease items, keep their tags from moving back after an upgrade (over moto)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from service.adapters.records import pending_json
from service.cli import app
from service.domain.models import PendingPush
from service.settings import Settings
from tests.integration.service.helpers import manifest, tag_digest

pytestmark = pytest.mark.integration


def old_item(repo: str, tag: str, **fields: Any) -> dict[str, Any]:
    """An item of the earlier tags table (its attribute names, DynamoDB-typed)."""
    item: dict[str, Any] = {
        "pk": {"S": f"{repo}:{tag}"},
        "repository": {"S": repo},
        "tag": {"S": tag},
    }
    for name, value in fields.items():
        item[name] = {"N": str(value)} if isinstance(value, int | float) else {"S": value}
    return item


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


async def init(settings: Settings, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    """``pushgate init --import-tags-table source`` (in a thread: it runs its own loop)."""
    monkeypatch.setenv("PUSHGATE_DYNAMODB_ENDPOINT_URL", settings.dynamodb_endpoint_url or "")
    monkeypatch.setenv("PUSHGATE_ECR_ENDPOINT_URL", settings.ecr_endpoint_url or "")
    monkeypatch.setenv("PUSHGATE_REGION", "us-east-1")
    monkeypatch.setenv("PUSHGATE_LEASE_TABLE", settings.lease_table)
    monkeypatch.setenv("PUSHGATE_HISTORY_TABLE", settings.history_table)
    monkeypatch.setenv("PUSHGATE_BUDGET_TABLE", settings.budget_table)
    command = ["init", "--import-tags-table", source]
    result = await asyncio.to_thread(CliRunner().invoke, app, command)
    assert 0 == result.exit_code, result.output
    return result.output


async def push(client: httpx.AsyncClient, repo: str, tag: str, n: int, sequence: int) -> Any:
    answer = await client.post(
        "/v1/pushes",
        json={"repository": repo, "tag": tag, "manifest": manifest(n), "sequence": sequence},
    )
    assert 200 == answer.status_code, answer.text
    return answer.json()


async def test_imported_records_keep_tags_from_moving_back(
    settings: Settings,
    client: httpx.AsyncClient,
    dynamodb: Any,
    ecr: Any,
    repo: str,
    suffix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """v1's record (build 5) and v2's intent (build 7, which landed in ECR) come over:
    older builds are superseded afterwards, v2's intent settled and adopted. v3 had
    nothing to import; v4 already had a record written by this release, which stays; v6's
    lease item held only the intent of a push of this release that failed before
    PutImage: its old record (build 10) comes over beside it. A second import changes
    nothing."""
    source = f"tags-old-{suffix}"
    dynamodb.create_table(
        TableName=source,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for tag, n in (("v1", 5), ("v2", 7)):  # what ECR holds from the earlier release
        ecr.put_image(repositoryName=repo, imageTag=tag, imageManifest=manifest(n))
    await push(client, repo, "v4", 2, 2)  # this release's own record
    failed = PendingPush(digest(manifest(11)), 11, None, "ci", "r11", "n11")
    dynamodb.update_item(  # a push of this release that failed before its PutImage
        TableName=settings.lease_table,
        Key={"pk": {"S": f"{repo}:v6"}},
        UpdateExpression="SET data_pending = :p, expires_at = :zero",
        ExpressionAttributeValues={":p": {"S": pending_json(failed)}, ":zero": {"N": "0"}},
    )
    items = [
        old_item(repo, "v1", digest=digest(manifest(5)), sequence=5, token=3, updated_at=1.5),
        old_item(
            repo,
            "v2",
            digest=digest(manifest(1)),
            sequence=1,
            token=1,
            pending_digest=digest(manifest(7)),
            pending_sequence=7,
            pending_token=2,
            pending_caller="ci",
            pending_request_id="r7",
        ),
        old_item(repo, "v3"),
        old_item(repo, "v4", digest=digest(manifest(9)), sequence=9, token=4),
        old_item(repo, "v5", digest=digest(manifest(8)), sequence="eight"),  # not its format
        old_item(repo, "v6", digest=digest(manifest(10)), sequence=10, token=5),
    ]
    for item in items:
        dynamodb.put_item(TableName=source, Item=item)

    first = await init(settings, monkeypatch, source)
    again = await init(settings, monkeypatch, source)

    assert "imported 3 tag records" in first, first
    assert "(1 kept" in first, first
    assert "1 empty; 1 not in a tags table's format" in first, first
    assert "imported 0 tag records" in again, again
    assert "(3 kept" not in first
    older = [await push(client, repo, tag, n, 3) for tag, n in (("v1", 3), ("v2", 6), ("v6", 3))]
    assert [
        ("superseded", digest(manifest(5)), 5),
        ("superseded", digest(manifest(7)), 7),
        ("superseded", digest(manifest(10)), 10),
    ] == [(a["outcome"], a["current_digest"], a["current_sequence"]) for a in older]
    newer = await push(client, repo, "v4", 3, 3)  # v4's record is this release's (2)
    assert ("pushed", digest(manifest(3))) == (newer["outcome"], tag_digest(ecr, repo, "v4"))
    history = (await client.get(f"/v1/tags/{repo}/v2/history")).json()
    assert "adopted" in {entry["outcome"] for entry in history["items"]}
