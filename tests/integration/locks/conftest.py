"""Fixtures of the lease integration tests: one uniform async facade over both drivers.

Every test takes ``driver`` and so runs four times: sync and async drivers, each
against moto (LocalAWS) and dynalite over HTTP on 127.0.0.1. The sync driver is
driven through ``asyncio.to_thread`` so one test body serves both.

Tests get a table of their own. Modules that test table creation
(``FRESH_TABLE = True``) get the fresh name from ``table_name``; the others take
an already created table from a pool, because dynalite creates tables
asynchronously (200 ms each here) and a hundred tests would wait for it in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from locks import LeaseLock
from tests.integration.locks._adapters import Driver, admin_client

POOL_BATCH = 48


class TablePool:
    """Lease tables created in batches, handed out one per test."""

    def __init__(self) -> None:
        self._free: dict[str, list[str]] = {}
        self._clients: list[Any] = []

    def take(self, endpoint: str, fresh_name: str) -> str:
        free = self._free.setdefault(endpoint, [])
        if not free:
            names = [f"{fresh_name}-{n}" for n in range(POOL_BATCH)]
            client = admin_client(endpoint)
            self._clients.append(client)
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(lambda name: _create(client, name), names))
            free.extend(names)
        return free.pop()

    def close(self) -> None:
        for client in self._clients:
            client.close()


def _create(client: Any, name: str) -> None:
    LeaseLock(name, client=client).ensure_table(poll_seconds=0.05)


@pytest.fixture(scope="session")
def table_pool() -> Iterator[TablePool]:
    pool = TablePool()
    yield pool
    pool.close()


@pytest.fixture(params=["sync", "async"])
async def driver(
    request: pytest.FixtureRequest,
    dynamodb_endpoint: str,
    table_name: str,
    table_pool: TablePool,
) -> AsyncIterator[Driver]:
    """Makes locks of one driver kind on a table of its own of one DynamoDB implementation."""
    backend = request.node.callspec.params["dynamodb_endpoint"]
    if not getattr(request.module, "FRESH_TABLE", False):
        table_name = table_pool.take(dynamodb_endpoint, table_name)
    loop = asyncio.get_running_loop()
    # Blocking sync calls run in threads; several waiters may block at once.
    executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="sync-driver")
    loop.set_default_executor(executor)
    async with contextlib.AsyncExitStack() as stack:
        yield Driver(request.param, backend, dynamodb_endpoint, table_name, stack)
    await loop.shutdown_default_executor()
