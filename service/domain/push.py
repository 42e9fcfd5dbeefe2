"""The push use case: one lease per repo:tag around ``put_image``.

Under the repo:tag lease:

1. take the tag's record from the lease's grant (the acquire's answer carries the lease
   item, which carries the record: no read), or read it; an intent left by an earlier
   holder that died between its PutImage and its record write is settled against ECR
   first (``settle``);
2. decide (``decision.decide``): ``unchanged`` and ``superseded`` call no PutImage;
3. ``put``: write the intent (fenced by the lease token) while the registry reserves a
   PutImage slot, call PutImage within the lease (``putimage``), then write the record
   carrying its history entry, fenced: a holder that lost its lease never overwrites a
   newer holder's record, and the write clears the intent;
4. answer; then append the history entries (the push's; after a record write also the
   one the previous record write carried, in case its holder died before appending it:
   appending is idempotent), verify the tag in ECR against the record (put back a
   drifted tag, written to history) and release the lease. ``defer`` runs this after the
   answer is sent, so no ECR call precedes an ``unchanged`` or ``superseded`` answer;
   without ``defer`` it runs before ``push`` returns, and ``repaired`` says whether the
   tag was put back.

Crash points: before the intent is written nothing changed; between the intent and the
record write the intent stays, and the next holder settles it against ECR; between the
record write and the history append the entry stays carried in the item, and the next
record write hands it on to be appended.

A lease lost on the way ends in ``LeaseLost`` carrying the digest ECR names. On failure
the lease is released, then the error is recorded and raised.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

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
    #: what the tag should name, verified against ECR after answering
    unverified: TagState
    #: history entries to append after answering
    entries: tuple[HistoryEntry, ...]


@dataclass(frozen=True, slots=True)
class _Failed:
    error: PushError
    previous_digest: str | None


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
        try:
            lease = await self._leases.acquire(request.ref.key, timeout=request.wait_seconds)
        except PushError as exc:
            await self.journal.failed(call, exc, token=None, previous_digest=None)
            raise
        try:  # the lease library logs lease_acquired / lease_released
            outcome = await self._under_lease(call, lease)
        except BaseException:
            await self._release(lease)
            raise
        if isinstance(outcome, _Failed):
            await self._release(lease)
            await self.journal.failed(
                call, outcome.error, token=lease.token, previous_digest=outcome.previous_digest
            )
            raise outcome.error
        result, unverified, entries = outcome.result, outcome.unverified, outcome.entries
        log.info(
            "push_finished",
            outcome=result.outcome.value,
            digest=result.digest,
            previous_digest=result.previous_digest,
            sequence=result.sequence,
            token=result.token,
        )

        async def after_answer() -> bool:
            try:
                for entry in entries:
                    await self.journal.append(entry)
                repaired = await self._upkeep.verify(call, lease, unverified)
            finally:
                await self._release(lease)
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

    async def _under_lease(self, call: PushCall, lease: Lease) -> _Answered | _Failed:
        """Read, settle, decide and carry the decision out; a ``PushError`` is returned
        with the digest the tag named before, for the failure's history entry."""
        previous: str | None = None
        try:
            carried = lease.tag_item(call.request.ref)  # the acquire's answer
            if carried is None:
                carried = await self._records.read(call.request.ref)
            record, pending = carried
            landed = None
            if pending is not None and pending.token < lease.token:
                landed = await self._upkeep.settle(call, lease, record, pending)
            tag = current(record, landed)
            previous = tag.digest if tag else None
            return await self._carry_out(call, lease, decide(record, landed, call.request), tag)
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
    ) -> _Answered:
        request = call.request
        previous = tag.digest if tag else None
        match decision:
            case Put(sequence=sequence):
                await self._write_intent(call, lease, sequence)
                putimage = PutImageCall(self._registry, self._policy, self._sleep, self._jitter)
                outcome = await putimage.outcome(request, lease)
                new = self._record(call, lease, Named(request.digest, sequence))
                entry = self.journal.entry(
                    call, outcome, token=lease.token, previous_digest=previous
                )
                carried = await self._records.put(new, fence=lease.fence(), history=entry)
                result = self._result(call, lease, outcome, new, previous)
                return _Answered(result, new, (*carried, entry))
            case Unchanged(raise_to=raised) if raised is not None:
                tag = self._record(call, lease, Named(request.digest, raised))
                await self._records.put(tag, fence=lease.fence())
                outcome = Outcome.UNCHANGED
            case Unchanged():
                outcome = Outcome.UNCHANGED
            case Superseded():
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

    async def _write_intent(self, call: PushCall, lease: Lease, sequence: int | None) -> None:
        """Write the intent while the registry reserves the PutImage slot, in parallel."""
        request = call.request
        intent = PendingPush(
            digest=request.digest,
            sequence=sequence,
            token=lease.token,
            caller=call.caller,
            request_id=call.request_id,
        )
        reserving = asyncio.ensure_future(self._reserve(request))
        try:
            await self._records.put_pending(request.ref, intent, fence=lease.fence())
        except BaseException:
            reserving.cancel()
            await asyncio.gather(reserving, return_exceptions=True)
            raise
        await reserving

    async def _reserve(self, request: PushRequest) -> None:
        try:
            await self._registry.reserve(request.ref, request.digest)
        except PushError as exc:  # put_image reserves again, inside its retries
            log.info("putimage_reserve_deferred", key=request.ref.key, error=exc.code)

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

    async def _release(self, lease: Lease) -> None:
        try:
            await lease.release()
        except PushError as exc:
            log.warning("lease_release_failed", key=lease.key, error=exc.code)
