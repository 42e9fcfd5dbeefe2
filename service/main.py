"""``create_app(settings)``: builds the FastAPI app and wires the adapters.

The lifespan opens one DynamoDB and one ECR aioboto3 client and builds the adapters over
them; tests may pass ``services=`` (fakes) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import aioboto3
import structlog
from fastapi import FastAPI

from locks import AsyncLease, AsyncLeaseLock, LockConfig
from service.adapters.aws import Clients, open_clients
from service.adapters.budget import BudgetedRegistry, DynamoPutImageBudget, budget_scope
from service.adapters.ecr import EcrRegistry
from service.adapters.history import DynamoHistory
from service.adapters.layers import EcrLayers
from service.adapters.leases import LockLease, LockLeaseProvider
from service.adapters.records import DynamoTagRecords
from service.api import errors
from service.api.deps import Services
from service.api.middleware import (
    AuthMiddleware,
    BodyGuardMiddleware,
    HeadMiddleware,
    RequestContextMiddleware,
)
from service.api.routes import health, promote, push, tags
from service.api.routes import registry as front_door
from service.auth import Authenticator
from service.domain.coalesce import CoalescingPushService
from service.domain.ports import Registry
from service.domain.push import PushPolicy, PushService
from service.logging import configure_logging
from service.metrics import HttpMetricsMiddleware, Metrics
from service.oidc import OidcVerifier, load_config
from service.settings import Settings

VERSION = "0.1.0"


def push_policy(settings: Settings) -> PushPolicy:
    return PushPolicy(
        ecr_timeout_seconds=settings.ecr_timeout_seconds,
        lease_margin_seconds=settings.lease_margin_seconds,
        attempts=settings.ecr_attempts,
        backoff_base_seconds=settings.ecr_backoff_base_seconds,
        backoff_max_seconds=settings.ecr_backoff_max_seconds,
        throttle_retry_after_seconds=settings.throttle_retry_after_seconds,
    )


def oidc_verifier(settings: Settings) -> OidcVerifier | None:
    """The OIDC verifier when issuers are configured (``service.oidc``)."""
    issuers = load_config(settings.oidc_config, settings.oidc_config_file)
    if not issuers:
        return None
    return OidcVerifier(
        issuers, leeway=settings.oidc_leeway_seconds, refresh_interval=settings.oidc_refresh_seconds
    )


#: how long after its last lease a tag's item may be cleaned up: never, in practice
RECORD_LIFETIME_SECONDS = 100 * 365 * 86_400.0


def lock_config(settings: Settings) -> LockConfig:
    return LockConfig(
        lease_seconds=settings.lease_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        max_clock_skew_seconds=settings.max_clock_skew_seconds,
        # the lease item carries the tag's record: DynamoDB TTL must never delete it
        cleanup_after_seconds=RECORD_LIFETIME_SECONDS,
    )


def build_services(
    settings: Settings,
    clients: Clients,
    *,
    lease_factory: Callable[[AsyncLease], LockLease] = LockLease,
) -> Services:
    """The production wiring: adapters over the two clients, the use case over them.
    ``lease_factory`` wraps each held lease (the stress harness records holds with it)."""
    lock = AsyncLeaseLock(
        settings.lease_table, client=clients.dynamodb, config=lock_config(settings)
    )
    registry = EcrRegistry(
        clients.ecr,
        registry_id=settings.registry_id,
        read_timeout=settings.ecr_read_timeout_seconds,
    )
    records = DynamoTagRecords(clients.dynamodb, lease_table=settings.lease_table)
    history = DynamoHistory(clients.dynamodb, table=settings.history_table)
    metrics = Metrics()
    metrics.observe_dynamodb(clients.dynamodb)
    budgeted: Registry = registry
    budget: DynamoPutImageBudget | None = None
    forget_after = 0.05  # how late past its slot a woken PutImage may start: see BudgetedRegistry
    if settings.putimage_budget:
        budget = DynamoPutImageBudget(
            clients.dynamodb,
            table=settings.budget_table,
            scope=budget_scope(settings.registry_id, clients.ecr.meta.region_name),
            rate_per_second=settings.putimage_rate_per_second,
            share=settings.putimage_budget_share,
        )
        forget_after = 0.4 * budget.interval_seconds
        budgeted = BudgetedRegistry(
            registry,
            budget,
            max_wait_seconds=settings.budget_max_wait_seconds,
            call_reserve_seconds=min(1.0, settings.ecr_timeout_seconds / 2),
            on_wait=metrics.budget_wait.observe,
            forget_after_seconds=forget_after,
        )
    use_case = PushService(
        registry=budgeted,
        leases=LockLeaseProvider(lock, retry_after=1.0, lease_factory=lease_factory),
        records=records,
        history=history,
        policy=push_policy(settings),
        clock=time.time,
        sleep=asyncio.sleep,
        on_repaired=metrics.repairs.inc,
    )
    service = CoalescingPushService(
        use_case,
        enabled=settings.coalesce,
        on_coalesced=lambda outcome: metrics.coalesced.labels(outcome=outcome.value).inc(),
    )
    layers = EcrLayers(
        clients.ecr,
        registry_id=settings.registry_id,
        timeout=max(settings.ecr_timeout_seconds, 60.0),
        budget=budget,
        budget_max_wait=settings.budget_max_wait_seconds,
        budget_forget_after=forget_after,
    )
    return Services(
        settings=settings,
        push=service,
        registry=registry,
        records=records,
        history=history,
        metrics=metrics,
        budget=budget,
        layers=layers,
    )


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    session: aioboto3.Session | None = None,
) -> FastAPI:
    """The pushgate app. ``services`` replaces the AWS wiring (tests with fakes);
    ``session`` is the aioboto3 session to open clients from (default: a new one, the
    standard AWS chain)."""
    settings = settings or Settings()
    configure_logging(settings)
    auth = Authenticator.from_settings(settings, oidc_verifier(settings))  # AuthConfigError
    _log_auth(settings, auth)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        async with open_clients(settings, session=session) as clients:
            app.state.clients = clients
            app.state.services = build_services(settings, clients)
            yield

    app = FastAPI(
        title="pushgate",
        version=VERSION,
        description="Serializes ECR PutImage per repo:tag with DynamoDB leases.",
        lifespan=lifespan,
        # no /docs nor /redoc: their pages load scripts from a public CDN
        docs_url=None,
        redoc_url=None,
        # a redirect would name a Location built from the client's Host header
        redirect_slashes=False,
    )
    app.state.auth = auth
    # added innermost first: request id, then the token, then the body's size and pace
    app.add_middleware(
        BodyGuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        timeout_seconds=settings.body_timeout_seconds,
    )
    app.add_middleware(AuthMiddleware, auth=auth, open_paths=open_paths(settings))
    app.add_middleware(HeadMiddleware)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(HttpMetricsMiddleware)
    errors.install(app)
    app.include_router(push.router)
    app.include_router(promote.router)
    app.include_router(tags.router)
    app.include_router(health.router)
    front_door.install(app, max_blob_uploads=settings.max_blob_uploads)
    return app


def open_paths(settings: Settings) -> frozenset[str]:
    """What needs no token with auth on: the probes, and /metrics if the operator says so."""
    paths = {"/healthz", "/readyz"}
    if settings.metrics_open:
        paths.add("/metrics")
    return frozenset(paths)


def _log_auth(settings: Settings, auth: Authenticator) -> None:
    log = structlog.get_logger("pushgate")
    if auth.enabled:
        log.info(
            "auth_enabled",
            tokens=auth.token_names,
            open_paths=sorted(open_paths(settings)),
        )
    else:
        log.warning("auth_disabled", reason="PUSHGATE_AUTH=off: every caller is anonymous")
