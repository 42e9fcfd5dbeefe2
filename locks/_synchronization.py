"""What the two drivers do differently, as async and sync twins of one interface.

``_async.py`` uses the ``Async*`` / ``async_*`` names; ``scripts/unasync.py``
renames them to the twins below them when it writes ``_sync.py``. Everything
else the drivers do is the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from locks._common import botocore_config
from locks._models import Grant, LockConfig

if TYPE_CHECKING:
    import aioboto3
    import boto3
    from types_aiobotocore_dynamodb import DynamoDBClient as AsyncDynamoDBClient
    from types_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")

# How a waiter sleeps between attempts: True when woken early, or a handed-over grant.
AsyncSleepFn = Callable[[float], Awaitable[bool | Grant]]
SleepFn = Callable[[float], bool | Grant]


# --- asyncio ------------------------------------------------------------------------


class AsyncLock:
    """Serializes coroutines (one lease's renewals and release)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()


class AsyncThreadLock:
    """Guards state shared between threads: a no-op, the event loop runs one at a time."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


class AsyncEvent:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float | None = None) -> bool:
        """Whether the event was set within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


class AsyncCondition(AsyncThreadLock):
    """Wait until a predicate holds; ``with`` guards the state it reads.

    ``notify_all`` is not a coroutine, so a waiter cancelled while leaving a
    queue still wakes the others.
    """

    def __init__(self) -> None:
        self._wakes: set[asyncio.Event] = set()

    def notify_all(self) -> None:
        for wake in self._wakes:
            wake.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Whether ``predicate`` held within ``timeout`` seconds (checked first: 0 works)."""
        if predicate():
            return True
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    wake = asyncio.Event()
                    self._wakes.add(wake)
                    try:
                        await wake.wait()
                    finally:
                        self._wakes.discard(wake)
        except TimeoutError:
            return False
        return True


class AsyncBackground:
    """A heartbeat running beside its lease: a task."""

    def __init__(self, target: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._task = asyncio.create_task(target(), name=name)

    async def stopped(self) -> None:
        """After its stop was set: wait for the task to end, a renewal in flight included,
        so no task outlives its lease (at once when called from the heartbeat itself)."""
        if asyncio.current_task() is not self._task:
            await asyncio.gather(self._task, return_exceptions=True)


async def async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def async_shield(awaitable: Awaitable[T]) -> T:
    """Let ``awaitable`` finish even if the caller is cancelled again meanwhile."""
    return await asyncio.shield(awaitable)


def async_default_client(
    session: aioboto3.Session | None,  # noqa: ARG001 - the sync twin's signature
    config: LockConfig,  # noqa: ARG001
) -> AsyncDynamoDBClient | None:
    """None: an aiobotocore client is opened on ``async with`` the lock."""
    return None


async def async_open_client(
    stack: contextlib.AsyncExitStack, session: aioboto3.Session | None, config: LockConfig
) -> AsyncDynamoDBClient:
    import aioboto3  # noqa: PLC0415 - only a lock that opens its own client needs it

    session = session or aioboto3.Session()
    client: AsyncDynamoDBClient = await stack.enter_async_context(
        session.client("dynamodb", config=botocore_config(config))
    )
    return client


# --- threads ------------------------------------------------------------------------


class Lock:
    """Serializes threads (one lease's renewals and release)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


class ThreadLock(Lock):
    """Guards state shared between threads."""


class Event:
    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the event was set within ``timeout`` seconds."""
        return self._event.wait(timeout)


class Condition:
    """Wait until a predicate holds; ``with`` guards the state it reads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()

    def __enter__(self) -> None:
        self._cond.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._cond.release()

    def notify_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Whether ``predicate`` held within ``timeout`` seconds (checked first: 0 works)."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)


class Background:
    """A heartbeat running beside its lease: a daemon thread."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()

    def stopped(self) -> None:
        """After its stop was set: return at once. A renewal in flight holds the lease's
        I/O lock, which the release's write waits for; the thread then ends by itself.
        (Joining would make every hand-off wait for the heartbeat thread's turn.)"""


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def shield(value: T) -> T:
    """Threads are not cancelled: the call has finished already."""
    return value


def default_client(session: boto3.Session | None, config: LockConfig) -> DynamoDBClient:
    """A client of ``session`` (default: the standard AWS chain)."""
    import boto3  # noqa: PLC0415 - a lock given a client never needs it

    return (session or boto3.Session()).client("dynamodb", config=botocore_config(config))


def open_client(
    stack: contextlib.ExitStack, session: boto3.Session | None, config: LockConfig
) -> DynamoDBClient:
    client = default_client(session, config)
    stack.callback(client.close)
    return client
