"""The drivers' timeout handling, with a fake client and an injected clock (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from locks import AcquireTimeout, AsyncLeaseLock, LeaseLock, LeaseUnavailable, LockConfig
from tests.unit.locks.fakes import KEY, OTHER, T0, TABLE, item

CONFIG = LockConfig(lease_seconds=10, max_clock_skew_seconds=1)
HELD = item(owner=OTHER, token=5, expires_at=T0 + 60_000)


def refusal() -> ClientError:
    response: Any = {  # botocore's stubs omit the ALL_OLD "Item" DynamoDB sends
        "Error": {"Code": "ConditionalCheckFailedException", "Message": "held"},
        "Item": HELD,
    }
    return ClientError(response, "UpdateItem")


class HeldClient:
    """A DynamoDB client on which the key is always held by another."""

    def update_item(self, **params: Any) -> Any:
        raise refusal()


class AsyncHeldClient:
    async def update_item(self, **params: Any) -> Any:
        raise refusal()


class QueuedClock:
    """Reads T0 once, then 5 s later for ever: the waiter spent its whole
    5 s timeout queued behind another waiter of its own process."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return T0 if self.readings == 1 else T0 + 5_000


def test_sync_timeout_used_up_in_the_local_queue_raises_acquire_timeout():
    """acquire(timeout=5) that spent the 5 s queued raises AcquireTimeout, not the bare
    LeaseUnavailable reserved for timeout=0."""
    lock = LeaseLock(TABLE, client=HeldClient(), config=CONFIG, owner="me", clock=QueuedClock())  # type: ignore[arg-type]

    with pytest.raises(LeaseUnavailable) as raised:
        lock.acquire(KEY, timeout=5)

    assert AcquireTimeout is type(raised.value)


async def test_async_timeout_used_up_in_the_local_queue_raises_acquire_timeout():
    """The async driver, likewise: a used-up timeout is an AcquireTimeout."""
    lock = AsyncLeaseLock(
        TABLE,
        client=AsyncHeldClient(),  # type: ignore[arg-type]
        config=CONFIG,
        owner="me",
        clock=QueuedClock(),
    )

    with pytest.raises(LeaseUnavailable) as raised:
        await lock.acquire(KEY, timeout=5)

    assert AcquireTimeout is type(raised.value)
