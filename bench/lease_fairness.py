"""Fairness and throughput of one contended lease: pushgate's `locks` against
python-dynamodb-lock (default timings), in one run, on one embedded moto server.

    .venv/bin/pip install python-dynamodb-lock==0.9.1   # the peer, for this bench only
    .venv/bin/python bench/lease_fairness.py [--workers 16] [--seconds 30] [--hold-ms 100]

Each worker is its own lock client (its own owner, like a separate host) and loops:
acquire the one key, hold it for --hold-ms, release. It prints, per implementation,
how many workers were served at least once, acquisitions, wait percentiles, and the
ratios between the two measured in this run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locks import AcquireTimeout, LeaseLock, LockConfig
from tests.servers import free_port, wait_for_port

KEY = "team/app:latest"


def client(endpoint: str):
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy
    )


def run_workers(
    workers: int,
    seconds: float,
    hold: float,
    make_worker: Callable[[int], Callable[[float], float | None]],
) -> tuple[list[int], list[float]]:
    """Run the workers until the deadline; returns acquisitions per worker and all waits."""
    counts = [0] * workers
    waits: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop(index: int) -> None:
        attempt = make_worker(index)
        while (remaining := deadline - time.monotonic()) > 0:
            started = time.monotonic()
            release = attempt(remaining)
            if release is None:
                continue
            waited = time.monotonic() - started
            time.sleep(hold)
            release()
            with lock:
                counts[index] += 1
                waits.append(waited)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts, waits


def ours(endpoint: str) -> Callable[[int], Callable[[float], Callable[[], None] | None]]:
    table = f"bench-{uuid.uuid4().hex[:8]}"
    config = LockConfig(lease_seconds=10)
    LeaseLock(table, client=client(endpoint), config=config).ensure_table()

    def make(index: int) -> Callable[[float], Callable[[], None] | None]:
        lock = LeaseLock(table, client=client(endpoint), config=config, owner=f"worker-{index}")

        def attempt(remaining: float) -> Callable[[], None] | None:
            try:
                lease = lock.acquire(KEY, timeout=remaining)
            except AcquireTimeout:
                return None
            return lease.release

        return attempt

    return make


def peer(endpoint: str) -> Callable[[int], Callable[[float], Callable[[], None] | None]]:
    from python_dynamodb_lock.python_dynamodb_lock import (  # noqa: PLC0415
        DynamoDBLockClient,
        DynamoDBLockError,
    )

    table = f"peer-{uuid.uuid4().hex[:8]}"
    DynamoDBLockClient.create_dynamodb_table(client(endpoint), table_name=table)
    resource = boto3.resource(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy
    )
    clients = []

    def make(index: int) -> Callable[[float], Callable[[], None] | None]:
        lock_client = DynamoDBLockClient(resource, table_name=table, owner_name=f"worker-{index}")
        clients.append(lock_client)

        def attempt(remaining: float) -> Callable[[], None] | None:
            try:
                lock = lock_client.acquire_lock(KEY, retry_timeout=dt.timedelta(seconds=remaining))
            except DynamoDBLockError:
                return None
            return lock.release

        return attempt

    make.clients = clients  # type: ignore[attr-defined]
    return make


def summary(name: str, counts: list[int], waits: list[float]) -> dict[str, float]:
    waits = sorted(waits) or [float("nan")]
    row = {
        "served": sum(1 for c in counts if c),
        "acquisitions": sum(counts),
        "p50_wait_s": statistics.median(waits),
        "p99_wait_s": waits[min(len(waits) - 1, int(len(waits) * 0.99))],
        "max_wait_s": waits[-1],
        "min_per_worker": min(counts),
    }
    print(
        f"{name:22} served {row['served']:>3}/{len(counts)}  acquisitions {row['acquisitions']:>5}  "
        f"wait p50 {row['p50_wait_s']:.3f}s p99 {row['p99_wait_s']:.3f}s max {row['max_wait_s']:.3f}s  "
        f"fewest per worker {row['min_per_worker']}"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--hold-ms", type=float, default=100.0)
    args = parser.parse_args()
    # the AWS stand-in runs in its own process, as AWS would, away from the workers' GIL
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "service.localaws", "--port", str(port)], stdout=subprocess.DEVNULL
    )
    wait_for_port(port)
    endpoint = f"http://127.0.0.1:{port}"
    hold = args.hold_ms / 1000
    print(
        f"{args.workers} workers, one key, hold {args.hold_ms:.0f} ms, {args.seconds:.0f} s each\n"
    )
    mine = summary("pushgate locks", *run_workers(args.workers, args.seconds, hold, ours(endpoint)))
    try:
        make_peer = peer(endpoint)
    except ImportError:
        print("python-dynamodb-lock is not installed: pip install python-dynamodb-lock==0.9.1")
        server.terminate()
        return
    theirs = summary(
        "python-dynamodb-lock", *run_workers(args.workers, args.seconds, hold, make_peer)
    )
    for lock_client in make_peer.clients:  # type: ignore[attr-defined]
        lock_client.close()
    ratio = mine["acquisitions"] / max(1, theirs["acquisitions"])
    print(
        f"\nratio (this run): {ratio:.1f}x the acquisitions; served {mine['served']:.0f} vs "
        f"{theirs['served']:.0f} workers; p99 wait {theirs['p99_wait_s'] / mine['p99_wait_s']:.1f}x shorter"
    )
    server.terminate()


if __name__ == "__main__":
    main()
