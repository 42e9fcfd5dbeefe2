"""Pushes through HTTP against moto (with ECR fidelity): outcomes, ordering, immutability,
records, history and repair."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.domain.models import manifest_digest
from service.stress.harness import canned_response
from tests.ecr_fidelity import EcrFidelity
from tests.integration.service.helpers import manifest, tag_digest

pytestmark = pytest.mark.integration


async def push(client: httpx.AsyncClient, repo: str, text: str, **extra: Any) -> httpx.Response:
    return await client.post(
        "/v1/pushes", json={"repository": repo, "tag": "v1", "manifest": text, **extra}
    )


async def test_push_moves_tag_to_sha256_of_manifest(
    client: httpx.AsyncClient, repo: str, ecr: Any
) -> None:
    """A push answers pushed and the tag names sha256 of the exact manifest bytes."""
    text = manifest(1)
    answer = await push(client, repo, text, sequence=1)
    assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])
    assert manifest_digest(text) == answer.json()["digest"] == tag_digest(ecr, repo, "v1")


async def test_repush_is_unchanged_and_spends_no_put(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity
) -> None:
    """Re-pushing the same manifest is unchanged, never an error, with one PutImage in all."""
    await push(client, repo, manifest(1))
    answer = await push(client, repo, manifest(1))
    assert (200, "unchanged") == (answer.status_code, answer.json()["outcome"])
    assert 1 == fidelity.count(repo)


async def test_image_already_exists_is_unchanged(
    client: httpx.AsyncClient, repo: str, ecr: Any
) -> None:
    """A tag already holding the manifest (pushed outside pushgate) answers unchanged."""
    text = manifest(1)
    ecr.put_image(repositoryName=repo, imageManifest=text, imageTag="v1")
    answer = await push(client, repo, text)
    assert (200, "unchanged") == (answer.status_code, answer.json()["outcome"])
    record = (await client.get(f"/v1/tags/{repo}/v1")).json()
    assert manifest_digest(text) == record["digest"]


async def test_out_of_order_sequences_never_move_tag_backwards(
    client: httpx.AsyncClient, repo: str, ecr: Any
) -> None:
    """Build 5, then 3 (superseded, ECR untouched), then 7: the tag ends on build 7."""
    five, three, seven = manifest(5), manifest(3), manifest(7)
    assert "pushed" == (await push(client, repo, five, sequence=5)).json()["outcome"]
    late = (await push(client, repo, three, sequence=3)).json()
    assert ("superseded", manifest_digest(five), 5) == (
        late["outcome"],
        late["current_digest"],
        late["current_sequence"],
    )
    assert manifest_digest(five) == tag_digest(ecr, repo, "v1")
    assert "pushed" == (await push(client, repo, seven, sequence=7)).json()["outcome"]
    assert manifest_digest(seven) == tag_digest(ecr, repo, "v1")
    assert 7 == (await client.get(f"/v1/tags/{repo}/v1")).json()["sequence"]


async def test_immutable_tag_same_digest_is_unchanged(
    client: httpx.AsyncClient, immutable_repo: str, ecr: Any
) -> None:
    """On an IMMUTABLE repository, pushing the digest the tag holds is unchanged."""
    text = manifest(1)
    ecr.put_image(repositoryName=immutable_repo, imageManifest=text, imageTag="v1")
    answer = await push(client, immutable_repo, text)
    assert (200, "unchanged") == (answer.status_code, answer.json()["outcome"])


async def test_immutable_tag_other_digest_is_409(
    client: httpx.AsyncClient, immutable_repo: str, ecr: Any
) -> None:
    """On an IMMUTABLE repository, another digest is 409 tag_immutable with the existing one."""
    first = manifest(1)
    ecr.put_image(repositoryName=immutable_repo, imageManifest=first, imageTag="v1")
    answer = await push(client, immutable_repo, manifest(2))
    assert (409, "tag_immutable", manifest_digest(first)) == (
        answer.status_code,
        answer.json()["error"],
        answer.json()["existing_digest"],
    )


def refuse_put_of(app: FastAPI, digest: str, entered: asyncio.Event, go: asyncio.Event) -> None:
    """The service's PutImage of ``digest`` sets ``entered``, waits for ``go``, and is
    refused by ECR (layers not found)."""

    async def hook(request: Any, **_: Any) -> Any:
        if digest.encode() not in (request.body or b""):
            return None
        entered.set()
        await go.wait()
        return canned_response(
            request.url,
            400,
            {"__type": "LayersNotFoundException", "message": "injected: layers missing"},
            "application/x-amz-json-1.1",
            aio=True,
        )

    app.state.clients.ecr.meta.events.register_first("before-send.ecr.PutImage", hook)


async def test_concurrent_unsequenced_pushes_to_an_immutable_tag(
    app: FastAPI, client: httpx.AsyncClient, immutable_repo: str, ecr: Any
) -> None:
    """Unsequenced pushes of one immutable tag wait behind a push that fails (coalescing
    on): exactly one of them is pushed; every other digest is 409 tag_immutable naming the
    winner, and a re-push of the winner's digest is unchanged, never superseded: nothing
    can replace that tag, so the use case itself could answer nothing else."""
    refused, entered, go = manifest(9), asyncio.Event(), asyncio.Event()
    refuse_put_of(app, manifest_digest(refused), entered, go)
    texts = [manifest(n) for n in (1, 2, 3, 4, 5, 6)] * 2
    holder = asyncio.ensure_future(push(client, immutable_repo, refused))
    await asyncio.wait_for(entered.wait(), 10)
    waiting = [asyncio.ensure_future(push(client, immutable_repo, text)) for text in texts]
    await asyncio.sleep(0.2)  # every waiter reaches the tag's gate (no I/O before it)
    go.set()
    answers = await asyncio.gather(*waiting)
    assert (400, "layers_not_found") == ((await holder).status_code, (await holder).json()["error"])
    winners = [a.json()["digest"] for a in answers if a.json().get("outcome") == "pushed"]
    assert 1 == len(winners), [a.json() for a in answers]
    winner = winners[0]
    assert winner == tag_digest(ecr, immutable_repo, "v1")
    seen = []
    for text, answer in zip(texts, answers, strict=True):
        body = answer.json()
        if manifest_digest(text) == winner:
            seen.append((answer.status_code, body["outcome"]))
        else:
            assert (409, "tag_immutable", winner) == (
                answer.status_code,
                body["error"],
                body["existing_digest"],
            )
    assert sorted([(200, "pushed"), (200, "unchanged")]) == sorted(seen)


async def test_manifest_without_media_type_uses_parameter(
    client: httpx.AsyncClient, repo: str, ecr: Any
) -> None:
    """A manifest with no mediaType is pushed with the media_type given."""
    text = '{"schemaVersion": 2, "config": {}, "layers": []}'
    answer = await push(client, repo, text, media_type="application/vnd.oci.image.manifest.v1+json")
    assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])
    assert manifest_digest(text) == tag_digest(ecr, repo, "v1")


async def test_tag_record_names_digest_sequence_token_and_caller(
    client: httpx.AsyncClient, repo: str
) -> None:
    """GET /v1/tags/{repo}/{tag} shows who moved the tag, to what, under which token."""
    pushed = (
        await client.post(
            "/v1/pushes",
            json={"repository": repo, "tag": "v1", "manifest": manifest(1), "sequence": 9},
            headers={"x-pushgate-caller": "ci-42", "x-request-id": "req-42"},
        )
    ).json()
    record = (await client.get(f"/v1/tags/{repo}/v1")).json()
    assert (pushed["digest"], 9, pushed["token"], "ci-42", "req-42") == (
        record["digest"],
        record["sequence"],
        record["token"],
        record["caller"],
        record["request_id"],
    )


async def test_history_is_newest_first_and_paginated(client: httpx.AsyncClient, repo: str) -> None:
    """Every push is in history, newest first, pages joined by the cursor."""
    for n in (1, 2, 3):
        await push(client, repo, manifest(n), sequence=n)
    await push(client, repo, manifest(1), sequence=1)  # superseded: recorded too
    first = (await client.get(f"/v1/tags/{repo}/v1/history", params={"limit": 3})).json()
    second = (
        await client.get(
            f"/v1/tags/{repo}/v1/history", params={"limit": 3, "cursor": first["next_cursor"]}
        )
    ).json()
    items = first["items"] + second["items"]
    assert ["superseded", "pushed", "pushed", "pushed"] == [i["outcome"] for i in items]
    assert [1, 3, 2, 1] == [i["sequence"] for i in items]
    assert None is second["next_cursor"]
    assert items[1]["previous_digest"] == items[2]["digest"]


async def test_bad_cursor_is_invalid_request(client: httpx.AsyncClient, repo: str) -> None:
    """A cursor this service did not issue is 422 naming the cursor."""
    answer = await client.get(f"/v1/tags/{repo}/v1/history", params={"cursor": "garbage"})
    assert (422, "cursor") == (answer.status_code, answer.json()["field"])


async def test_drifted_tag_is_repaired_logged_and_counted(
    client: httpx.AsyncClient, repo: str, ecr: Any
) -> None:
    """A stale write landing after the record (simulated directly in ECR) is put back
    after the next push of the tag has its answer, written to history and counted."""
    good = manifest(1)
    await push(client, repo, good, sequence=5)
    ecr.put_image(repositoryName=repo, imageManifest=manifest(99), imageTag="v1")
    answer = (await push(client, repo, manifest(2), sequence=1)).json()
    assert ("superseded", False) == (answer["outcome"], answer["repaired"])
    assert manifest_digest(good) == tag_digest(ecr, repo, "v1")
    history = (await client.get(f"/v1/tags/{repo}/v1/history")).json()["items"]
    assert ["repaired", "superseded", "pushed"] == [i["outcome"] for i in history]
    assert manifest_digest(manifest(99)) == history[0]["observed_digest"]
    metrics = (await client.get("/metrics")).text
    assert "pushgate_tag_repairs_total 1.0" in metrics
