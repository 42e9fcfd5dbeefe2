"""Fixtures of the lease integration tests: one uniform async facade over both drivers.

Every test takes ``driver`` and so runs four times: sync and async drivers, each
against moto (LocalAWS) and dynalite over HTTP on 127.0.0.1. The sync driver is
driven through ``asyncio.to_thread`` so one test body serves both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.locks._adapters import Driver


@pytest.fixture(params=["sync", "async"])
async def driver(
    request: pytest.FixtureRequest, dynamodb_endpoint: str, table_name: str
) -> AsyncIterator[Driver]:
    """Makes locks of one driver kind on a fresh table of one DynamoDB implementation."""
    backend = request.node.callspec.params["dynamodb_endpoint"]
    loop = asyncio.get_running_loop()
    # Blocking sync calls run in threads; several waiters may block at once.
    executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="sync-driver")
    loop.set_default_executor(executor)
    async with contextlib.AsyncExitStack() as stack:
        yield Driver(request.param, backend, dynamodb_endpoint, table_name, stack)
    await loop.shutdown_default_executor()
