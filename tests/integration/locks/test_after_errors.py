"""After an acquire fails (a backend error, an interrupt), the same lock serves that key at once.

A failed waiter must leave its lock's local queue: a ticket left at the head would make
every later acquire of the key on that lock wait behind a waiter that is gone. The next
acquire uses ``timeout=0`` (one attempt), so a leftover ticket fails it at once rather
than after a wait.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from locks import LockBackendError, LockConfig
from tests.integration.locks._adapters import Driver, eventually

pytestmark = pytest.mark.integration

LONG = LockConfig(lease_seconds=30)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "AccessDeniedException"),
        (500, "InternalServerError"),  # outlasts botocore's retries
    ],
)
async def test_acquire_after_a_backend_error_is_granted_at_once(
    driver: Driver, status: int, code: str
) -> None:
    """An acquire that failed with a backend error leaves nothing queued: the next acquire
    of the key on the same lock is granted on its first attempt."""
    lock = await driver.ready_lock(config=LONG, max_attempts=1)
    injector = lock.inject("UpdateItem", status, code, times=99)
    with pytest.raises(LockBackendError) as failed:
        await lock.acquire("key", timeout=5)
    assert code == failed.value.code
    injector.times = 0  # DynamoDB answers again

    lease = await lock.acquire("key", timeout=0)

    assert (lock.owner, 0) == (lease.owner, lock.queued("key"))
    await lease.release()


async def test_waiter_behind_a_failed_acquire_gets_the_lease(driver: Driver) -> None:
    """A waiter queued behind an acquire that fails takes its turn and is granted the key
    once the holder releases."""
    holder = await driver.ready_lock(config=LONG)
    lock = await driver.lock(config=LONG, max_attempts=1)
    held = await holder.acquire("key")
    calls = lock.record_calls()
    failing = asyncio.ensure_future(lock.acquire("key", timeout=10))
    await eventually(lambda: bool(calls), timeout=5, what="the first waiter's first attempt")
    behind = asyncio.ensure_future(lock.acquire("key", timeout=10))
    await eventually(lambda: lock.queued("key") == 2, timeout=5, what="two waiters queued")
    lock.inject("UpdateItem", 400, "AccessDeniedException", times=1)  # the head's next attempt
    with pytest.raises(LockBackendError):
        await failing
    await held.release()

    lease = await behind

    assert lock.owner == lease.owner
    await lease.release()


async def test_acquire_after_an_interrupted_acquire_is_granted_at_once(driver: Driver) -> None:
    """An acquire interrupted inside its DynamoDB call (Ctrl-C on the sync driver, a
    cancelled task on the async one) leaves nothing queued: the next acquire of the key on
    the same lock is granted on its first attempt."""
    lock = await driver.ready_lock(config=LONG)
    interrupt = await lock.acquire_interrupted("key")
    expected = KeyboardInterrupt if driver.kind == "sync" else asyncio.CancelledError
    assert expected is type(interrupt)

    lease = await lock.acquire("key", timeout=0)

    assert (lock.owner, 0) == (lease.owner, lock.queued("key"))
    await lease.release()


async def test_waiter_cancelled_after_a_hand_off_frees_the_lease(driver: Driver) -> None:
    """A waiter cancelled after a local holder handed it the lease, before it woke up,
    frees that lease: another lock is granted the key on its first attempt."""
    if driver.kind != "async":
        pytest.skip("only an async waiter can be stopped between the hand-off and its wake-up")
    lock = await driver.ready_lock(config=LONG)
    other = await driver.lock(config=LONG)
    lease = await lock.acquire("key")
    waiting = asyncio.ensure_future(lock.acquire("key", timeout=10))
    await eventually(lambda: lock.queued("key") == 1, timeout=5, what="the waiter queued")
    await asyncio.sleep(0.05)  # it reaches its wait for the hand-off (no I/O before it)
    await lease.release()  # hands the lease to the waiter, which has not run since
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert waiting.cancelled()

    theirs = await other.acquire("key", timeout=0)

    assert (other.owner, lease.token + 2) == (theirs.owner, theirs.token)
    await theirs.release()
