"""Acquire, release and fencing tokens, on both drivers and both DynamoDB implementations."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from locks import AcquireTimeout, LeaseUnavailable, LockConfig
from tests.integration.locks._adapters import Driver, eventually

pytestmark = pytest.mark.integration

LONG = LockConfig(lease_seconds=30)  # no heartbeat fires during these tests
QUICK_RETRY = LockConfig(lease_seconds=30, retry_base_seconds=0.01, retry_cap_seconds=0.05)


async def test_uncontended_acquire_and_release_cost_two_calls(driver: Driver) -> None:
    """No read before the write: one conditional write to acquire, one to release."""
    lock = await driver.ready_lock(config=LONG)
    calls = lock.record_calls()

    lease = await lock.acquire("key")
    await lease.release()

    assert ["UpdateItem", "UpdateItem"] == calls


async def test_uncontended_try_acquire_and_release_cost_two_calls(driver: Driver) -> None:
    """try_acquire is the same single conditional write when the key is free."""
    lock = await driver.ready_lock(config=LONG)
    calls = lock.record_calls()

    lease = await lock.try_acquire("key")
    assert lease is not None
    await lease.release()

    assert ["UpdateItem", "UpdateItem"] == calls


async def test_acquire_grants_a_lease_recorded_in_the_table(driver: Driver) -> None:
    """The item names the owner and token, with an expiry a lease ahead and a TTL cleanup time."""
    lock = await driver.ready_lock(config=LONG, owner="worker-a")
    before_ms = time.time() * 1000

    lease = await lock.acquire("key")

    item = driver.admin.get_item(
        TableName=driver.table_name, Key={"pk": {"S": "key"}}, ConsistentRead=True
    )["Item"]
    assert "worker-a" == lease.owner == item["owner"]["S"]
    assert lease.token == int(item["token"]["N"])
    expires_at = int(item["expires_at"]["N"])
    assert before_ms + 29_000 < expires_at <= time.time() * 1000 + 30_000
    cleanup_at = int(item["cleanup_at"]["N"])
    assert expires_at / 1000 + 86_400 <= cleanup_at <= expires_at / 1000 + 86_401
    await lease.release()


async def test_tokens_strictly_increase_across_holders(driver: Driver) -> None:
    """Each grant's token exceeds every earlier grant's, whoever holds the key."""
    first = await driver.ready_lock(config=LONG)
    second = await driver.lock(config=LONG)
    tokens = []

    for lock in (first, second, first, second, second):
        lease = await lock.acquire("key", timeout=5)
        tokens.append(lease.token)
        await lease.release()

    assert sorted(set(tokens)) == tokens


async def test_tokens_strictly_increase_across_deletion_of_the_item(driver: Driver) -> None:
    """After TTL cleanup deletes the item (simulated here), the next token is still greater."""
    lock = await driver.ready_lock(config=LONG)
    tokens = []
    for _ in range(3):
        lease = await lock.acquire("key")
        tokens.append(lease.token)
        await lease.release()

    driver.admin.delete_item(TableName=driver.table_name, Key={"pk": {"S": "key"}})
    lease = await lock.acquire("key")
    tokens.append(lease.token)
    await lease.release()

    assert sorted(set(tokens)) == tokens


async def test_keys_are_independent(driver: Driver) -> None:
    """Holding one key does not block another."""
    first = await driver.ready_lock(config=LONG)
    second = await driver.lock(config=LONG)

    a = await first.acquire("key-a")
    b = await second.try_acquire("key-b")

    assert b is not None
    await a.release()
    await b.release()


async def test_try_acquire_grants_a_free_key(driver: Driver) -> None:
    """try_acquire takes a free key (one attempt, no waiting)."""
    lock = await driver.ready_lock(config=LONG)

    lease = await lock.try_acquire("key")

    assert lease is not None
    assert not lease.lost
    await lease.release()


async def test_acquire_with_timeout_zero_grants_a_free_key(driver: Driver) -> None:
    """acquire(timeout=0) is one attempt: it succeeds on a free key."""
    lock = await driver.ready_lock(config=LONG)

    lease = await lock.acquire("key", timeout=0)

    assert lease.token > 0
    await lease.release()


async def test_try_acquire_returns_none_while_held(driver: Driver) -> None:
    """Another owner's try_acquire gets None, without waiting, while the lease is live."""
    holder = await driver.ready_lock(config=LONG)
    other = await driver.lock(config=LONG)
    lease = await holder.acquire("key")

    started = time.monotonic()
    assert await other.try_acquire("key") is None
    assert await holder.try_acquire("key") is None  # not re-entrant either
    assert time.monotonic() - started < 3.0  # no wait for the 30 s lease

    await lease.release()


async def test_acquire_timeout_zero_raises_lease_unavailable_with_the_holder(
    driver: Driver,
) -> None:
    """acquire(timeout=0) on a held key raises LeaseUnavailable naming the holder."""
    holder = await driver.ready_lock(config=LONG, owner="holder-a")
    other = await driver.lock(config=LONG)
    lease = await holder.acquire("key")

    with pytest.raises(LeaseUnavailable) as caught:
        await other.acquire("key", timeout=0)

    assert "holder-a" == caught.value.holder
    assert lease.raw.grant.expires_at_ms == caught.value.expires_at
    await lease.release()


async def test_acquire_timeout_raises_with_holder_info(driver: Driver) -> None:
    """acquire(timeout) gives up after about the timeout and says who holds the key until when."""
    holder = await driver.ready_lock(config=LONG, owner="holder-a")
    other = await driver.lock(config=QUICK_RETRY)
    lease = await holder.acquire("key")

    started = time.monotonic()
    with pytest.raises(AcquireTimeout) as caught:
        await other.acquire("key", timeout=0.4)
    elapsed = time.monotonic() - started

    assert (
        0.4 <= elapsed < 0.4 + 3.0
    )  # about the timeout (slack for a busy host), not the 30 s lease
    assert "holder-a" == caught.value.holder
    assert lease.raw.grant.expires_at_ms == caught.value.expires_at
    assert caught.value.waited_ms >= 400
    assert "key" == caught.value.key
    await lease.release()


async def test_timed_out_waiter_does_not_block_the_next_acquirer(driver: Driver) -> None:
    """A waiter that gave up withdraws its number: a later acquirer is not held back by
    it (its refused attempt, its number, its grant: no wait to pass the one that left)."""
    holder = await driver.ready_lock(config=LONG)
    quitter = await driver.lock(config=LockConfig(lease_seconds=30, retry_cap_seconds=0.25))
    later = await driver.lock(config=LockConfig(lease_seconds=30, claim_seconds=30))
    lease = await holder.acquire("key")
    with pytest.raises(AcquireTimeout):
        await quitter.acquire("key", timeout=0.3)
    await lease.release()
    calls = later.record_calls()

    again = await later.acquire("key", timeout=5)  # passing the quitter would take 30 s

    writes = [call for call in calls if call != "GetItem"]  # dynalite: the refused item is read
    assert ["UpdateItem", "UpdateItem", "UpdateItem"] == writes
    await again.release()


async def test_release_is_idempotent_and_keeps_the_token(driver: Driver) -> None:
    """A second release is a no-op; the released item keeps its token for the next grant."""
    lock = await driver.ready_lock(config=LONG)
    lease = await lock.acquire("key")
    await lease.release()
    calls = lock.record_calls()

    await lease.release()

    assert [] == calls
    info = await lock.describe("key")
    assert info is not None
    assert (lease.token, 0) == (info.token, info.expires_at_ms)
    assert not lease.lost


async def test_released_key_is_free_for_another_owner(driver: Driver) -> None:
    """Release frees the key: another owner gets it at once with a greater token."""
    holder = await driver.ready_lock(config=LONG)
    other = await driver.lock(config=LONG)
    lease = await holder.acquire("key")
    await lease.release()

    again = await other.try_acquire("key")

    assert again is not None
    assert again.token > lease.token
    await again.release()


async def test_ensure_held_after_release_is_a_state_error(driver: Driver) -> None:
    """Checking a lease after releasing it is misuse, not a lost lease."""
    lock = await driver.ready_lock(config=LONG)
    lease = await lock.acquire("key")
    await lease.release()

    with pytest.raises(RuntimeError, match="released"):
        lease.ensure_held()


async def test_with_block_releases_the_lease(driver: Driver) -> None:
    """Leaving the block releases the lease."""
    lock = await driver.ready_lock(config=LONG)

    async with await lock.acquire("key") as lease:
        lease.ensure_held()

    info = await lock.describe("key")
    assert info is not None
    assert 0 == info.expires_at_ms


async def test_sync_and_async_holders_exclude_each_other(driver: Driver) -> None:
    """A holder of one driver blocks the other driver's acquirer on the same table, and back."""
    mine = await driver.ready_lock(config=LONG)
    theirs = await driver.opposite().lock(config=QUICK_RETRY)
    lease = await mine.acquire("key")

    assert await theirs.try_acquire("key") is None
    with pytest.raises(AcquireTimeout):
        await theirs.acquire("key", timeout=0.2)
    await lease.release()
    their_lease = await theirs.acquire("key", timeout=5)
    assert await mine.try_acquire("key") is None
    await their_lease.release()
    back = await mine.acquire("key", timeout=5)

    assert lease.token < their_lease.token < back.token
    await back.release()


async def test_cancelled_release_leaves_no_local_holder_behind(driver: Driver) -> None:
    """A release cancelled at its first await (a request cancelled while it cleans up)
    does not leave the process counting a local holder: the next acquire asks DynamoDB at
    once instead of waiting for a hand-off that would never come."""
    if driver.kind != "async":
        pytest.skip("only an async release can be cancelled mid-way")
    lock = await driver.ready_lock(config=LONG)
    lease = await lock.acquire("cancelled-release")
    releasing = asyncio.ensure_future(lease.release())
    await asyncio.sleep(0)  # the release runs up to its first await
    releasing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await releasing
    calls = lock.record_calls()

    acquiring = asyncio.ensure_future(lock.acquire("cancelled-release", timeout=2))
    try:
        await eventually(lambda: bool(calls), timeout=1.5, what="a DynamoDB call")
    finally:
        with contextlib.suppress(AcquireTimeout):  # the cancelled release never wrote
            await acquiring
