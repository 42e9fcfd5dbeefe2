"""``TagRecords`` over DynamoDB: one item per repo:tag in the tags table.

The record is written with ``TransactWriteItems``: a ``ConditionCheck`` that the lease
item still names this holder (owner, token, not yet expired by the holder's clock) and
a ``Put`` conditioned on the record's token not being newer. A holder whose lease ran
out, or was taken over, therefore cannot overwrite a newer holder's record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from service.adapters.aws import backend_error, describe_active
from service.domain.errors import LeaseLost
from service.domain.models import Fence, ImageRef, TagRecord

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# Attribute names of a tag record item.
PK = "pk"
LEASE_HELD = "#owner = :owner AND #token = :token"
LEASE_UNEXPIRED = "#expires_at > :now"
RECORD_FRESH = "attribute_not_exists(pk)"
RECORD_OLDER = "#token <= :token"


def _item(record: TagRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        PK: {"S": record.ref.key},
        "repository": {"S": record.ref.repository},
        "tag": {"S": record.ref.tag},
        "digest": {"S": record.digest},
        "token": {"N": str(record.token)},
        "owner": {"S": record.owner},
        "caller": {"S": record.caller},
        "request_id": {"S": record.request_id},
        "updated_at": {"N": repr(record.updated_at)},
    }
    if record.sequence is not None:
        item["sequence"] = {"N": str(record.sequence)}
    return item


def _record(item: dict[str, Any]) -> TagRecord:
    sequence = item.get("sequence")
    return TagRecord(
        ref=ImageRef(item["repository"]["S"], item["tag"]["S"]),
        digest=item["digest"]["S"],
        sequence=int(sequence["N"]) if sequence else None,
        token=int(item["token"]["N"]),
        owner=item["owner"]["S"],
        caller=item["caller"]["S"],
        request_id=item["request_id"]["S"],
        updated_at=float(item["updated_at"]["N"]),
    )


class DynamoTagRecords:
    def __init__(
        self,
        client: DynamoDBClient,
        *,
        table: str,
        lease_table: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self._lease_table = lease_table
        self._clock = clock

    async def get(self, ref: ImageRef) -> TagRecord | None:
        try:
            answer = await self._client.get_item(
                TableName=self._table, Key={PK: {"S": ref.key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise backend_error(exc, "GetItem on the tags table") from exc
        item = answer.get("Item")
        return _record(dict(item)) if item else None

    async def put(self, record: TagRecord, *, fence: Fence) -> None:
        now_ms = int(self._clock() * 1000)
        try:
            await self._client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self._lease_table,
                            "Key": {PK: {"S": fence.key}},
                            "ConditionExpression": f"{LEASE_HELD} AND {LEASE_UNEXPIRED}",
                            "ExpressionAttributeNames": {
                                "#owner": "owner",
                                "#token": "token",
                                "#expires_at": "expires_at",
                            },
                            "ExpressionAttributeValues": {
                                ":owner": {"S": fence.owner},
                                ":token": {"N": str(fence.token)},
                                ":now": {"N": str(now_ms)},
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": _item(record),
                            "ConditionExpression": f"{RECORD_FRESH} OR {RECORD_OLDER}",
                            "ExpressionAttributeNames": {"#token": "token"},
                            "ExpressionAttributeValues": {":token": {"N": str(fence.token)}},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                raise LeaseLost(fence.key) from exc
            raise backend_error(exc, "TransactWriteItems of a tag record") from exc
        except BotoCoreError as exc:
            raise backend_error(exc, "TransactWriteItems of a tag record") from exc

    async def ping(self) -> None:
        for table in (self._table, self._lease_table):
            await describe_active(self._client, table)
