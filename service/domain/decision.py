"""What a push does to its tag, decided from facts alone: no I/O, no clock.

``decide(record, pending, request)`` answers one of

- ``Unchanged``: the tag already names the request's digest (when the request carries a
  higher sequence the record takes it: a record write, no PutImage);
- ``Superseded``: a higher sequence already holds the tag; nothing is written;
- ``Put``: call PutImage, with the sequence the intent and the new record carry.

``pending`` is an earlier holder's intent that ECR showed landed: it counts as the
record. The use case gathers the facts (reads, the intent's settlement) in whatever order
its storage allows and carries the decision out; the decision never changes with that
order. The coalescing gate asks the same function whether a waiting push needs the lease
at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from service.domain.models import Fence, ImageRef, PendingPush, TagRecord


class TagState(Protocol):
    """What a tag names: a digest, and the highest sequence it has seen."""

    @property
    def digest(self) -> str: ...
    @property
    def sequence(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Named:
    """A ``TagState`` known only by its digest and sequence (e.g. from a push's answer)."""

    digest: str
    sequence: int | None


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The tag names the digest already; ``raise_to``: the request's higher sequence the
    record must take, or None when the record stays as it is."""

    raise_to: int | None


@dataclass(frozen=True, slots=True)
class Superseded:
    """A higher sequence holds the tag; the push moves nothing."""


@dataclass(frozen=True, slots=True)
class Put:
    """PutImage the request; the intent and the new record carry ``sequence``."""

    sequence: int | None


Decision = Unchanged | Superseded | Put


def current(record: TagState | None, pending: TagState | None) -> TagState | None:
    """What the tag names once a landed intent counts: the intent, else the record."""
    return pending if pending is not None else record


def decide(record: TagState | None, pending: TagState | None, request: TagState) -> Decision:
    """The push's decision (module doc); ``pending``: a landed intent, or None.
    ``request``: what the push asks for (a ``PushRequest``, or an intent decided again)."""
    tag = current(record, pending)
    wanted = request.sequence
    if tag is not None and tag.digest == request.digest:
        newer = wanted is not None and (tag.sequence is None or wanted > tag.sequence)
        return Unchanged(raise_to=wanted if newer else None)
    if (
        tag is not None
        and tag.sequence is not None
        and wanted is not None
        and wanted < tag.sequence
    ):
        return Superseded()
    # an unsequenced push keeps the tag's highest sequence, so an older sequenced build
    # still cannot move the tag back afterwards
    if wanted is None and tag is not None:
        return Put(sequence=tag.sequence)
    return Put(sequence=wanted)


def new_record(
    ref: ImageRef,
    state: TagState,
    *,
    fence: Fence,
    caller: str,
    request_id: str,
    now: float,
) -> TagRecord:
    """The record a holder (``fence``) writes for ``state``: after its PutImage, when it
    raises the sequence of an unchanged tag, or when it adopts a landed intent."""
    return TagRecord(
        ref=ref,
        digest=state.digest,
        sequence=state.sequence,
        token=fence.token,
        owner=fence.owner,
        caller=caller,
        request_id=request_id,
        updated_at=now,
    )


def adopted(ref: ImageRef, pending: PendingPush, *, fence: Fence, now: float) -> TagRecord:
    """The record of a landed intent: its digest, sequence and caller, under ``fence``."""
    return new_record(
        ref, pending, fence=fence, caller=pending.caller, request_id=pending.request_id, now=now
    )
