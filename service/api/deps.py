"""Dependencies as ``Annotated`` aliases; everything hangs off ``app.state.services``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.adapters.budget import PutImageBudget
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


def get_identity(request: Request) -> Identity:
    """The caller, from the bearer token (401 when auth is on and it is missing or bad)."""
    auth: Authenticator = request.app.state.auth
    return auth.identify(request.headers.get("authorization"))


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
