"""Values of the push use case: frozen dataclasses, validated on construction.

Validation mirrors ECR's API model, so a bad request is answered before any lease is
taken and before ECR would answer with a vaguer error.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from service.domain.errors import InvalidRequest
from service.domain.limits import (
    MAX_JSON_DEPTH,
    MAX_MANIFEST_BYTES,
    MAX_SEQUENCE,
    REPOSITORY_MAX,
    REPOSITORY_MIN,
    REPOSITORY_RE,
    TAG_RE,
    json_too_deep,
    utf8_size,
)

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")

MANIFEST_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    }
)


class Outcome(enum.StrEnum):
    """Every outcome a push answers or a history entry records; the first three are the
    answers of a successful push (``Answer``)."""

    PUSHED = "pushed"
    UNCHANGED = "unchanged"
    SUPERSEDED = "superseded"
    #: a dead holder's PutImage that landed, written to the record by the next holder
    ADOPTED = "adopted"
    #: a drifted tag put back to its record's image
    REPAIRED = "repaired"
    #: a drifted tag that could not be put back
    REPAIR_FAILED = "repair_failed"
    #: a push that ended in an error
    FAILED = "failed"


#: the outcome of a successful push's answer
Answer = Literal[Outcome.PUSHED, Outcome.UNCHANGED, Outcome.SUPERSEDED]


def manifest_digest(manifest: str) -> str:
    """``sha256:`` + hex sha256 of the manifest's exact UTF-8 bytes, as ECR computes it."""
    return "sha256:" + hashlib.sha256(manifest.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A repository and tag; ``key`` is the lease and record key ``repo:tag``."""

    repository: str
    tag: str

    def __post_init__(self) -> None:
        repo = self.repository
        if not REPOSITORY_MIN <= len(repo) <= REPOSITORY_MAX:
            raise InvalidRequest(
                "repository", f"must be {REPOSITORY_MIN} to {REPOSITORY_MAX} characters"
            )
        if not REPOSITORY_RE.fullmatch(repo):
            raise InvalidRequest("repository", "must be lowercase path components separated by '/'")
        if not TAG_RE.fullmatch(self.tag):
            raise InvalidRequest("tag", "must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127} (an OCI tag)")

    @property
    def key(self) -> str:
        return f"{self.repository}:{self.tag}"


def _effective_media_type(parsed: dict[str, Any], media_type: str | None) -> str:
    embedded = parsed.get("mediaType")
    if embedded is not None and not isinstance(embedded, str):
        raise InvalidRequest("manifest", "mediaType must be a string")
    if media_type is None and embedded is None:
        raise InvalidRequest("media_type", "is required when the manifest has no mediaType")
    if media_type is not None and embedded is not None and media_type != embedded:
        raise InvalidRequest("media_type", "differs from the manifest's mediaType")
    effective = media_type if media_type is not None else embedded
    if effective not in MANIFEST_MEDIA_TYPES:
        raise InvalidRequest("media_type", f"{effective!r} is not an image manifest or index type")
    return str(effective)


@dataclass(frozen=True, slots=True)
class PushRequest:
    """A validated push. ``digest`` and ``media_type`` are derived in ``create``."""

    ref: ImageRef
    manifest: str
    media_type: str
    digest: str
    sequence: int | None
    wait_seconds: float

    @classmethod
    def create(
        cls,
        *,
        repository: str,
        tag: str,
        manifest: str,
        media_type: str | None = None,
        sequence: int | None = None,
        wait_seconds: float | None = None,
        default_wait_seconds: float,
        max_wait_seconds: float,
    ) -> PushRequest:
        ref = ImageRef(repository, tag)
        if not manifest:
            raise InvalidRequest("manifest", "must not be empty")
        if utf8_size(manifest) > MAX_MANIFEST_BYTES:
            raise InvalidRequest("manifest", f"must be at most {MAX_MANIFEST_BYTES} bytes")
        try:
            digest = manifest_digest(manifest)
        except UnicodeEncodeError as exc:
            raise InvalidRequest("manifest", "is not encodable as UTF-8") from exc
        if json_too_deep(manifest):
            raise InvalidRequest("manifest", f"must nest at most {MAX_JSON_DEPTH} levels deep")
        try:
            parsed = json.loads(manifest)
        except (ValueError, RecursionError) as exc:
            raise InvalidRequest("manifest", "is not valid JSON") from exc
        if not isinstance(parsed, dict):
            raise InvalidRequest("manifest", "must be a JSON object")
        effective = _effective_media_type(parsed, media_type)
        if sequence is not None and (
            isinstance(sequence, bool) or not 0 <= sequence <= MAX_SEQUENCE
        ):
            raise InvalidRequest("sequence", f"must be an integer from 0 to {MAX_SEQUENCE}")
        wait = default_wait_seconds if wait_seconds is None else wait_seconds
        if not 0 <= wait <= max_wait_seconds:  # also refuses NaN
            raise InvalidRequest("wait_seconds", f"must be between 0 and {max_wait_seconds}")
        return cls(
            ref=ref,
            manifest=manifest,
            media_type=effective,
            digest=digest,
            sequence=sequence,
            wait_seconds=wait,
        )


@dataclass(frozen=True, slots=True)
class PushResult:
    outcome: Answer
    ref: ImageRef
    digest: str
    previous_digest: str | None
    sequence: int | None
    token: int
    waited_ms: float
    current_digest: str
    current_sequence: int | None
    repaired: bool = False


@dataclass(frozen=True, slots=True)
class TagRecord:
    """The per-tag source of truth, written only under the lease whose token it carries."""

    ref: ImageRef
    digest: str
    sequence: int | None
    token: int
    owner: str
    caller: str
    request_id: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class PendingPush:
    """An intent kept beside the tag's record: the ``put_image`` a holder may make. Written
    before the call and cleared by the holder's record write or release, so an intent
    still there names a holder that died (or failed) in between; the next holder asks ECR
    whether the put landed and adopts it, or drops the intent.

    ``token`` None: written by the holder's acquire, before its decision, with the
    request's own sequence (the next holder decides it again against the record, which
    nobody changed meanwhile: every record write clears the intent). A number: the grant
    that decided on this PutImage, with the sequence it decided. ``nonce`` tells a push
    its own intent from an earlier one of the same request (a retry)."""

    digest: str
    sequence: int | None
    token: int | None
    caller: str
    request_id: str
    nonce: str = ""


@dataclass(frozen=True, slots=True)
class Fence:
    """What a record write is conditioned on: the lease item's owner and token."""

    key: str
    owner: str
    token: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of a tag's history; every push attempt and every repair writes one."""

    ref: ImageRef
    outcome: Outcome
    digest: str | None
    previous_digest: str | None
    sequence: int | None
    token: int | None
    caller: str
    request_id: str
    started_at: float
    finished_at: float
    observed_digest: str | None = None
    error: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    items: list[HistoryEntry] = field(default_factory=list)
    next_cursor: str | None = None
