"""aioboto3 clients, their botocore configuration, and table creation.

Endpoints and credentials come from botocore's own resolution (the standard chain,
``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_ECR``); an endpoint is passed explicitly
only when ``Settings`` names one (``pushgate serve --local`` and the tests do).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from service.domain.errors import BackendUnavailable

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_ecr import ECRClient

    from service.settings import Settings


def dynamodb_config(settings: Settings) -> AioConfig:
    """Standard retries: DynamoDB throttling and 5xx are safe to retry quickly; each
    call is short against the lease (a third of it, 1-10 s)."""
    read_timeout = max(1.0, min(10.0, settings.lease_seconds / 3))
    return AioConfig(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=min(2.0, read_timeout),
        read_timeout=read_timeout,
    )


def ecr_config(settings: Settings) -> AioConfig:
    """Standard mode with ONE attempt: standard/adaptive retry LimitExceededException as
    if it were throttling, so botocore does not retry ECR at all. The push use case
    retries throttling and 5xx itself with jittered backoff bounded by the lease
    (``service.domain.push``), and never retries a quota error."""
    return AioConfig(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=min(2.0, settings.ecr_timeout_seconds),
        read_timeout=settings.ecr_timeout_seconds + 1.0,
    )


@dataclass(frozen=True, slots=True)
class Clients:
    dynamodb: DynamoDBClient
    ecr: ECRClient


def _endpoint(url: str | None) -> dict[str, Any]:
    return {"endpoint_url": url} if url else {}


@contextlib.asynccontextmanager
async def open_clients(
    settings: Settings, *, session: aioboto3.Session | None = None
) -> AsyncIterator[Clients]:
    """Open one DynamoDB and one ECR client for the app's lifetime.

    ``session`` lets several apps in one process (tests) share loaded service models."""
    session = session or aioboto3.Session()
    region = {"region_name": settings.region} if settings.region else {}
    async with contextlib.AsyncExitStack() as stack:
        dynamodb = await stack.enter_async_context(
            session.client(
                "dynamodb",
                config=dynamodb_config(settings),
                **region,
                **_endpoint(settings.dynamodb_endpoint_url),
            )
        )
        ecr = await stack.enter_async_context(
            session.client(
                "ecr",
                config=ecr_config(settings),
                **region,
                **_endpoint(settings.ecr_endpoint_url),
            )
        )
        yield Clients(dynamodb=dynamodb, ecr=ecr)


def backend_error(exc: ClientError | BotoCoreError, what: str) -> BackendUnavailable:
    """A DynamoDB failure as the domain's ``BackendUnavailable``."""
    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
    return BackendUnavailable(f"DynamoDB {what} failed: {exc}", cause_code=code)


async def describe_active(client: DynamoDBClient, table: str) -> None:
    """Raise ``BackendUnavailable`` unless ``table`` exists and is ACTIVE."""
    try:
        answer = await client.describe_table(TableName=table)
    except (ClientError, BotoCoreError) as exc:
        raise backend_error(exc, f"DescribeTable {table}") from exc
    status = answer["Table"].get("TableStatus")
    if status != "ACTIVE":
        raise BackendUnavailable(f"DynamoDB table {table} is {status}.")


async def create_table(client: DynamoDBClient, table: str, schema: dict[str, Any]) -> None:
    """Create a PAY_PER_REQUEST table from a PynamoDB-style schema; wait until ACTIVE.

    A no-op when the table exists."""
    try:
        await client.describe_table(TableName=table)
    except client.exceptions.ResourceNotFoundException:
        with contextlib.suppress(client.exceptions.ResourceInUseException):
            await client.create_table(
                TableName=table,
                KeySchema=schema["key_schema"],
                AttributeDefinitions=schema["attribute_definitions"],
                BillingMode="PAY_PER_REQUEST",
            )
    await client.get_waiter("table_exists").wait(
        TableName=table,
        WaiterConfig={"Delay": 1, "MaxAttempts": 60},
    )
