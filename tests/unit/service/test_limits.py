"""Input bounds (service.domain.limits), through the API over fakes: every bound answers
422 invalid_request naming the field, none a 500, and no lease is taken."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from service.domain import limits
from tests.unit.service.fakes import OCI_MANIFEST, World, manifest


def body(**overrides: Any) -> dict[str, Any]:
    return {"repository": "team/app", "tag": "v1", "manifest": manifest(1), **overrides}


def nested(depth: int) -> str:
    return f'{{"mediaType": "{OCI_MANIFEST}", "x": {"[" * depth}{"]" * depth}}}'


@pytest.mark.parametrize(
    ("text", "too_deep"),
    [
        ("{}", False),
        ("[" * 32 + "]" * 32, False),
        ("[" * 33 + "]" * 33, True),
        ('{"a": "' + "[" * 100 + '"}', False),  # brackets in strings do not nest
        ('{"a": "\\"[[[[", "b": [[1]]}', False),  # nor after an escaped quote
        ("[" * 5, True),  # unbalanced: never parsed
        ("[]" * 1000, False),
    ],
)
def test_json_depth(text: str, too_deep: bool) -> None:
    """Nesting deeper than MAX_JSON_DEPTH (32) is found without parsing."""
    assert too_deep == limits.json_too_deep(text)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sequence": limits.MAX_SEQUENCE + 1}, "sequence"),
        ({"sequence": 10**127}, "sequence"),
        ({"wait_seconds": 10**400}, "wait_seconds"),
        ({"wait_seconds": 1e308}, "wait_seconds"),
        ({"manifest": nested(5000)}, "manifest"),
        ({"manifest": nested(33)}, "manifest"),
        ({"caller": "ci\x1b]8;;http://x\x1b\\"}, "caller"),
        ({"caller": "a\u202ereversed"}, "caller"),
        ({"caller": ""}, "caller"),
        ({"repository": "r" * 200_000}, "repository"),
        ({"tag": "t" * 200_000}, "tag"),
        ({"media_type": "m" * 100_000}, "media_type"),
    ],
)
async def test_out_of_bounds_is_422_without_lease(
    api: httpx.AsyncClient, world: World, overrides: dict[str, Any], field: str
) -> None:
    """Each bound is checked before a lease: 422 invalid_request naming the field."""
    answer = await api.post("/v1/pushes", json=body(**overrides))
    assert (422, "invalid_request", field) == (
        answer.status_code,
        answer.json()["error"],
        answer.json()["field"],
    )
    assert [] == world.leases.granted


async def test_largest_sequence_is_accepted(api: httpx.AsyncClient) -> None:
    """2**63 - 1 is a valid sequence (storable by DynamoDB and by any int64)."""
    answer = await api.post("/v1/pushes", json=body(sequence=limits.MAX_SEQUENCE))
    assert (200, limits.MAX_SEQUENCE) == (answer.status_code, answer.json()["sequence"])


@pytest.mark.parametrize("literal", ["NaN", "Infinity"])
async def test_wait_seconds_must_be_finite(
    api: httpx.AsyncClient, world: World, literal: str
) -> None:
    """NaN and Infinity (which Python's JSON parser takes) are 422 wait_seconds."""
    text = json.dumps(body(wait_seconds=0)).replace(
        '"wait_seconds": 0', f'"wait_seconds": {literal}'
    )
    answer = await api.post(
        "/v1/pushes", content=text, headers={"content-type": "application/json"}
    )
    assert (422, "wait_seconds") == (answer.status_code, answer.json()["field"])
    assert [] == world.leases.granted


async def test_manifest_limit_counts_bytes(api: httpx.AsyncClient, world: World) -> None:
    """A manifest under 4 MiB of characters but over 4 MiB of UTF-8 bytes is refused."""
    pad = "é" * (limits.MAX_MANIFEST_BYTES // 2)  # 2 bytes each
    big = json.dumps({"mediaType": OCI_MANIFEST, "pad": pad}, ensure_ascii=False)
    assert len(big) < limits.MAX_MANIFEST_BYTES < limits.utf8_size(big)
    answer = await api.post("/v1/pushes", json=body(manifest=big))
    assert (422, "manifest") == (answer.status_code, answer.json()["field"])
    assert [] == world.leases.granted


async def test_caller_header_must_be_printable(api: httpx.AsyncClient, world: World) -> None:
    """X-Pushgate-Caller follows the caller rule too."""
    answer = await api.post("/v1/pushes", json=body(), headers={"x-pushgate-caller": "ci\x1b[2J"})
    assert (422, "x-pushgate-caller") == (answer.status_code, answer.json()["field"])
    assert [] == world.leases.granted


async def test_markup_in_caller_is_text(api: httpx.AsyncClient, world: World) -> None:
    """Printable markup such as '[/bold]' is a valid caller, kept as text."""
    answer = await api.post("/v1/pushes", json=body(caller="[/bold]"))
    assert (200, "[/bold]") == (answer.status_code, world.history.entries[-1].caller)


@pytest.mark.parametrize("path", ["/v1/tags/history", "/v1/tags/team/app/v1/history"])
async def test_deep_cursor_is_422(api: httpx.AsyncClient, path: str) -> None:
    """A history cursor nesting JSON deeper than any issued one is 422 cursor, not 500."""
    cursor = base64.urlsafe_b64encode(b"[" * 1500 + b"]" * 1).decode()[: limits.MAX_CURSOR_CHARS]
    params = {"cursor": cursor, "repository": "team/app", "tag": "v1"}
    answer = await api.get(path, params=params)
    assert (422, "cursor") == (answer.status_code, answer.json()["field"])


async def test_cursor_outside_base64url_is_422(api: httpx.AsyncClient) -> None:
    """A cursor with characters outside base64url is refused before it is decoded."""
    answer = await api.get("/v1/tags/team/app/v1/history", params={"cursor": "{}[]"})
    assert (422, "cursor") == (answer.status_code, answer.json()["field"])
