"""The push use case: one lease per repo:tag around ``put_image``.

Steps, all under the repo:tag lease:

1. read the per-tag record (the source of truth: digest, sequence, token); an intent
   left in it by an earlier holder that died between ``put_image`` and its record write is
   settled first: when ECR names the pending digest the record adopts it, else the
   intent is dropped;
2. the record already names this digest: ``unchanged``, ECR's PutImage quota is not spent;
   a lower ``sequence`` than the record's: ``superseded``, ECR is not called;
3. otherwise write the intent (pending digest and sequence) into the record, fenced by the
   lease token, while the registry reserves a PutImage slot (two independent round trips
   at once); call ``put_image`` with a timeout well inside the remaining lease, renewing
   first only when the lease is too short for a whole call (the heartbeat normally keeps
   it long); throttling and faults are retried here with jittered backoff (the ECR client
   itself does not retry, see ``service.adapters.ecr``);
4. write the record and its history entry in one transaction, conditional on the lease
   item still naming this holder, unexpired, and on the record holding no newer token:
   that check is what confirms the lease outlived the ECR call, and a holder that lost
   its lease can never overwrite a newer holder's record; the write clears the intent;
5. answer; then, still under the lease, verify the tag in ECR against the record (a tag
   that drifted, a stale holder's delayed write landing late, is put back, logged and
   written to history) and release the lease. ``defer`` lets the caller run this after
   its answer is sent (the HTTP route hands it to the response's background tasks);
   without it, ``push`` runs it before returning. Pushes that call no PutImage
   (``unchanged``, ``superseded``) verify before answering, so ``repaired`` is reported.

A lease lost anywhere in 3-4 ends in ``LeaseLost`` carrying the digest read back from
ECR, so the caller knows what the tag really names. On failure the lease is released
before the error is raised.

Per push that calls PutImage, the answer waits for four DynamoDB round trips (acquire,
read, intent with the slot reservation beside it, record) and one ECR call.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from service.domain.errors import (
    BackendUnavailable,
    LeaseLost,
    PushError,
    RegistryError,
    RegistryThrottled,
    RegistryTimeout,
    TagImmutable,
)
from service.domain.models import (
    HistoryEntry,
    Outcome,
    PendingPush,
    PushRequest,
    PushResult,
    TagRecord,
)
from service.domain.ports import History, Lease, LeaseProvider, PutStatus, Registry, TagRecords

log = structlog.get_logger("pushgate.push")

#: Runs a push's after-answer work (verify, release) later; e.g. a response's background
#: tasks. The job never raises ``PushError``.
Defer = Callable[[Callable[[], Awaitable[None]]], None]


@dataclass(frozen=True, slots=True)
class PushPolicy:
    """Timing of one push. Every ECR call must end ``lease_margin_seconds`` before the lease."""

    ecr_timeout_seconds: float = 10.0
    lease_margin_seconds: float = 2.0
    min_call_seconds: float = 0.2
    attempts: int = 4
    backoff_base_seconds: float = 0.2
    backoff_max_seconds: float = 5.0
    throttle_retry_after_seconds: float = 2.0
    lease_retry_after_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if self.ecr_timeout_seconds <= 0 or self.min_call_seconds <= 0:
            raise ValueError("timeouts must be positive")
        if self.lease_margin_seconds < 0:
            raise ValueError("lease_margin_seconds must be >= 0")


@dataclass(slots=True)
class _Attempt:
    request: PushRequest
    caller: str
    request_id: str
    started_at: float
    previous_digest: str | None = None
    token: int | None = None


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
    ) -> None:
        self._registry = registry
        self._leases = leases
        self._records = records
        self._history = history
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter

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
        started = self._clock() if arrived_at is None else arrived_at
        attempt = _Attempt(request, caller, request_id, started, token=None)
        try:
            lease = await self._leases.acquire(request.ref.key, timeout=request.wait_seconds)
        except PushError as exc:
            await self._append_failure(attempt, exc)
            raise
        attempt.token = lease.token  # the lease library logs lease_acquired / lease_released
        try:
            result, unverified = await self._under_lease(attempt, lease)
        except PushError as exc:
            await self._release(lease)
            await self._append_failure(attempt, exc)
            raise
        except BaseException:
            await self._release(lease)
            raise
        log.info(
            "push_finished",
            outcome=result.outcome.value,
            digest=result.digest,
            previous_digest=result.previous_digest,
            sequence=result.sequence,
            token=result.token,
            repaired=result.repaired,
        )

        async def after_answer() -> None:
            try:
                if unverified is not None:
                    await self._verify(attempt, lease, unverified)
            finally:
                await self._release(lease)

        if defer is None:
            await after_answer()
        else:
            defer(after_answer)
        return result

    async def _under_lease(
        self, attempt: _Attempt, lease: Lease
    ) -> tuple[PushResult, TagRecord | None]:
        """The result, and the record still to verify after answering (None: verified)."""
        request = attempt.request
        try:
            record, pending = await self._records.read(request.ref)
            if pending is not None and pending.token < lease.token:
                record = await self._resolve(attempt, lease, record, pending)
            attempt.previous_digest = record.digest if record else None
            if record is not None and record.digest == request.digest:
                return await self._unchanged_by_record(attempt, lease, record), None
            if _superseded(request, record):
                assert record is not None  # noqa: S101 - _superseded checked it
                return await self._superseded(attempt, lease, record), None
            sequence = request.sequence
            if sequence is None and record is not None:
                sequence = record.sequence
            intent = PendingPush(
                digest=request.digest,
                sequence=sequence,
                token=lease.token,
                caller=attempt.caller,
                request_id=attempt.request_id,
            )
            await self._write_intent(request, intent, lease)
            status, may_have_landed = await self._put_with_retries(request, lease)
            outcome = await self._outcome_of(request, status, may_have_landed=may_have_landed)
            new = self._record(attempt, lease, sequence)
            await self._record_with_entry(new, lease, self._entry(attempt, lease, outcome))
            return self._result(attempt, lease, outcome, new, repaired=False), new
        except LeaseLost as exc:
            observed = await self._readback(request)
            log.warning(
                "lease_lost_during_push",
                key=request.ref.key,
                digest=request.digest,
                observed_digest=observed,
            )
            raise LeaseLost(
                request.ref.key,
                observed_digest=observed,
                digest=request.digest,
                retry_after=self._policy.lease_retry_after_seconds,
            ) from exc

    async def _resolve(
        self, attempt: _Attempt, lease: Lease, record: TagRecord | None, pending: PendingPush
    ) -> TagRecord | None:
        """Settle an intent left by an earlier holder that died between ``put_image`` and
        its record write: ECR is asked whether that put landed. It did: the record adopts
        the pending digest and sequence. It did not: the intent is dropped."""
        ref = attempt.request.ref
        observed = await self._registry.tag_digest(ref)
        if observed != pending.digest:
            log.info(
                "pending_push_dropped",
                key=ref.key,
                pending_digest=pending.digest,
                pending_token=pending.token,
                observed=observed,
            )
            await self._records.clear_pending(ref, fence=lease.fence())
            return record
        adopted = TagRecord(
            ref=ref,
            digest=pending.digest,
            sequence=pending.sequence,
            token=lease.token,
            owner=lease.owner,
            caller=pending.caller,
            request_id=pending.request_id,
            updated_at=self._clock(),
        )
        await self._records.put(adopted, fence=lease.fence())
        log.warning(
            "pending_push_adopted",
            key=ref.key,
            digest=pending.digest,
            sequence=pending.sequence,
            pending_token=pending.token,
            previous_digest=record.digest if record else None,
        )
        await self._append(
            HistoryEntry(
                ref=ref,
                outcome="adopted",
                digest=pending.digest,
                previous_digest=record.digest if record else None,
                sequence=pending.sequence,
                token=lease.token,
                caller=pending.caller,
                request_id=pending.request_id,
                started_at=attempt.started_at,
                finished_at=self._clock(),
                observed_digest=observed,
                detail=f"adopted: the put_image of token {pending.token} landed in ECR "
                "but its holder never wrote the record",
            )
        )
        return adopted

    async def _unchanged_by_record(
        self, attempt: _Attempt, lease: Lease, record: TagRecord
    ) -> PushResult:
        request = attempt.request
        current = record
        if request.sequence is not None and (
            record.sequence is None or request.sequence > record.sequence
        ):
            current = self._record(attempt, lease, request.sequence)
            await self._records.put(current, fence=lease.fence())
        repaired = await self._verify(attempt, lease, current)
        return await self._finish(attempt, lease, Outcome.UNCHANGED, current, repaired=repaired)

    async def _superseded(self, attempt: _Attempt, lease: Lease, record: TagRecord) -> PushResult:
        repaired = await self._verify(attempt, lease, record)
        return await self._finish(attempt, lease, Outcome.SUPERSEDED, record, repaired=repaired)

    def _record(self, attempt: _Attempt, lease: Lease, sequence: int | None) -> TagRecord:
        return TagRecord(
            ref=attempt.request.ref,
            digest=attempt.request.digest,
            sequence=sequence,
            token=lease.token,
            owner=lease.owner,
            caller=attempt.caller,
            request_id=attempt.request_id,
            updated_at=self._clock(),
        )

    def _result(
        self,
        attempt: _Attempt,
        lease: Lease,
        outcome: Outcome,
        current: TagRecord,
        *,
        repaired: bool,
    ) -> PushResult:
        request = attempt.request
        return PushResult(
            outcome=outcome,
            ref=request.ref,
            digest=request.digest,
            previous_digest=attempt.previous_digest,
            sequence=request.sequence,
            token=lease.token,
            waited_ms=lease.waited_ms,
            current_digest=current.digest,
            current_sequence=current.sequence,
            repaired=repaired,
        )

    def _entry(self, attempt: _Attempt, lease: Lease, outcome: Outcome) -> HistoryEntry:
        request = attempt.request
        return HistoryEntry(
            ref=request.ref,
            outcome=outcome.value,
            digest=request.digest,
            previous_digest=attempt.previous_digest,
            sequence=request.sequence,
            token=lease.token,
            caller=attempt.caller,
            request_id=attempt.request_id,
            started_at=attempt.started_at,
            finished_at=self._clock(),
        )

    async def _finish(
        self,
        attempt: _Attempt,
        lease: Lease,
        outcome: Outcome,
        current: TagRecord,
        *,
        repaired: bool,
    ) -> PushResult:
        await self._append(self._entry(attempt, lease, outcome))
        return self._result(attempt, lease, outcome, current, repaired=repaired)

    async def _record_with_entry(self, new: TagRecord, lease: Lease, entry: HistoryEntry) -> None:
        """Write the record and its history entry in one fenced write; the fence confirms
        the lease outlived the ECR call. When that write fails for another reason (the
        history table), the record is written alone and the entry appended best effort:
        ECR already holds the image, and history never fails a push."""
        try:
            await self._records.put(new, fence=lease.fence(), history=entry)
        except BackendUnavailable as exc:
            log.warning("record_with_history_failed", key=new.ref.key, message=exc.message)
            await self._records.put(new, fence=lease.fence())
            await self._append(entry)

    async def _write_intent(self, request: PushRequest, intent: PendingPush, lease: Lease) -> None:
        """Write the intent while the registry reserves the PutImage slot, in parallel."""
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

    async def _outcome_of(
        self, request: PushRequest, status: PutStatus, *, may_have_landed: bool
    ) -> Outcome:
        """``may_have_landed``: an earlier attempt of this push failed after ECR may have
        applied it."""
        if status is PutStatus.PUSHED:
            return Outcome.PUSHED
        # ImageAlreadyExists / ImageTagAlreadyExists: which one ECR sends for an immutable
        # tag is uncertain (shared/ECR.md), so both are settled by comparing digests.
        existing = await self._registry.tag_digest(request.ref)
        if existing != request.digest:
            raise TagImmutable(request.ref.repository, request.ref.tag, existing_digest=existing)
        # "already exists" may be this push's own earlier attempt, whose answer was lost
        # (shared/ECR.md): then this push moved the tag. (If the tag already named it
        # before this push and the failed attempt never landed, this says pushed where
        # unchanged was true: both end with the tag right.)
        return Outcome.PUSHED if may_have_landed else Outcome.UNCHANGED

    async def _call_budget(self, lease: Lease) -> float:
        """A timeout for the next ECR call that ends well inside the lease. The lease is
        renewed first only when what is left would cut a whole call short: the heartbeat
        keeps it long, and a renewal is a round trip on every push's path."""
        if lease.lost:
            raise LeaseLost(lease.key)
        if lease.remaining() - self._policy.lease_margin_seconds < self._policy.ecr_timeout_seconds:
            await lease.renew()
        budget = lease.remaining() - self._policy.lease_margin_seconds
        if budget < self._policy.min_call_seconds:
            raise LeaseLost(lease.key)
        return min(self._policy.ecr_timeout_seconds, budget)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            self._policy.backoff_max_seconds, self._policy.backoff_base_seconds * 2.0**attempt
        )
        return ceiling * self._jitter()  # full jitter

    async def _put_with_retries(self, request: PushRequest, lease: Lease) -> tuple[PutStatus, bool]:
        """ECR's answer, and whether an earlier attempt may have landed unanswered."""
        last: RegistryError | None = None
        may_have_landed = False  # an attempt failed after ECR may have applied it
        for attempt in range(self._policy.attempts):
            timeout = await self._call_budget(lease)
            try:
                status = await self._registry.put_image(
                    request.ref,
                    manifest=request.manifest,
                    media_type=request.media_type,
                    digest=request.digest,
                    timeout=timeout,
                )
            except RegistryTimeout as exc:
                # The put may still have landed: ECR is asked, not guessed.
                if await self._registry.tag_digest(request.ref) == request.digest:
                    return PutStatus.PUSHED, True
                last, may_have_landed = exc, True
            except RegistryError as exc:
                if not exc.retryable:
                    raise
                last = exc
                # a throttled call was refused; a fault or lost answer may have landed
                may_have_landed = may_have_landed or not isinstance(exc, RegistryThrottled)
            else:
                return status, may_have_landed
            if attempt + 1 < self._policy.attempts:
                delay = self._backoff(attempt)
                if last.retry_after:  # e.g. a budget slot held for this push, that far away
                    delay = min(delay, last.retry_after)
                log.warning(
                    "registry_retry",
                    attempt=attempt + 1,
                    delay_s=round(delay, 3),
                    error=last.code,
                    cause=last.cause_code,
                )
                await self._sleep(delay)
        assert last is not None  # noqa: S101 - the loop ran at least once
        if isinstance(last, RegistryThrottled):
            raise RegistryThrottled(
                "The registry kept throttling PutImage; retry later.",
                cause_code=last.cause_code,
                # a full budget knows when its next slot is: not sooner than that
                retry_after=max(self._policy.throttle_retry_after_seconds, last.retry_after or 0),
            ) from last
        raise last

    async def _verify(self, attempt: _Attempt, lease: Lease, record: TagRecord) -> bool:
        """Put the tag back when ECR disagrees with the record; True when it was repaired."""
        ref = record.ref
        try:
            observed = await self._registry.tag_digest(ref)
            if observed == record.digest:
                return False
            log.warning(
                "tag_drift_detected", key=ref.key, expected=record.digest, observed=observed
            )
            found = await self._registry.manifest(ref.repository, record.digest)
            if found is None:
                log.error("tag_repair_impossible", key=ref.key, digest=record.digest)
                await self._append_repair(attempt, lease, record, observed, "repair_failed")
                return False
            manifest, media_type = found
            status = await self._registry.put_image(
                ref,
                manifest=manifest,
                media_type=media_type,
                digest=record.digest,
                timeout=await self._call_budget(lease),
            )
            # "already exists": the tag names the record's image after all, or ECR
            # refused to move it (an immutable tag); only the first is a repair
            if status is not PutStatus.PUSHED:
                current = await self._registry.tag_digest(ref)
                if current != record.digest:
                    log.error(
                        "tag_repair_refused", key=ref.key, digest=record.digest, observed=current
                    )
                    await self._append_repair(attempt, lease, record, current, "repair_failed")
                    return False
        except PushError as exc:
            log.warning("tag_verify_failed", key=ref.key, error=exc.code, message=exc.message)
            return False
        log.warning("tag_repaired", key=ref.key, digest=record.digest, observed=observed)
        await self._append_repair(attempt, lease, record, observed, "repaired")
        return True

    async def _append_repair(
        self,
        attempt: _Attempt,
        lease: Lease,
        record: TagRecord,
        observed: str | None,
        outcome: str,
    ) -> None:
        await self._append(
            HistoryEntry(
                ref=record.ref,
                outcome=outcome,
                digest=record.digest,
                previous_digest=observed,
                sequence=record.sequence,
                token=lease.token,
                caller=attempt.caller,
                request_id=attempt.request_id,
                started_at=attempt.started_at,
                finished_at=self._clock(),
                observed_digest=observed,
                detail="tag did not match its record",
            )
        )

    async def _readback(self, request: PushRequest) -> str | None:
        try:
            return await self._registry.tag_digest(request.ref)
        except PushError as exc:
            log.warning("readback_failed", key=request.ref.key, error=exc.code)
            return None

    async def _append_failure(self, attempt: _Attempt, exc: PushError) -> None:
        request = attempt.request
        observed = exc.observed_digest if isinstance(exc, LeaseLost) else None
        if isinstance(exc, TagImmutable):
            observed = exc.existing_digest
        await self._append(
            HistoryEntry(
                ref=request.ref,
                outcome="failed",
                digest=request.digest,
                previous_digest=attempt.previous_digest,
                sequence=request.sequence,
                token=attempt.token,
                caller=attempt.caller,
                request_id=attempt.request_id,
                started_at=attempt.started_at,
                finished_at=self._clock(),
                observed_digest=observed,
                error=exc.code,
                detail=exc.message,
            )
        )

    async def _append(self, entry: HistoryEntry) -> None:
        """History is best effort: a failed append is logged, never fails the push."""
        try:
            await self._history.append(entry)
        except PushError as exc:
            log.exception("history_append_failed", key=entry.ref.key, error=exc.code)

    async def _release(self, lease: Lease) -> None:
        try:
            await lease.release()
        except PushError as exc:
            log.warning("lease_release_failed", key=lease.key, error=exc.code)


def _superseded(request: PushRequest, record: TagRecord | None) -> bool:
    return (
        record is not None
        and record.sequence is not None
        and request.sequence is not None
        and request.sequence < record.sequence
    )
