"""Answers of the API as frozen dataclasses (the client does not need pydantic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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
