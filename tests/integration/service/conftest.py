"""Fixtures of the service's integration tests: the session's moto server over HTTP on
127.0.0.1, the ECR fidelity layer, tables and per-test repositories.

DynamoDB is moto too, unless a module overrides ``service_dynamodb`` (module scope) to
name another endpoint, e.g. ``dynalite_endpoint``: then its tests run their DynamoDB
calls there, on tables created there, while ECR stays on moto."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aioboto3
import boto3
import httpx
import pytest
from fastapi import FastAPI

from service.adapters.aws import open_clients
from service.adapters.tables import ensure_tables
from service.main import create_app
from service.settings import Settings
from tests.ecr_fidelity import EcrFidelity

REGION = "us-east-1"


@pytest.fixture(scope="session")
def service_moto(moto_endpoint: str) -> str:
    """The session's moto server (tests/conftest.py: LocalAWS on 127.0.0.1, one call at a
    time), corrected by the ECR fidelity layer below."""
    return moto_endpoint


@pytest.fixture(scope="module", autouse=True)
def fidelity() -> Iterator[EcrFidelity]:
    """moto's ECR corrected to behave like ECR (tests/ecr_fidelity.py), for every test here
    (installed per module, so tests elsewhere see moto as it is)."""
    layer = EcrFidelity()
    layer.install()
    yield layer
    layer.uninstall()


@pytest.fixture
def suffix() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def table_suffix() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def service_dynamodb(service_moto: str) -> str:
    """The DynamoDB endpoint of this module's tests: moto, unless the module overrides
    this fixture."""
    return service_moto


@pytest.fixture(scope="session")
def table_maker(table_suffix: str) -> Callable[[str], None]:
    """Creates the session's tables on a DynamoDB endpoint, once per endpoint (each in
    a loop of its own); tests are isolated by fresh repository names, hence fresh
    repo:tag keys."""
    ready: set[str] = set()

    def ensure(endpoint: str) -> None:
        if endpoint in ready:
            return
        settings = _settings(endpoint, table_suffix)

        async def create() -> None:
            async with open_clients(settings) as clients:
                await ensure_tables(clients.dynamodb, settings)

        asyncio.run(create())
        ready.add(endpoint)

    return ensure


@pytest.fixture(scope="module")
def module_tables(
    service_dynamodb: str, table_maker: Callable[[str], None], table_suffix: str
) -> str:
    """The session's tables on this module's DynamoDB."""
    table_maker(service_dynamodb)
    return table_suffix


@pytest.fixture
def settings(service_moto: str, service_dynamodb: str, module_tables: str) -> Settings:
    """Settings on the session's tables, with short timings."""
    return _settings(service_dynamodb, module_tables, ecr=service_moto)


def _settings(dynamodb: str, suffix: str, *, ecr: str | None = None) -> Settings:
    """Settings on ``dynamodb`` (ECR there too, unless ``ecr`` names another endpoint)."""
    return Settings(
        region=REGION,
        dynamodb_endpoint_url=dynamodb,
        ecr_endpoint_url=ecr or dynamodb,
        lease_table=f"leases-{suffix}",
        history_table=f"history-{suffix}",
        lease_seconds=6.0,
        lease_margin_seconds=1.0,
        ecr_timeout_seconds=3.0,
        ecr_read_timeout_seconds=3.0,
        ecr_attempts=3,
        ecr_backoff_base_seconds=0.01,
        ecr_backoff_max_seconds=0.05,
        throttle_retry_after_seconds=2.0,
        default_wait_seconds=5.0,
        max_wait_seconds=10.0,
        ready_timeout_seconds=3.0,
        log_format="console",
        auth="off",
        log_level="warning",
    )


@pytest.fixture(scope="session")
def aws_session() -> aioboto3.Session:
    """One aioboto3 session for every app of the run: service models load once."""
    return aioboto3.Session()


@pytest.fixture
async def app(settings: Settings, aws_session: aioboto3.Session) -> AsyncIterator[FastAPI]:
    application = create_app(settings, session=aws_session)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://pushgate"
    ) as http:
        yield http


@pytest.fixture(scope="session")
def ecr(service_moto: str) -> Any:
    return boto3.client("ecr", endpoint_url=service_moto, region_name=REGION)


@pytest.fixture(scope="module")
def dynamodb(service_dynamodb: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=service_dynamodb, region_name=REGION)


@pytest.fixture
def repo(ecr: Any, suffix: str) -> str:
    """A fresh MUTABLE repository whose name contains a slash."""
    name = f"team/app-{suffix}"
    ecr.create_repository(repositoryName=name)
    return name


@pytest.fixture
def immutable_repo(ecr: Any, suffix: str) -> str:
    name = f"team/frozen-{suffix}"
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    return name
