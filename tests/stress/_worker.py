"""One OS process of the lease stress test: threads on a ``LeaseLock`` and tasks on an
``AsyncLeaseLock``, all contending for one key.

Run as ``python -m tests.stress._worker '<json spec>'``. The process prints ``READY``,
waits for a line on stdin (so all processes start together), runs its workers and
writes a JSON summary to ``spec["summary"]``.

While holding the lease, each worker appends ``start <token> <worker>`` and then
``end <token> <worker>`` to one shared file opened with ``O_APPEND``; each line is
one ``write``, so the file's line order is a record of the critical sections that
does not depend on any clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aioboto3
import boto3
import structlog
from botocore.config import Config

from locks import AsyncLeaseLock, LeaseLock, LeaseLost, LeaseUnavailable, LockConfig

REGION = "us-east-1"


@dataclass
class Stats:
    worker: str
    count: int = 0
    waits_ms: list[float] = field(default_factory=list)
    lost: int = 0
    errors: list[str] = field(default_factory=list)


def _client_config() -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=2,
        read_timeout=5,
        max_pool_connections=64,
    )


class Run:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.key: str = spec["key"]
        self.hold = spec["hold_ms"] / 1000
        self.iterations: int | None = spec.get("iterations")
        self.deadline: float | None = None  # wall clock, set at GO when running for a duration
        self.config = LockConfig(**spec["config"])
        self.fd = os.open(spec["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.calls: Counter[str] = Counter()

    def count_calls(self, client: Any) -> None:
        def count(model: Any, **_: Any) -> None:
            self.calls[model.name] += 1

        client.meta.events.register("before-call.dynamodb", count)

    def record(self, what: str, token: int, worker: str) -> None:
        os.write(self.fd, f"{what} {token} {worker}\n".encode())

    def more(self, stats: Stats) -> bool:
        if self.iterations is not None:
            return stats.count < self.iterations
        assert self.deadline is not None
        return time.time() < self.deadline

    def timeout(self) -> float:
        if self.deadline is None:
            return float(self.spec["acquire_timeout"])
        return max(0.0, self.deadline - time.time())

    # --- threads ------------------------------------------------------------

    def thread_worker(self, lock: LeaseLock, stats: Stats) -> None:
        while self.more(stats):
            asked = time.monotonic()
            try:
                lease = lock.acquire(self.key, timeout=self.timeout())
            except LeaseUnavailable as exc:  # AcquireTimeout, or timeout 0 at the deadline
                if self.deadline is None:
                    stats.errors.append(repr(exc))
                return
            stats.waits_ms.append((time.monotonic() - asked) * 1000)
            try:
                with lease:
                    self.record("start", lease.token, stats.worker)
                    time.sleep(self.hold)
                    self.record("end", lease.token, stats.worker)
            except LeaseLost:
                stats.lost += 1
            stats.count += 1

    # --- tasks --------------------------------------------------------------

    async def task_worker(self, lock: AsyncLeaseLock, stats: Stats) -> None:
        while self.more(stats):
            asked = time.monotonic()
            try:
                lease = await lock.acquire(self.key, timeout=self.timeout())
            except LeaseUnavailable as exc:  # AcquireTimeout, or timeout 0 at the deadline
                if self.deadline is None:
                    stats.errors.append(repr(exc))
                return
            stats.waits_ms.append((time.monotonic() - asked) * 1000)
            try:
                async with lease:
                    self.record("start", lease.token, stats.worker)
                    await asyncio.sleep(self.hold)
                    self.record("end", lease.token, stats.worker)
            except LeaseLost:
                stats.lost += 1
            stats.count += 1

    async def main(self) -> list[Stats]:
        spec = self.spec
        endpoint = spec["endpoint"]
        name = spec["name"]
        client = boto3.client(
            "dynamodb", endpoint_url=endpoint, region_name=REGION, config=_client_config()
        )
        self.count_calls(client)
        sync_lock = LeaseLock(spec["table"], client=client, config=self.config, owner=f"{name}-t")
        session = aioboto3.Session()
        async with session.client(
            "dynamodb", endpoint_url=endpoint, region_name=REGION, config=_client_config()
        ) as aclient:
            self.count_calls(aclient)
            async_lock = AsyncLeaseLock(
                spec["table"], client=aclient, config=self.config, owner=f"{name}-a"
            )
            thread_stats = [Stats(f"{name}-thread{i}") for i in range(spec["threads"])]
            task_stats = [Stats(f"{name}-task{i}") for i in range(spec["tasks"])]
            print("READY", flush=True)
            sys.stdin.readline()  # GO
            if spec.get("duration") is not None:
                self.deadline = time.time() + spec["duration"]
            threads = [
                threading.Thread(target=self._guard, args=(self.thread_worker, sync_lock, s))
                for s in thread_stats
            ]
            for thread in threads:
                thread.start()
            results = await asyncio.gather(
                *(self.task_worker(async_lock, s) for s in task_stats), return_exceptions=True
            )
            for stats, result in zip(task_stats, results, strict=True):
                if isinstance(result, BaseException):
                    stats.errors.append(repr(result))
            for thread in threads:
                await asyncio.to_thread(thread.join)
        client.close()
        os.close(self.fd)
        return thread_stats + task_stats

    @staticmethod
    def _guard(target: Any, lock: LeaseLock, stats: Stats) -> None:
        try:
            target(lock, stats)
        except Exception as exc:
            stats.errors.append(repr(exc))


def main() -> None:
    spec = json.loads(sys.argv[1])
    # Quiet: only lease_lost and other warnings, on stderr.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    run = Run(spec)
    stats = asyncio.run(run.main())
    with Path(spec["summary"]).open("w", encoding="utf-8") as out:
        json.dump({"workers": [asdict(s) for s in stats], "calls": dict(run.calls)}, out)


if __name__ == "__main__":
    main()
