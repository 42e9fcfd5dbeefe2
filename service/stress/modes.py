"""The four ways a stress run pushes: ``raw``, ``lease``, ``pushgate`` and ``service``.

- ``raw``: ``put_image`` straight from every worker, the documents' code path. The client
  treats both "already exists" codes as success, as AWS advises for
  ``ImageAlreadyExistsException`` and as push tools do so that re-pushes stop failing
  builds, without comparing digests; with ``check_then_act`` it first reads the tag
  and pushes only over an older build (what cdk-assets does).
- ``lease``: the same ``put_image``, each wrapped in a ``locks.LeaseLock`` lease and
  nothing else: writers serialize, but an older build that gets the lease last still
  moves the tag back.
- ``pushgate``: ``service.domain.push.PushService`` in-process (lease + per-tag record +
  ECR), over two service instances (two lease owners) in one event loop; no HTTP.
- ``service``: through the HTTP API of two ``pushgate serve`` processes
  (``service.stress.processes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from locks import AsyncLease, LeaseLock, LockConfig, LockError
from service.adapters.leases import LockLease
from service.stress.harness import (
    MEDIA_TYPE,
    Counters,
    Dispatcher,
    Faults,
    Jitter,
    Observer,
    PushSpec,
    boto_client,
    create_repository,
    current_token,
    current_worker,
    final_state,
    instrument_ecr,
    instrument_ecr_async,
    make_plan,
    plan_sequences,
    run_threads,
    sequence_of,
    tag_digest,
)
from service.stress.invariants import Verdict, check
from service.stress.processes import run_service_mode
from service.stress.record import Attempt, History, Hold, Observation, Recorder
from service.stress.run import MODES, Mode, Run, RunConfig, finish, stress_settings

if TYPE_CHECKING:
    from service.adapters.aws import Clients
    from service.domain.models import Fence, HistoryEntry, TagRecord
    from service.domain.ports import Pusher
    from service.settings import Settings

#: The codes a tolerant raw client reports as "already pushed".
ALREADY_EXISTS = frozenset({"ImageAlreadyExistsException", "ImageTagAlreadyExistsException"})


@dataclass(frozen=True)
class RunResult:
    config: RunConfig
    history: History
    verdict: Verdict
    counters: Counters
    elapsed: float
    not_started: int


# --- raw and lease: put_image from threads ------------------------------------------------


def raw_put(client: Any, spec: PushSpec, run: Run) -> tuple[str, str | None]:
    """One push as the documents' clients do it; returns (outcome, error code)."""
    if run.config.check_then_act:
        sent = time.time()
        answer = client.batch_get_image(
            repositoryName=spec.repository, imageIds=[{"imageTag": spec.tag}]
        )
        images = answer.get("images") or []
        current = str(images[0]["imageId"]["imageDigest"]) if images else None
        run.recorder.observe(Observation(spec.key, current, sent, time.time()))
        if current == spec.digest:
            return "unchanged", None
        seen = sequence_of(images[0].get("imageManifest", "")) if images else None
        if seen is not None and seen > spec.sequence:
            return "superseded", None
    try:
        client.put_image(
            repositoryName=spec.repository,
            imageTag=spec.tag,
            imageManifest=spec.manifest,
            imageManifestMediaType=MEDIA_TYPE,
            imageDigest=spec.digest,
        )
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
        if code in ALREADY_EXISTS:
            # AWS: "treat it as a non-error". Which of the two codes an immutable tag
            # answers is uncertain (docs/ecr.md), so tolerant clients accept both, and
            # without comparing digests they report success for an image that lost.
            return "unchanged", None
        return "error", code
    except BotoCoreError as exc:
        return "error", type(exc).__name__
    return "pushed", None


def _run_raw(run: Run) -> None:
    def worker(index: int) -> None:
        name = f"w{index}"
        current_worker.set(name)
        client = boto_client("ecr", run.endpoint)
        instrument_ecr(client, jitter=run.jitter, recorder=run.recorder, counters=run.counters)
        run.faults.install(ecr=client)
        while (spec := run.dispatcher.next()) is not None:
            attempt = run.start(spec, name)
            attempt.tries = 1
            try:
                outcome, error = raw_put(client, spec, run)
            except Exception as exc:  # noqa: BLE001 - every attempt ends in an outcome
                outcome, error = "error", type(exc).__name__
            finish(attempt, outcome, error)

    run_threads(run.config.workers, worker, timeout=run.config.deadline_seconds + 60)


def _run_lease(run: Run) -> None:
    table = f"stress-leases-{run.config.run_id}"
    # waiters in other "processes" poll at most every 50 ms (the default cap is 250 ms)
    config = LockConfig(
        lease_seconds=run.config.lease_seconds, retry_base_seconds=0.01, retry_cap_seconds=0.05
    )
    LeaseLock(table, client=boto_client("dynamodb", run.endpoint)).ensure_table(poll_seconds=0.1)

    def worker(index: int) -> None:
        name = f"w{index}"
        current_worker.set(name)
        client = boto_client("ecr", run.endpoint)
        dynamodb = boto_client("dynamodb", run.endpoint)
        instrument_ecr(client, jitter=run.jitter, recorder=run.recorder, counters=run.counters)
        run.faults.install(ecr=client, dynamodb=dynamodb)
        lock = LeaseLock(table, client=dynamodb, config=config, owner=name)
        while (spec := run.dispatcher.next()) is not None:
            attempt = run.start(spec, name)
            attempt.tries = 1
            outcome, error = "error", None
            try:
                lease = lock.acquire(spec.key, timeout=run.config.request_deadline_seconds)
                start = time.time()
                attempt.token, attempt.waited_ms = lease.token, lease.waited_ms
                current_token.set(lease.token)
                try:
                    outcome, error = raw_put(client, spec, run)
                finally:
                    end = time.time()
                    lost = lease.lost
                    if lost:
                        end = min(end, lease.grant.trusted_until_ms / 1000)
                    run.recorder.hold(Hold(spec.key, lease.token, start, end, name, lost))
                    with contextlib.suppress(LockError):
                        lease.release()
            except LockError as exc:
                outcome, error = "error", type(exc).__name__
            except Exception as exc:  # noqa: BLE001 - every attempt ends in an outcome
                outcome, error = "error", type(exc).__name__
            finish(attempt, outcome, error)

    run_threads(run.config.workers, worker, timeout=run.config.deadline_seconds + 60)


# --- pushgate: the use case in-process -----------------------------------------------------


class RecordingLease(LockLease):
    """A service lease that records its holding period as the holder saw it.

    ``on_event`` hears ``acquired``, ``fence`` (before each fenced write beside the
    lease: an intent after settling another's, an adoption, a raised sequence),
    ``renew`` (rare on the push path: only when the lease is too short for a whole ECR
    call), ``commit`` (before the write of the record that releases the lease) and
    ``release``; the stress workers pause there on request."""

    def __init__(
        self,
        lease: AsyncLease,
        *,
        recorder: Recorder,
        on_event: Callable[[str, RecordingLease], None] | None = None,
    ) -> None:
        super().__init__(lease)
        self._recorder = recorder
        self._on_event = on_event
        self.worker = current_worker.get()
        self.start = time.time()
        self._ended = False
        current_token.set(self.token)
        self._emit("acquired")

    def _emit(self, event: str) -> None:
        if self._on_event is not None:
            self._on_event(event, self)

    def fence(self) -> Fence:
        self._emit("fence")
        return super().fence()

    async def renew(self) -> None:
        self._emit("renew")
        await super().renew()

    @property
    def trusted_until(self) -> float:
        """Until when the holder trusts its lease (epoch seconds); heartbeats move it."""
        return self._lease.grant.trusted_until_ms / 1000

    def hold(self) -> Hold:
        end = time.time()
        lost = self.lost
        if lost:
            end = min(end, self.trusted_until)
        return Hold(self.key, self.token, self.start, end, self.worker, lost)

    async def commit(self, record: TagRecord, *, history: HistoryEntry) -> tuple[HistoryEntry, ...]:
        self._emit("commit")
        self._ending()
        return await super().commit(record, history=history)

    async def release(self, *, drop_intent: bool = False) -> None:
        self._ending()
        await super().release(drop_intent=drop_intent)

    def _ending(self) -> None:
        """The holding period ends at the commit or the release, whichever comes first."""
        if not self._ended:
            self._ended = True
            self._recorder.hold(self.hold())
            self._emit("release")


def push_service(
    settings: Settings,
    clients: Clients,
    recorder: Recorder,
    *,
    on_event: Callable[[str, RecordingLease], None] | None = None,
) -> Pusher:
    """The production wiring (``service.main.build_services``) with leases that record
    their holding periods."""
    from service.main import build_services  # noqa: PLC0415 - server-only import

    def recording(lease: AsyncLease) -> LockLease:
        return RecordingLease(lease, recorder=recorder, on_event=on_event)

    return build_services(settings, clients, lease_factory=recording).push


def client_backoff(tries: int, retry_after: float | None, rng: random.Random) -> float:
    """What ``service.client.RetryPolicy`` waits: capped exponential, jittered."""
    backoff = min(10.0, 0.2 * 2.0 ** (tries - 1)) * (0.5 + 0.5 * rng.random())
    return max(backoff, retry_after or 0.0)


async def push_once(
    service: Pusher,
    spec: PushSpec,
    attempt: Attempt,
    settings: Settings,
    *,
    deadline: float,
    rng: random.Random,
) -> None:
    """One request through the use case, retried like ``PushClient`` retries a 503."""
    from service.domain.errors import PushError  # noqa: PLC0415
    from service.domain.models import PushRequest  # noqa: PLC0415

    request = PushRequest.create(
        repository=spec.repository,
        tag=spec.tag,
        manifest=spec.manifest,
        sequence=spec.sequence,
        default_wait_seconds=settings.default_wait_seconds,
        max_wait_seconds=settings.max_wait_seconds,
    )
    while True:
        attempt.tries += 1
        current_token.set(None)
        try:
            result = await service.push(
                request,
                caller=attempt.worker,
                request_id=f"{spec.request_id}.{attempt.tries}",
            )
        except PushError as exc:
            attempt.error = exc.code
            delay = client_backoff(attempt.tries, exc.retry_after, rng)
            if exc.retryable and time.time() + delay < deadline:
                await asyncio.sleep(delay)
                continue
            outcome = "tag_immutable" if exc.code == "tag_immutable" else "error"
            finish(attempt, outcome, exc.code)
            return
        attempt.token, attempt.waited_ms = result.token, result.waited_ms
        finish(attempt, result.outcome.value)
        return


async def _pushgate_async(run: Run) -> None:
    from service.adapters.aws import open_clients  # noqa: PLC0415
    from service.adapters.tables import ensure_tables  # noqa: PLC0415

    settings = stress_settings(run.config, run.endpoint)
    rng = random.Random(run.config.seed)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(open_clients(settings))
            for _ in range(run.config.instances)
        ]
        await ensure_tables(clients[0].dynamodb, settings)
        services = []
        for pair in clients:
            instrument_ecr_async(
                pair.ecr, jitter=run.jitter, recorder=run.recorder, counters=run.counters
            )
            run.faults.install(dynamodb=pair.dynamodb, ecr=pair.ecr, aio=True)
            services.append(push_service(settings, pair, run.recorder))

        async def worker(index: int) -> None:
            name = f"w{index}"
            current_worker.set(name)
            service = services[index % len(services)]
            while (spec := run.dispatcher.next()) is not None:
                attempt = run.start(spec, name)
                try:
                    await push_once(
                        service,
                        spec,
                        attempt,
                        settings,
                        deadline=time.time() + run.config.request_deadline_seconds,
                        rng=rng,
                    )
                except Exception as exc:  # noqa: BLE001 - every attempt ends in an outcome
                    finish(attempt, "error", type(exc).__name__)

        await asyncio.gather(*(worker(i) for i in range(run.config.workers)))


def _run_pushgate(run: Run) -> None:
    asyncio.run(_pushgate_async(run))


def _run_service(run: Run) -> None:
    run_service_mode(run)


RUNNERS: dict[Mode, Callable[[Run], None]] = {
    "raw": _run_raw,
    "lease": _run_lease,
    "pushgate": _run_pushgate,
    "service": _run_service,
}


def prepare(config: RunConfig, endpoint: str, plan: list[PushSpec] | None = None) -> Run:
    """Create the repository and the plan (or take ``plan``); nothing runs yet."""
    if plan is None:
        plan = make_plan(
            repository=config.repository,
            tags=config.tags,
            pushes=config.pushes,
            seed=config.seed,
            copies=config.copies,
            reruns=config.reruns,
        )
    create_repository(endpoint, config.repository, immutable=config.immutable)
    counters = Counters()
    return Run(
        config=config,
        endpoint=endpoint,
        plan=plan,
        dispatcher=Dispatcher(plan, deadline=time.time() + config.deadline_seconds),
        recorder=Recorder(immutable=config.immutable, sequences=plan_sequences(plan)),
        counters=counters,
        jitter=Jitter(config.jitter_ms, config.seed),
        faults=Faults(
            dynamodb=config.dynamodb_faults,
            ecr_put=config.ecr_faults,
            seed=config.seed,
            counters=counters,
        ),
    )


def execute(run: Run, runner: Callable[[Run], None] | None = None) -> RunResult:
    """Run ``run`` to the end, read ECR's final state and check the invariants."""
    config = run.config
    previous = sys.getswitchinterval()
    if config.switch_interval is not None:
        sys.setswitchinterval(config.switch_interval)
    started = time.time()
    try:
        observer = (
            Observer(run.endpoint, config.repository, config.tag_names, run.recorder)
            if config.observe
            else contextlib.nullcontext()
        )
        with observer:
            (runner or RUNNERS[config.mode])(run)
    finally:
        sys.setswitchinterval(previous)
    elapsed = time.time() - started
    run.faults.enabled = False
    run.recorder.set_final(final_state(run.endpoint, config.repository, config.tag_names))
    history = run.recorder.history()
    return RunResult(
        config=config,
        history=history,
        verdict=check(history),
        counters=run.counters,
        elapsed=elapsed,
        not_started=run.dispatcher.remaining,
    )


def run_stress(config: RunConfig, endpoint: str) -> RunResult:
    return execute(prepare(config, endpoint))


__all__ = [
    "MODES",
    "Mode",
    "RunConfig",
    "RunResult",
    "execute",
    "prepare",
    "run_stress",
    "tag_digest",
]
