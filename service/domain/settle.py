"""Keeping the record and ECR in step, under the lease: an intent left by a holder that
died is settled against ECR, and a tag that drifted from its record is put back.

An intent that cannot be recorded for a permanent reason (a failure that retrying cannot
fix: a value the table refuses, a denied write) is dropped rather than left to fail
every later push of the tag: the tag stays pushable, and the image it names is then
judged against the record like any drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from service.domain.decision import Put, TagState, adopted, decide
from service.domain.errors import PushError
from service.domain.journal import Journal, PushCall
from service.domain.models import ImageRef, Outcome, PendingPush, TagRecord
from service.domain.ports import Lease, PutStatus, Registry, TagRecords
from service.domain.putimage import PushPolicy, call_budget

log = structlog.get_logger("pushgate.push")


@dataclass(frozen=True, slots=True)
class Upkeep:
    registry: Registry
    records: TagRecords
    journal: Journal
    policy: PushPolicy
    clock: Callable[[], float]

    async def settle(
        self, call: PushCall, lease: Lease, record: TagRecord | None, pending: PendingPush
    ) -> PendingPush | None:
        """Settle an earlier holder's intent: ECR is asked whether its put landed. It did:
        the record adopts the pending digest and sequence, and the intent is returned. It
        did not (or cannot be recorded for good): the intent is dropped, None.

        An intent written before its holder's decision (no token) is decided again first:
        one the record supersedes or already holds called no PutImage, and is left for
        this holder's own intent write or release to clear (no ECR call, no write)."""
        ref = call.request.ref
        if pending.token is None:
            match decide(record, None, pending):
                case Put(sequence=sequence):
                    pending = replace(pending, sequence=sequence)
                case _:
                    return None
        fence = lease.fence()
        observed = await self.registry.tag_digest(ref)
        previous = record.digest if record else None
        if observed != pending.digest:
            log.info(
                "pending_push_dropped",
                key=ref.key,
                pending_digest=pending.digest,
                pending_token=pending.token,
                observed=observed,
            )
            await self.records.clear_pending(ref, fence=fence)
            return None
        try:
            await self.records.put(
                adopted(ref, pending, fence=fence, now=self.clock()), fence=fence
            )
        except PushError as exc:
            if exc.retryable:  # the fence, or a fault: the intent stays for the next holder
                raise
            log.error(  # noqa: TRY400 - the error is answered; its code and message suffice
                "pending_push_unrecordable",
                key=ref.key,
                pending_digest=pending.digest,
                pending_token=pending.token,
                error=exc.code,
                message=exc.message,
            )
            await self.records.clear_pending(ref, fence=fence)
            return None
        log.warning(
            "pending_push_adopted",
            key=ref.key,
            digest=pending.digest,
            sequence=pending.sequence,
            pending_token=pending.token,
            previous_digest=previous,
        )
        await self.journal.adopted(call, pending, token=lease.token, previous_digest=previous)
        return pending

    async def verify(self, call: PushCall, lease: Lease, tag: TagState) -> bool:
        """Put the tag back when ECR disagrees with the record; True when it was repaired.
        Never raises ``PushError``: a failed check is logged."""
        ref = call.request.ref
        try:
            observed = await self.registry.tag_digest(ref)
            if observed == tag.digest:
                return False
            log.warning("tag_drift_detected", key=ref.key, expected=tag.digest, observed=observed)
            current = await self._put_back(ref, lease, tag, observed)
        except PushError as exc:
            log.warning("tag_verify_failed", key=ref.key, error=exc.code, message=exc.message)
            return False
        repaired = current == tag.digest
        if repaired:
            log.warning("tag_repaired", key=ref.key, digest=tag.digest, observed=observed)
        await self.journal.repair(
            call,
            Outcome.REPAIRED if repaired else Outcome.REPAIR_FAILED,
            digest=tag.digest,
            sequence=tag.sequence,
            token=lease.token,
            observed=observed if repaired else current,
        )
        return repaired

    async def _put_back(
        self, ref: ImageRef, lease: Lease, tag: TagState, observed: str | None
    ) -> str | None:
        """Put the record's image back on the tag; what the tag names afterwards."""
        found = await self.registry.manifest(ref.repository, tag.digest)
        if found is None:
            log.error("tag_repair_impossible", key=ref.key, digest=tag.digest)
            return observed
        manifest, media_type = found
        status = await self.registry.put_image(
            ref,
            manifest=manifest,
            media_type=media_type,
            digest=tag.digest,
            timeout=await call_budget(lease, self.policy),
        )
        if status is PutStatus.PUSHED:
            return tag.digest
        # "already exists": the tag names the record's image after all, or ECR refused
        # to move it (an immutable tag); only the first is a repair
        current = await self.registry.tag_digest(ref)
        if current != tag.digest:
            log.error("tag_repair_refused", key=ref.key, digest=tag.digest, observed=current)
        return current
