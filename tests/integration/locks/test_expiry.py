"""Heartbeats, lost leases, expiry takeover and clock skew, on both drivers and both backends.

Leases here are 0.6-0.8 s so expiry is quick; the skew allowance is 0.1-0.4 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from locks import LeaseLost, LockConfig
from tests.integration.locks._adapters import Driver, SkewedClock, eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]

# lease 0.8 s: heartbeat every 0.27 s, trusted for 0.72 s, taken over 0.9 s after the last write
LEASE, SKEW, CAP = 0.8, 0.1, 0.05
SHORT = LockConfig(
    lease_seconds=LEASE,
    max_clock_skew_seconds=SKEW,
    retry_base_seconds=0.01,
    retry_cap_seconds=CAP,
)
# scheduling and round trips (moto: 20-70 ms each, more when the machine is loaded)
SLACK = 2.0  # room for a busy 2-core host; still far below the 5 s a polling peer needs
SKEWED = LockConfig(
    lease_seconds=0.8,
    heartbeat_seconds=0.1,  # frequent renewals: a loaded host's stall does not lose the lease
    max_clock_skew_seconds=0.4,
    retry_base_seconds=0.01,
    retry_cap_seconds=0.05,
)
AHEAD = 0.3  # less than the 0.4 s allowance
# Waits like SHORT, holds for long: what it acquires stays unchanged while a test looks.
HELD_LONG = LockConfig(
    lease_seconds=30, max_clock_skew_seconds=SKEW, retry_base_seconds=0.01, retry_cap_seconds=CAP
)
# A long lease renewed often: a renewal comes soon, and a stalled host does not lose it.
RENEWED_OFTEN = LockConfig(lease_seconds=10, heartbeat_seconds=0.1, max_clock_skew_seconds=SKEW)


def _overwrite(driver: Driver, key: str, owner: str, token: int) -> None:
    """Another writer takes the item over behind the holder's back."""
    driver.admin.put_item(
        TableName=driver.table_name,
        Item={
            "pk": {"S": key},
            "owner": {"S": owner},
            "token": {"N": str(token)},
            "expires_at": {"N": str(int(time.time() * 1000) + 60_000)},
        },
    )


async def test_heartbeat_keeps_the_lease_past_its_duration(driver: Driver) -> None:
    """A holder that keeps running keeps its lease for two lease durations and more."""
    config = LockConfig(lease_seconds=1.0, heartbeat_seconds=0.1, max_clock_skew_seconds=SKEW)
    lock = await driver.ready_lock(config=config)
    other = await driver.lock(config=SHORT)
    lease = await lock.acquire("key")
    first_expiry = lease.raw.grant.expires_at_ms

    await asyncio.sleep(2.0)  # two leases

    lease.ensure_held()
    assert not lease.lost
    assert await other.try_acquire("key") is None
    info = await lock.describe("key")
    assert info is not None
    assert info.expires_at_ms is not None
    assert info.expires_at_ms > first_expiry + 1000  # renewed, more than once
    assert lease.token == info.token  # renewals keep the token
    await lease.release()


async def test_expired_lease_is_taken_over_with_a_greater_token(driver: Driver) -> None:
    """A holder that stops heartbeating loses the key to a waiter after its expiry plus skew."""
    holder = await driver.ready_lock(config=SHORT)
    waiter = await driver.lock(config=SHORT)
    stale = await holder.acquire("key")
    stale.stop_heartbeat()
    await stale.heartbeat_done()
    stopped = time.monotonic()

    lease = await waiter.acquire("key", timeout=5)
    waited = time.monotonic() - stopped

    assert lease.token > stale.token
    assert stale.lost  # it ran out on the holder's own clock before the takeover
    # expiry (<= one lease after the last write) + skew + one capped wait step
    assert waited < LEASE + SKEW + CAP + SLACK
    await lease.release()


async def test_holder_stops_trusting_before_anyone_can_take_over(driver: Driver) -> None:
    """Without renewals the holder's lease reports lost before another owner can acquire it."""
    holder = await driver.ready_lock(config=SHORT)
    waiter = await driver.lock(config=SHORT)
    stale = await holder.acquire("key")
    stale.stop_heartbeat()
    lost_at = None
    taken_at = None

    deadline = time.monotonic() + 3
    while taken_at is None:
        assert time.monotonic() < deadline, "nobody could take over the expired lease"
        if lost_at is None and stale.lost:
            lost_at = time.monotonic()
        if await waiter.try_acquire("key") is not None:
            taken_at = time.monotonic()
        await asyncio.sleep(0.01)

    assert lost_at is not None
    assert lost_at < taken_at
    with pytest.raises(LeaseLost):
        stale.ensure_held()


async def test_release_of_a_taken_over_lease_leaves_the_new_holder_alone(driver: Driver) -> None:
    """A stale lease's release does not touch the new holder's item (owner + token condition)."""
    holder = await driver.ready_lock(config=SHORT, owner="old-holder")
    # a long lease: no renewal of the new holder's item between the two reads compared
    waiter = await driver.lock(config=HELD_LONG, owner="new-holder")
    stale = await holder.acquire("key")
    stale.stop_heartbeat()
    lease = await waiter.acquire("key", timeout=5)
    before = await waiter.describe("key")

    await stale.release()
    await stale.release()

    after = await waiter.describe("key")
    assert before == after
    assert after is not None
    assert ("new-holder", lease.token) == (after.owner, after.token)
    assert after.expires_at_ms is not None
    assert after.expires_at_ms > time.time() * 1000
    assert stale.lost
    await lease.renew()  # still ours
    assert await holder.try_acquire("key") is None
    await lease.release()


async def test_with_block_raises_lease_lost_when_taken_over(driver: Driver) -> None:
    """Leaving the block of a lease that expired and was taken over raises LeaseLost."""
    holder = await driver.ready_lock(config=SHORT)
    waiter = await driver.lock(config=SHORT, owner="new-holder")
    new_lease = None

    with pytest.raises(LeaseLost) as caught:  # noqa: PT012 - the block's exit is under test
        async with await holder.acquire("key") as stale:
            stale.stop_heartbeat()
            new_lease = await waiter.acquire("key", timeout=5)

    assert stale.token == caught.value.token
    assert "key" == caught.value.key
    assert new_lease is not None
    info = await waiter.describe("key")
    assert info is not None
    assert ("new-holder", new_lease.token) == (info.owner, info.token)
    assert info.expires_at_ms is not None
    assert info.expires_at_ms > 0
    await new_lease.release()


async def test_overwritten_item_makes_the_heartbeat_mark_the_lease_lost(driver: Driver) -> None:
    """A renewal that fails its owner/token condition marks the lease lost at once."""
    lock = await driver.ready_lock(config=RENEWED_OFTEN)
    lease = await lock.acquire("key")

    _overwrite(driver, "key", "intruder", lease.token + 100)
    await eventually(lambda: lease.lost, timeout=1.5, what="lease.lost")

    with pytest.raises(LeaseLost) as caught:
        lease.ensure_held()
    assert "ran out" not in caught.value.reason  # a failed renewal found it, not the clock
    if driver.backend == "moto":  # dynalite does not return the old item on a failed write
        assert "intruder" in caught.value.reason
    await lease.release()
    info = await lock.describe("key")
    assert info is not None
    assert ("intruder", lease.token + 100) == (info.owner, info.token)


async def test_renew_of_a_deleted_item_raises_lease_lost(driver: Driver) -> None:
    """renew() after the item vanished raises LeaseLost and leaves the lease lost."""
    lock = await driver.ready_lock(config=LockConfig(lease_seconds=30))
    lease = await lock.acquire("key")

    driver.admin.delete_item(TableName=driver.table_name, Key={"pk": {"S": "key"}})
    with pytest.raises(LeaseLost):
        await lease.renew()

    assert lease.lost
    with pytest.raises(LeaseLost):
        lease.ensure_held()


async def test_with_block_raises_lease_lost_when_the_item_was_deleted(driver: Driver) -> None:
    """A block whose lease was lost (item deleted, renewal failed) ends with LeaseLost."""
    lock = await driver.ready_lock(config=SHORT)

    with pytest.raises(LeaseLost):  # noqa: PT012 - the block's exit is under test
        async with await lock.acquire("key") as lease:
            driver.admin.delete_item(TableName=driver.table_name, Key={"pk": {"S": "key"}})
            await eventually(lambda: lease.lost, timeout=1.5, what="lease.lost")


async def test_exception_from_the_block_propagates_when_the_lease_was_lost(
    driver: Driver,
) -> None:
    """The block's own exception is not swallowed or replaced; a note says the lease was lost."""
    lock = await driver.ready_lock(config=SHORT)

    with pytest.raises(ZeroDivisionError) as caught:  # noqa: PT012 - the block's exit is under test
        async with await lock.acquire("key") as lease:
            _overwrite(driver, "key", "intruder", lease.token + 1)
            await eventually(lambda: lease.lost, timeout=1.5, what="lease.lost")
            _ = 1 / 0

    notes = getattr(caught.value, "__notes__", [])
    assert any("lost" in note for note in notes), notes


async def test_exception_from_the_block_propagates_when_the_lease_is_held(
    driver: Driver,
) -> None:
    """An exception from the block propagates and the lease is still released."""
    lock = await driver.ready_lock(config=SHORT)

    with pytest.raises(ValueError, match="boom"):
        async with await lock.acquire("key"):
            raise ValueError("boom")

    info = await lock.describe("key")
    assert info is not None
    assert 0 == info.expires_at_ms


async def test_lease_is_lost_when_renewals_cannot_succeed_in_time(driver: Driver) -> None:
    """Renewals that keep failing (not a lost race) mark the lease lost once it runs out."""
    lock = await driver.ready_lock(config=SHORT)
    lease = await lock.acquire("key")
    failing = lock.inject("UpdateItem", 400, "ValidationException", times=1000)

    await eventually(lambda: lease.lost, timeout=3, what="lease.lost")

    late_ms = time.time() * 1000 - lease.raw.grant.trusted_until_ms
    assert failing.injected >= 2  # the heartbeat retried
    assert 0 <= late_ms < SLACK * 1000  # lost once the grant ran out (lease - margin), not before
    with pytest.raises(LeaseLost):
        lease.ensure_held()


async def test_stopped_heartbeat_is_lost_on_the_holders_clock(driver: Driver) -> None:
    """A holder whose heartbeat stopped reports lost at lease - margin, with no DynamoDB call."""
    lock = await driver.ready_lock(config=SHORT)
    lease = await lock.acquire("key")
    lease.stop_heartbeat()
    await lease.heartbeat_done()
    calls = lock.record_calls()

    await eventually(lambda: lease.lost, timeout=3, what="lease.lost")

    late_ms = time.time() * 1000 - lease.raw.grant.trusted_until_ms
    assert 0 <= late_ms < SLACK * 1000
    assert [] == calls


async def test_waiter_ahead_by_less_than_the_skew_cannot_take_a_live_lease(driver: Driver) -> None:
    """A waiter whose clock runs 0.3 s ahead (skew allowance 0.4 s) never takes a renewed lease."""
    holder = await driver.ready_lock(config=SKEWED)
    ahead = await driver.lock(config=SKEWED, clock=SkewedClock(+AHEAD))
    lease = await holder.acquire("key")

    deadline = time.monotonic() + 1.5  # about two leases
    while time.monotonic() < deadline:
        taken = await ahead.try_acquire("key")
        # Only a stalled heartbeat (the holder's own clock then says lost) may let it in.
        assert taken is None or lease.lost, "a skewed waiter took a lease its holder trusted"
        if taken is not None:
            pytest.fail("the holder's heartbeat stalled for a whole lease; the run was too slow")
        await asyncio.sleep(0.05)

    lease.ensure_held()
    await lease.release()


async def test_waiter_ahead_by_less_than_the_skew_waits_for_the_holder_to_stop_trusting(
    driver: Driver,
) -> None:
    """With the holder's heartbeat stopped, a waiter 0.3 s ahead acquires only after the holder
    has stopped trusting its lease (the margin plus the unused skew protect it)."""
    holder = await driver.ready_lock(config=SKEWED)
    ahead = await driver.lock(config=SKEWED, clock=SkewedClock(+AHEAD))
    stale = await holder.acquire("key")
    stale.stop_heartbeat()

    lease = await ahead.acquire("key", timeout=5)

    assert stale.lost, "the skewed waiter got the key while the holder still trusted it"
    unused_skew_ms = (0.4 - AHEAD) * 1000
    assert time.time() * 1000 >= stale.raw.grant.expires_at_ms + unused_skew_ms
    assert lease.token > stale.token
    await lease.release()


_KILLED_HOLDER = textwrap.dedent(
    """
    import sys, time, boto3
    from locks import LeaseLock, LockConfig
    endpoint, table = sys.argv[1], sys.argv[2]
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    config = LockConfig(lease_seconds=0.8, heartbeat_seconds=0.1, max_clock_skew_seconds=0.1,
                        retry_base_seconds=0.01, retry_cap_seconds=0.05)
    lease = LeaseLock(table, client=client, config=config, owner="doomed").acquire("key")
    print("TOKEN", lease.token, flush=True)
    time.sleep(600)
    """
)


def _read_token(stdout: Any) -> int:
    for line in stdout:  # the holder's structlog output shares stdout
        if line.startswith("TOKEN "):
            return int(line.split()[1])
    raise AssertionError("the holder process exited without a lease")


async def test_sigkilled_holder_loses_the_key_within_lease_plus_one_wait_step(
    driver: Driver,
) -> None:
    """A holder process killed with SIGKILL (no release) loses the key after its lease runs out;
    the waiter that was already waiting gets it with a greater token."""
    if driver.backend != "moto":
        pytest.skip(
            "a process's death is backend-independent; dynalite runs the stopped-heartbeat tests"
        )
    waiter = await driver.ready_lock(config=SHORT, owner="survivor")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
        [sys.executable, "-c", _KILLED_HOLDER, driver.endpoint, driver.table_name],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        doomed_token = await asyncio.wait_for(asyncio.to_thread(_read_token, proc.stdout), 20)
        acquiring = asyncio.ensure_future(waiter.acquire("key", timeout=10))
        await asyncio.sleep(0.3)  # the waiter is waiting, the holder renewing
        assert not acquiring.done()
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        lease = await acquiring
        waited = time.monotonic() - killed
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    assert lease.token > doomed_token
    # the last renewal was before the kill: expiry + skew + one capped wait step
    assert waited < LEASE + SKEW + CAP + SLACK
    await lease.release()
