"""The tag's record and its history.

Repository names contain ``/``, so the path form is
``GET /v1/tags/{repository...}/{tag}`` and ``GET /v1/tags/{repository...}/{tag}/history``.
The query form ``GET /v1/tags?repository=&tag=`` (and ``/v1/tags/history?...``) is
unambiguous also for a tag literally named ``history``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import HistoryDep, IdentityDep, RecordsDep
from service.api.schemas import ErrorResponse, HistoryItemOut, HistoryResponse, TagResponse
from service.domain.errors import TagNotFound
from service.domain.models import ImageRef
from service.domain.promote import history_ref

router = APIRouter(tags=["tags"])

_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "tag_not_found"},
    422: {"model": ErrorResponse, "description": "invalid_request"},
}

Limit = Annotated[int, Query(ge=1, le=100, description="Entries per page.")]
Cursor = Annotated[str | None, Query(max_length=2048, description="next_cursor of a page.")]


async def _tag(
    records: RecordsDep, repository: str, tag: str, identity: IdentityDep
) -> TagResponse:
    identity.check(repository)
    ref = ImageRef(repository, tag)
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
    identity.check(repository)
    ref = history_ref(repository, tag)  # @sha256:...: pushes by digest
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
    repository: Annotated[str, Query()],
    tag: Annotated[str, Query()],
    limit: Limit = 20,
    cursor: Cursor = None,
) -> HistoryResponse:
    """The tag's recorded pushes, newest first."""
    return await _history(history, repository, tag, limit, cursor, identity)


@router.get("/v1/tags", response_model=TagResponse, responses=_NOT_FOUND)
async def tag_by_query(
    records: RecordsDep,
    identity: IdentityDep,
    repository: Annotated[str, Query()],
    tag: Annotated[str, Query()],
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
