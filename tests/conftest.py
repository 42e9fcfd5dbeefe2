"""Session-wide servers and AWS settings. Nothing here talks to real AWS."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import boto3
import pytest
import structlog

from service.localaws import LocalAWS
from tests.servers import dynalite, dynalite_binary

# Dummy credentials and a fixed region, so no test can reach a real account.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",  # moto's dummy
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
)
for _name in (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_ECR",
):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Each test starts from structlog's defaults: the app configures logging globally
    (level filter, renderer), and capture_logs() only swaps processors."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (LocalAWS: one AWS call at a time) on 127.0.0.1, for the session."""
    server = LocalAWS()
    server.start()
    try:
        yield server.endpoint
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dynalite_endpoint() -> Iterator[str]:
    """dynalite on 127.0.0.1; skipped with a reason when node or dynalite is missing."""
    if dynalite_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("dynalite must run in CI: ./run.sh test installs it with npm")
        pytest.skip("node or the dynalite npm package is missing (./run.sh test installs it)")
    with dynalite() as endpoint:
        yield endpoint


@pytest.fixture(params=["moto", "dynalite"])
def dynamodb_endpoint(request: pytest.FixtureRequest) -> str:
    """Each DynamoDB implementation the lease must conform on."""
    return str(request.getfixturevalue(f"{request.param}_endpoint"))


@pytest.fixture
def table_name() -> str:
    """A fresh table name per test, so tests share servers without sharing state."""
    return f"leases-{uuid.uuid4().hex[:12]}"


def dynamodb_client(endpoint: str):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
