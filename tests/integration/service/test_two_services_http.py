"""Two pushgate servers (uvicorn, two ports, each with its own clients and lease owner)
over the same tables serialize pushes of one tag."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from service.domain.models import manifest_digest
from service.main import create_app
from service.settings import Settings
from tests.integration.service.helpers import manifest, tag_digest
from tests.uvicorn_server import serve

pytestmark = pytest.mark.integration

PUSHES = 12


@pytest.mark.parametrize("coalesce", [False, True], ids=["coalescing-off", "coalescing-on"])
async def test_two_servers_serialize_and_never_move_tag_backwards(
    settings: Settings, repo: str, ecr: Any, coalesce: bool
) -> None:
    """Concurrent pushes of one tag with shuffled sequences, split over two servers: the tag
    ends on the highest sequence, every push has one history entry (appended just after
    its answer), and the entries of
    pushes that took the lease show strictly increasing tokens with the pushed sequences
    increasing. Without coalescing every push took the lease."""
    sequences = list(range(1, PUSHES + 1))
    random.Random(7).shuffle(sequences)
    patient = settings.model_copy(update={"max_wait_seconds": 60.0, "coalesce": coalesce})
    with serve(create_app(patient)) as one, serve(create_app(patient)) as two:
        async with httpx.AsyncClient(timeout=120) as http:  # past the 60 s lease wait
            answers = await asyncio.gather(
                *(
                    http.post(
                        f"{(one, two)[i % 2]}/v1/pushes",
                        json={
                            "repository": repo,
                            "tag": "v1",
                            "manifest": manifest(seq),
                            "sequence": seq,
                            "wait_seconds": 60,
                        },
                    )
                    for i, seq in enumerate(sequences)
                )
            )
            # entries are appended just after each answer: wait (bounded) for the last ones
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                history = await read_history(http, f"{one}/v1/tags/{repo}/v1/history")
                if len(history) >= PUSHES or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.1)
            record = (await http.get(f"{two}/v1/tags/{repo}/v1")).json()
    assert [200] * PUSHES == [a.status_code for a in answers]
    assert {"pushed", "superseded"} >= {a.json()["outcome"] for a in answers}
    assert (PUSHES, manifest_digest(manifest(PUSHES))) == (record["sequence"], record["digest"])
    assert record["digest"] == tag_digest(ecr, repo, "v1")
    oldest_first = list(reversed(history))
    leased = [i for i in oldest_first if not (i["detail"] or "").startswith("coalesced")]
    tokens = [item["token"] for item in leased]
    assert sorted(set(tokens)) == tokens
    pushed = [item["sequence"] for item in leased if item["outcome"] == "pushed"]
    assert sorted(set(pushed)) == pushed
    assert PUSHES == len(history)
    if not coalesce:
        assert oldest_first == leased


async def read_history(http: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    """Every history entry of a tag, newest first, page by page."""
    history: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = (await http.get(url, params=params)).json()
        history += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return history
