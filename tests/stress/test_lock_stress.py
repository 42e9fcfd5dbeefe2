"""Many holders, one key: 16 threads and 16 asyncio tasks across two OS processes.

Each process (``tests/stress/_worker.py``) runs threads on a ``LeaseLock`` and tasks on
an ``AsyncLeaseLock`` against the session's moto server. Holders append
``start``/``end`` lines with their token to one shared ``O_APPEND`` file; its line
order is the independent record checked here: no overlap, tokens increasing in
grant order, every worker served.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest

from locks import LeaseLock, LockConfig

pytestmark = pytest.mark.stress

ROOT = Path(__file__).resolve().parents[2]
KEY = "one-key"
PROCESSES = 2
THREADS = 8  # per process: 16 threads in all
TASKS = 8  # per process: 16 tasks in all
CONFIG = {
    "lease_seconds": 5.0,
    "max_clock_skew_seconds": 0.2,
    "retry_base_seconds": 0.005,
    "retry_cap_seconds": 0.05,
}


def _ensure_table(endpoint: str) -> str:
    table = f"stress-{uuid.uuid4().hex[:12]}"
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    config = LockConfig(**CONFIG)  # type: ignore[arg-type]
    LeaseLock(table, client=client, config=config).ensure_table(poll_seconds=0.05)
    client.close()
    return table


def _run_processes(
    endpoint: str, tmp_path: Path, *, hold_ms: float, iterations: int | None, duration: float | None
) -> tuple[list[str], list[dict[str, Any]], float, Counter[str]]:
    """Start the worker processes together.

    Returns the shared log, per-worker stats, the seconds the run took and the DynamoDB calls.
    """
    table = _ensure_table(endpoint)
    log = tmp_path / "holders.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = []
    summaries = []
    for index in range(PROCESSES):
        summary = tmp_path / f"summary-{index}.json"
        summaries.append(summary)
        spec = {
            "name": f"p{index}",
            "endpoint": endpoint,
            "table": table,
            "key": KEY,
            "log": str(log),
            "summary": str(summary),
            "threads": THREADS,
            "tasks": TASKS,
            "hold_ms": hold_ms,
            "iterations": iterations,
            "duration": duration,
            "acquire_timeout": 120,
            "config": CONFIG,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.stress._worker", json.dumps(spec)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for proc in procs:  # every process has its clients and waits for GO
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "READY", (line, proc.stderr.read() if proc.stderr else "")
        started = time.monotonic()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        errors = []
        for proc in procs:
            _, stderr = proc.communicate(timeout=180)
            if proc.returncode != 0:
                errors.append(stderr)
        elapsed = time.monotonic() - started
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert not errors, "\n".join(errors)
    stats = []
    calls: Counter[str] = Counter()
    for summary in summaries:
        data = json.loads(summary.read_text())
        stats.extend(data["workers"])
        calls.update(data["calls"])
    return log.read_text().splitlines(), stats, elapsed, calls


def _check_no_overlap(lines: list[str]) -> list[tuple[int, str]]:
    """Every start is immediately followed by its own end; returns (token, worker) per grant."""
    grants = []
    assert len(lines) % 2 == 0, f"odd number of lines: {lines[-3:]}"
    for index in range(0, len(lines), 2):
        start, end = lines[index].split(), lines[index + 1].split()
        assert start[0] == "start", f"line {index}: {lines[index]!r} (expected a start)"
        assert ["end", *start[1:]] == end, (
            f"overlap at lines {index}-{index + 1}: {lines[index]!r} then {lines[index + 1]!r}"
        )
        grants.append((int(start[1]), start[2]))
    return grants


def _describe(stats: list[dict[str, Any]], elapsed: float, calls: Counter[str]) -> str:
    rows = []
    for s in sorted(stats, key=lambda s: s["worker"]):
        waits = s["waits_ms"] or [0]
        rows.append(
            f"{s['worker']}: served {s['count']}, max wait {max(waits):.0f} ms, "
            f"median wait {statistics.median(waits):.0f} ms, lost {s['lost']}, errors {s['errors']}"
        )
    leases = sum(s["count"] for s in stats)
    per_lease = sum(calls.values()) / max(1, leases)
    head = f"{leases} leases in {elapsed:.1f}s, {per_lease:.1f} calls per lease {dict(calls)}"
    return head + ":\n" + "\n".join(rows)


@pytest.mark.timeout(240)
def test_one_key_many_holders_never_overlap(moto_endpoint: str, tmp_path: Path) -> None:
    """32 workers (16 threads, 16 tasks, two processes) x 8 leases on one key: the shared
    log shows one holder at a time, tokens increasing in grant order, and every worker
    served its full count."""
    iterations = 8
    lines, stats, elapsed, calls = _run_processes(
        moto_endpoint, tmp_path, hold_ms=2, iterations=iterations, duration=None
    )
    report = _describe(stats, elapsed, calls)

    grants = _check_no_overlap(lines)
    tokens = [token for token, _ in grants]
    assert all(a < b for a, b in itertools.pairwise(tokens)), report
    workers = PROCESSES * (THREADS + TASKS)
    assert workers * iterations == len(grants), report
    assert {s["worker"]: iterations for s in stats} == dict(Counter(w for _, w in grants)), report
    assert [] == [s for s in stats if s["lost"] or s["errors"]], report


@pytest.mark.timeout(240)
def test_one_process_does_not_starve_the_other(moto_endpoint: str, tmp_path: Path) -> None:
    """With 20 ms holds, the releasing process's local waiters (woken at once) do not crowd
    out the other process's waiters (which poll): each process gets at least a quarter of
    the first half of the grants (half is fair), and every worker is served its count."""
    iterations = 3
    lines, stats, elapsed, calls = _run_processes(
        moto_endpoint, tmp_path, hold_ms=20, iterations=iterations, duration=None
    )
    report = _describe(stats, elapsed, calls)

    grants = _check_no_overlap(lines)
    tokens = [token for token, _ in grants]
    assert all(a < b for a, b in itertools.pairwise(tokens)), report
    assert {s["worker"]: iterations for s in stats} == dict(Counter(w for _, w in grants)), report
    first_half = Counter(w.split("-")[0] for _, w in grants[: len(grants) // 2])
    fair = len(grants) // 2 / PROCESSES
    assert all(first_half[f"p{p}"] >= fair / 2 for p in range(PROCESSES)), (
        f"first half of the grants by process: {dict(first_half)}\n{report}"
    )
    assert [] == [s for s in stats if s["lost"] or s["errors"]], report
