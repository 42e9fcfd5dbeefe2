"""JSON shapes of the API (pydantic). Field rules that need the domain's knowledge
(name patterns, manifest parsing, media types) are checked by ``PushRequest.create``."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from service.domain.models import Answer, HistoryEntry, PushResult, TagRecord


def _iso(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


class PushBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repository: StrictStr = Field(description="ECR repository name, 2-256 characters.")
    tag: StrictStr = Field(description="OCI tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.")
    manifest: StrictStr = Field(description="The exact manifest text, at most 4 MiB of JSON.")
    media_type: StrictStr | None = Field(
        None, description="Required when the manifest has no mediaType."
    )
    sequence: StrictInt | None = Field(
        None, ge=0, description="The build's position (CI build number, commit time)."
    )
    wait_seconds: StrictFloat | StrictInt | None = Field(
        None, ge=0, description="How long to wait for the lease; bounded by the server."
    )
    caller: StrictStr | None = Field(
        None, max_length=256, description="Who pushes (defaults to X-Pushgate-Caller)."
    )


class PushResponse(BaseModel):
    outcome: Answer
    repository: str
    tag: str
    digest: str
    previous_digest: str | None
    sequence: int | None
    token: int
    waited_ms: float
    current_digest: str
    current_sequence: int | None
    repaired: bool = Field(
        description="The tag had drifted from its record and was put back before this "
        "answer (unchanged, superseded). After a PutImage the tag is verified once the "
        "answer is sent; a repair then shows in history."
    )

    @classmethod
    def of(cls, result: PushResult) -> PushResponse:
        return cls(
            outcome=result.outcome,
            repository=result.ref.repository,
            tag=result.ref.tag,
            digest=result.digest,
            previous_digest=result.previous_digest,
            sequence=result.sequence,
            token=result.token,
            waited_ms=round(result.waited_ms, 3),
            current_digest=result.current_digest,
            current_sequence=result.current_sequence,
            repaired=result.repaired,
        )


class TagResponse(BaseModel):
    repository: str
    tag: str
    digest: str
    sequence: int | None
    token: int
    caller: str
    request_id: str
    updated_at: dt.datetime

    @classmethod
    def of(cls, record: TagRecord) -> TagResponse:
        return cls(
            repository=record.ref.repository,
            tag=record.ref.tag,
            digest=record.digest,
            sequence=record.sequence,
            token=record.token,
            caller=record.caller,
            request_id=record.request_id,
            updated_at=_iso(record.updated_at),
        )


class HistoryItemOut(BaseModel):
    outcome: str
    digest: str | None
    previous_digest: str | None
    observed_digest: str | None
    sequence: int | None
    token: int | None
    caller: str
    request_id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    error: str | None
    detail: str | None

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryItemOut:
        return cls(
            outcome=entry.outcome,
            digest=entry.digest,
            previous_digest=entry.previous_digest,
            observed_digest=entry.observed_digest,
            sequence=entry.sequence,
            token=entry.token,
            caller=entry.caller,
            request_id=entry.request_id,
            started_at=_iso(entry.started_at),
            finished_at=_iso(entry.finished_at),
            error=entry.error,
            detail=entry.detail,
        )


class HistoryResponse(BaseModel):
    repository: str
    tag: str
    items: list[HistoryItemOut]
    next_cursor: str | None


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: str
    message: str


class ReadyResponse(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]
