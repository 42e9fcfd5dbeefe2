"""Promotions, pushes under several tags, pushes by digest and expected digests, through
HTTP against moto (with ECR fidelity)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aioboto3
import httpx
import pytest

from service.domain.models import manifest_digest
from service.settings import Settings
from tests.ecr_fidelity import EcrFidelity
from tests.integration.service import test_budget_http
from tests.integration.service.helpers import lease_items, manifest, tag_digest
from tests.integration.service.test_budget_http import RATE, replica, sliding_max

pytestmark = pytest.mark.integration

INDEX = "application/vnd.oci.image.index.v1+json"

budget_settings = test_budget_http.budget_settings  # the fixture: a 4/s budget table


async def by_digest(client: httpx.AsyncClient, repo: str, text: str) -> httpx.Response:
    return await client.post("/v1/pushes", json={"repository": repo, "manifest": text})


async def promote(
    client: httpx.AsyncClient, repo: str, digest: str, tags: list[str], **extra: Any
) -> httpx.Response:
    body = {"repository": repo, "digest": digest, "tags": tags, **extra}
    return await client.post("/v1/promotions", json=body)


def index_of(*children: str) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 1}
                for d in children
            ],
        }
    )


async def test_push_without_tag_puts_by_digest(client: httpx.AsyncClient, repo: str) -> None:
    """A push naming no tag puts the manifest by digest and answers pushed."""
    text = manifest(1)
    answer = await by_digest(client, repo, text)
    assert 200 == answer.status_code
    assert {
        "outcome": "pushed",
        "repository": repo,
        "digest": manifest_digest(text),
        "media_type": "application/vnd.oci.image.manifest.v1+json",
    } == answer.json()


async def test_push_by_digest_again_is_unchanged(client: httpx.AsyncClient, repo: str) -> None:
    """The same manifest by digest a second time answers unchanged."""
    await by_digest(client, repo, manifest(1))
    assert "unchanged" == (await by_digest(client, repo, manifest(1))).json()["outcome"]


async def test_push_by_digest_takes_no_lease_and_is_in_history(
    client: httpx.AsyncClient, repo: str, dynamodb: Any, settings: Settings
) -> None:
    """A push by digest takes no lease; history keeps it under tag @sha256:..."""
    digest = (await by_digest(client, repo, manifest(1))).json()["digest"]
    await by_digest(client, repo, manifest(1))
    history = await client.get("/v1/tags/history", params={"repository": repo, "tag": "@" + digest})
    assert [] == lease_items(dynamodb, settings, repo)
    assert ["unchanged", "pushed"] == [i["outcome"] for i in history.json()["items"]]


async def test_index_with_missing_children_is_refused(client: httpx.AsyncClient, repo: str) -> None:
    """An index whose child manifests are not in the repository: referenced_images_not_found."""
    answer = await by_digest(client, repo, index_of(manifest_digest(manifest(7))))
    assert (400, "referenced_images_not_found") == (answer.status_code, answer.json()["error"])


async def test_index_after_its_children_is_pushed_under_tags(
    client: httpx.AsyncClient, repo: str, ecr: Any
) -> None:
    """Children by digest, then the index under its tags: every tag names the index."""
    children = [(await by_digest(client, repo, manifest(n))).json()["digest"] for n in (1, 2)]
    text = index_of(*children)
    body = {"repository": repo, "tags": ["v1", "latest"], "manifest": text}
    answer = (await client.post("/v1/pushes", json=body)).json()
    assert ("ok", ["latest", "v1"]) == (answer["status"], [t["tag"] for t in answer["tags"]])
    assert [manifest_digest(text)] * 2 == [tag_digest(ecr, repo, t) for t in ("latest", "v1")]


async def test_push_with_tags_answers_each_tag(client: httpx.AsyncClient, repo: str) -> None:
    """tags: one answer per tag, sorted, each with its outcome."""
    await client.post("/v1/pushes", json={"repository": repo, "tag": "b", "manifest": manifest(1)})
    body = {"repository": repo, "tags": ["c", "b", "a", "b"], "manifest": manifest(1)}
    answer = (await client.post("/v1/pushes", json=body)).json()
    outcomes = [(t["tag"], t["outcome"]) for t in answer["tags"]]
    assert [("a", "pushed"), ("b", "unchanged"), ("c", "pushed")] == outcomes


async def test_tag_and_tags_together_are_refused(client: httpx.AsyncClient, repo: str) -> None:
    """A push naming both tag and tags is 422 invalid_request."""
    body = {"repository": repo, "tag": "a", "tags": ["b"], "manifest": manifest(1)}
    answer = await client.post("/v1/pushes", json=body)
    assert (422, "invalid_request") == (answer.status_code, answer.json()["error"])


async def test_expected_digest_mismatch_is_422_before_any_lease(
    client: httpx.AsyncClient, repo: str, dynamodb: Any, settings: Settings
) -> None:
    """Bytes hashing to another digest than expected_digest: 422, no lease item written."""
    body = {
        "repository": repo,
        "tag": "v1",
        "manifest": manifest(1),
        "expected_digest": manifest_digest(manifest(2)),
    }
    answer = await client.post("/v1/pushes", json=body)
    assert (422, "digest_mismatch") == (answer.status_code, answer.json()["error"])
    assert [] == lease_items(dynamodb, settings, repo)


async def test_expected_digest_that_matches_pushes(client: httpx.AsyncClient, repo: str) -> None:
    """A push whose bytes hash to expected_digest goes through."""
    body = {
        "repository": repo,
        "tag": "v1",
        "manifest": manifest(1),
        "expected_digest": manifest_digest(manifest(1)),
    }
    assert "pushed" == (await client.post("/v1/pushes", json=body)).json()["outcome"]


async def test_promote_moves_tags_to_the_image(
    client: httpx.AsyncClient, repo: str, ecr: Any
) -> None:
    """A promotion moves every tag to the image named by digest, byte for byte."""
    digest = (await by_digest(client, repo, manifest(1))).json()["digest"]
    answer = (await promote(client, repo, digest, ["v1", "latest"], sequence=3)).json()
    assert "ok" == answer["status"]
    assert [digest, digest] == [tag_digest(ecr, repo, t) for t in ("latest", "v1")]


async def test_promote_of_unknown_digest_is_404(client: httpx.AsyncClient, repo: str) -> None:
    """A digest the repository does not hold: 404 image_not_found."""
    answer = await promote(client, repo, manifest_digest(manifest(5)), ["v1"])
    assert (404, "image_not_found") == (answer.status_code, answer.json()["error"])


async def test_promote_in_missing_repository_is_404(client: httpx.AsyncClient, suffix: str) -> None:
    """A repository that does not exist: 404 repository_not_found."""
    answer = await promote(client, f"none-{suffix}", manifest_digest(manifest(5)), ["v1"])
    assert (404, "repository_not_found") == (answer.status_code, answer.json()["error"])


async def test_promote_partial_names_each_tags_error(
    client: httpx.AsyncClient, immutable_repo: str
) -> None:
    """One immutable tag naming another image: status partial, that tag tag_immutable,
    the others pushed."""
    repo = immutable_repo
    await client.post("/v1/pushes", json={"repository": repo, "tag": "b", "manifest": manifest(2)})
    digest = (await by_digest(client, repo, manifest(1))).json()["digest"]
    answer = await promote(client, repo, digest, ["a", "b", "c"])
    items = [(t["tag"], t["outcome"], t["error"]) for t in answer.json()["tags"]]
    assert (200, "partial") == (answer.status_code, answer.json()["status"])
    assert [("a", "pushed", None), ("b", "failed", "tag_immutable"), ("c", "pushed", None)] == items


async def test_promote_across_repositories(
    client: httpx.AsyncClient, repo: str, ecr: Any, suffix: str
) -> None:
    """source_repository: the image read there is put into the target under each tag."""
    target = f"team/prod-{suffix}"
    ecr.create_repository(repositoryName=target)
    digest = (await by_digest(client, repo, manifest(1))).json()["digest"]
    answer = (await promote(client, target, digest, ["v1"], source_repository=repo)).json()
    assert ("ok", digest) == (answer["status"], tag_digest(ecr, target, "v1"))


async def test_promote_across_repositories_without_layers_is_refused(
    client: httpx.AsyncClient, repo: str, ecr: Any, suffix: str, fidelity: EcrFidelity
) -> None:
    """The target lacks the image's layers: 400 layers_not_found naming the target."""
    target = f"team/prod-{suffix}"
    ecr.create_repository(repositoryName=target)
    digest = (await by_digest(client, repo, manifest(1))).json()["digest"]
    missing = "sha256:" + "ab" * 32
    fidelity.inject(target, "LayersNotFoundException", f"Layers {missing} not found")
    answer = await promote(client, target, digest, ["v1"], source_repository=repo)
    body = answer.json()
    assert (400, "layers_not_found", [missing]) == (
        answer.status_code,
        body["error"],
        body["digests"],
    )
    assert f"Repository {target} lacks layers" in body["message"]


async def test_concurrent_promotions_end_at_the_higher_build(
    client: httpx.AsyncClient, repo: str, ecr: Any
) -> None:
    """Two builds promoted at once to overlapping tags with distinct sequences: every
    shared tag names the higher build, and history has each request once per tag."""
    low = (await by_digest(client, repo, manifest(1))).json()["digest"]
    high = (await by_digest(client, repo, manifest(2))).json()["digest"]
    answers = await asyncio.gather(
        promote(client, repo, low, ["a", "b", "c", "d"], sequence=1),
        promote(client, repo, high, ["b", "c", "d", "e"], sequence=2),
    )
    assert ["ok", "ok"] == [a.json()["status"] for a in answers]
    final = {t: tag_digest(ecr, repo, t) for t in "abcde"}
    assert {"a": low, "b": high, "c": high, "d": high, "e": high} == final
    for tag in "bcd":
        items = (await client.get(f"/v1/tags/{repo}/{tag}/history")).json()["items"]
        moves = [i["digest"] for i in items if i["outcome"] == "pushed"]
        assert (2, len(moves)) == (len(items), len(set(moves)))


async def test_promote_checks_input_before_reading_ecr(
    client: httpx.AsyncClient, repo: str, fidelity: EcrFidelity
) -> None:
    """A wait over the server's bound is 422 before ECR is asked for the image."""
    answer = await promote(client, repo, manifest_digest(manifest(5)), ["v1"], wait_seconds=1e6)
    assert (422, 0) == (answer.status_code, fidelity.count(repo, "batch_get_image"))


async def test_pushes_by_digest_keep_to_the_putimage_budget(
    budget_settings: Settings, aws_session: aioboto3.Session, repo: str
) -> None:
    """Pushes by digest at once from two replicas at a 4/s budget: every one lands, and
    no sliding 1 s window holds more than 4 PutImage calls + 1 (the tolerance of
    test_budget_http: a call may start a little after its slot)."""
    calls: list[float] = []
    texts = [manifest(n) for n in range(10)]
    async with (
        replica(budget_settings, aws_session, calls) as one,
        replica(budget_settings, aws_session, calls) as two,
    ):
        answers = await asyncio.gather(
            *(by_digest((one, two)[n % 2], repo, text) for n, text in enumerate(texts))
        )
    assert ([200] * 10, 10) == ([a.status_code for a in answers], len(calls))
    assert sliding_max(calls) <= RATE + 1
