"""Ports of the push use case. Adapters in ``service.adapters`` implement them over AWS;
tests implement them with in-memory fakes.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Protocol

from service.domain.models import (
    Fence,
    HistoryEntry,
    HistoryPage,
    ImageRef,
    PendingPush,
    PushRequest,
    PushResult,
    TagRecord,
)

#: Runs a push's after-answer work (verify, release) later; e.g. a response's background
#: tasks. The job never raises ``PushError``.
Defer = Callable[[Callable[[], Awaitable[None]]], None]


class PutStatus(enum.Enum):
    """What ECR said about a ``put_image`` that did not fail."""

    PUSHED = enum.auto()
    #: ImageAlreadyExists or ImageTagAlreadyExists: the tag holds *some* image already;
    #: the use case compares digests to tell "unchanged" from "tag_immutable".
    ALREADY_EXISTS = enum.auto()


class Lease(Protocol):
    """A held repo:tag lease; its item carries the tag's record and intent. ``renew``
    raises ``LeaseLost`` when it was taken."""

    @property
    def key(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def token(self) -> int: ...
    @property
    def waited_ms(self) -> float: ...
    @property
    def lost(self) -> bool: ...
    def remaining(self) -> float: ...
    def fence(self) -> Fence: ...
    def tag_item(self, ref: ImageRef) -> tuple[TagRecord | None, PendingPush | None] | None:
        """The tag's record and intent as the grant's own write left them, when the
        lease carries them (no holder but this one can change them meanwhile); None:
        read them from ``TagRecords``."""
        ...

    async def renew(self) -> None: ...
    async def commit(self, record: TagRecord, *, history: HistoryEntry) -> tuple[HistoryEntry, ...]:
        """Write ``record`` carrying ``history``, clear the intent and release the lease, in
        one write that lands only if this grant still holds the item (else ``LeaseLost``,
        nothing written). Returned is the entry the previous record write carried, as
        ``TagRecords.put`` returns it."""
        ...

    async def release(self, *, drop_intent: bool = False) -> None:
        """Release (idempotent); ``drop_intent`` clears the intent in the same write, for a
        holder that called no PutImage since its intent was written."""
        ...


class LeaseProvider(Protocol):
    async def acquire(
        self, key: str, *, timeout: float, intent: PendingPush | None = None
    ) -> Lease:
        """Wait up to ``timeout`` seconds; raise ``LeaseTimeout`` when it stays held.
        ``intent`` is written in the grant's own write where the item holds no intent (an
        earlier holder's stays, to be settled); ``tag_item`` shows which one is there."""
        ...


class Registry(Protocol):
    """ECR, reduced to what a push needs. Errors are ``PushError`` subclasses."""

    async def put_image(
        self,
        ref: ImageRef,
        *,
        manifest: str,
        media_type: str | None,
        digest: str,
        timeout: float,
    ) -> PutStatus: ...

    async def reserve(self, ref: ImageRef, digest: str) -> None:
        """Make room for a coming ``put_image`` of ``digest`` on ``ref`` (a PutImage budget
        reserves its slot); a no-op for a registry without one. ``put_image`` works without
        it; reserving early only takes the round trip off the push's path."""
        ...

    async def tag_digest(self, ref: ImageRef) -> str | None:
        """The digest the tag names now, or None when the tag does not exist."""
        ...

    async def manifest(self, repository: str, digest: str) -> tuple[str, str | None] | None:
        """The manifest text and media type of an image in the repository, if present."""
        ...

    async def ping(self) -> None: ...


class TagRecords(Protocol):
    async def get(self, ref: ImageRef) -> TagRecord | None: ...

    async def read(self, ref: ImageRef) -> tuple[TagRecord | None, PendingPush | None]:
        """The record and its pending intent, if any, in one consistent read."""
        ...

    async def put(
        self, record: TagRecord, *, fence: Fence, history: HistoryEntry | None = None
    ) -> tuple[HistoryEntry, ...]:
        """Write the record if ``fence`` still holds the lease; else raise ``LeaseLost``.
        The write clears any pending intent. ``history``, when given, is carried in the
        same write (it lands with its record, and stays until the next record write
        carrying one); returned is the entry the previous such write carried, which its
        holder may have died before appending. The caller appends both; appending an
        entry twice stores it once. Raise ``BackendUnavailable`` when the write failed
        for another reason than the fence, not ``retryable`` when retrying cannot fix it
        (a value the table refuses, a denied write)."""
        ...

    async def put_pending(self, ref: ImageRef, pending: PendingPush, *, fence: Fence) -> None:
        """Record the intent to ``put_image``, leaving the record itself as it is; fenced
        like ``put``."""
        ...

    async def clear_pending(self, ref: ImageRef, *, fence: Fence) -> None:
        """Drop the pending intent, leaving the record as it is; fenced like ``put``."""
        ...

    async def ping(self) -> None: ...


class History(Protocol):
    async def append(self, entry: HistoryEntry) -> None:
        """Store ``entry``; idempotent: an entry appended twice is stored once."""
        ...

    async def page(self, ref: ImageRef, *, limit: int, cursor: str | None) -> HistoryPage:
        """Entries newest first; ``cursor`` is the previous page's ``next_cursor``."""
        ...

    async def ping(self) -> None: ...


class Pusher(Protocol):
    """The push use case as the API calls it: ``PushService``, or the coalescing gate
    around it."""

    async def push(
        self,
        request: PushRequest,
        *,
        caller: str,
        request_id: str,
        defer: Defer | None = None,
        arrived_at: float | None = None,
    ) -> PushResult: ...
