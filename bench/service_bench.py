"""pushgate under a simulated ECR: overhead of one push, one hot tag, and the account's
PutImage quota, measured in one run against one embedded moto server.

    .venv/bin/python bench/service_bench.py [--seconds 30] [--quick] [--dynamodb-delay-ms 5]
                                            [--dynamodb dynalite]

``--seconds`` is the length of each load phase (default 30); ``--quick`` runs 5 s phases
and fewer single pushes; ``--dynamodb-delay-ms`` adds a fixed delay to every DynamoDB
call of pushgate and of the probe (``DynamoDelay``: a table in the Region, a few ms away,
rather than moto on this host); ``--dynamodb dynalite`` serves DynamoDB from dynalite
(installed by ``./run.sh test``) instead of moto, which serves one call at a time for
ECR and DynamoDB together. Everything listens on 127.0.0.1 only.

The round-trip unit is measured in the same run: the probe, a plain conditional
``UpdateItem`` on the lease table from its own client (median of 30).

Set-up
------

- AWS: ``service.localaws`` (moto, one AWS call at a time) in a child process, its ECR
  corrected by ``service.localecr`` (digests of the exact manifest bytes, old images
  kept untagged, ...), so pushgate sees ECR's behaviour.
- **Simulated ECR** (``SimulatedEcr``, below): an aiobotocore ``before-send.ecr`` hook on
  each ECR client the bench measures (pushgate's own client and the direct one). Every
  ECR call waits ``--latency-ms`` (default 100) client-side: half before it "reaches ECR",
  half for the answer. PutImage is admitted by a token bucket (``--quota`` 10/s, burst 10,
  shared by every client, as ECR's account-wide quota); beyond it the call fails with a
  ``ClientError`` code ``ThrottlingException`` ("Rate exceeded") and never reaches moto.
  The latency is added on the client, never inside LocalAWS, which applies one call at a
  time and would stall every other call.
- pushgate: ``service.main.create_app`` under uvicorn in a thread of this process
  (``tests/uvicorn_server.serve``), with its default settings except the endpoints, fresh
  tables and quiet logs; its PutImage budget runs at its defaults (10/s x 0.95 share).
- clients: ``service.client.AsyncPushClient`` with retries disabled (``NoRetry``), so each
  503 (``registry_throttled``, ``lease_timeout``) counts as surfaced to a client.

Phases
------

1. one push at a time, alternately through pushgate and as a direct ``put_image`` of a
   fresh tag: the ratio of medians (goal <= 1.2x; <= 1.15x with 5 ms added per DynamoDB
   call), and how many probe round trips the push waited on DynamoDB;
2. 32 clients pushing one tag with increasing sequences for ``--seconds``, without and
   with coalescing: PutImage calls, pushes answered, p50/p99 latency; without coalescing,
   pushes answered per second against 1 / (PutImage p50 + 2 probe round trips) (goal
   >= 0.85x): a push of a hot tag holds the lease for its PutImage and its commit, and the
   next one's slot reservation;
3. 64 clients over 64 tags for ``--seconds``: PutImage calls per second as a share of the
   quota, over the phase after its first second (goal >= 90%), ECR throttles, and
   throttles surfaced to clients (goal 0); also without the budget, for contrast.

Every loop is bounded by a deadline and a count.

What bounds the figures
-----------------------

A pushgate push that calls PutImage makes five or six AWS calls (the run prints them):
the answer waits for two DynamoDB round trips on the tag's lease item (the acquire's
``UpdateItem``, which writes the intent and whose answer carries the record, with the
budget's ``UpdateItem`` beside it; the commit's ``UpdateItem``, which writes the record and
releases) and ``PutImage``; the history ``PutItem`` (two when the previous entry is handed
on) runs after the answer is sent. LocalAWS applies one call at a time. The run
prints moto's median call time: at ~5 ms (an idle machine) moto serves ~200 calls/s,
about 30 pushes/s, more than the 10/s quota; at ~20 ms (a loaded machine) it serves far
fewer and phase 3 measures moto, not the budget. ``--quota 3`` (which also sets
pushgate's ``putimage_rate_per_second``) keeps the quota below what moto can feed, so
phase 3 then measures how much of the quota the budget uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioboto3
import boto3
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.adapters.aws import open_clients
from service.adapters.tables import ensure_tables
from service.client import AsyncPushClient
from service.client._base import RetryPolicy
from service.client.errors import ApiError, PushgateError
from service.main import create_app
from service.settings import Settings
from tests.servers import dynalite, free_port, wait_for_port
from tests.uvicorn_server import serve

REGION = "us-east-1"
OCI = "application/vnd.oci.image.manifest.v1+json"
MAX_PUSHES_PER_CLIENT = 100_000  # a bound on every client loop besides its deadline

# The child process: moto (LocalAWS, its ECR corrected by service.localecr).
AWS_CHILD = """
import sys
sys.path.insert(0, {root!r})
from service.localaws import LocalAWS
import time
server = LocalAWS("127.0.0.1", {port})
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the bench closes our stdin
server.stop()
"""


class SimulatedEcr:
    """ECR's latency and its 10/s PutImage quota, as a ``before-send.ecr`` hook.

    Token bucket: ``quota`` tokens per second, at most ``burst`` stored (AWS throttles
    with token buckets; a burst equal to the rate is an assumption). Thread-safe: the
    hook runs in pushgate's uvicorn loop and in the bench's loop."""

    def __init__(self, *, latency: float, quota: float, burst: float) -> None:
        self.latency = latency
        self.quota = quota
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = threading.Lock()
        self.admitted: list[float] = []  # monotonic times of PutImage calls let through
        self.throttled = 0

    def _admit(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.quota)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.admitted.append(now)
                return True
            self.throttled += 1
            return False

    async def hook(self, event_name: str = "", **_: Any) -> None:
        await asyncio.sleep(self.latency / 2)  # the request travels to ECR
        admitted = not event_name.endswith(".PutImage") or self._admit()
        await asyncio.sleep(self.latency / 2)  # the answer travels back
        if not admitted:
            response: dict[str, Any] = {
                "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            raise ClientError(response, "PutImage")  # type: ignore[arg-type]

    def install(self, client: Any) -> None:
        client.meta.events.register("before-send.ecr", self.hook)

    def admitted_since(self, start: float) -> list[float]:
        with self._lock:
            return [t for t in self.admitted if t >= start]


def manifest(n: int, salt: str) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{n:064x}",
                "size": n,
            },
            "layers": [],
            "annotations": {"salt": salt},
        }
    )


@contextlib.contextmanager
def local_aws() -> Iterator[str]:
    """LocalAWS (ECR corrected) in a child process, away from our GIL."""
    port = free_port()
    root = str(Path(__file__).resolve().parent.parent)
    child = subprocess.Popen(
        [sys.executable, "-c", AWS_CHILD.format(root=root, port=port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()


def settings_for(
    endpoint: str, suffix: str, dynamodb: str | None = None, **overrides: Any
) -> Settings:
    """pushgate's settings against the bench's servers (DynamoDB at ``dynamodb``, if
    given, else on the AWS stand-in)."""
    return Settings(
        region=REGION,
        dynamodb_endpoint_url=dynamodb or endpoint,
        ecr_endpoint_url=endpoint,
        lease_table=f"bench-leases-{suffix}",
        history_table=f"bench-history-{suffix}",
        budget_table=f"bench-budget-{suffix}",
        default_wait_seconds=60.0,
        max_wait_seconds=120.0,
        log_format="console",
        auth="off",
        log_level="error",
        **overrides,
    )


class CallCounter:
    """Counts the AWS calls a client sends, by operation (a ``before-send`` hook)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def hook(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)


class CallTimer:
    """Intervals (monotonic) of the DynamoDB calls a client makes: ``before-call`` and
    ``after-call`` hooks paired through botocore's per-request ``context``."""

    def __init__(self) -> None:
        self.intervals: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def before(self, context: dict[str, Any] | None = None, **_: Any) -> None:
        if context is not None:
            context["bench_started"] = time.monotonic()

    def after(self, context: dict[str, Any] | None = None, **_: Any) -> None:
        if context is not None and "bench_started" in context:
            with self._lock:
                self.intervals.append((context["bench_started"], time.monotonic()))

    def busy_within(self, start: float, end: float) -> float:
        """Seconds of [start, end] during which at least one call was in flight."""
        with self._lock:
            clipped = sorted(
                (max(a, start), min(b, end)) for a, b in self.intervals if b > start and a < end
            )
        busy, reach = 0.0, start
        for a, b in clipped:
            begin = max(a, reach)
            if b > begin:
                busy += b - begin
                reach = b
        return busy


@contextlib.contextmanager
def pushgate(
    settings: Settings,
    ecr: SimulatedEcr,
    counter: CallCounter | None = None,
    timer: CallTimer | None = None,
    delay: DynamoDelay | None = None,
) -> Iterator[str]:
    """pushgate under uvicorn on 127.0.0.1, its ECR client behind the simulated ECR, its
    DynamoDB client behind ``delay``."""
    app = create_app(settings, session=aioboto3.Session())
    with serve(app) as url:
        ecr.install(app.state.clients.ecr)
        if delay is not None:
            delay.install(app.state.clients.dynamodb)
        if counter is not None:
            app.state.clients.ecr.meta.events.register("before-send.ecr", counter.hook)
            app.state.clients.dynamodb.meta.events.register("before-send.dynamodb", counter.hook)
        if timer is not None:
            app.state.clients.dynamodb.meta.events.register("before-call.dynamodb", timer.before)
            app.state.clients.dynamodb.meta.events.register("after-call.dynamodb", timer.after)
        yield url


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    def note(self, outcome: str, seconds: float | None = None) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if seconds is not None:
            self.latencies.append(seconds)

    @property
    def answered(self) -> int:
        return sum(self.outcomes.get(o, 0) for o in ("pushed", "unchanged", "superseded"))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def push_loop(
    client: AsyncPushClient,
    tally: Tally,
    *,
    repository: str,
    tag: str,
    deadline: float,
    sequences: Iterator[int],
    salt: str,
) -> None:
    """Push until the deadline (or MAX_PUSHES_PER_CLIENT), noting every answer."""
    for _ in range(MAX_PUSHES_PER_CLIENT):
        if time.monotonic() >= deadline:
            return
        seq = next(sequences)
        started = time.monotonic()
        try:
            result = await client.push(
                repository, tag, manifest(seq, salt), sequence=seq, wait_seconds=60
            )
        except ApiError as exc:
            cause = exc.details.get("cause")  # registry_throttled: PutImageBudget or ECR's code
            tally.note(f"{exc.code}:{cause}" if cause else exc.code)
            await asyncio.sleep(0.05)
            continue
        except PushgateError as exc:
            tally.note(type(exc).__name__)
            await asyncio.sleep(0.05)
            continue
        tally.note(result.outcome, time.monotonic() - started)


class NoRetry(RetryPolicy):
    """Never retry, so every 503 counts as surfaced; the deadline only bounds connecting
    (the client caps its connect timeout by what is left of it)."""

    def delay(
        self,
        attempt: int,  # noqa: ARG002 - RetryPolicy's signature
        retry_after: float | None,  # noqa: ARG002
        remaining: float,  # noqa: ARG002
        jitter: float,  # noqa: ARG002
    ) -> float | None:
        return None


def client(url: str) -> AsyncPushClient:
    return AsyncPushClient(url, retry=NoRetry(deadline=120.0), timeout=30.0)


# --- phases -----------------------------------------------------------------------------


async def single_push(
    endpoint: str,
    url: str,
    ecr: SimulatedEcr,
    repo: str,
    count: int,
    counter: CallCounter,
    timer: CallTimer,
) -> dict[str, Any]:
    """Alternate one pushgate push and one direct put_image, each of a fresh tag. For
    each pushgate push, also the time pushgate waited on DynamoDB before answering."""
    through: list[float] = []
    direct: list[float] = []
    dynamodb: list[float] = []
    session = aioboto3.Session()
    async with (
        session.client("ecr", endpoint_url=endpoint, region_name=REGION) as ecr_client,
        client(url) as pg,
    ):
        ecr.install(ecr_client)
        for i in range(count + 1):  # the first round warms connections and is dropped
            started = time.monotonic()
            await pg.push(repo, f"pg-{i}", manifest(i, "pg"), sequence=1)
            answered = time.monotonic()
            pg_seconds = answered - started
            on_path = timer.busy_within(started, answered)
            body = manifest(i, "direct")
            started = time.monotonic()
            await ecr_client.put_image(
                repositoryName=repo, imageManifest=body, imageTag=f"direct-{i}"
            )
            direct_seconds = time.monotonic() - started
            if i:
                through.append(pg_seconds)
                direct.append(direct_seconds)
                dynamodb.append(on_path)
            else:
                warm = counter.snapshot()
            await asyncio.sleep(2 / ecr.quota)  # two PutImage a round: stay under the quota
    calls = counter.snapshot()
    per_push = {op: (n - warm.get(op, 0)) / count for op, n in sorted(calls.items())}
    return {
        "calls_per_push": per_push,
        "pushgate_p50": statistics.median(through),
        "direct_p50": statistics.median(direct),
        "ratio": statistics.median(through) / statistics.median(direct),
        "dynamodb_p50": statistics.median(dynamodb),
        "rest_p50": statistics.median(
            [t - d - statistics.median(direct) for t, d in zip(through, dynamodb, strict=True)]
        ),
    }


async def hot_tag(
    url: str, ecr: SimulatedEcr, repo: str, clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` clients push one tag with globally increasing sequences."""
    tally = Tally()
    sequences = itertools.count(1)
    before = len(ecr.admitted)
    started = time.monotonic()
    async with client(url) as pg:
        await asyncio.gather(
            *(
                push_loop(
                    pg,
                    tally,
                    repository=repo,
                    tag="latest",
                    deadline=started + seconds,
                    sequences=sequences,
                    salt=repo,
                )
                for _ in range(clients)
            )
        )
    elapsed = time.monotonic() - started
    return {
        "put_image": len(ecr.admitted) - before,
        "answered": tally.answered,
        "per_s": tally.answered / elapsed,
        "p50": pct(tally.latencies, 0.5),
        "p99": pct(tally.latencies, 0.99),
        "outcomes": dict(sorted(tally.outcomes.items())),
    }


async def many_tags(
    url: str, ecr: SimulatedEcr, repo: str, clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` clients, each pushing its own tag, for ``seconds``."""
    tally = Tally()
    throttled_before = ecr.throttled
    started = time.monotonic()
    async with client(url) as pg:
        await asyncio.gather(
            *(
                push_loop(
                    pg,
                    tally,
                    repository=repo,
                    tag=f"t{i}",
                    deadline=started + seconds,
                    sequences=itertools.count(1),
                    salt=f"{repo}-{i}",
                )
                for i in range(clients)
            )
        )
    # the PutImage rate from the phase's first to its last PutImage: 64 clients keep more
    # pushes waiting than the quota serves, until the backlog drains after the deadline
    times = ecr.admitted_since(started)
    span = times[-1] - times[0] if len(times) > 1 else float("inf")
    rate = (len(times) - 1) / span
    return {
        "put_image_per_s": rate,
        "share": rate / ecr.quota,
        "ecr_throttles": ecr.throttled - throttled_before,
        "client_throttles": sum(
            n for o, n in tally.outcomes.items() if o.startswith("registry_throttled")
        ),
        "answered": tally.answered,
        "p50": pct(tally.latencies, 0.5),
        "p99": pct(tally.latencies, 0.99),
        "outcomes": dict(sorted(tally.outcomes.items())),
    }


class DynamoDelay:
    """A fixed delay added to every DynamoDB call of a client (``--dynamodb-delay-ms``), a
    ``before-send.dynamodb`` hook: a table in the Region is a few ms away, moto on this
    host is not."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def hook(self, **_: Any) -> None:
        if self.seconds > 0:
            await asyncio.sleep(self.seconds)

    def install(self, client: Any) -> None:
        client.meta.events.register("before-send.dynamodb", self.hook)


async def probe_round_trip(endpoint: str, table: str, delay: DynamoDelay, calls: int = 30) -> float:
    """Median seconds of one plain conditional UpdateItem on the lease table, from an
    aiobotocore client with the same added delay as pushgate's: the round-trip unit the
    goals are stated in (moto serves one call at a time)."""
    session = aioboto3.Session()
    async with session.client("dynamodb", endpoint_url=endpoint, region_name=REGION) as dynamodb:
        delay.install(dynamodb)
        times = []
        for n in range(calls + 1):  # the first call opens the connection and is dropped
            started = time.monotonic()
            await dynamodb.update_item(
                TableName=table,
                Key={"pk": {"S": "bench-probe"}},
                UpdateExpression="SET #n = :n",
                ConditionExpression="attribute_not_exists(#n) OR #n < :n",
                ExpressionAttributeNames={"#n": "probe_n"},
                ExpressionAttributeValues={":n": {"N": str(n)}},
            )
            if n:
                times.append(time.monotonic() - started)
    return statistics.median(times)


@contextlib.contextmanager
def dynamodb_server(kind: str) -> Iterator[str | None]:
    """dynalite's endpoint for ``--dynamodb dynalite``, else None (moto serves it)."""
    if kind != "dynalite":
        yield None
        return
    with dynalite() as endpoint:
        yield endpoint


def create_repositories(endpoint: str, names: list[str]) -> None:
    ecr = boto3.client("ecr", endpoint_url=endpoint, region_name=REGION)
    for name in names:
        ecr.create_repository(repositoryName=name)


async def create_tables(settings: Settings) -> None:
    async with open_clients(settings) as clients:
        await ensure_tables(clients.dynamodb, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each load phase")
    parser.add_argument("--quick", action="store_true", help="5 s phases, 10 single pushes")
    parser.add_argument("--singles", type=int, default=30, help="single pushes in phase 1")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument(
        "--quota",
        type=float,
        default=10.0,
        help="PutImage/s of the simulated account, also pushgate's putimage_rate_per_second",
    )
    parser.add_argument(
        "--dynamodb-delay-ms",
        type=float,
        default=0.0,
        help="added to every DynamoDB call of pushgate and of the probe (an in-Region table)",
    )
    parser.add_argument(
        "--dynamodb",
        choices=("moto", "dynalite"),
        default="moto",
        help="DynamoDB: moto (one call at a time, beside ECR) or dynalite (its own process)",
    )
    parser.add_argument("--hot-clients", type=int, default=32)
    parser.add_argument("--tag-clients", type=int, default=64)
    args = parser.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    singles = 10 if args.quick else args.singles
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    ecr = SimulatedEcr(latency=args.latency_ms / 1000, quota=args.quota, burst=args.quota)
    suffix = uuid.uuid4().hex[:8]
    rows: list[tuple[str, str, str]] = []
    with local_aws() as endpoint, dynamodb_server(args.dynamodb) as dynamodb:
        base = settings_for(endpoint, suffix, dynamodb, putimage_rate_per_second=args.quota)
        asyncio.run(create_tables(base))
        repos = {
            k: f"bench/{k}-{suffix}"
            for k in ("single", "hot-off", "hot-on", "tags", "tags-nobudget")
        }
        create_repositories(endpoint, list(repos.values()))
        delay = DynamoDelay(args.dynamodb_delay_ms / 1000)
        probe = asyncio.run(probe_round_trip(dynamodb or endpoint, base.lease_table, delay))
        moto_ms = probe * 1000
        print(
            f"simulated ECR: {args.latency_ms:.0f} ms per call, PutImage quota {args.quota:.0f}/s "
            f"(burst {args.quota:.0f}); phases of {seconds:.0f} s; DynamoDB round trip (probe: "
            f"conditional UpdateItem on {args.dynamodb}, +{args.dynamodb_delay_ms:.0f} ms added) p50 "
            f"{moto_ms:.1f} ms; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n",
            flush=True,
        )
        one_goal = 1.15 if args.dynamodb_delay_ms > 0 else 1.2
        counter, timer = CallCounter(), CallTimer()
        with pushgate(base, ecr, counter, timer, delay) as url:
            single = asyncio.run(
                single_push(endpoint, url, ecr, repos["single"], singles, counter, timer)
            )
        rows.append(
            (
                "1 one push: pushgate / direct put_image",
                f"{single['ratio']:.2f}x (goal <= {one_goal}x)",
                f"p50 {single['pushgate_p50'] * 1000:.0f} ms vs {single['direct_p50'] * 1000:.0f} ms, {singles} each",
            )
        )
        print(f"phase 1 done: {rows[-1]}", flush=True)
        per_push = ", ".join(f"{op} {n:.1f}" for op, n in single["calls_per_push"].items())
        rows.append(("1 AWS calls per pushgate push", per_push, ""))
        rows.append(
            (
                "1 where a push's extra time goes (p50)",
                f"{single['dynamodb_p50'] * 1000:.0f} ms waiting on DynamoDB before answering",
                (
                    f"{single['rest_p50'] * 1000:.0f} ms other (HTTP, the service, event loop); "
                    f"probe round trip p50 {moto_ms:.1f} ms: "
                    f"{single['dynamodb_p50'] / probe:.1f} round trips"
                ),
            )
        )
        hot: dict[bool, dict[str, Any]] = {}
        for coalesce in (False, True):
            hot_settings = base.model_copy(update={"coalesce": coalesce})
            with pushgate(hot_settings, ecr, delay=delay) as url:
                key = "hot-on" if coalesce else "hot-off"
                hot[coalesce] = asyncio.run(
                    hot_tag(url, ecr, repos[key], args.hot_clients, seconds)
                )
            r = hot[coalesce]
            rows.append(
                (
                    f"2 {args.hot_clients} clients, one tag, coalescing {'on' if coalesce else 'off'}",
                    f"{r['put_image']} PutImage, {r['answered']} answered ({r['per_s']:.1f}/s)",
                    f"p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s; {r['outcomes']}",
                )
            )
            print(f"phase 2 done: {rows[-1]}", flush=True)
        limit = 1 / (single["direct_p50"] + 2 * probe)
        rows.append(
            (
                "2 one tag, coalescing off: pushes/s / (1 / (PutImage p50 + 2 round trips))",
                f"{hot[False]['per_s'] / limit:.2f}x (goal >= 0.85x)",
                (
                    f"{hot[False]['per_s']:.1f}/s vs {limit:.1f}/s = 1 / "
                    f"({single['direct_p50'] * 1000:.0f} + 2 x {probe * 1000:.1f} ms)"
                ),
            )
        )
        with pushgate(base, ecr, delay=delay) as url:
            tags = asyncio.run(many_tags(url, ecr, repos["tags"], args.tag_clients, seconds))
        rows.append(
            (
                f"3 {args.tag_clients} clients over {args.tag_clients} tags, budget on",
                f"{tags['share'] * 100:.0f}% of quota (goal >= 90%), {tags['client_throttles']} throttles to clients (goal 0)",
                (
                    f"{tags['put_image_per_s']:.2f} PutImage/s, {tags['ecr_throttles']} ECR throttles, "
                    f"p50 {tags['p50']:.2f} s, p99 {tags['p99']:.2f} s; {tags['outcomes']}"
                ),
            )
        )
        print(f"phase 3 done: {rows[-1]}", flush=True)
        unbudgeted = base.model_copy(update={"putimage_budget": False})
        with pushgate(unbudgeted, ecr, delay=delay) as url:
            loose = asyncio.run(
                many_tags(url, ecr, repos["tags-nobudget"], args.tag_clients, seconds)
            )
        rows.append(
            (
                f"3 {args.tag_clients} clients over {args.tag_clients} tags, budget off",
                f"{loose['share'] * 100:.0f}% of quota, {loose['client_throttles']} throttles to clients",
                (
                    f"{loose['put_image_per_s']:.2f} PutImage/s, {loose['ecr_throttles']} ECR throttles, "
                    f"p50 {loose['p50']:.2f} s, p99 {loose['p99']:.2f} s; {loose['outcomes']}"
                ),
            )
        )
    off, on = hot[False], hot[True]
    rows.append(
        (
            "2 coalescing on / off",
            f"{on['answered'] / max(1, off['answered']):.1f}x pushes answered",
            (
                f"{on['put_image'] / max(1, on['answered']):.3f} vs {off['put_image'] / max(1, off['answered']):.3f} "
                f"PutImage per push; p50 {off['p50'] / on['p50']:.1f}x shorter"
            ),
        )
    )
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':{width}}  result")
    print(f"{'-' * width}  {'-' * 60}")
    for name, result, detail in rows:
        print(f"{name:{width}}  {result}")
        if detail:
            print(f"{'':{width}}    {detail}")


if __name__ == "__main__":
    main()
