"""The push use case: one lease per repo:tag around ``put_image``.

The repo:tag's lease item carries the tag's record and the intent of a holder that may
call PutImage (``ports.Lease``). A push:

1. acquires the lease, writing its intent (the request as asked) in the grant's own
   write where the item holds none, and takes the record from the grant's answer: one
   round trip. While it waits, the registry reserves a PutImage slot, unless the process
   expects no PutImage or expects the acquire to wait (``_Expectations``): then the slot
   is reserved after the decision;
2. an intent another holder left (it died or failed between its intent and its record)
   is settled first (``settle``): one written by an acquire is decided again against
   the record, and only one that would have called PutImage is checked against ECR; this
   push then writes its own intent after its decision, beside the slot reservation;
3. decides (``decision.decide``): ``unchanged`` and ``superseded`` are answered now, with
   no ECR call: one round trip;
4. ``put``: PutImage within the lease (``putimage``), then one write fenced by the grant
   (``Lease.commit``) stores the record carrying its history entry, clears the intent and
   releases the lease or hands it to a waiter of this process: the second round trip,
   then the answer;
5. after answering: append the history entries (the push's, and the one the previous
   record write carried, in case its holder died before appending it: appending is
   idempotent). An ``unchanged`` or ``superseded`` push then verifies the tag in ECR
   against the record (puts back a drifted tag, written to history) and releases the
   lease, clearing its own intent. ``defer`` runs this after the answer is sent; without
   it, it runs before ``push`` returns and ``repaired`` says whether the tag was put back.
   A ``pushed`` answer is not verified: PutImage itself just said what the tag names.

Crash points: before the acquire nothing changed. After it and before PutImage, the
intent stays; the next holder decides it again against the record (nobody changed the
record since: every record write clears the intent) and, if it would have called
PutImage, asks ECR whether it landed: adopted or dropped. Between PutImage and the commit
the same holds. Between the commit and the history append the entry stays carried in the
item and the next record write hands it on to be appended.

A lease lost on the way ends in ``LeaseLost`` carrying the digest ECR names. On failure
the lease is released (the intent stays: the PutImage may have landed), then the error
is recorded and raised.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from service.domain.decision import (
    Decision,
    Named,
    Put,
    Superseded,
    TagState,
    Unchanged,
    current,
    decide,
    new_record,
)
from service.domain.errors import LeaseLost, PushError
from service.domain.journal import Journal, PushCall
from service.domain.models import (
    Answer,
    HistoryEntry,
    Outcome,
    PendingPush,
    PushRequest,
    PushResult,
    TagRecord,
)
from service.domain.ports import Defer, History, Lease, LeaseProvider, Registry, TagRecords
from service.domain.putimage import PushPolicy, PutImageCall
from service.domain.settle import Upkeep

__all__ = ["Defer", "PushPolicy", "PushService"]

log = structlog.get_logger("pushgate.push")


@dataclass(frozen=True, slots=True)
class _Answered:
    result: PushResult
    #: what the tag should name, verified against ECR after answering; None: the push
    #: committed and released its lease already (PutImage said what the tag names)
    unverified: TagState | None
    #: history entries to append after answering
    entries: tuple[HistoryEntry, ...]


@dataclass(frozen=True, slots=True)
class _Failed:
    error: PushError
    previous_digest: str | None


#: a push that waited this long for its lease met another replica's holder on its tag
CONTENDED_MS = 50.0
#: and for this long after, pushes of that tag reserve their slot after the decision
CONTENDED_SECONDS = 10.0


class _Expectations:
    """What this process last saw of each tag (a bounded memory): a push reserves its
    PutImage slot while it acquires the lease only when it expects to put, when no other
    push of this process holds or awaits the tag's lease, and when the tag's lease was not
    lately held elsewhere: a slot reserved before a wait goes stale in it, and would only
    crowd the account's budget."""

    def __init__(self, size: int = 4096) -> None:
        self._seen: OrderedDict[str, Named] = OrderedDict()
        self._contended: OrderedDict[str, float] = OrderedDict()
        self._active: Counter[str] = Counter()
        self._size = size

    def start(self, request: PushRequest, now: float) -> _Active:
        """A push of ``request`` begins; its handle says whether to reserve a slot now."""
        key = request.ref.key
        busy = self._active[key] > 0 or now - self._contended.get(key, -math.inf) < (
            CONTENDED_SECONDS
        )
        self._active[key] += 1
        early = not busy and isinstance(decide(self._seen.get(key), None, request), Put)
        return _Active(self, key, early)

    def saw(self, key: str, tag: TagState | None) -> None:
        if tag is not None:
            self._remember(self._seen, key, Named(tag.digest, tag.sequence))

    def waited(self, key: str, waited_ms: float, now: float) -> None:
        if waited_ms > CONTENDED_MS:
            self._remember(self._contended, key, now)

    def _remember(self, memory: OrderedDict[str, Any], key: str, value: Any) -> None:
        memory[key] = value
        memory.move_to_end(key)
        while len(memory) > self._size:
            memory.popitem(last=False)

    def _done(self, key: str) -> None:
        self._active[key] -= 1
        if self._active[key] <= 0:
            del self._active[key]


@dataclass(slots=True)
class _Active:
    """One push holding or awaiting its tag's lease, until it lets the lease go."""

    expectations: _Expectations
    key: str
    early: bool
    finished: bool = False

    def done(self) -> None:
        """The push let its lease go (its commit or release): once, whichever comes first."""
        if not self.finished:
            self.finished = True
            self.expectations._done(self.key)  # noqa: SLF001 - its own ledger


class PushService:
    """Runs pushes over the four ports; knows nothing of HTTP or AWS."""

    def __init__(
        self,
        *,
        registry: Registry,
        leases: LeaseProvider,
        records: TagRecords,
        history: History,
        policy: PushPolicy,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        jitter: Callable[[], float] = random.random,
        on_repaired: Callable[[], None] | None = None,
    ) -> None:
        """``on_repaired`` hears each drifted tag put back (a metric counts them)."""
        self._registry = registry
        self._leases = leases
        self._records = records
        self._policy = policy
        self._sleep = sleep
        self._jitter = jitter
        self.clock = clock
        self.journal = Journal(history, clock)
        self._on_repaired = on_repaired
        self._expect = _Expectations()

    async def push(
        self,
        request: PushRequest,
        *,
        caller: str,
        request_id: str,
        defer: Defer | None = None,
        arrived_at: float | None = None,
    ) -> PushResult:
        """``arrived_at``: when the request arrived, if it waited before this call (the
        coalescing gate); history's ``started_at``. Default: now."""
        started = self.clock() if arrived_at is None else arrived_at
        call = PushCall(request, caller, request_id, started)
        key = request.ref.key
        asked = _asked(call)
        active = self._expect.start(request, self.clock())
        reserving = self._reserve(request) if active.early else None
        try:
            lease = await self._leases.acquire(key, timeout=request.wait_seconds, intent=asked)
        except BaseException as exc:
            active.done()
            _drop(reserving)
            if isinstance(exc, PushError):
                await self.journal.failed(call, exc, token=None, previous_digest=None)
            raise
        self._expect.waited(key, lease.waited_ms, self.clock())
        try:  # the lease library logs lease_acquired / lease_released
            outcome = await self._under_lease(call, lease, asked, reserving)
        except BaseException:
            await self._release(lease, active)
            raise
        if isinstance(outcome, _Failed):
            await self._release(lease, active)
            await self.journal.failed(
                call, outcome.error, token=lease.token, previous_digest=outcome.previous_digest
            )
            raise outcome.error
        result, unverified, entries = outcome.result, outcome.unverified, outcome.entries
        if unverified is None:  # committed: the lease is let go already
            active.done()
        log.info(
            "push_finished",
            outcome=result.outcome.value,
            digest=result.digest,
            previous_digest=result.previous_digest,
            sequence=result.sequence,
            token=result.token,
        )

        async def after_answer() -> bool:
            repaired = False
            try:
                for entry in entries:
                    await self.journal.append(entry)
                if unverified is not None:
                    repaired = await self._upkeep.verify(call, lease, unverified)
            finally:
                await self._release(lease, active, drop_intent=True)
            if repaired and self._on_repaired is not None:
                self._on_repaired()
            return repaired

        if defer is None:  # all of it before returning: the result says whether it repaired
            return replace(result, repaired=await after_answer())

        async def deferred() -> None:
            await after_answer()

        defer(deferred)
        return result

    @property
    def _upkeep(self) -> Upkeep:
        return Upkeep(self._registry, self._records, self.journal, self._policy, self.clock)

    async def _under_lease(
        self,
        call: PushCall,
        lease: Lease,
        asked: PendingPush,
        reserving: asyncio.Future[None] | None,
    ) -> _Answered | _Failed:
        """Settle, decide and carry the decision out; a ``PushError`` is returned with
        the digest the tag named before, for the failure's history entry."""
        previous: str | None = None
        try:
            carried = lease.tag_item(call.request.ref)  # the acquire's answer
            if carried is None:
                carried = await self._records.read(call.request.ref)
            record, pending = carried
            landed = None
            mine = pending == asked  # else another holder's intent occupies the item
            if pending is not None and not mine:
                landed = await self._upkeep.settle(call, lease, record, pending)
            tag = current(record, landed)
            previous = tag.digest if tag else None
            self._expect.saw(lease.key, tag)
            decision = decide(record, landed, call.request)
            return await self._carry_out(call, lease, decision, tag, reserving, durable=mine)
        except LeaseLost as exc:
            return _Failed(await self._lease_lost(call.request, exc), previous)
        except PushError as exc:
            return _Failed(exc, previous)

    async def _carry_out(
        self,
        call: PushCall,
        lease: Lease,
        decision: Decision,
        tag: TagState | None,
        reserving: asyncio.Future[None] | None,
        *,
        durable: bool,
    ) -> _Answered:
        """``durable``: this push's intent is in the item already (its acquire wrote it)."""
        request = call.request
        previous = tag.digest if tag else None
        match decision:
            case Put(sequence=sequence):
                if reserving is None:
                    reserving = self._reserve(request)
                if durable:
                    await reserving
                else:
                    await self._write_intent(call, lease, sequence, reserving)
                putimage = PutImageCall(self._registry, self._policy, self._sleep, self._jitter)
                outcome = await putimage.outcome(request, lease)
                new = self._record(call, lease, Named(request.digest, sequence))
                entry = self.journal.entry(
                    call, outcome, token=lease.token, previous_digest=previous
                )
                carried = await lease.commit(new, history=entry)
                self._expect.saw(lease.key, new)
                result = self._result(call, lease, outcome, new, previous)
                return _Answered(result, None, (*carried, entry))
            case Unchanged(raise_to=raised) if raised is not None:
                _drop(reserving)
                tag = self._record(call, lease, Named(request.digest, raised))
                await self._records.put(tag, fence=lease.fence())
                self._expect.saw(lease.key, tag)
                outcome = Outcome.UNCHANGED
            case Unchanged():
                _drop(reserving)
                outcome = Outcome.UNCHANGED
            case Superseded():
                _drop(reserving)
                outcome = Outcome.SUPERSEDED
        assert tag is not None  # noqa: S101 - decide answers put for an unknown tag
        entry = self.journal.entry(call, outcome, token=lease.token, previous_digest=previous)
        result = self._result(call, lease, outcome, tag, previous)
        return _Answered(result, tag, (entry,))

    def _record(self, call: PushCall, lease: Lease, state: TagState) -> TagRecord:
        return new_record(
            call.request.ref,
            state,
            fence=lease.fence(),
            caller=call.caller,
            request_id=call.request_id,
            now=self.clock(),
        )

    @staticmethod
    def _result(
        call: PushCall,
        lease: Lease,
        outcome: Answer,
        tag: TagState,
        previous: str | None,
    ) -> PushResult:
        request = call.request
        return PushResult(
            outcome=outcome,
            ref=request.ref,
            digest=request.digest,
            previous_digest=previous,
            sequence=request.sequence,
            token=lease.token,
            waited_ms=lease.waited_ms,
            current_digest=tag.digest,
            current_sequence=tag.sequence,
        )

    async def _write_intent(
        self, call: PushCall, lease: Lease, sequence: int | None, reserving: asyncio.Future[None]
    ) -> None:
        """Write the intent (the item held another's) while the slot is reserved."""
        request = call.request
        intent = PendingPush(
            digest=request.digest,
            sequence=sequence,
            token=lease.token,
            caller=call.caller,
            request_id=call.request_id,
        )
        try:
            await self._records.put_pending(request.ref, intent, fence=lease.fence())
        except BaseException:
            reserving.cancel()
            await asyncio.gather(reserving, return_exceptions=True)
            raise
        await reserving

    def _reserve(self, request: PushRequest) -> asyncio.Future[None]:
        """Reserve the PutImage slot of ``request`` in the background."""

        async def reserve() -> None:
            try:
                await self._registry.reserve(request.ref, request.digest)
            except PushError as exc:  # put_image reserves again, inside its retries
                log.info("putimage_reserve_deferred", key=request.ref.key, error=exc.code)

        return asyncio.ensure_future(reserve())

    async def _lease_lost(self, request: PushRequest, exc: LeaseLost) -> LeaseLost:
        """The lost lease, with the digest ECR names now, so the caller knows the tag."""
        try:
            observed = await self._registry.tag_digest(request.ref)
        except PushError as failure:
            log.warning("readback_failed", key=request.ref.key, error=failure.code)
            observed = None
        log.warning(
            "lease_lost_during_push",
            key=request.ref.key,
            digest=request.digest,
            observed_digest=observed,
        )
        lost = LeaseLost(
            request.ref.key,
            observed_digest=observed,
            digest=request.digest,
            retry_after=self._policy.lease_retry_after_seconds,
        )
        lost.__cause__ = exc
        return lost

    async def _release(self, lease: Lease, active: _Active, *, drop_intent: bool = False) -> None:
        """Release (a no-op after a commit); ``drop_intent`` only for a push that called
        no PutImage: a failed one's intent stays, its put may have landed."""
        try:
            await lease.release(drop_intent=drop_intent)
        except PushError as exc:
            log.warning("lease_release_failed", key=lease.key, error=exc.code)
        finally:
            active.done()


def _asked(call: PushCall) -> PendingPush:
    """The intent a push's acquire writes: the request as asked, before any decision."""
    request = call.request
    return PendingPush(
        digest=request.digest,
        sequence=request.sequence,
        token=None,
        caller=call.caller,
        request_id=call.request_id,
        nonce=secrets.token_hex(8),
    )


def _drop(reserving: asyncio.Future[None] | None) -> None:
    """Cancel a slot reservation no PutImage will use (if its write has not left yet, the
    slot stays free), and retrieve its outcome so nothing is reported unretrieved."""
    if reserving is None:
        return
    reserving.cancel()
    reserving.add_done_callback(lambda done: done.cancelled() or done.exception())
