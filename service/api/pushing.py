"""What every push route shares: who the caller is, and one observed push (its metrics
and its one ``push`` log event)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from fastapi import BackgroundTasks, Request

from service.auth import Identity
from service.domain.errors import InvalidRequest, PushError
from service.domain.limits import printable
from service.domain.models import PushResult
from service.metrics import CALL_STATS, CallStats, Metrics

log = structlog.get_logger("pushgate.api")


Job = Callable[[], Awaitable[None]]


@contextlib.asynccontextmanager
async def after_answer(background: BackgroundTasks) -> AsyncIterator[list[Job]]:
    """The jobs a push defers (verify the tag, release its lease) run after the answer is
    sent, as background tasks; an answer that fails on the way out carries none, so they
    run here then."""
    jobs: list[Job] = []
    try:
        yield jobs
    except BaseException:
        for job in jobs:
            await job()
        raise
    for job in jobs:
        background.add_task(job)


def caller_of(named: str | None, request: Request, identity: Identity, header: str | None) -> str:
    """Who pushes, for history: the body's or header's name, else the client address;
    with auth on, the token's name comes first."""
    client = request.client.host if request.client else "unknown"
    if header is not None and not (header and printable(header)):
        raise InvalidRequest("x-pushgate-caller", "must be printable characters")
    caller = named or header or client
    if identity.entry is not None:
        caller = identity.name if caller == client else f"{identity.name} ({caller})"
    return caller


async def observed(
    run: Callable[[], Awaitable[PushResult]], metrics: Metrics, caller: str
) -> PushResult:
    """Run the push with its metrics and its one ``push`` log event."""
    stats = CallStats()
    CALL_STATS.set(stats)
    started = time.perf_counter()
    metrics.in_flight.inc()
    try:
        result = await run()
    except PushError as exc:
        metrics.pushes.labels(outcome=exc.code).inc()
        if exc.code == "lease_lost":
            metrics.leases_lost.inc()
        metrics.observe_push(stats, time.perf_counter() - started, None)
        log.info("push", outcome=exc.code, ecr_ms=round(stats.ecr_seconds * 1000, 1))
        raise
    finally:
        metrics.in_flight.dec()
    metrics.pushes.labels(outcome=result.outcome.value).inc()
    metrics.observe_push(stats, time.perf_counter() - started, result.waited_ms)
    log.info(
        "push",
        outcome=result.outcome.value,
        digest=result.digest,
        previous_digest=result.previous_digest,
        sequence=result.sequence,
        token=result.token,
        waited_ms=round(result.waited_ms, 1),
        ecr_ms=round(stats.ecr_seconds * 1000, 1),
        put_image_calls=stats.put_image_calls,
        caller=caller,
    )
    return result
