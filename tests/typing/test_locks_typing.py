"""Static checks of the public API of ``locks`` (run mypy on this file).

The functions below are never called; mypy checks each ``assert_type``. The file
type-checks with ``mypy tests/typing`` under the repository's configuration.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type, get_type_hints

from locks import (
    AcquireTimeout,
    AsyncLease,
    AsyncLeaseLock,
    Grant,
    Lease,
    LeaseInfo,
    LeaseLock,
    LeaseLost,
    LeaseUnavailable,
    LockBackendError,
    LockConfig,
    LockError,
)


def check_sync_lock(lock: LeaseLock) -> None:
    assert_type(lock.acquire("key"), Lease)
    assert_type(lock.acquire("key", timeout=1.5), Lease)
    assert_type(lock.acquire("key", timeout=None), Lease)
    assert_type(lock.try_acquire("key"), Lease | None)
    assert_type(lock.describe("key"), LeaseInfo | None)
    assert_type(lock.ensure_table(), None)
    assert_type(lock.config, LockConfig)
    assert_type(lock.owner, str)
    assert_type(lock.table_name, str)
    with lock as opened:
        assert_type(opened, LeaseLock)


def check_sync_lease(lease: Lease) -> None:
    assert_type(lease.token, int)
    assert_type(lease.key, str)
    assert_type(lease.owner, str)
    assert_type(lease.grant, Grant)
    assert_type(lease.lost, bool)
    assert_type(lease.remaining(), float)
    assert_type(lease.waited_ms, float)
    assert_type(lease.ensure_held(), None)
    assert_type(lease.renew(), None)
    assert_type(lease.release(), None)
    assert_type(lease.data, dict[str, Any])
    assert_type(lease.update(set_attributes={"a": 1}, remove_attributes=["b"]), None)
    assert_type(lease.release(set_attributes={"a": 1}, remove_attributes=("b",)), None)
    with lease as held:
        assert_type(held, Lease)


def check_sync_data(lock: LeaseLock) -> None:
    assert_type(lock.acquire("key", set_attributes={"intent": "x"}), Lease)
    assert_type(lock.try_acquire("key", set_attributes={"intent": "x"}), Lease | None)
    assert_type(lock.peek("key"), dict[str, Any] | None)


async def check_async_data(lock: AsyncLeaseLock) -> None:
    lease = await lock.acquire("key", set_attributes={"intent": "x"})
    assert_type(lease.data, dict[str, Any])
    assert_type(await lock.peek("key"), dict[str, Any] | None)
    assert_type(await lease.update(set_attributes={"a": 1}), None)
    assert_type(await lease.release(remove_attributes=["a"]), None)


def check_async_lock(lock: AsyncLeaseLock) -> None:
    acquiring = assert_type(lock.acquire("key"), Coroutine[Any, Any, AsyncLease])
    trying = assert_type(lock.try_acquire("key"), Coroutine[Any, Any, AsyncLease | None])
    describing = assert_type(lock.describe("key"), Coroutine[Any, Any, LeaseInfo | None])
    ensuring = assert_type(lock.ensure_table(), Coroutine[Any, Any, None])
    for coroutine in (acquiring, trying, describing, ensuring):
        coroutine.close()


async def check_async_awaited(lock: AsyncLeaseLock) -> None:
    assert_type(await lock.acquire("key", timeout=2.0), AsyncLease)
    assert_type(await lock.try_acquire("key"), AsyncLease | None)
    async with lock as opened:
        assert_type(opened, AsyncLeaseLock)
    lease = await lock.acquire("key")
    assert_type(lease.token, int)
    assert_type(lease.grant, Grant)
    assert_type(lease.lost, bool)
    assert_type(lease.remaining(), float)
    assert_type(lease.ensure_held(), None)
    renewing = assert_type(lease.renew(), Coroutine[Any, Any, None])
    await renewing
    assert_type(await lease.release(), None)
    async with lease as held:
        assert_type(held, AsyncLease)


def check_values_and_errors(config: LockConfig, grant: Grant, info: LeaseInfo) -> None:
    assert_type(config.lease_ms, int)
    assert_type(config.skew_ms, int)
    assert_type(config.heartbeat, float)
    assert_type(grant.token, int)
    assert_type(grant.trusted_until_ms, float)
    assert_type(info.token, int | None)
    assert_type(info.owner, str | None)
    try:
        pass
    except AcquireTimeout as timeout:
        assert_type(timeout.waited_ms, float)
        assert_type(timeout.holder, str | None)
    except LeaseUnavailable as unavailable:
        assert_type(unavailable.expires_at, int | None)
    except LeaseLost as lost:
        assert_type(lost.token, int)
        assert_type(lost.reason, str)
    except LockBackendError as backend:
        assert_type(backend.code, str | None)
        assert_type(backend.cause, BaseException | None)
    except LockError:
        pass


def test_runtime_annotations_match_the_static_checks():
    """The annotations mypy checks above are the ones the classes carry at runtime."""
    expected = {
        "LeaseLock.acquire": Lease,
        "LeaseLock.try_acquire": Lease | None,
        "Lease.renew": type(None),
    }
    actual = {
        "LeaseLock.acquire": get_type_hints(LeaseLock.acquire)["return"],
        "LeaseLock.try_acquire": get_type_hints(LeaseLock.try_acquire)["return"],
        "Lease.renew": get_type_hints(Lease.renew)["return"],
    }

    assert expected == actual
