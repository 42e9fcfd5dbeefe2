"""The lease's speed and fairness against a moto server on loopback, in one run.

    .venv/bin/python bench/lease_bench.py [--seconds 5] [--processes 1,4,16] [--json]
                                          [--dynamodb dynalite]

Prints: the raw conditional-write round trip (RTT); uncontended acquire+release latency
and DynamoDB calls per lease; 16 workers on one key with hold 0 ms and 20 ms, as threads
of one process, split over 4 processes, and as 16 processes of one worker each (hold
20 ms only; ``--processes`` picks the splits): leases/s, the ratio to the serial limit
1 / (hold + measured acquire+release time), time-to-acquire p50/p99, hand-off p50/p99
(release started -> next holder granted), workers served, the busiest worker's share,
calls per lease, timeouts; and 16 workers on 16 distinct keys.

Workers in one process share one ``LeaseLock`` (one per process, as a service would);
the moto server (``service.localaws``) runs in a process of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import itertools

from locks import AcquireTimeout, LeaseLock, LockConfig
from tests.servers import dynalite, dynalite_binary, free_port, wait_for_port

CONFIG = LockConfig(lease_seconds=10)
WORKERS = 16


def client(endpoint: str) -> Any:
    made = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy
    )
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    made.meta.events.register("before-call.dynamodb", count)
    return made, calls


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_workers(
    endpoint: str,
    table: str,
    keys: list[str],
    threads: int,
    hold: float,
    seconds: float,
    *,
    barrier: bool = False,
) -> dict[str, Any]:
    """Threads of this process sharing one lock; thread i uses keys[i % len(keys)].
    With ``barrier`` (a worker process) it says ``ready`` and starts on a line from stdin,
    so no worker runs while the others are still starting their interpreters."""
    dynamodb, calls = client(endpoint)
    name = uuid.uuid4().hex[:6]
    lock = LeaseLock(table, client=dynamodb, config=CONFIG, owner=f"bench-{name}")
    records: list[dict[str, Any]] = []
    timeouts = 0
    guard = threading.Lock()
    if barrier:
        print("ready", flush=True)
        sys.stdin.readline()
    deadline = time.time() + seconds

    def work(index: int) -> None:
        nonlocal timeouts
        key = keys[index % len(keys)]
        while time.time() < deadline:
            asked = time.time()
            try:
                lease = lock.acquire(key, timeout=30)
            except AcquireTimeout:
                with guard:
                    timeouts += 1
                continue
            granted = time.time()
            if hold:
                time.sleep(hold)
            releasing = time.time()
            lease.release()
            with guard:
                records.append(
                    {
                        "worker": f"{name}/{index}",
                        "key": key,
                        "asked": asked,
                        "granted": granted,
                        "releasing": releasing,
                        "token": lease.token,
                    }
                )

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return {"records": records, "timeouts": timeouts, "calls": sum(calls.values())}


def run_processes(
    endpoint: str, table: str, keys: list[str], processes: int, hold: float, seconds: float
) -> dict[str, Any]:
    """The same, split over worker processes (this script with --worker)."""
    spec = {"endpoint": endpoint, "table": table, "keys": keys, "hold": hold, "seconds": seconds}
    spec["threads"] = WORKERS // processes
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    for child in children:  # every interpreter started and its client made: then go at once
        assert child.stdout is not None
        child.stdout.readline()
    merged: dict[str, Any] = {"records": [], "timeouts": 0, "calls": 0}
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.flush()
    for child in children:
        out, _ = child.communicate(timeout=seconds + 120)
        part = json.loads(out.decode().strip().splitlines()[-1])
        merged["records"] += part["records"]
        merged["timeouts"] += part["timeouts"]
        merged["calls"] += part["calls"]
    return merged


def summarize(result: dict[str, Any], hold: float, seconds: float, cycle: float) -> dict[str, Any]:
    records = result["records"]
    leases = len(records)
    per_worker = Counter(r["worker"] for r in records)
    handoffs = []
    by_key: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_key.setdefault(record["key"], []).append(record)
    for group in by_key.values():
        group.sort(key=lambda r: r["token"])
        handoffs += [b["granted"] - a["releasing"] for a, b in itertools.pairwise(group)]
    serial = len(by_key) / (hold + cycle)
    rate = leases / seconds
    return {
        "leases": leases,
        "leases_per_s": round(rate, 1),
        "serial_limit_per_s": round(serial, 1),
        "ratio_to_serial": round(rate / serial, 2),
        "acquire_p50_ms": round(pct([r["granted"] - r["asked"] for r in records], 0.5) * 1000, 1),
        "acquire_p99_ms": round(pct([r["granted"] - r["asked"] for r in records], 0.99) * 1000, 1),
        "handoff_p50_ms": round(pct(handoffs, 0.5) * 1000, 1),
        "handoff_p99_ms": round(pct(handoffs, 0.99) * 1000, 1),
        "served": f"{len(per_worker)}/{WORKERS}",
        "busiest_share": round(max(per_worker.values()) / leases, 3) if leases else None,
        "fair_share": round(1 / WORKERS, 3),
        "calls_per_lease": round(result["calls"] / leases, 2) if leases else None,
        "timeouts": result["timeouts"],
    }


def rtt(endpoint: str, table: str, samples: int = 50) -> float:
    dynamodb, _ = client(endpoint)
    times = []
    for n in range(samples):
        started = time.perf_counter()
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "rtt"}},
            UpdateExpression="SET #v = :v",
            ConditionExpression="attribute_not_exists(#v) OR #v < :v",
            ExpressionAttributeNames={"#v": "v"},
            ExpressionAttributeValues={":v": {"N": str(n)}},
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def uncontended(endpoint: str, table: str, samples: int = 50) -> tuple[float, float]:
    dynamodb, calls = client(endpoint)
    lock = LeaseLock(table, client=dynamodb, config=CONFIG)
    times = []
    before = sum(calls.values())
    for n in range(samples):
        started = time.perf_counter()
        lock.acquire(f"solo-{n}").release()
        times.append(time.perf_counter() - started)
    return statistics.median(times), (sum(calls.values()) - before) / samples


@contextlib.contextmanager
def dynamodb_server(kind: str) -> Iterator[str]:
    """The DynamoDB stand-in's endpoint: dynalite, or moto in a process of its own."""
    if kind == "dynalite":
        with dynalite() as endpoint:
            yield endpoint
        return
    port = free_port()
    command = [sys.executable, "-m", "service.localaws", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description="lease benchmark")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--processes", default="1,4,16", help="splits of the 16 workers to run, e.g. 1,16"
    )
    parser.add_argument(
        "--dynamodb",
        choices=("moto", "dynalite"),
        default="moto",
        help="the DynamoDB stand-in: moto (one call at a time) or dynalite (installed by "
        "./run.sh test)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.worker:
        spec = json.loads(args.worker)
        out = run_workers(
            spec["endpoint"],
            spec["table"],
            spec["keys"],
            spec["threads"],
            spec["hold"],
            spec["seconds"],
            barrier=True,
        )
        print(json.dumps(out))
        return

    if args.dynamodb == "dynalite" and dynalite_binary() is None:
        parser.error("dynalite is not installed: ./run.sh test installs it")
    with dynamodb_server(args.dynamodb) as endpoint:
        table = f"bench-{uuid.uuid4().hex[:8]}"
        LeaseLock(table, client=client(endpoint)[0], config=CONFIG).ensure_table()
        report: dict[str, Any] = {"rtt_ms": round(rtt(endpoint, table) * 1000, 2)}
        cycle, calls = uncontended(endpoint, table)
        report["uncontended_acquire_release_ms"] = round(cycle * 1000, 2)
        report["uncontended_calls_per_lease"] = calls
        scenarios = []
        splits = [int(n) for n in args.processes.split(",")]
        for hold in (0.0, 0.02):
            for processes in splits:
                if processes == WORKERS and hold == 0:
                    continue  # one worker per process: hold 0 says nothing more than 4x4
                key = f"hot-{uuid.uuid4().hex[:6]}"
                if processes == 1:
                    result = run_workers(endpoint, table, [key], WORKERS, hold, args.seconds)
                else:
                    result = run_processes(endpoint, table, [key], processes, hold, args.seconds)
                row = {
                    "scenario": f"16 workers, 1 key, {processes} process(es), hold {hold * 1000:.0f} ms"
                }
                row.update(summarize(result, hold, args.seconds, cycle))
                scenarios.append(row)
        if 1 in splits:
            keys = [f"key-{n}-{uuid.uuid4().hex[:4]}" for n in range(WORKERS)]
            result = run_workers(endpoint, table, keys, WORKERS, 0.0, args.seconds)
            row = {"scenario": "16 workers, 16 keys, 1 process, hold 0 ms"}
            row.update(summarize(result, 0.0, args.seconds, cycle))
            scenarios.append(row)
        report["scenarios"] = scenarios
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"DynamoDB: {args.dynamodb}; RTT (conditional UpdateItem) p50: {report['rtt_ms']} ms")
    print(
        f"uncontended acquire+release p50: {report['uncontended_acquire_release_ms']} ms, "
        f"{report['uncontended_calls_per_lease']:.2f} calls per lease"
    )
    in_process = [row for row in scenarios if row["scenario"].endswith("1 process(es), hold 0 ms")]
    if in_process:
        ratio = in_process[0]["handoff_p50_ms"] / report["rtt_ms"]
        print(f"in-process hand-off p50 / RTT: {ratio:.2f}")
    print()
    columns = [
        "leases_per_s",
        "ratio_to_serial",
        "acquire_p50_ms",
        "acquire_p99_ms",
        "handoff_p50_ms",
        "handoff_p99_ms",
        "served",
        "busiest_share",
        "calls_per_lease",
        "timeouts",
    ]
    print("| scenario | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for row in scenarios:
        print(f"| {row['scenario']} | " + " | ".join(str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
