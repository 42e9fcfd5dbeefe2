"""LocalAWS's own departures from plain moto, over HTTP: transactions still roll back
every item they name when they fail, although the tables are no longer copied."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def dynamodb(moto_endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")


def table(dynamodb: Any, *, range_key: bool) -> str:
    name = f"localaws-{uuid.uuid4().hex[:8]}"
    keys = [("pk", "HASH")] + ([("sk", "RANGE")] if range_key else [])
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": a, "KeyType": k} for a, k in keys],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def scan(dynamodb: Any, name: str) -> list[dict[str, Any]]:
    items = dynamodb.scan(TableName=name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i.get("sk", {}).get("S", "")))


def test_failed_transaction_leaves_every_named_item_as_it_was(dynamodb: Any) -> None:
    """A put of a new item, a put over an item, an update and a delete, then a failing
    condition: both tables read exactly as before."""
    plain, ranged = table(dynamodb, range_key=False), table(dynamodb, range_key=True)
    dynamodb.put_item(TableName=plain, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    dynamodb.put_item(TableName=plain, Item={"pk": {"S": "b"}, "v": {"N": "2"}})
    dynamodb.put_item(TableName=ranged, Item={"pk": {"S": "h"}, "sk": {"S": "1"}})
    before = (scan(dynamodb, plain), scan(dynamodb, ranged))
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": plain, "Item": {"pk": {"S": "new"}}}},
                {"Put": {"TableName": plain, "Item": {"pk": {"S": "a"}, "v": {"N": "9"}}}},
                {
                    "Update": {
                        "TableName": plain,
                        "Key": {"pk": {"S": "b"}},
                        "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"N": "9"}},
                    }
                },
                {"Delete": {"TableName": ranged, "Key": {"pk": {"S": "h"}, "sk": {"S": "1"}}}},
                {"Put": {"TableName": ranged, "Item": {"pk": {"S": "h"}, "sk": {"S": "2"}}}},
                {
                    "ConditionCheck": {
                        "TableName": ranged,
                        "Key": {"pk": {"S": "h"}, "sk": {"S": "0"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert before == (scan(dynamodb, plain), scan(dynamodb, ranged))


def test_successful_transaction_applies_every_item(dynamodb: Any) -> None:
    """Without a failing condition, every write of the transaction lands."""
    plain = table(dynamodb, range_key=False)
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": plain, "Item": {"pk": {"S": "a"}}}},
            {"Put": {"TableName": plain, "Item": {"pk": {"S": "b"}}}},
        ]
    )
    assert ["a", "b"] == [i["pk"]["S"] for i in scan(dynamodb, plain)]
