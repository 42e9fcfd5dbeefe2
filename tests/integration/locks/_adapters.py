"""A uniform async facade over ``LeaseLock`` (via ``asyncio.to_thread``) and ``AsyncLeaseLock``.

Also small tools the tests share: skewed clocks, call counters, injected
DynamoDB error responses, and polling with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import aioboto3
import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config

from locks import (
    AsyncLease,
    AsyncLeaseLock,
    Lease,
    LeaseInfo,
    LeaseLock,
    LockConfig,
    LockError,
)

Kind = Literal["sync", "async"]
REGION = "us-east-1"


@functools.cache
def _session() -> aioboto3.Session:
    """One session for all async clients: each new session loads the service model again."""
    return aioboto3.Session()


def client_config(max_attempts: int = 4) -> Config:
    """What ``locks`` builds for itself, plus room for many threads on one client."""
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=2,
        read_timeout=5,
        max_pool_connections=64,
    )


def admin_client(endpoint: str) -> Any:
    """A plain boto3 client for arranging and inspecting the table behind the lock's back."""
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION)


class SkewedClock:
    """Wall clock in epoch ms plus an adjustable offset (a host whose clock is off)."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = offset_seconds

    def __call__(self) -> float:
        return (time.time() + self.offset_seconds) * 1000


async def eventually(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.02, what: str = ""
) -> float:
    """Poll ``predicate`` until true; returns the seconds it took, fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true after {timeout}s: {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - start


# --- injected DynamoDB answers (a ``before-send`` hook short-circuits the HTTP call) ---


class _Body:
    """A raw body both botocore (``stream``) and aiobotocore (``read``) can consume."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data

    async def read(self) -> bytes:
        return self._data


def error_response(kind: Kind, status: int, code: str, message: str = "injected") -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})
    headers = HTTPHeaders()
    headers["x-amzn-RequestId"] = "injected"
    headers["Content-Type"] = "application/x-amz-json-1.0"
    if kind == "async":
        from aiobotocore.awsrequest import AioAWSResponse

        return AioAWSResponse("http://injected", status, headers, _Body(body.encode()))
    return AWSResponse("http://injected", status, headers, _Body(body.encode()))


@dataclass(eq=False)
class Injector:
    """Answers the next ``times`` calls of ``operation`` with an error, then lets calls through."""

    kind: Kind
    operation: str
    status: int
    code: str
    times: int
    injected: int = 0
    passed: int = 0

    def __call__(self, **kwargs: Any) -> AWSResponse | None:
        if self.injected < self.times:
            self.injected += 1
            return error_response(self.kind, self.status, self.code)
        self.passed += 1
        return None


# --- the facade --------------------------------------------------------------------


@dataclass
class Held:
    """A held lease of either driver."""

    kind: Kind
    raw: Lease | AsyncLease

    @property
    def token(self) -> int:
        return self.raw.token

    @property
    def key(self) -> str:
        return self.raw.key

    @property
    def owner(self) -> str:
        return self.raw.owner

    @property
    def lost(self) -> bool:
        return self.raw.lost

    @property
    def waited_ms(self) -> float:
        return self.raw.waited_ms

    def ensure_held(self) -> None:
        self.raw.ensure_held()

    async def renew(self) -> None:
        if isinstance(self.raw, Lease):
            await asyncio.to_thread(self.raw.renew)
        else:
            await self.raw.renew()

    @property
    def data(self) -> dict[str, Any]:
        return self.raw.data

    async def release(self, **data: Any) -> None:
        if isinstance(self.raw, Lease):
            await asyncio.to_thread(functools.partial(self.raw.release, **data))
        else:
            await self.raw.release(**data)

    async def update(self, **data: Any) -> None:
        if isinstance(self.raw, Lease):
            await asyncio.to_thread(functools.partial(self.raw.update, **data))
        else:
            await self.raw.update(**data)

    def stop_heartbeat(self) -> None:
        """Stop renewing, as a frozen or partitioned holder would."""
        self.raw._stop.set()

    async def heartbeat_done(self) -> None:
        if isinstance(self.raw, Lease):
            await asyncio.to_thread(self.raw._beat._thread.join, 5)
        else:
            await asyncio.wait_for(asyncio.shield(self.raw._beat._task), 5)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(self.raw, Lease):
            await asyncio.to_thread(self.raw.__exit__, exc_type, exc, tb)
        else:
            await self.raw.__aexit__(exc_type, exc, tb)


@dataclass
class Locker:
    """A lock of either driver, with its own client."""

    kind: Kind
    raw: LeaseLock | AsyncLeaseLock
    client: Any
    held: list[Held] = field(default_factory=list)

    @property
    def owner(self) -> str:
        return self.raw.owner

    @property
    def table_name(self) -> str:
        return self.raw.table_name

    def record_calls(self) -> list[str]:
        """Names of the DynamoDB operations this lock's client sends from now on."""
        calls: list[str] = []

        def count(model: Any, **_: Any) -> None:
            calls.append(model.name)

        self.client.meta.events.register("before-call.dynamodb", count)
        return calls

    def inject(self, operation: str, status: int, code: str, times: int) -> Injector:
        injector = Injector(self.kind, operation, status, code, times)
        self.client.meta.events.register(f"before-send.dynamodb.{operation}", injector)
        return injector

    async def acquire_interrupted(self, key: str) -> BaseException:
        """Start an acquire and interrupt it inside its first UpdateItem: Ctrl-C for the
        sync driver (a KeyboardInterrupt raised in the call), a task cancelled while the
        call is in flight for the async one. Returns what the acquire raised."""
        if self.kind == "sync":
            return await asyncio.to_thread(self._acquire_with_ctrl_c, key)
        entered = asyncio.Event()

        async def hang(**_: Any) -> None:
            entered.set()
            await asyncio.Event().wait()

        self.client.meta.events.register("before-send.dynamodb.UpdateItem", hang)
        acquiring = asyncio.ensure_future(self.raw.acquire(key, timeout=5))  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(entered.wait(), 5)
            acquiring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquiring
        finally:
            self.client.meta.events.unregister("before-send.dynamodb.UpdateItem", hang)
        assert acquiring.cancelled()
        return asyncio.CancelledError()

    def _acquire_with_ctrl_c(self, key: str) -> BaseException:
        def ctrl_c(**_: Any) -> None:
            raise KeyboardInterrupt

        assert isinstance(self.raw, LeaseLock)
        self.client.meta.events.register("before-send.dynamodb.UpdateItem", ctrl_c)
        try:
            self.raw.acquire(key, timeout=5)
        except KeyboardInterrupt as interrupt:  # caught here: it must not reach the event loop
            return interrupt
        finally:
            self.client.meta.events.unregister("before-send.dynamodb.UpdateItem", ctrl_c)
        raise AssertionError("the acquire was not interrupted")

    def queued(self, key: str) -> int:
        """How many of this lock's local waiters are queued on ``key``."""
        return len(self.raw._queue._queues.get(key, ()))

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method: Callable[..., Any] = getattr(self.raw, name)
        if self.kind == "sync":
            return await asyncio.to_thread(method, *args, **kwargs)
        result: Awaitable[Any] = method(*args, **kwargs)
        return await result

    async def ensure_table(self, **kwargs: Any) -> None:
        await self._call("ensure_table", **{"poll_seconds": 0.05, **kwargs})

    def _wrap(self, raw: Lease | AsyncLease | None) -> Held | None:
        if raw is None:
            return None
        held = Held(self.kind, raw)
        self.held.append(held)
        return held

    async def acquire(self, key: str, timeout: float | None = None, **data: Any) -> Held:
        held = self._wrap(await self._call("acquire", key, timeout, **data))
        assert held is not None
        return held

    async def try_acquire(self, key: str) -> Held | None:
        return self._wrap(await self._call("try_acquire", key))

    async def peek(self, key: str) -> dict[str, Any] | None:
        data: dict[str, Any] | None = await self._call("peek", key)
        return data

    async def describe(self, key: str) -> LeaseInfo | None:
        info: LeaseInfo | None = await self._call("describe", key)
        return info


class Driver:
    """Makes locks of one kind on one endpoint; releases what tests left held."""

    def __init__(
        self,
        kind: Kind,
        backend: str,
        endpoint: str,
        table_name: str,
        stack: contextlib.AsyncExitStack,
    ) -> None:
        self.kind = kind
        self.backend = backend
        self.endpoint = endpoint
        self.table_name = table_name
        self._stack = stack
        self.admin = admin_client(endpoint)
        stack.callback(self.admin.close)

    def opposite(self) -> Driver:
        """The other driver kind on the same endpoint and table."""
        other: Kind = "async" if self.kind == "sync" else "sync"
        return Driver(other, self.backend, self.endpoint, self.table_name, self._stack)

    async def lock(
        self,
        *,
        config: LockConfig | None = None,
        table_name: str | None = None,
        owner: str | None = None,
        clock: Callable[[], float] | None = None,
        max_attempts: int = 4,
    ) -> Locker:
        table = table_name or self.table_name
        botocore_config = client_config(max_attempts)
        raw: LeaseLock | AsyncLeaseLock
        client: Any
        if self.kind == "sync":
            client = boto3.client(
                "dynamodb", endpoint_url=self.endpoint, region_name=REGION, config=botocore_config
            )
            self._stack.callback(client.close)
            raw = LeaseLock(table, client=client, config=config, owner=owner, clock=clock)
        else:
            client = await self._stack.enter_async_context(
                _session().client(
                    "dynamodb",
                    endpoint_url=self.endpoint,
                    region_name=REGION,
                    config=botocore_config,
                )
            )
            raw = AsyncLeaseLock(table, client=client, config=config, owner=owner, clock=clock)
        locker = Locker(self.kind, raw, client)
        # Runs before the client closes (the stack unwinds in reverse).
        self._stack.push_async_callback(self._release_leftovers, locker)
        return locker

    async def ready_lock(self, **kwargs: Any) -> Locker:
        """A lock whose table exists."""
        locker = await self.lock(**kwargs)
        await locker.ensure_table()
        return locker

    @staticmethod
    async def _release_leftovers(locker: Locker) -> None:
        for held in locker.held:
            with contextlib.suppress(LockError):
                await held.release()
