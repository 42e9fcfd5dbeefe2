"""ensure_table() and a missing table, on both drivers and both DynamoDB implementations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from locks import LockConfig, TableNotFound
from tests.integration.locks._adapters import Driver

pytestmark = pytest.mark.integration
FRESH_TABLE = True  # these tests create the table themselves

LONG = LockConfig(lease_seconds=30)


def _record_statuses(client: Any) -> list[tuple[str, str]]:
    """(operation, TableStatus) of every CreateTable/DescribeTable answer."""
    seen: list[tuple[str, str]] = []

    def after(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        table = parsed.get("Table") or parsed.get("TableDescription") or {}
        if "TableStatus" in table:
            seen.append((model.name, table["TableStatus"]))

    client.meta.events.register("after-call.dynamodb", after)
    return seen


async def test_ensure_table_creates_an_active_pay_per_request_table(driver: Driver) -> None:
    """A missing table is created on demand and is ACTIVE when ensure_table returns."""
    lock = await driver.lock(config=LONG)
    statuses = _record_statuses(lock.client)

    await lock.ensure_table()

    table = driver.admin.describe_table(TableName=driver.table_name)["Table"]
    assert "ACTIVE" == table["TableStatus"]
    assert [{"AttributeName": "pk", "KeyType": "HASH"}] == table["KeySchema"]
    assert "PAY_PER_REQUEST" == table["BillingModeSummary"]["BillingMode"]
    assert ("CreateTable", "CREATING" if driver.backend == "dynalite" else "ACTIVE") in statuses
    assert "ACTIVE" == statuses[-1][1]


async def test_ensure_table_waits_for_asynchronous_creation(driver: Driver) -> None:
    """dynalite creates tables asynchronously (CREATING, then ACTIVE): the lock is usable at once."""
    lock = await driver.lock(config=LONG)
    statuses = _record_statuses(lock.client)

    await lock.ensure_table()
    lease = await lock.acquire("key", timeout=1)
    await lease.release()

    if driver.backend == "dynalite":
        assert ("CreateTable", "CREATING") == statuses[0]
        assert ("DescribeTable", "ACTIVE") == statuses[-1]
    assert lease.token > 0


async def test_ensure_table_is_a_no_op_when_the_table_exists(driver: Driver) -> None:
    """A second ensure_table neither creates nor waits, and keeps existing leases."""
    lock = await driver.ready_lock(config=LONG)
    lease = await lock.acquire("key")
    calls = lock.record_calls()

    await lock.ensure_table()

    assert "CreateTable" not in calls
    if driver.backend == "moto":  # dynalite reports TTL DISABLED and rejects enabling it
        assert ["DescribeTable", "DescribeTimeToLive"] == calls
    info = await lock.describe("key")
    assert info is not None
    assert lease.token == info.token
    await lease.release()


async def test_concurrent_ensure_table_calls_all_succeed(driver: Driver) -> None:
    """Several processes may ensure the same table at once: a lost creation race is fine."""
    locks = [await driver.lock(config=LONG) for _ in range(2)]
    locks.append(await driver.opposite().lock(config=LONG))

    await asyncio.gather(*(lock.ensure_table() for lock in locks))

    table = driver.admin.describe_table(TableName=driver.table_name)["Table"]
    assert "ACTIVE" == table["TableStatus"]


async def test_ensure_table_enables_ttl_on_cleanup_at_where_supported(driver: Driver) -> None:
    """moto gets TTL on ``cleanup_at``; dynalite has no TTL API, so a warning is logged instead."""
    lock = await driver.lock(config=LONG)

    with structlog.testing.capture_logs() as logs:
        await lock.ensure_table()

    warnings = [e for e in logs if e["event"] == "lease_table_ttl_unsupported"]
    if driver.backend == "dynalite":
        assert [{"event": "lease_table_ttl_unsupported", "table": driver.table_name}] == [
            {k: e[k] for k in ("event", "table")} for e in warnings
        ]
        assert "warning" == warnings[0]["log_level"]
        return
    ttl = driver.admin.describe_time_to_live(TableName=driver.table_name)
    assert {"TimeToLiveStatus": "ENABLED", "AttributeName": "cleanup_at"} == ttl[
        "TimeToLiveDescription"
    ]
    assert [] == warnings


async def test_acquire_on_a_missing_table_raises_table_not_found(driver: Driver) -> None:
    """A missing table is a clear error that names the table, not a generic backend error."""
    lock = await driver.lock(config=LONG, table_name="leases-does-not-exist")

    with pytest.raises(TableNotFound) as caught:
        await lock.acquire("key", timeout=1)

    assert "leases-does-not-exist" == caught.value.table_name
    assert "leases-does-not-exist" in str(caught.value)
    assert "ResourceNotFoundException" == caught.value.code
    assert caught.value.__cause__ is caught.value.cause


async def test_try_acquire_on_a_missing_table_raises_table_not_found(driver: Driver) -> None:
    """try_acquire reports a missing table too, rather than 'held by someone'."""
    lock = await driver.lock(config=LONG, table_name="leases-does-not-exist")

    with pytest.raises(TableNotFound, match="leases-does-not-exist"):
        await lock.try_acquire("key")
