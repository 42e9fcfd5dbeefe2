"""``LeaseProvider`` over ``locks.AsyncLeaseLock``; translates lock errors to push errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from locks import AsyncLease, AsyncLeaseLock, LeaseUnavailable, LockBackendError, LockError
from locks import LeaseLost as LockLeaseLost
from service.adapters.aws import backend_error
from service.adapters.records import (
    JOURNAL,
    PENDING,
    RECORD,
    data_name,
    from_data,
    journal_entry,
    journal_json,
    pending_json,
    record_json,
)
from service.domain.errors import BackendUnavailable, LeaseLost, LeaseTimeout, PushError
from service.domain.models import Fence, HistoryEntry, ImageRef, PendingPush, TagRecord

if TYPE_CHECKING:
    from service.domain.ports import Lease


def _translate(exc: LockError, key: str) -> PushError:
    if isinstance(exc, LockLeaseLost):
        return LeaseLost(key)
    if isinstance(exc, LockBackendError) and isinstance(exc.cause, ClientError | BotoCoreError):
        return backend_error(exc.cause, "a call on the lease table")
    if isinstance(exc, LockBackendError):
        return BackendUnavailable("The lease table failed.", cause_code=exc.code)
    return BackendUnavailable(f"The lease library failed ({type(exc).__name__}).")


class LockLease:
    """One held ``AsyncLease`` seen through the domain's ``Lease`` port."""

    def __init__(self, lease: AsyncLease) -> None:
        self._lease = lease

    @property
    def key(self) -> str:
        return self._lease.key

    @property
    def owner(self) -> str:
        return self._lease.owner

    @property
    def token(self) -> int:
        return self._lease.token

    @property
    def waited_ms(self) -> float:
        return self._lease.waited_ms

    @property
    def lost(self) -> bool:
        return self._lease.lost

    def remaining(self) -> float:
        return self._lease.remaining()

    def fence(self) -> Fence:
        return Fence(key=self.key, owner=self.owner, token=self.token)

    def tag_item(self, ref: ImageRef) -> tuple[TagRecord | None, PendingPush | None]:
        """From the grant's write (``ALL_NEW``, also for a local hand-off): the item as
        this lease took it. The service writes records beside the lease API, so the
        lease's data is right only before this holder's first write."""
        return from_data(ref, self._lease.data)

    async def renew(self) -> None:
        try:
            await self._lease.renew()
        except LockError as exc:
            raise _translate(exc, self.key) from exc

    async def commit(self, record: TagRecord, *, history: HistoryEntry) -> tuple[HistoryEntry, ...]:
        """The record and its history entry, the intent cleared and the lease released (or
        handed to a waiter of this process): one write, fenced like a release."""
        before = self._lease.data.get(data_name(JOURNAL))  # as the grant found it
        data = {data_name(RECORD): record_json(record), data_name(JOURNAL): journal_json(history)}
        try:
            await self._lease.release(set_attributes=data, remove_attributes=[data_name(PENDING)])
        except LockError as exc:
            raise _translate(exc, self.key) from exc
        carried = journal_entry(before)
        return () if carried is None else (carried,)

    async def release(self, *, drop_intent: bool = False) -> None:
        try:
            await self._lease.release(remove_attributes=[data_name(PENDING)] if drop_intent else ())
        except LockError as exc:
            raise _translate(exc, self.key) from exc


class LockLeaseProvider:
    """Acquires repo:tag leases; ``retry_after`` is what a ``lease_timeout`` answer advises.
    ``lease_factory`` wraps each held lease (a ``LockLease`` subclass may observe it, as
    the stress harness does)."""

    def __init__(
        self,
        lock: AsyncLeaseLock,
        *,
        retry_after: float,
        lease_factory: Callable[[AsyncLease], LockLease] = LockLease,
    ) -> None:
        self._lock = lock
        self._retry_after = retry_after
        self._lease_factory = lease_factory

    @property
    def lock(self) -> AsyncLeaseLock:
        return self._lock

    async def acquire(
        self, key: str, *, timeout: float, intent: PendingPush | None = None
    ) -> Lease:
        defaults = None if intent is None else {data_name(PENDING): pending_json(intent)}
        try:
            lease = await self._lock.acquire(key, timeout=timeout, default_attributes=defaults)
        except LeaseUnavailable as exc:
            raise LeaseTimeout(
                key,
                holder=exc.holder,
                expires_at=exc.expires_at,
                retry_after=self._retry_after,
            ) from exc
        except LockError as exc:
            raise _translate(exc, key) from exc
        try:
            return self._lease_factory(lease)
        except BaseException:
            await lease.release()  # never leave a lease held with nobody to release it
            raise
