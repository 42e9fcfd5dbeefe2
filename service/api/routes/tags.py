"""The tag's record and its history.

Repository names contain ``/``, so the path form is
``GET /v1/tags/{repository...}/{tag}`` and ``GET /v1/tags/{repository...}/{tag}/history``.
The query form ``GET /v1/tags?repository=&tag=`` (and ``/v1/tags/history?...``) is
unambiguous also for a tag literally named ``history``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Query, Security

from service.api.deps import BEARER, HistoryDep, IdentityDep, RecordsDep
from service.api.schemas import (
    HistoryItemOut,
    HistoryResponse,
    TagResponse,
    error_responses,
)
from service.domain import limits
from service.domain.errors import InvalidRequest, TagNotFound
from service.domain.models import ImageRef
from service.domain.promote import history_ref

router = APIRouter(tags=["tags"], dependencies=[Security(BEARER)])

_NOT_FOUND = error_responses({404: "tag_not_found"})

Limit = Annotated[int, Query(ge=1, le=limits.MAX_HISTORY_LIMIT, description="Entries per page.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=limits.MAX_CURSOR_CHARS,
        pattern=f"^{limits.CURSOR_RE.pattern}$",
        description="next_cursor of a page.",
    ),
]
Repository = Annotated[str, Query(max_length=limits.REPOSITORY_MAX)]
Tag = Annotated[str, Query(max_length=limits.TAG_MAX)]


def _check_cursor(cursor: str) -> None:
    """A cursor nested deeper than any this service issues is refused before it is
    parsed (the parser's recursion is not ours to exhaust)."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode("utf-8")
    except (ValueError, binascii.Error):
        return  # not base64 JSON: the history adapter names it as not a cursor
    if limits.json_too_deep(text):
        raise InvalidRequest("cursor", "is not a cursor this service issued")


async def _tag(
    records: RecordsDep, repository: str, tag: str, identity: IdentityDep
) -> TagResponse:
    ref = ImageRef(repository, tag)  # bounded before any answer names it
    identity.check(ref.repository)
    record = await records.get(ref)
    if record is None:
        raise TagNotFound(ref.repository, ref.tag)
    return TagResponse.of(record)


async def _history(
    history: HistoryDep,
    repository: str,
    tag: str,
    limit: int,
    cursor: str | None,
    identity: IdentityDep,
) -> HistoryResponse:
    ref = history_ref(repository, tag)  # bounded before any answer names it; @sha256:...
    identity.check(ref.repository)  # pushes by digest
    if cursor:
        _check_cursor(cursor)
    page = await history.page(ref, limit=limit, cursor=cursor)
    return HistoryResponse(
        repository=ref.repository,
        tag=ref.tag,
        items=[HistoryItemOut.of(item) for item in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/v1/tags/history", response_model=HistoryResponse, responses=_NOT_FOUND)
async def history_by_query(
    history: HistoryDep,
    identity: IdentityDep,
    repository: Repository,
    tag: Tag,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> HistoryResponse:
    """The tag's recorded pushes, newest first."""
    return await _history(history, repository, tag, limit, cursor, identity)


@router.get("/v1/tags", response_model=TagResponse, responses=_NOT_FOUND)
async def tag_by_query(
    records: RecordsDep,
    identity: IdentityDep,
    repository: Repository,
    tag: Tag,
) -> TagResponse:
    """The tag's record: digest, sequence, token, who and when last moved it."""
    return await _tag(records, repository, tag, identity)


@router.get(
    "/v1/tags/{repository:path}/{tag}/history",
    response_model=HistoryResponse,
    responses=_NOT_FOUND,
)
async def history_by_path(
    history: HistoryDep,
    identity: IdentityDep,
    repository: str,
    tag: str,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> HistoryResponse:
    """The tag's recorded pushes, newest first."""
    return await _history(history, repository, tag, limit, cursor, identity)


@router.get("/v1/tags/{repository:path}/{tag}", response_model=TagResponse, responses=_NOT_FOUND)
async def tag_by_path(
    records: RecordsDep, identity: IdentityDep, repository: str, tag: str
) -> TagResponse:
    """The tag's record: digest, sequence, token, who and when last moved it."""
    return await _tag(records, repository, tag, identity)
