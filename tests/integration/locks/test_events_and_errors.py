"""structlog events, botocore retries of throttling/5xx, and backend errors with their code.

Errors are injected with a ``before-send`` hook on the lock's own client, so the
retry path is botocore's real one on both drivers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import structlog
from botocore.exceptions import ClientError

from locks import LockBackendError, LockConfig, LockError
from tests.integration.locks._adapters import Driver, eventually

pytestmark = pytest.mark.integration

LONG = LockConfig(lease_seconds=30)
SHORT = LockConfig(
    lease_seconds=0.8, max_clock_skew_seconds=0.1, retry_base_seconds=0.01, retry_cap_seconds=0.05
)


def _events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_acquire_and_release_log_key_owner_token_and_wait(driver: Driver) -> None:
    """lease_acquired carries key, owner, token and waited_ms; lease_released the first three."""
    lock = await driver.ready_lock(config=LONG, owner="worker-a")

    with structlog.testing.capture_logs() as logs:
        started = time.monotonic()
        lease = await lock.acquire("key")
        took_ms = (time.monotonic() - started) * 1000
        await lease.release()

    [acquired] = _events(logs, "lease_acquired")
    assert {"key": "key", "owner": "worker-a", "token": lease.token, "log_level": "info"} == {
        k: acquired[k] for k in ("key", "owner", "token", "log_level")
    }
    assert isinstance(acquired["waited_ms"], float)
    assert 0 <= acquired["waited_ms"] <= took_ms
    [released] = _events(logs, "lease_released")
    assert {"key": "key", "owner": "worker-a", "token": lease.token, "log_level": "info"} == {
        k: released[k] for k in ("key", "owner", "token", "log_level")
    }


async def test_waited_ms_reports_the_time_spent_waiting(driver: Driver) -> None:
    """A waiter's lease_acquired event says how long it waited for the holder."""
    holder = await driver.ready_lock(config=LONG)
    waiter = await driver.lock(config=SHORT, owner="waiter")
    lease = await holder.acquire("key")

    with structlog.testing.capture_logs() as logs:
        calls = waiter.record_calls()
        started = time.monotonic()
        acquiring = asyncio.ensure_future(waiter.acquire("key", timeout=5))
        await eventually(lambda: bool(calls), timeout=5, what="the waiter's first attempt")
        await asyncio.sleep(0.3)
        await lease.release()
        theirs = await acquiring
        took_ms = (time.monotonic() - started) * 1000

    [acquired] = [e for e in _events(logs, "lease_acquired") if e["owner"] == "waiter"]
    assert 300 <= acquired["waited_ms"] <= took_ms  # from its first attempt to its grant
    assert theirs.waited_ms == acquired["waited_ms"]
    await theirs.release()


async def test_heartbeat_logs_renewals(driver: Driver) -> None:
    """Each renewal is a lease_renewed event (debug) with key, owner and token."""
    config = LockConfig(lease_seconds=10, heartbeat_seconds=0.1)
    lock = await driver.ready_lock(config=config, owner="worker-a")

    with structlog.testing.capture_logs() as logs:
        lease = await lock.acquire("key")
        await eventually(lambda: bool(_events(logs, "lease_renewed")), timeout=2)
        await lease.release()

    renewed = _events(logs, "lease_renewed")[0]
    assert {"key": "key", "owner": "worker-a", "token": lease.token} == {
        k: renewed[k] for k in ("key", "owner", "token")
    }


async def test_lost_lease_logs_lease_lost_once(driver: Driver) -> None:
    """A lost lease is one lease_lost warning with key, owner, token and the reason."""
    lock = await driver.ready_lock(config=SHORT, owner="worker-a")

    with structlog.testing.capture_logs() as logs:
        lease = await lock.acquire("key")
        driver.admin.delete_item(TableName=driver.table_name, Key={"pk": {"S": "key"}})
        await eventually(lambda: lease.lost, timeout=2, what="lease.lost")
        await lease.release()

    [lost] = _events(logs, "lease_lost")
    assert {"key": "key", "owner": "worker-a", "token": lease.token, "log_level": "warning"} == {
        k: lost[k] for k in ("key", "owner", "token", "log_level")
    }
    assert lost["reason"]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "ProvisionedThroughputExceededException"),
        (500, "InternalServerError"),
    ],
)
async def test_throttling_and_5xx_are_retried_by_botocore(
    driver: Driver, status: int, code: str
) -> None:
    """A throttled or failed-server acquire is retried transparently and then succeeds."""
    lock = await driver.ready_lock(config=LONG)
    injector = lock.inject("UpdateItem", status, code, times=1)

    lease = await lock.acquire("key", timeout=5)

    assert (1, 1) == (injector.injected, injector.passed)
    await lease.release()


async def test_persistent_throttling_surfaces_as_backend_error_with_code(driver: Driver) -> None:
    """Throttling that outlasts botocore's retries is a LockBackendError carrying the code."""
    lock = await driver.ready_lock(config=LONG, max_attempts=1)
    injector = lock.inject("UpdateItem", 400, "ProvisionedThroughputExceededException", times=99)

    with pytest.raises(LockBackendError) as caught:
        await lock.acquire("key", timeout=5)

    assert "ProvisionedThroughputExceededException" == caught.value.code
    assert 1 + 1 == injector.injected  # botocore's max_attempts counts retries
    assert isinstance(caught.value.cause, ClientError)
    assert caught.value.__cause__ is caught.value.cause


async def test_other_errors_surface_at_once_with_the_dynamodb_code(driver: Driver) -> None:
    """A non-retryable DynamoDB error is not retried and surfaces as LockBackendError(.code)."""
    lock = await driver.ready_lock(config=LONG)
    injector = lock.inject("UpdateItem", 400, "AccessDeniedException", times=1)

    with pytest.raises(LockBackendError) as caught:
        await lock.acquire("key", timeout=5)

    assert "AccessDeniedException" == caught.value.code
    assert isinstance(caught.value, LockError)
    assert (1, 0) == (injector.injected, injector.passed)
    assert "AccessDeniedException" in str(caught.value)


async def test_real_validation_error_surfaces_with_its_code(driver: Driver) -> None:
    """An error the server itself returns (a key over DynamoDB's 2048 bytes) keeps its code."""
    lock = await driver.ready_lock(config=LONG)

    with pytest.raises(LockBackendError) as caught:
        await lock.acquire("k" * 4096, timeout=1)

    assert "ValidationException" == caught.value.code


async def test_failed_release_raises_backend_error_and_the_lease_can_expire(
    driver: Driver,
) -> None:
    """A release that cannot reach DynamoDB raises LockBackendError; the key frees on expiry."""
    lock = await driver.ready_lock(config=SHORT)
    other = await driver.lock(config=SHORT)
    lease = await lock.acquire("key")
    lease.stop_heartbeat()  # a renewal would meet the injected error instead of the release
    await lease.heartbeat_done()
    lock.inject("UpdateItem", 400, "AccessDeniedException", times=1)

    with pytest.raises(LockBackendError):
        await lease.release()

    started = time.monotonic()
    theirs = await other.acquire("key", timeout=3)
    assert time.monotonic() - started < 0.8 + 0.1 + 2.0  # lease + skew + slack for a busy host
    await theirs.release()
