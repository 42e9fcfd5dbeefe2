"""Prometheus metrics, on a registry per app so tests and two apps in one process
never collide."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


@dataclass
class CallStats:
    """ECR work done for one request, gathered by the ECR adapter (a context variable,
    so the domain stays free of metrics) and reported once per push."""

    ecr_seconds: float = 0.0
    put_image_calls: int = 0
    throttles: int = 0
    calls: list[tuple[str, float]] = field(default_factory=list)

    def record(self, operation: str, seconds: float, *, throttled: bool = False) -> None:
        self.ecr_seconds += seconds
        self.calls.append((operation, seconds))
        if operation == "PutImage":
            self.put_image_calls += 1
            self.throttles += int(throttled)


CALL_STATS: contextvars.ContextVar[CallStats | None] = contextvars.ContextVar(
    "pushgate_call_stats", default=None
)


def record_call(operation: str, seconds: float, *, throttled: bool = False) -> None:
    """Note one ECR call on the current request's stats, if a request is measuring."""
    stats = CALL_STATS.get()
    if stats is not None:
        stats.record(operation, seconds, throttled=throttled)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pushes = Counter(
            "pushgate_pushes",
            "Pushes answered, by outcome or error code.",
            ["outcome"],
            registry=self.registry,
        )
        self.repairs = Counter(
            "pushgate_tag_repairs",
            "Tags found not matching their record and put back.",
            registry=self.registry,
        )

        self.push_seconds = Histogram(
            "pushgate_push_seconds",
            "Time to answer a push, lease wait included.",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.lease_wait = Histogram(
            "pushgate_lease_wait_seconds",
            "Time a push waited for its repo:tag lease.",
            registry=self.registry,
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.ecr_call = Histogram(
            "pushgate_ecr_call_seconds",
            "Duration of each ECR call, by operation.",
            ["operation"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.in_flight = Gauge(
            "pushgate_pushes_in_flight", "Pushes being answered now.", registry=self.registry
        )
        self.leases_lost = Counter(
            "pushgate_leases_lost",
            "Pushes whose lease was lost while they held it.",
            registry=self.registry,
        )
        self.put_image_throttles = Counter(
            "pushgate_put_image_throttles",
            "PutImage calls ECR answered with throttling.",
            registry=self.registry,
        )

        # budget and coalescing
        self.budget_wait = Histogram(
            "pushgate_putimage_budget_wait_seconds",
            "Time a PutImage waited for its slot in the account-wide budget.",
            registry=self.registry,
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.coalesced = Counter(
            "pushgate_coalesced_pushes",
            "Pushes answered from a newer push of the same tag, without a PutImage.",
            ["outcome"],
            registry=self.registry,
        )

    def observe_push(self, stats: CallStats, seconds: float, waited_ms: float | None) -> None:
        self.push_seconds.observe(seconds)
        if waited_ms is not None:
            self.lease_wait.observe(waited_ms / 1000)
        for operation, duration in stats.calls:
            self.ecr_call.labels(operation=operation).observe(duration)
        if stats.throttles:
            self.put_image_throttles.inc(stats.throttles)

    def render(self) -> bytes:
        return generate_latest(self.registry)
