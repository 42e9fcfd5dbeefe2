"""Waiting: local waiters are woken the moment a local holder releases, in FIFO order;
remote waiters retry after a short capped backoff. Both drivers, both backends."""

from __future__ import annotations

import asyncio
import time

import pytest

from locks import LockConfig
from tests.integration.locks._adapters import Driver, Locker, eventually

pytestmark = pytest.mark.integration

# A slow backoff (0.25-0.5 s per attempt): only a wake-up can explain a fast handoff.
SLOW_RETRY = LockConfig(lease_seconds=30, retry_base_seconds=0.5, retry_cap_seconds=1.0)
PROMPT = 0.15  # a handoff by wake-up: one or two round trips plus scheduling


async def _queue_waiters(
    lock: Locker, count: int, grants: list[tuple[int, float]], hold: float
) -> list[asyncio.Future[None]]:
    """Start ``count`` waiters one after another, each queued before the next starts."""

    async def waiter(index: int) -> None:
        lease = await lock.acquire("key", timeout=20)
        grants.append((index, time.monotonic()))
        await asyncio.sleep(hold)
        await lease.release()

    tasks = []
    for index in range(count):
        tasks.append(asyncio.ensure_future(waiter(index)))
        await eventually(
            lambda n=index + 1: lock.queued("key") == n, timeout=3, what=f"{index + 1} queued"
        )
    return tasks


async def test_local_waiters_are_served_in_fifo_order(driver: Driver) -> None:
    """Waiters of one lock object get the key in the order they asked for it."""
    lock = await driver.ready_lock(config=SLOW_RETRY)
    holder = await lock.acquire("key")
    grants: list[tuple[int, float]] = []
    tasks = await _queue_waiters(lock, 5, grants, hold=0.01)

    await holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 20)

    assert [0, 1, 2, 3, 4] == [index for index, _ in grants]


async def test_local_waiter_is_woken_the_moment_the_holder_releases(driver: Driver) -> None:
    """The head waiter does not sit out its backoff: it gets the key right after the release."""
    lock = await driver.ready_lock(config=SLOW_RETRY)
    holder = await lock.acquire("key")
    grants: list[tuple[int, float]] = []
    tasks = await _queue_waiters(lock, 1, grants, hold=0)
    await asyncio.sleep(0.1)  # the waiter has tried, failed and is backing off

    released = time.monotonic()
    await holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 20)

    handoff = grants[0][1] - released
    assert handoff < PROMPT, f"handoff took {handoff:.3f}s; backoff alone would take >= 0.25s"


async def test_each_local_handoff_is_prompt(driver: Driver) -> None:
    """A chain of local waiters passes the key on without backoff sleeps."""
    lock = await driver.ready_lock(config=SLOW_RETRY)
    holder = await lock.acquire("key")
    grants: list[tuple[int, float]] = []
    tasks = await _queue_waiters(lock, 4, grants, hold=0.05)
    await asyncio.sleep(0.1)

    started = time.monotonic()
    await holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 20)
    total = time.monotonic() - started

    # four holds of 0.05 s plus four prompt handoffs; one backoff sleep would add >= 0.25 s
    assert total < 4 * (0.05 + PROMPT), [round(t - started, 3) for _, t in grants]


async def test_remote_waiter_retries_within_its_capped_backoff(driver: Driver) -> None:
    """A waiter on another lock object (another process) gets a released key within one capped
    backoff, not at the holder's far-off expiry."""
    holder = await driver.ready_lock(config=LockConfig(lease_seconds=30))
    remote = await driver.lock(config=LockConfig(lease_seconds=30, retry_cap_seconds=0.2))
    lease = await holder.acquire("key")
    acquiring = asyncio.ensure_future(remote.acquire("key", timeout=10))
    await asyncio.sleep(0.5)  # its backoff has reached the cap
    assert not acquiring.done()

    released = time.monotonic()
    await lease.release()
    theirs = await acquiring

    assert time.monotonic() - released < 0.2 + PROMPT
    assert theirs.token > lease.token
    await theirs.release()


async def test_remote_waiter_is_served_before_the_releasing_process_reacquires(
    driver: Driver,
) -> None:
    """A waiter that claimed its turn is served even if the holder's process asks again at once."""
    holder = await driver.ready_lock(config=LockConfig(lease_seconds=30))
    remote = await driver.lock(config=LockConfig(lease_seconds=30, retry_cap_seconds=0.1))
    lease = await holder.acquire("key")
    acquiring = asyncio.ensure_future(remote.acquire("key", timeout=10))
    await asyncio.sleep(0.3)  # the remote waiter has claimed the next turn

    await lease.release()
    again = await holder.try_acquire("key")
    theirs = await acquiring

    assert again is None, "the releasing process jumped the queue"
    await theirs.release()
