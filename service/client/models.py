"""Answers of the API as frozen dataclasses (the client does not need pydantic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from service import codes
from service.client.errors import error_class

Outcome = Literal["pushed", "unchanged", "superseded"]


@dataclass(frozen=True)
class PushResult:
    """The answer to a push. ``superseded`` and ``unchanged`` are results, not errors."""

    outcome: Outcome
    repository: str
    tag: str
    digest: str
    previous_digest: str | None
    sequence: int | None
    token: int
    waited_ms: float
    current_digest: str | None = None
    current_sequence: int | None = None
    repaired: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PushResult:
        return cls(
            outcome=data["outcome"],
            repository=data["repository"],
            tag=data["tag"],
            digest=data["digest"],
            previous_digest=data.get("previous_digest"),
            sequence=data.get("sequence"),
            token=int(data["token"]),
            waited_ms=float(data.get("waited_ms", 0.0)),
            current_digest=data.get("current_digest"),
            current_sequence=data.get("current_sequence"),
            repaired=bool(data.get("repaired", False)),
        )


@dataclass(frozen=True)
class TagStatus:
    """The tag's record: what it names now, and who moved it last."""

    repository: str
    tag: str
    digest: str
    sequence: int | None
    token: int
    caller: str
    request_id: str
    updated_at: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TagStatus:
        return cls(
            repository=data["repository"],
            tag=data["tag"],
            digest=data["digest"],
            sequence=data.get("sequence"),
            token=int(data["token"]),
            caller=str(data.get("caller", "")),
            request_id=str(data.get("request_id", "")),
            updated_at=str(data.get("updated_at", "")),
        )


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded push of a tag."""

    outcome: str
    digest: str | None
    previous_digest: str | None
    sequence: int | None
    token: int | None
    caller: str
    request_id: str
    started_at: str
    finished_at: str
    error: str | None = None
    detail: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HistoryEntry:
        return cls(
            outcome=data["outcome"],
            digest=data.get("digest"),
            previous_digest=data.get("previous_digest"),
            sequence=data.get("sequence"),
            token=data.get("token"),
            caller=str(data.get("caller", "")),
            request_id=str(data.get("request_id", "")),
            started_at=str(data.get("started_at", "")),
            finished_at=str(data.get("finished_at", "")),
            error=data.get("error"),
            detail=data.get("detail"),
        )


@dataclass(frozen=True)
class HistoryPage:
    repository: str
    tag: str
    items: list[HistoryEntry]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HistoryPage:
        return cls(
            repository=data["repository"],
            tag=data["tag"],
            items=[HistoryEntry.from_json(item) for item in data.get("items", [])],
            next_cursor=data.get("next_cursor"),
        )


TagOutcome = Literal["pushed", "unchanged", "superseded", "failed"]


@dataclass(frozen=True)
class TagAnswer:
    """One tag of a promotion or multi-tag push: its outcome, or ``failed`` with the
    tag's error code (``error``) and ``message``."""

    tag: str
    outcome: TagOutcome
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
    def from_json(cls, data: dict[str, Any]) -> TagAnswer:
        return cls(
            tag=data["tag"],
            outcome=data["outcome"],
            previous_digest=data.get("previous_digest"),
            current_digest=data.get("current_digest"),
            current_sequence=data.get("current_sequence"),
            token=data.get("token"),
            waited_ms=data.get("waited_ms"),
            repaired=bool(data.get("repaired", False)),
            error=data.get("error"),
            message=data.get("message"),
            details=data.get("details"),
        )


@dataclass(frozen=True)
class TagsResult:
    """The answer of a promotion or a push under several tags. ``status``: ``ok`` when
    every tag succeeded, else ``partial`` or ``failed``; ``raise_for_status`` raises the
    first failed tag's error."""

    status: Literal["ok", "partial", "failed"]
    repository: str
    digest: str
    media_type: str
    sequence: int | None
    tags: list[TagAnswer]
    source_repository: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> list[TagAnswer]:
        return [item for item in self.tags if item.outcome == "failed"]

    def raise_for_status(self) -> None:
        for item in self.failed:
            code = item.error or "internal_error"
            status = codes.lookup(code, 500).status or 500
            message = f"{self.repository}:{item.tag}: {item.message or code}"
            raise error_class(status, code)(status, code, message, item.details or {}, None)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TagsResult:
        return cls(
            status=data["status"],
            repository=data["repository"],
            digest=data["digest"],
            media_type=str(data.get("media_type", "")),
            sequence=data.get("sequence"),
            tags=[TagAnswer.from_json(item) for item in data["tags"]],
            source_repository=data.get("source_repository"),
        )


@dataclass(frozen=True)
class DigestPushResult:
    """The answer to a push without a tag: the manifest put by digest alone."""

    outcome: Literal["pushed", "unchanged"]
    repository: str
    digest: str
    media_type: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DigestPushResult:
        return cls(
            outcome=data["outcome"],
            repository=data["repository"],
            digest=data["digest"],
            media_type=str(data.get("media_type", "")),
        )
