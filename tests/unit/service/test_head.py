"""HEAD is answered as GET without the body."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.service.fakes import World


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
async def test_head_has_gets_status_and_length_and_no_body(
    api: httpx.AsyncClient, path: str
) -> None:
    """A HEAD of a GET route: the GET's status and Content-Length, an empty body."""
    got = await api.get(path)
    head = await api.head(path)
    assert (got.status_code, got.headers["content-length"], b"") == (
        head.status_code,
        head.headers["content-length"],
        head.content,
    )


async def test_head_of_an_unknown_tag_is_404(api: httpx.AsyncClient, world: World) -> None:
    """HEAD of a tag with no record: 404, as its GET, with no body."""
    head = await api.head("/v1/tags/team/app/nope")
    assert (404, b"") == (head.status_code, head.content)
