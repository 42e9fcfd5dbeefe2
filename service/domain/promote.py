"""Several tags per image: promotion of an image already in ECR, pushes under many tags,
pushes by digest alone, and the expected digest of a push.

Many tags: each tag goes through the push use case (``PushService.push``) under its own
lease, one tag at a time, in sorted order, and each tag's after-answer work (verify,
release) finishes before the next tag's lease is asked for. So a multi-tag push holds at
most one lease at any moment and never waits for a lease while holding one: no cycle of
holders each waiting for the next can form, which is what a deadlock needs. Two
multi-tag pushes over overlapping tags may interleave tag by tag; each tag is ordered on
its own by ``sequence`` (the lower build is ``superseded``), so every tag ends at the
higher build.

An error of one tag (``tag_immutable``, ``lease_timeout``...) is that tag's answer and
the next tag is tried. An error of the image itself (the repository is missing, ECR
refuses the manifest: ``layers_not_found``...) would repeat for every tag: the rest are
not tried. Raised at the first tag, it is the request's error; after a tag succeeded,
it is the answer of each tag left.

By digest: PutImage without a tag is content-addressed, so it takes no lease; it goes
through the account's PutImage budget, and history records it under the key
``repository:@sha256:<hex>`` (``DigestRef``), one entry per put.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from service.domain.errors import (
    DigestMismatch,
    InvalidRequest,
    LayersNotFound,
    ManifestRejected,
    PushError,
    RepositoryNotFound,
)
from service.domain.models import (
    DIGEST_RE,
    HistoryEntry,
    ImageRef,
    Outcome,
    PushRequest,
    PushResult,
)
from service.domain.ports import History, PutStatus, Registry

log = structlog.get_logger("pushgate.promote")

#: A push request is validated with this tag; the per-tag requests replace it.
ANY_TAG = "_"
MAX_TAGS = 100


class ImageNotFound(PushError, code="image_not_found"):
    def __init__(self, repository: str, digest: str) -> None:
        super().__init__(f"Repository {repository} holds no image {digest}.")
        self.repository = repository
        self.digest = digest

    def details(self) -> dict[str, Any]:
        return {"repository": self.repository, "digest": self.digest}


class ExpectedDigestMismatch(DigestMismatch):
    """The manifest's bytes hash to another digest than the caller expected."""

    def __init__(self, expected: str, actual: str) -> None:
        PushError.__init__(
            self,
            f"The manifest bytes hash to {actual}, not the expected {expected}: they were "
            "re-serialized, or are another image.",
        )
        self.registry_message = ""
        self.digest = expected
        self.actual = actual

    def details(self) -> dict[str, Any]:
        return {"expected_digest": self.digest, "digest": self.actual}


class LayersNotInTarget(LayersNotFound):
    """A promotion across repositories: the target lacks the image's layers."""

    def __init__(self, cause: LayersNotFound, *, source: str, target: str) -> None:
        super().__init__(cause.digests, registry_message=cause.registry_message)
        self.message = (
            f"Repository {target} lacks layers of the image in {source}: ECR does not copy "
            f"layers between repositories; push the image's blobs to {target} first."
        )
        self.args = (self.message,)


@dataclass(frozen=True, slots=True)
class DigestRef(ImageRef):
    """History's key of a push by digest: ``tag`` is ``@sha256:<hex>``."""

    def __post_init__(self) -> None:
        ImageRef(self.repository, ANY_TAG)  # the repository's rules
        if not (self.tag.startswith("@") and DIGEST_RE.fullmatch(self.tag[1:])):
            raise ValueError("a DigestRef's tag is '@' and a digest")


def history_ref(repository: str, tag: str) -> ImageRef:
    """The history key of ``tag``: ``@sha256:...`` names pushes by digest."""
    if tag.startswith("@") and DIGEST_RE.fullmatch(tag[1:]):
        return DigestRef(repository, tag)
    return ImageRef(repository, tag)


def check_expected(request: PushRequest, expected_digest: str | None) -> None:
    """Refuse, before any lease, bytes that hash to another digest than expected."""
    if expected_digest is not None and expected_digest != request.digest:
        raise ExpectedDigestMismatch(expected_digest, request.digest)


def tag_refs(repository: str, tags: Sequence[str]) -> list[ImageRef]:
    """The distinct tags, sorted, each validated (before any lease)."""
    if not tags:
        raise InvalidRequest("tags", "must name at least one tag")
    return [ImageRef(repository, tag) for tag in sorted(set(tags))]


class Overall(enum.StrEnum):
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TagOutcome:
    """One tag's answer: its push's result, or its error."""

    tag: str
    result: PushResult | None = None
    error: PushError | None = None


@dataclass(frozen=True, slots=True)
class TagsResult:
    repository: str
    digest: str
    media_type: str
    tags: tuple[TagOutcome, ...]
    source_repository: str | None = None

    @property
    def status(self) -> Overall:
        failed = sum(1 for item in self.tags if item.error is not None)
        if failed == 0:
            return Overall.OK
        return Overall.FAILED if failed == len(self.tags) else Overall.PARTIAL


@dataclass(frozen=True, slots=True)
class DigestPushResult:
    outcome: Outcome  # PUSHED or UNCHANGED
    repository: str
    digest: str
    media_type: str


class DigestWriter(Protocol):
    """PutImage without a tag, through the account's PutImage budget."""

    async def put_by_digest(
        self, repository: str, manifest: str, media_type: str, digest: str
    ) -> PutStatus: ...


#: Runs one tag's push to its end (lease released) and answers its result.
PushOne = Callable[[PushRequest], Awaitable[PushResult]]

_IMAGE_ERRORS = (RepositoryNotFound, ManifestRejected)


async def push_tags(
    request: PushRequest,
    refs: Sequence[ImageRef],
    push_one: PushOne,
    *,
    source_repository: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TagsResult:
    """Push ``request``'s manifest under each of ``refs`` (from ``tag_refs``), one at a
    time; see the module docstring for the order and for which errors stop the rest.
    ``request.wait_seconds`` bounds the waits of all the tags together: each tag waits
    for its lease what is left of it (a tag after the deadline makes one attempt)."""
    answers: list[TagOutcome] = []
    stopped: PushError | None = None
    deadline = clock() + request.wait_seconds
    for ref in refs:
        if stopped is not None:
            answers.append(TagOutcome(ref.tag, error=stopped))
            continue
        left = max(0.0, deadline - clock())
        try:
            result = await push_one(dataclasses.replace(request, ref=ref, wait_seconds=left))
        except _IMAGE_ERRORS as exc:
            error: PushError = exc
            if isinstance(exc, LayersNotFound) and source_repository is not None:
                error = LayersNotInTarget(
                    exc, source=source_repository, target=request.ref.repository
                )
            if not answers:
                raise error from exc
            stopped = error
            answers.append(TagOutcome(ref.tag, error=error))
        except PushError as exc:
            answers.append(TagOutcome(ref.tag, error=exc))
        else:
            answers.append(TagOutcome(ref.tag, result=result))
    return TagsResult(
        repository=request.ref.repository,
        digest=request.digest,
        media_type=request.media_type,
        tags=tuple(answers),
        source_repository=source_repository,
    )


async def read_image(registry: Registry, repository: str, digest: str) -> tuple[str, str | None]:
    """The exact manifest text and media type of an image by digest; ``ImageNotFound``
    when the repository holds none."""
    found = await registry.manifest(repository, digest)
    if found is None:
        raise ImageNotFound(repository, digest)
    return found


async def push_by_digest(
    request: PushRequest,
    images: DigestWriter,
    history: History,
    *,
    caller: str,
    request_id: str,
    clock: Callable[[], float],
) -> DigestPushResult:
    """Put the manifest without a tag (no lease: content-addressed) and record it."""
    ref = DigestRef(request.ref.repository, "@" + request.digest)
    started = clock()
    try:
        status = await images.put_by_digest(
            ref.repository, request.manifest, request.media_type, request.digest
        )
    except PushError as exc:
        entry = _entry(request, ref, Outcome.FAILED, caller, request_id, started, clock, exc)
        await _append(history, entry)
        raise
    outcome = Outcome.PUSHED if status is PutStatus.PUSHED else Outcome.UNCHANGED
    await _append(history, _entry(request, ref, outcome, caller, request_id, started, clock, None))
    return DigestPushResult(
        outcome=outcome,
        repository=ref.repository,
        digest=request.digest,
        media_type=request.media_type,
    )


def _entry(
    request: PushRequest,
    ref: DigestRef,
    outcome: Outcome,
    caller: str,
    request_id: str,
    started: float,
    clock: Callable[[], float],
    error: PushError | None,
) -> HistoryEntry:
    return HistoryEntry(
        ref=ref,
        outcome=outcome,
        digest=request.digest,
        previous_digest=None,
        sequence=request.sequence,
        token=None,
        caller=caller,
        request_id=request_id,
        started_at=started,
        finished_at=clock(),
        error=error.code if error else None,
        detail=error.message if error else None,
    )


async def _append(history: History, entry: HistoryEntry) -> None:
    """History never fails a push (as in ``PushService``)."""
    try:
        await history.append(entry)
    except PushError as exc:
        log.exception("history_append_failed", key=entry.ref.key, error=exc.code)
