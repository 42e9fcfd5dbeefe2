"""The intent written into the tag's record before PutImage, over HTTP against moto: a
push that dies right after ECR accepted its write (simulated by an exception raised from
the service's own ECR client) leaves ECR ahead of the record; the next push adopts the
pending digest when ECR names it, or drops the intent when the put never landed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.domain.errors import LeaseLost
from service.domain.models import Fence, ImageRef, PendingPush, manifest_digest
from service.main import create_app
from service.settings import Settings
from service.stress.harness import canned_response
from tests.ecr_fidelity import EcrFidelity
from tests.integration.service.helpers import manifest, tag_digest

pytestmark = pytest.mark.integration


class Crash(Exception):
    """The holder dies here (the lease is released by the test's app, as if it expired)."""


async def push(client: httpx.AsyncClient, repo: str, text: str, **extra: Any) -> httpx.Response:
    return await client.post(
        "/v1/pushes", json={"repository": repo, "tag": "v1", "manifest": text, **extra}
    )


def crash_once(app: FastAPI, event: str) -> None:
    """The service's next PutImage raises ``Crash`` at ``event`` (before-send: the put
    never reaches ECR; after-call: ECR accepted it)."""
    fired: list[bool] = []

    def hook(**_: Any) -> None:
        if not fired:
            fired.append(True)
            raise Crash

    app.state.clients.ecr.meta.events.register(f"{event}.ecr.PutImage", hook)


async def crashed_push(client: httpx.AsyncClient, repo: str, text: str, sequence: int) -> None:
    try:
        answer = await push(client, repo, text, sequence=sequence)
    except Crash:
        return
    assert 500 == answer.status_code, answer.text


def item(dynamodb: Any, settings: Settings, repo: str) -> dict[str, Any]:
    """The record and intent the tag's lease item carries, flattened in DynamoDB's typed
    form: record fields by name, intent fields prefixed ``pending_``."""
    found = dynamodb.get_item(
        TableName=settings.lease_table, Key={"pk": {"S": f"{repo}:v1"}}, ConsistentRead=True
    ).get("Item", {})
    flat: dict[str, Any] = {}
    for attribute, prefix in (("data_record", ""), ("data_pending", "pending_")):
        for name, value in json.loads(found.get(attribute, {}).get("S", "{}")).items():
            if value is not None:
                typed = {"S": value} if isinstance(value, str) else {"N": str(value)}
                flat[prefix + name] = typed
    return flat


async def test_crash_after_put_is_adopted_and_older_build_superseded(
    app: FastAPI,
    client: httpx.AsyncClient,
    repo: str,
    ecr: Any,
    dynamodb: Any,
    settings: Settings,
    fidelity: EcrFidelity,
) -> None:
    """Build 1 pushed; build 3 dies after ECR accepted it; build 2 is superseded, the
    record adopts build 3 and the tag never moves back."""
    one, two, three = manifest(1), manifest(2), manifest(3)
    assert "pushed" == (await push(client, repo, one, sequence=1)).json()["outcome"]
    crash_once(app, "after-call")
    await crashed_push(client, repo, three, 3)
    assert manifest_digest(three) == tag_digest(ecr, repo, "v1")
    raw = item(dynamodb, settings, repo)
    assert manifest_digest(one) == raw["digest"]["S"]
    assert (manifest_digest(three), "3") == (
        raw["pending_digest"]["S"],
        raw["pending_sequence"]["N"],
    )
    assert manifest_digest(one) == (await client.get(f"/v1/tags/{repo}/v1")).json()["digest"]

    answer = (await push(client, repo, two, sequence=2)).json()

    assert ("superseded", False) == (answer["outcome"], answer["repaired"])
    assert (manifest_digest(three), 3) == (answer["current_digest"], answer["current_sequence"])
    assert manifest_digest(three) == tag_digest(ecr, repo, "v1")
    assert 2 == fidelity.count(repo)
    record = (await client.get(f"/v1/tags/{repo}/v1")).json()
    assert (manifest_digest(three), 3) == (record["digest"], record["sequence"])
    assert not {k for k in item(dynamodb, settings, repo) if k.startswith("pending_")}
    history = (await client.get(f"/v1/tags/{repo}/v1/history")).json()["items"]
    assert ["superseded", "adopted"] == [i["outcome"] for i in history[:2]]
    assert manifest_digest(three) == history[1]["digest"]


async def test_crash_on_first_push_leaves_only_an_intent(
    app: FastAPI, client: httpx.AsyncClient, repo: str, ecr: Any, dynamodb: Any, settings: Settings
) -> None:
    """The tag's first push dies after ECR accepted it: no record yet (404), the intent is
    adopted by the next push, an older build is superseded."""
    crash_once(app, "after-call")
    await crashed_push(client, repo, manifest(5), 5)
    assert 404 == (await client.get(f"/v1/tags/{repo}/v1")).status_code
    assert "digest" not in item(dynamodb, settings, repo)
    answer = (await push(client, repo, manifest(4), sequence=4)).json()
    assert ("superseded", manifest_digest(manifest(5))) == (
        answer["outcome"],
        answer["current_digest"],
    )
    assert manifest_digest(manifest(5)) == tag_digest(ecr, repo, "v1")


async def test_put_that_never_landed_is_dropped(
    app: FastAPI,
    client: httpx.AsyncClient,
    repo: str,
    ecr: Any,
    dynamodb: Any,
    settings: Settings,
) -> None:
    """Build 3 dies before its PutImage is sent: its intent is dropped and build 2, older,
    is pushed as today."""
    await push(client, repo, manifest(1), sequence=1)
    crash_once(app, "before-send")
    await crashed_push(client, repo, manifest(3), 3)
    assert manifest_digest(manifest(1)) == tag_digest(ecr, repo, "v1")
    assert "pending_digest" in item(dynamodb, settings, repo)
    answer = (await push(client, repo, manifest(2), sequence=2)).json()
    assert ("pushed", manifest_digest(manifest(1))) == (
        answer["outcome"],
        answer["previous_digest"],
    )
    assert manifest_digest(manifest(2)) == tag_digest(ecr, repo, "v1")
    raw = item(dynamodb, settings, repo)
    assert (manifest_digest(manifest(2)), "2") == (raw["digest"]["S"], raw["sequence"]["N"])
    assert not {k for k in raw if k.startswith("pending_")}


async def test_intent_write_is_fenced_by_the_lease(
    app: FastAPI, client: httpx.AsyncClient, repo: str, dynamodb: Any, settings: Settings
) -> None:
    """A holder whose lease is gone can neither write nor clear an intent."""
    await push(client, repo, manifest(1), sequence=1)
    records = app.state.services.records
    ref = ImageRef(repo, "v1")
    fence = Fence(ref.key, "nobody", 10**9)
    pending = PendingPush(manifest_digest(manifest(9)), 9, 10**9, "ci", "r")
    with pytest.raises(LeaseLost):
        await records.put_pending(ref, pending, fence=fence)
    with pytest.raises(LeaseLost):
        await records.clear_pending(ref, fence=fence)
    assert not {k for k in item(dynamodb, settings, repo) if k.startswith("pending_")}


async def test_history_outage_does_not_fail_a_push_that_landed(
    client: httpx.AsyncClient,
    repo: str,
    ecr: Any,
    dynamodb: Any,
    settings: Settings,
    aws_session: Any,
) -> None:
    """A PutImage's history entry rides in the record's write and is appended after the
    answer; when the history table is missing, the append fails alone: the record is
    written and the push answers pushed (ECR already holds the image)."""
    text = manifest(1)
    broken = create_app(
        settings.model_copy(update={"history_table": "no-such-history"}), session=aws_session
    )
    async with (
        broken.router.lifespan_context(broken),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=broken), base_url="http://b") as http,
    ):
        answer = await push(http, repo, text, sequence=1)
    assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])
    assert manifest_digest(text) == tag_digest(ecr, repo, "v1")
    raw = item(dynamodb, settings, repo)
    assert (manifest_digest(text), False) == (raw["digest"]["S"], "pending_digest" in raw)
    assert [] == (await client.get(f"/v1/tags/{repo}/v1/history")).json()["items"]


def refuse_records_of(app: FastAPI, settings: Settings, digest: str) -> None:
    """DynamoDB refuses, for good, every record write naming ``digest`` (a value the
    table cannot store); the intent is stored."""

    def hook(request: Any, **_: Any) -> Any:
        write = json.loads(request.body or b"{}")
        names = write.get("ExpressionAttributeNames", {})
        values = write.get("ExpressionAttributeValues", {})
        if write.get("TableName") == settings.lease_table and "data_record" in names.values():
            records = [json.loads(v["S"]) for v in values.values() if "digest" in v.get("S", "")]
            if any(record.get("digest") == digest for record in records):
                return canned_response(
                    request.url,
                    400,
                    {
                        "__type": "com.amazonaws.dynamodb.v20120810#ValidationException",
                        "message": "injected: Number overflow",
                    },
                    "application/x-amz-json-1.0",
                    aio=True,
                )
        return None

    events = app.state.clients.dynamodb.meta.events
    events.register_first("before-send.dynamodb.UpdateItem", hook)


async def test_record_refused_for_good_never_strands_the_tag(
    app: FastAPI, client: httpx.AsyncClient, repo: str, ecr: Any, settings: Settings
) -> None:
    """Build 2 lands in ECR but DynamoDB refuses its record for good (a
    ValidationException, also on every retry): that push fails, and the tag stays
    pushable: the next push drops the intent it cannot adopt and moves the tag."""
    await push(client, repo, manifest(1), sequence=1)
    refuse_records_of(app, settings, manifest_digest(manifest(2)))
    failed = await push(client, repo, manifest(2), sequence=2)
    assert failed.status_code >= 500, failed.json()  # a DynamoDB failure, not the client's
    assert manifest_digest(manifest(2)) == tag_digest(ecr, repo, "v1")
    for sequence in (3, 4):
        answer = await push(client, repo, manifest(sequence), sequence=sequence)
        assert (200, "pushed") == (answer.status_code, answer.json()["outcome"]), answer.json()
    assert manifest_digest(manifest(4)) == tag_digest(ecr, repo, "v1")
    record = (await client.get(f"/v1/tags/{repo}/v1")).json()
    assert (manifest_digest(manifest(4)), 4) == (record["digest"], record["sequence"])
