"""ECR calls under a lease: every call ends well inside the lease, and PutImage is retried
here (throttling and faults, jittered backoff), since the ECR client itself does not
retry (``service.adapters.ecr``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from service.domain.errors import (
    LeaseLost,
    RegistryError,
    RegistryThrottled,
    RegistryTimeout,
    TagImmutable,
)
from service.domain.models import Answer, Outcome, PushRequest
from service.domain.ports import Lease, PutStatus, Registry

log = structlog.get_logger("pushgate.push")


@dataclass(frozen=True, slots=True)
class PushPolicy:
    """Timing of one push. Every ECR call must end ``lease_margin_seconds`` before the lease."""

    ecr_timeout_seconds: float = 10.0
    lease_margin_seconds: float = 2.0
    min_call_seconds: float = 0.2
    attempts: int = 4
    backoff_base_seconds: float = 0.2
    backoff_max_seconds: float = 5.0
    throttle_retry_after_seconds: float = 2.0
    lease_retry_after_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if self.ecr_timeout_seconds <= 0 or self.min_call_seconds <= 0:
            raise ValueError("timeouts must be positive")
        if self.lease_margin_seconds < 0:
            raise ValueError("lease_margin_seconds must be >= 0")

    def backoff(self, attempt: int, jitter: float) -> float:
        """Full jitter: ``jitter`` in [0, 1) of a ceiling doubling per attempt."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2.0**attempt)
        return ceiling * jitter


async def call_budget(lease: Lease, policy: PushPolicy) -> float:
    """A timeout for the next ECR call that ends well inside the lease. The lease is
    renewed first only when what is left would cut a whole call short: the heartbeat
    keeps it long, and a renewal is a round trip on every push's path."""
    if lease.lost:
        raise LeaseLost(lease.key)
    if lease.remaining() - policy.lease_margin_seconds < policy.ecr_timeout_seconds:
        await lease.renew()
    budget = lease.remaining() - policy.lease_margin_seconds
    if budget < policy.min_call_seconds:
        raise LeaseLost(lease.key)
    return min(policy.ecr_timeout_seconds, budget)


@dataclass(frozen=True, slots=True)
class PutImageCall:
    """PutImage of one request under one lease, retried within the policy."""

    registry: Registry
    policy: PushPolicy
    sleep: Callable[[float], Awaitable[None]]
    jitter: Callable[[], float]

    async def outcome(self, request: PushRequest, lease: Lease) -> Answer:
        """``PUSHED`` or ``UNCHANGED``; ``TagImmutable`` when an immutable tag names
        another image."""
        status, may_have_landed = await self._put(request, lease)
        if status is PutStatus.PUSHED:
            return Outcome.PUSHED
        # ImageAlreadyExists / ImageTagAlreadyExists: which one ECR sends for an immutable
        # tag is uncertain, so both are settled by comparing digests.
        existing = await self.registry.tag_digest(request.ref)
        if existing != request.digest:
            raise TagImmutable(request.ref.repository, request.ref.tag, existing_digest=existing)
        # "already exists" may be this push's own earlier attempt, which ECR applied but
        # whose answer was lost: then this push moved the tag. (If the tag already named
        # it before this push and the failed attempt never landed, this says pushed where
        # unchanged was true: both end with the tag right.)
        return Outcome.PUSHED if may_have_landed else Outcome.UNCHANGED

    async def _put(self, request: PushRequest, lease: Lease) -> tuple[PutStatus, bool]:
        """ECR's answer, and whether an earlier attempt may have landed unanswered."""
        policy = self.policy
        last: RegistryError | None = None
        may_have_landed = False  # an attempt failed after ECR may have applied it
        for attempt in range(policy.attempts):
            timeout = await call_budget(lease, policy)
            try:
                status = await self.registry.put_image(
                    request.ref,
                    manifest=request.manifest,
                    media_type=request.media_type,
                    digest=request.digest,
                    timeout=timeout,
                )
            except RegistryTimeout as exc:
                # The put may still have landed: ECR is asked, not guessed.
                if await self.registry.tag_digest(request.ref) == request.digest:
                    return PutStatus.PUSHED, True
                last, may_have_landed = exc, True
            except RegistryError as exc:
                if not exc.retryable:
                    raise
                last = exc
                # a throttled call was refused; a fault or lost answer may have landed
                may_have_landed = may_have_landed or not isinstance(exc, RegistryThrottled)
            else:
                return status, may_have_landed
            if attempt + 1 < policy.attempts:
                delay = policy.backoff(attempt, self.jitter())
                if last.retry_after:  # e.g. a budget slot held for this push, that far away
                    delay = min(delay, last.retry_after)
                log.warning(
                    "registry_retry",
                    attempt=attempt + 1,
                    delay_s=round(delay, 3),
                    error=last.code,
                    cause=last.cause_code,
                )
                await self.sleep(delay)
        assert last is not None  # noqa: S101 - the loop ran at least once
        if isinstance(last, RegistryThrottled):
            raise RegistryThrottled(
                "The registry kept throttling PutImage; retry later.",
                cause_code=last.cause_code,
                # a full budget knows when its next slot is: not sooner than that
                retry_after=max(policy.throttle_retry_after_seconds, last.retry_after or 0),
            ) from last
        raise last
