"""History entries: built in one place (``Journal.entry``), appended best effort.

Every entry names the push it belongs to (``PushCall``: request, caller, request id,
arrival) and an ``Outcome``; the kinds below adjust only what the entry says about the
tag. A failed append is logged and never fails a push.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from service.domain.errors import LeaseLost, PushError, TagImmutable
from service.domain.models import HistoryEntry, Outcome, PendingPush, PushRequest
from service.domain.ports import History

log = structlog.get_logger("pushgate.push")


@dataclass(frozen=True, slots=True)
class PushCall:
    """One push as asked: what, by whom, and when it arrived (history's ``started_at``)."""

    request: PushRequest
    caller: str
    request_id: str
    started_at: float


class Journal:
    """Builds a push's history entries and appends them to ``history``."""

    def __init__(self, history: History, clock: Callable[[], float]) -> None:
        self._history = history
        self._clock = clock

    def entry(
        self,
        call: PushCall,
        outcome: Outcome,
        *,
        token: int | None,
        previous_digest: str | None,
        detail: str | None = None,
    ) -> HistoryEntry:
        """The entry of ``call`` with ``outcome``: the one constructor of entries, which the
        other kinds adjust."""
        request = call.request
        return HistoryEntry(
            ref=request.ref,
            outcome=outcome,
            digest=request.digest,
            previous_digest=previous_digest,
            sequence=request.sequence,
            token=token,
            caller=call.caller,
            request_id=call.request_id,
            started_at=call.started_at,
            finished_at=self._clock(),
            detail=detail,
        )

    async def answered(
        self,
        call: PushCall,
        outcome: Outcome,
        *,
        token: int | None,
        previous_digest: str | None,
        detail: str | None = None,
    ) -> None:
        await self.append(
            self.entry(call, outcome, token=token, previous_digest=previous_digest, detail=detail)
        )

    async def failed(
        self, call: PushCall, exc: PushError, *, token: int | None, previous_digest: str | None
    ) -> None:
        observed = exc.observed_digest if isinstance(exc, LeaseLost) else None
        if isinstance(exc, TagImmutable):
            observed = exc.existing_digest
        entry = self.entry(call, Outcome.FAILED, token=token, previous_digest=previous_digest)
        await self.append(
            replace(entry, observed_digest=observed, error=exc.code, detail=exc.message)
        )

    async def adopted(
        self, call: PushCall, pending: PendingPush, *, token: int, previous_digest: str | None
    ) -> None:
        """A dead holder's landed PutImage, recorded by ``call``'s holder (``token``)."""
        entry = self.entry(call, Outcome.ADOPTED, token=token, previous_digest=previous_digest)
        await self.append(
            replace(
                entry,
                digest=pending.digest,
                sequence=pending.sequence,
                caller=pending.caller,
                request_id=pending.request_id,
                observed_digest=pending.digest,
                detail=f"adopted: the put_image of {_holder(pending)} landed in ECR "
                "but its holder never wrote the record",
            )
        )

    async def repair(
        self,
        call: PushCall,
        outcome: Outcome,
        *,
        digest: str,
        sequence: int | None,
        token: int,
        observed: str | None,
    ) -> None:
        """A drifted tag put back (``REPAIRED``) or not (``REPAIR_FAILED``)."""
        entry = self.entry(call, outcome, token=token, previous_digest=observed)
        await self.append(
            replace(
                entry,
                digest=digest,
                sequence=sequence,
                observed_digest=observed,
                detail="tag did not match its record",
            )
        )

    async def append(self, entry: HistoryEntry) -> None:
        try:
            await self._history.append(entry)
        except PushError as exc:
            log.exception("history_append_failed", key=entry.ref.key, error=exc.code)


def _holder(pending: PendingPush) -> str:
    return "an earlier holder" if pending.token is None else f"token {pending.token}"
