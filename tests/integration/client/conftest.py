"""The real service for the client and CLI tests: ``create_app`` served by uvicorn on
127.0.0.1 over the session's moto server, with the ECR fidelity layer installed (per
module, as the service tests do), fresh tables and two repositories, one IMMUTABLE.

Tests share one service per module and stay isolated by fresh tags.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from service.adapters.aws import open_clients
from service.adapters.tables import ensure_tables
from service.client import AsyncPushClient, PushClient
from service.main import create_app
from service.settings import Settings
from tests.ecr_fidelity import EcrFidelity
from tests.integration.service.conftest import REGION, _settings
from tests.uvicorn_server import serve


@dataclass(frozen=True)
class Service:
    """A running pushgate and what its tests need to reach around it."""

    url: str
    settings: Settings
    repo: str  # MUTABLE, with a slash in its name
    immutable_repo: str  # IMMUTABLE
    fidelity: EcrFidelity
    dynamodb: Any  # boto3 clients on the same moto server
    ecr: Any


@pytest.fixture(scope="session")
def client_tables(moto_endpoint: str) -> Settings:
    """Settings on fresh tables, created once for the session (short timings, as the
    service tests use)."""
    settings = _settings(moto_endpoint, f"client-{uuid.uuid4().hex[:8]}")

    async def create() -> None:
        async with open_clients(settings) as clients:
            await ensure_tables(clients.dynamodb, settings)

    asyncio.run(create())
    return settings


@pytest.fixture(scope="module")
def fidelity() -> Iterator[EcrFidelity]:
    """moto's ECR corrected to behave like ECR, for this module only."""
    layer = EcrFidelity()
    layer.install()
    yield layer
    layer.uninstall()


@pytest.fixture(scope="module")
def service(
    moto_endpoint: str, client_tables: Settings, fidelity: EcrFidelity
) -> Iterator[Service]:
    """pushgate served by uvicorn on 127.0.0.1 for the module."""
    suffix = uuid.uuid4().hex[:8]
    ecr = boto3.client("ecr", endpoint_url=moto_endpoint, region_name=REGION)
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)
    repo = f"team/app-{suffix}"
    immutable_repo = f"team/frozen-{suffix}"
    ecr.create_repository(repositoryName=repo)
    ecr.create_repository(repositoryName=immutable_repo, imageTagMutability="IMMUTABLE")
    with serve(create_app(client_tables)) as url:
        yield Service(url, client_tables, repo, immutable_repo, fidelity, dynamodb, ecr)
    fidelity.clear()


@pytest.fixture
def tag() -> str:
    """A fresh tag per test: a fresh repo:tag key on the module's service."""
    return f"v-{uuid.uuid4().hex[:10]}"


class Driver:
    """Either client behind one ``await``-able surface, so each test runs on both."""

    def __init__(self, client: PushClient | AsyncPushClient) -> None:
        self.client = client

    @property
    def kind(self) -> str:
        return "async" if isinstance(self.client, AsyncPushClient) else "sync"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return call


@pytest.fixture(params=["sync", "async"])
async def make_client(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Driver]]:
    """A factory of ``PushClient`` or ``AsyncPushClient`` (the parameter), closed at the
    end of the test."""
    opened: list[PushClient | AsyncPushClient] = []

    def make(*args: Any, **kwargs: Any) -> Driver:
        cls = PushClient if request.param == "sync" else AsyncPushClient
        client = cls(*args, **kwargs)
        opened.append(client)
        return Driver(client)

    yield make
    for client in opened:
        if isinstance(client, AsyncPushClient):
            await client.aclose()
        else:
            client.close()
