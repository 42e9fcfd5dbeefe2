"""DynamoDB call latency and errors by operation, measured with botocore's events on a
real aioboto3 client against moto on 127.0.0.1."""

from __future__ import annotations

import aioboto3
import pytest
from aiobotocore.config import AioConfig

from service.metrics import Metrics
from tests.servers import free_port

pytestmark = pytest.mark.integration


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_each_call_is_timed_by_operation(moto_endpoint: str) -> None:
    """Two ListTables calls give a count of 2 under operation ListTables."""
    metrics = Metrics()
    session = aioboto3.Session()
    async with session.client(
        "dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1"
    ) as client:
        metrics.observe_dynamodb(client)
        await client.list_tables(Limit=1)
        await client.list_tables(Limit=1)
    count = _value(metrics, "pushgate_dynamodb_call_seconds_count", operation="ListTables")
    assert 2.0 == count


async def test_an_error_answer_is_counted_by_code(moto_endpoint: str) -> None:
    """A DescribeTable of a missing table is timed and counted under its AWS error code."""
    metrics = Metrics()
    session = aioboto3.Session()
    async with session.client(
        "dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1"
    ) as client:
        metrics.observe_dynamodb(client)
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.describe_table(TableName="no-such-table-metrics")
    code = "ResourceNotFoundException"
    errors = _value(metrics, "pushgate_dynamodb_errors_total", operation="DescribeTable", code=code)
    timed = _value(metrics, "pushgate_dynamodb_call_seconds_count", operation="DescribeTable")
    assert (1.0, 1.0) == (errors, timed)


async def test_an_unreachable_endpoint_is_counted_by_exception_type() -> None:
    """A refused connection (after botocore's retries) counts as an error named after
    botocore's exception, and the call is still timed."""
    metrics = Metrics()
    session = aioboto3.Session()
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1)
    async with session.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region_name="us-east-1",
        config=config,
    ) as client:
        metrics.observe_dynamodb(client)
        with pytest.raises(Exception, match="Could not connect"):
            await client.list_tables(Limit=1)
    code = "EndpointConnectionError"
    errors = _value(metrics, "pushgate_dynamodb_errors_total", operation="ListTables", code=code)
    timed = _value(metrics, "pushgate_dynamodb_call_seconds_count", operation="ListTables")
    assert (1.0, 1.0) == (errors, timed)
