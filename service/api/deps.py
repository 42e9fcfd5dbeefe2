"""Dependencies as ``Annotated`` aliases; everything hangs off ``app.state.services``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from service.adapters.budget import PutImageBudget
from service.adapters.layers import EcrLayers
from service.auth import Authenticator, Identity
from service.domain.ports import History, Pusher, Registry, TagRecords
from service.metrics import Metrics
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    """What the routes use; built by ``main.create_app``'s lifespan or given by tests."""

    settings: Settings
    push: Pusher
    registry: Registry
    records: TagRecords
    history: History
    metrics: Metrics
    #: the shared PutImage budget, when on; ``/readyz`` checks its table
    budget: PutImageBudget | None = None
    #: ECR's layer API, for the registry front door (``/v2/``); absent over fakes
    layers: EcrLayers | None = None


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_push(request: Request) -> Pusher:
    return get_services(request).push


def get_registry(request: Request) -> Registry:
    return get_services(request).registry


def get_records(request: Request) -> TagRecords:
    return get_services(request).records


def get_history(request: Request) -> History:
    return get_services(request).history


def get_settings(request: Request) -> Settings:
    return get_services(request).settings


def get_metrics(request: Request) -> Metrics:
    return get_services(request).metrics


async def get_identity(request: Request) -> Identity:
    """The caller, as ``AuthMiddleware`` identified it from the headers before the body
    was read; identified here only for a route the middleware does not cover."""
    identity: Identity | None = getattr(request.state, "identity", None)
    if identity is not None:
        return identity
    auth: Authenticator = request.app.state.auth
    return await auth.authenticate(request.headers.get("authorization"))


#: Declares the bearer token in the OpenAPI document; ``AuthMiddleware`` checks it (with
#: auth off, every caller is anonymous).
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token made by `pushgate token`, unless the service runs with PUSHGATE_AUTH=off.",
)


def get_request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "-")


ServicesDep = Annotated[Services, Depends(get_services)]
PushDep = Annotated[Pusher, Depends(get_push)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
RecordsDep = Annotated[TagRecords, Depends(get_records)]
HistoryDep = Annotated[History, Depends(get_history)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
IdentityDep = Annotated[Identity, Depends(get_identity)]
