"""Waiting: local waiters are woken the moment a local holder releases, in FIFO order;
remote waiters take a number in the item's line and are served in its order. Both drivers, both backends."""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from typing import Any

import pytest

from locks import LockConfig
from locks._requests import join_request
from tests.integration.locks._adapters import Driver, Locker, eventually

pytestmark = pytest.mark.integration

# A slow backoff (at least 4 s per attempt): only a wake-up can explain a faster handoff.
SLOW_RETRY = LockConfig(lease_seconds=30, retry_base_seconds=8.0, retry_cap_seconds=16.0)
# A handoff by wake-up takes a few round trips (moto: 20-70 ms each) plus scheduling; the
# bound leaves a busy 2-core host room while staying below the 4 s a backoff would take.
PROMPT = 3.0


def _item(driver: Driver, key: str) -> dict[str, Any]:
    """``key``'s lease item as stored ({} if there is none)."""
    found: dict[str, Any] = driver.admin.get_item(
        TableName=driver.table_name, Key={"pk": {"S": key}}, ConsistentRead=True
    ).get("Item", {})
    return found


def _in_line(driver: Driver, key: str) -> int:
    """How many numbers of ``key``'s line of waiters are taken and not yet served."""
    item = _item(driver, key)
    taken = int(item.get("queue_next", {}).get("N", 0))
    return taken - int(item.get("queue_served", {}).get("N", 0))


async def _queue_waiters(
    lock: Locker, count: int, grants: list[tuple[int, float, float]], hold: float
) -> list[asyncio.Future[None]]:
    """Start ``count`` waiters one after another, each queued before the next starts.

    Each records (index, granted at, released at) in ``grants``.
    """

    async def waiter(index: int) -> None:
        lease = await lock.acquire("key", timeout=20)
        granted = time.monotonic()
        await asyncio.sleep(hold)
        await lease.release()
        grants.append((index, granted, time.monotonic()))

    tasks: list[asyncio.Future[None]] = []
    for index in range(count):
        tasks.append(asyncio.ensure_future(waiter(index)))
        queued = functools.partial(lambda n: lock.queued("key") == n, index + 1)
        await eventually(queued, timeout=3, what=f"{index + 1} queued")
    return tasks


async def test_local_waiters_are_served_in_fifo_order(driver: Driver) -> None:
    """Waiters of one lock object get the key in the order they asked for it."""
    lock = await driver.ready_lock(config=SLOW_RETRY)
    holder = await lock.acquire("key")
    grants: list[tuple[int, float, float]] = []
    tasks = await _queue_waiters(lock, 5, grants, hold=0.01)

    await holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 20)

    assert [0, 1, 2, 3, 4] == [index for index, _, _ in sorted(grants, key=lambda g: g[1])]


async def test_local_waiter_is_woken_the_moment_the_holder_releases(driver: Driver) -> None:
    """The head waiter does not sit out its backoff: it gets the key right after the release."""
    lock = await driver.ready_lock(config=SLOW_RETRY)
    holder = await lock.acquire("key")
    grants: list[tuple[int, float, float]] = []
    tasks = await _queue_waiters(lock, 1, grants, hold=0)
    await asyncio.sleep(0.1)  # the waiter has tried, failed and is backing off

    released = time.monotonic()
    await holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 20)

    handoff = grants[0][1] - released
    assert handoff < PROMPT, f"handoff took {handoff:.3f}s; backoff alone would take >= 4s"


async def test_each_local_handoff_is_prompt(driver: Driver) -> None:
    """A chain of local waiters passes the key on without backoff sleeps."""
    lock = await driver.ready_lock(config=SLOW_RETRY)
    holder = await lock.acquire("key")
    grants: list[tuple[int, float, float]] = []
    tasks = await _queue_waiters(lock, 4, grants, hold=0.05)
    await asyncio.sleep(0.1)

    await holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 20)

    grants.sort(key=lambda g: g[1])
    handoffs = [nxt[1] - prev[2] for prev, nxt in itertools.pairwise(grants)]
    # each waiter went back to sleep (>= 4 s) after its first failed attempt
    assert max(handoffs) < PROMPT, [round(h, 3) for h in handoffs]


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

    assert time.monotonic() - released < 0.2 + 2 * PROMPT  # the holder's expiry is 30 s away
    assert theirs.token > lease.token
    await theirs.release()


async def test_remote_waiter_is_served_before_the_releasing_process_reacquires(
    driver: Driver,
) -> None:
    """A waiter in line is served even if the holder's process asks again at once."""
    holder = await driver.ready_lock(config=LockConfig(lease_seconds=30))
    remote = await driver.lock(config=LockConfig(lease_seconds=30, retry_cap_seconds=0.1))
    lease = await holder.acquire("key")
    acquiring = asyncio.ensure_future(remote.acquire("key", timeout=10))
    # Wait for the waiter's number itself, not a fixed time: on a loaded machine its
    # first attempt and its number can take longer than any guess.
    await eventually(lambda: _in_line(driver, "key") == 1, timeout=5, what="the waiter in line")

    await lease.release()
    again = await holder.try_acquire("key")
    if again is not None:  # free the key so the waiter ends and the assertion below reports
        await again.release()
    theirs = await acquiring

    assert again is None, "the releasing process jumped the queue"
    await theirs.release()


async def test_remote_waiters_are_granted_in_the_order_they_took_numbers(
    driver: Driver,
) -> None:
    """Waiters of three other processes are granted in the order they joined the line,
    each after the one before it released."""
    holder = await driver.ready_lock(config=LockConfig(lease_seconds=30))
    # no passing within the test: a waiter that sleeps through its turn (its estimate
    # comes from the holder's long first hold) is still served in its order
    patient = LockConfig(lease_seconds=30, claim_seconds=30)
    remotes = [await driver.lock(config=patient) for _ in range(3)]
    lease = await holder.acquire("key")
    order: list[int] = []

    async def wait_turn(index: int) -> None:
        theirs = await remotes[index].acquire("key", timeout=20)
        order.append(index)
        await theirs.release()

    tasks = []
    for index in range(3):  # each in line before the next asks
        tasks.append(asyncio.ensure_future(wait_turn(index)))
        await eventually(
            functools.partial(lambda n: _in_line(driver, "key") == n, index + 1),
            timeout=5,
            what=f"{index + 1} in line",
        )
    await lease.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)

    assert [0, 1, 2] == order
    assert 0 == _in_line(driver, "key")


async def test_a_waiter_that_died_in_line_is_passed(driver: Driver) -> None:
    """A number whose waiter is gone (taken, never used) delays the one behind it by the
    claim time only: it is passed, and the grant moves the line past both."""
    config = LockConfig(lease_seconds=30, retry_cap_seconds=0.1)  # claim: 0.2 s
    holder = await driver.ready_lock(config=config)
    behind = await driver.lock(config=config)
    lease = await holder.acquire("key")
    join = join_request(driver.table_name, "key")  # a waiter that then died
    dead = int(driver.admin.update_item(**join.params)["Attributes"]["queue_next"]["N"])
    acquiring = asyncio.ensure_future(behind.acquire("key", timeout=20))
    await eventually(lambda: _in_line(driver, "key") == 2, timeout=5, what="behind in line")

    await lease.release()
    theirs = await asyncio.wait_for(acquiring, 25)

    item = _item(driver, "key")
    assert dead + 1 == int(item["queue_served"]["N"])
    assert theirs.token == int(item["token"]["N"])
    await theirs.release()
