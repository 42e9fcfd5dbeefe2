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
import structlog
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from service.domain.errors import BackendRejected, BackendUnavailable

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_ecr import ECRClient

    from service.settings import Settings

log = structlog.get_logger("pushgate.aws")


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


#: DynamoDB refusals that retrying cannot cure whatever the request: the deployment's
#: permissions, credentials or tables, or an operation the backend does not have.
DEPLOYMENT_FAULTS = frozenset(
    {
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "MissingAuthenticationTokenException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "ExpiredTokenException",
        "UnknownOperationException",
        "UnsupportedOperationException",
        "NotImplemented",
    }
)
#: Refusals of one call's data (an item DynamoDB will not store).
DATA_FAULTS = frozenset(
    {"ValidationException", "SerializationException", "ItemCollectionSizeLimitExceededException"}
)
#: Cancellation reasons of a transaction that mean the same.
_DATA_REASONS = frozenset({"ValidationError", "ItemCollectionSizeLimitExceeded"})
_CLIENT_ERRORS = range(400, 500)


def _error_code(exc: ClientError | BotoCoreError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


def is_permanent(exc: ClientError | BotoCoreError) -> tuple[bool, bool]:
    """(permanent, the deployment's fault) for one DynamoDB failure.

    Throttling, 5xx and no answer are worth retrying; so is a 4xx DynamoDB marks
    transient (``ThrottlingException``, ``TransactionConflictException``, a transaction
    cancelled by a conflict). Another 4xx, a request botocore refuses to send, or missing
    credentials will fail the same way again."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return True, True
    if isinstance(exc, ParamValidationError):
        return True, False
    if not isinstance(exc, ClientError):
        return False, False
    code = _error_code(exc)
    if code in DEPLOYMENT_FAULTS:
        return True, True
    if code in DATA_FAULTS:
        return True, False
    if code == "TransactionCanceledException":
        reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
        return bool(reasons & _DATA_REASONS), False
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return status in _CLIENT_ERRORS and not _transient(code), False


def _transient(code: str) -> bool:
    return any(
        word in code for word in ("Throttl", "Throughput", "Limit", "Conflict", "InProgress")
    )


def backend_error(exc: ClientError | BotoCoreError, what: str) -> BackendUnavailable:
    """A DynamoDB failure as the domain's ``BackendUnavailable``, or ``BackendRejected``
    when retrying cannot cure it. The answer names the call and DynamoDB's error code;
    DynamoDB's own text (table ARNs, the item's values) goes to the log only."""
    code = _error_code(exc)
    permanent, deployment = is_permanent(exc)
    log.warning("dynamodb_failed", call=what, code=code, permanent=permanent, error=str(exc)[:1000])
    if not permanent:
        return BackendUnavailable(f"DynamoDB {what} failed ({code}).", cause_code=code)
    cure = (
        "check the service's permissions, tables and DynamoDB endpoint"
        if deployment
        else "this is a bug"
    )
    return BackendRejected(
        f"DynamoDB refused {what} ({code}); retrying will not help: {cure}.",
        cause_code=code,
        deployment=deployment,
    )


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
