"""JSON shapes of the API (pydantic). Field rules that need the domain's knowledge
(name patterns, manifest parsing, media types) are checked by ``PushRequest.create``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from service.domain import limits
from service.domain.models import Answer, HistoryEntry, Outcome, PushResult, TagRecord
from service.domain.promote import MAX_TAGS, DigestPushResult, TagOutcome, TagsResult

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"


def _iso(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


_EXAMPLE_MANIFEST = (
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    '"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
    '"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",'
    '"size":2},"layers":[]}'
)


def _printable(caller: str) -> str:
    if not limits.printable(caller):
        raise ValueError("must be printable characters (no control characters)")
    return caller


def _manifest_bytes(manifest: str) -> str:
    if limits.utf8_size(manifest) > limits.MAX_MANIFEST_BYTES:
        raise ValueError(f"must be at most {limits.MAX_MANIFEST_BYTES} bytes")
    return manifest


#: The bounds of ``service.domain.limits``, once for every body that takes the field.
RepositoryName = Annotated[
    StrictStr,
    Field(
        min_length=limits.REPOSITORY_MIN,
        max_length=limits.REPOSITORY_MAX,
        pattern=f"^{limits.REPOSITORY_RE.pattern}$",
    ),
]
TagName = Annotated[StrictStr, Field(max_length=limits.TAG_MAX)]
BuildSequence = Annotated[StrictInt, Field(ge=0, le=limits.MAX_SEQUENCE)]
WaitSeconds = Annotated[
    StrictFloat | StrictInt, Field(ge=0, le=limits.MAX_WAIT_SECONDS, allow_inf_nan=False)
]
Caller = Annotated[
    StrictStr,
    Field(min_length=1, max_length=limits.MAX_CALLER_CHARS),
    AfterValidator(_printable),
]


class PushBody(BaseModel):
    """Bounds from ``service.domain.limits``; the domain checks the rest before any lease."""

    model_config = ConfigDict(extra="forbid")

    repository: RepositoryName = Field(
        description="ECR repository name, 2-256 characters.", examples=["team/app"]
    )
    tag: TagName | None = Field(
        None,
        min_length=1,
        pattern=f"^{limits.TAG_RE.pattern}$",
        description="OCI tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. Without tag and tags the "
        "manifest is put by digest alone.",
        examples=["latest"],
    )
    tags: list[TagName] | None = Field(
        None,
        min_length=1,
        max_length=MAX_TAGS,
        description="Several tags, each under its own lease (instead of tag).",
    )
    expected_digest: StrictStr | None = Field(
        None,
        pattern=DIGEST_PATTERN,
        description="Refuse (422 digest_mismatch) bytes that hash to another digest.",
    )
    manifest: Annotated[StrictStr, AfterValidator(_manifest_bytes)] = Field(
        min_length=1,
        max_length=limits.MAX_MANIFEST_BYTES,
        description=f"The exact manifest text: a JSON object of at most "
        f"{limits.MAX_MANIFEST_BYTES} bytes (UTF-8), nested at most "
        f"{limits.MAX_JSON_DEPTH} levels deep.",
        examples=[_EXAMPLE_MANIFEST],
    )
    media_type: StrictStr | None = Field(
        None,
        max_length=limits.MAX_MEDIA_TYPE_CHARS,
        description="Required when the manifest has no mediaType.",
    )
    sequence: BuildSequence | None = Field(
        None, description="The build's position (CI build number, commit time), 0 to 2**63 - 1."
    )
    wait_seconds: WaitSeconds | None = Field(
        None,
        description="How long to wait for the lease; bounded by the server "
        "(PUSHGATE_MAX_WAIT_SECONDS).",
    )
    caller: Caller | None = Field(
        None, description="Who pushes, printable characters (defaults to X-Pushgate-Caller)."
    )

    @model_validator(mode="after")
    def _one_of_tag_and_tags(self) -> PushBody:
        if self.tag is not None and self.tags is not None:
            raise ValueError("give tag or tags, not both")
        return self


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
        "answer (promotions, which verify each tag before answering). A push is answered "
        "first and its tag verified after; a repair then shows in history."
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


#: answers every protected route can give before it runs (service.api.middleware)
GUARD_ERRORS = {
    401: "unauthorized: no bearer token or an unknown one (auth on)",
    403: "forbidden: the repository is outside the token's scopes",
    408: "request_timeout: the body did not arrive in time",
    413: "payload_too_large",
    422: "invalid_request (with field and reason)",
}


def error_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: the guard's answers and ``descriptions``, in the error
    shape."""
    merged = {**GUARD_ERRORS, **descriptions}
    return {
        status: {"model": ErrorResponse, "description": text}
        for status, text in sorted(merged.items())
    }


class ReadyResponse(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]


class PromoteBody(BaseModel):
    """Bounds from ``service.domain.limits``, as ``PushBody``'s."""

    model_config = ConfigDict(extra="forbid")

    repository: RepositoryName = Field(description="The repository whose tags move.")
    digest: StrictStr = Field(pattern=DIGEST_PATTERN, description="The image to promote.")
    tags: list[TagName] = Field(
        min_length=1, max_length=MAX_TAGS, description="The tags to move to the image."
    )
    sequence: BuildSequence | None = Field(
        None, description="The build's position (CI build number, commit time), 0 to 2**63 - 1."
    )
    source_repository: RepositoryName | None = Field(
        None,
        description="Read the image from this repository of the same registry (its "
        "layers must be in repository too).",
    )
    wait_seconds: WaitSeconds | None = Field(
        None, description="How long to wait for each tag's lease; bounded by the server."
    )
    caller: Caller | None = Field(
        None, description="Who pushes, printable characters (defaults to X-Pushgate-Caller)."
    )


class TagItem(BaseModel):
    """One tag's answer: an outcome, or ``failed`` with that tag's error code and message."""

    tag: str
    outcome: Answer | Literal[Outcome.FAILED]
    previous_digest: str | None = None
    current_digest: str | None = None
    current_sequence: int | None = None
    token: int | None = None
    waited_ms: float | None = None
    repaired: bool = False
    error: str | None = None
    message: str | None = None
    details: dict[str, Any] | None = None

    @classmethod
    def of(cls, item: TagOutcome) -> TagItem:
        if item.error is not None:
            return cls(
                tag=item.tag,
                outcome=Outcome.FAILED,
                error=item.error.code,
                message=item.error.message,
                details=item.error.details() or None,
            )
        result = item.result
        assert result is not None  # noqa: S101 - a TagOutcome has one of the two
        return cls(
            tag=item.tag,
            outcome=result.outcome,
            previous_digest=result.previous_digest,
            current_digest=result.current_digest,
            current_sequence=result.current_sequence,
            token=result.token,
            waited_ms=round(result.waited_ms, 3),
            repaired=result.repaired,
        )


class TagsResponse(BaseModel):
    """The answer of a promotion or a push under several tags: 200 once every tag was
    tried; ``status`` is ``ok`` (every tag succeeded), ``partial`` or ``failed``."""

    status: Literal["ok", "partial", "failed"]
    repository: str
    digest: str
    media_type: str
    sequence: int | None
    source_repository: str | None = None
    tags: list[TagItem]

    @classmethod
    def of(cls, result: TagsResult, sequence: int | None) -> TagsResponse:
        return cls(
            status=result.status.value,
            repository=result.repository,
            digest=result.digest,
            media_type=result.media_type,
            sequence=sequence,
            source_repository=result.source_repository,
            tags=[TagItem.of(item) for item in result.tags],
        )


class DigestPushResponse(BaseModel):
    """A push without a tag: the manifest put by digest alone."""

    outcome: Literal["pushed", "unchanged"]
    repository: str
    digest: str
    media_type: str

    @classmethod
    def of(cls, result: DigestPushResult) -> DigestPushResponse:
        return cls(
            outcome="pushed" if result.outcome.value == "pushed" else "unchanged",
            repository=result.repository,
            digest=result.digest,
            media_type=result.media_type,
        )
