"""Prometheus metrics, on a registry per app so tests and two apps in one process
never collide.

Names follow Prometheus' conventions: base units (``_seconds``), counters end in
``_total``, one spelling per concept (``put_image``), and no ``_created`` series. Every
name is listed in the README's "Observability" section; the alert rules and the
Grafana dashboard under ``deploy/`` use only names a test finds in this registry."""

from __future__ import annotations

import contextvars
import importlib.metadata
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from types_aiobotocore_dynamodb import DynamoDBClient

# process-wide, by design; through a typed name: prometheus_client leaves it unannotated
_disable_created: Callable[[], None] = disable_created_metrics
_disable_created()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STARTED = "pushgate_started"  # key in botocore's per-call context dict


def _version() -> str:
    try:
        return importlib.metadata.version("pushgate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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
    def __init__(self, version: str | None = None) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.build_info = Info("pushgate_build", "The running pushgate.", registry=registry)
        self.build_info.info({"version": version or _version()})

        # pushes
        self.pushes = Counter(
            "pushgate_pushes",
            "Pushes answered, by outcome or error code.",
            ["outcome"],
            registry=registry,
        )
        self.push_seconds = Histogram(
            "pushgate_push_seconds",
            "Time to answer a push, lease wait included.",
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.in_flight = Gauge(
            "pushgate_pushes_in_flight", "Pushes being answered now.", registry=registry
        )
        self.repairs = Counter(
            "pushgate_tag_repairs",
            "Tags found not matching their record and put back.",
            registry=registry,
        )
        self.coalesced = Counter(
            "pushgate_coalesced_pushes",
            "Pushes answered from a newer push of the same tag, without a PutImage.",
            ["outcome"],
            registry=registry,
        )

        # leases
        self.lease_wait = Histogram(
            "pushgate_lease_wait_seconds",
            "Time a push waited for its repo:tag lease.",
            registry=registry,
            buckets=WAIT_BUCKETS,
        )
        self.leases_lost = Counter(
            "pushgate_leases_lost",
            "Pushes whose lease was lost while they held it.",
            registry=registry,
        )

        # ECR and the PutImage budget
        self.ecr_call = Histogram(
            "pushgate_ecr_call_seconds",
            "Duration of each ECR call, by operation.",
            ["operation"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.put_image_throttles = Counter(
            "pushgate_put_image_throttles",
            "PutImage calls ECR answered with throttling.",
            registry=registry,
        )
        self.budget_wait = Histogram(
            "pushgate_put_image_budget_wait_seconds",
            "Time a PutImage waited for its slot in the account-wide budget.",
            registry=registry,
            buckets=WAIT_BUCKETS[:-2],
        )

        # DynamoDB and HTTP
        self.dynamodb_call = Histogram(
            "pushgate_dynamodb_call_seconds",
            "Duration of each DynamoDB call (botocore's retries included), by operation.",
            ["operation"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.dynamodb_errors = Counter(
            "pushgate_dynamodb_errors",
            "DynamoDB calls that failed, by operation and error code (a failed condition "
            "is ConditionalCheckFailedException: leases contending, not a fault).",
            ["operation", "code"],
            registry=registry,
        )
        self.http_request = Histogram(
            "pushgate_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )

    def observe_push(self, stats: CallStats, seconds: float, waited_ms: float | None) -> None:
        self.push_seconds.observe(seconds)
        if waited_ms is not None:
            self.lease_wait.observe(waited_ms / 1000)
        for operation, duration in stats.calls:
            self.ecr_call.labels(operation=operation).observe(duration)
        if stats.throttles:
            self.put_image_throttles.inc(stats.throttles)

    def observe_dynamodb(self, client: DynamoDBClient) -> None:
        """Time every call of ``client`` with botocore's own events (a call spans its
        retries; a transport failure after them counts as an error of its type)."""
        events = client.meta.events
        events.register("before-call.dynamodb", self._dynamodb_started)
        events.register("after-call.dynamodb", self._dynamodb_answered)
        events.register("after-call-error.dynamodb", self._dynamodb_failed)

    def _dynamodb_started(self, context: dict[str, Any], **_: Any) -> None:
        context[_STARTED] = time.perf_counter()

    def _dynamodb_answered(
        self,
        model: Any,
        http_response: Any,
        parsed: dict[str, Any],
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        self._dynamodb_done(model.name, context)
        if http_response.status_code >= 300:  # noqa: PLR2004 - botocore's own error test
            code = parsed.get("Error", {}).get("Code") or str(http_response.status_code)
            self.dynamodb_errors.labels(operation=model.name, code=code).inc()

    def _dynamodb_failed(
        self, exception: BaseException, context: dict[str, Any], event_name: str, **_: Any
    ) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self._dynamodb_done(operation, context)
        self.dynamodb_errors.labels(operation=operation, code=type(exception).__name__).inc()

    def _dynamodb_done(self, operation: str, context: dict[str, Any]) -> None:
        started = context.pop(_STARTED, None)
        if started is not None:
            self.dynamodb_call.labels(operation=operation).observe(time.perf_counter() - started)

    def observe_request(self, scope: Scope, status: int, seconds: float) -> None:
        """One answered request. Labels stay bounded: the route's template (never the
        path itself), ``unmatched`` for paths no route serves, ``OTHER`` for odd methods."""
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = scope.get("method", "")
        method = method if method in METHODS else "OTHER"
        self.http_request.labels(route=route, method=method, status=str(status)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def names(self) -> set[str]:
        """Every series name this registry can expose (``_total``, ``_bucket``, ``_info``
        included), whether or not a labelled series has been observed yet."""
        return {
            family.name + suffix
            for family in self.registry.collect()
            for suffix in _SUFFIXES.get(family.type, ("",))
        }


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "info": ("_info",),
}


class HttpMetricsMiddleware:
    """ASGI middleware: times each HTTP request into the app's ``Metrics`` (found on
    ``app.state.services`` once the lifespan has built it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the answer starts becomes a 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            services = getattr(getattr(scope.get("app"), "state", None), "services", None)
            metrics = getattr(services, "metrics", None)
            if isinstance(metrics, Metrics):
                metrics.observe_request(scope, status, time.perf_counter() - started)
