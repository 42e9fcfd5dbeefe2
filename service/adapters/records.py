"""``TagRecords`` over DynamoDB: one item per repo:tag in the tags table.

The record is written with ``TransactWriteItems``: a ``ConditionCheck`` that the lease
item still names this holder (owner, token, not yet expired by the holder's clock) and
a ``Put`` conditioned on the record's token not being newer. A holder whose lease ran
out, or was taken over, therefore cannot overwrite a newer holder's record. A push's
history entry (a ``Put`` on the history table, item built by ``history.to_item``) rides in
the same transaction, so the record and its entry land together or not at all, in one
round trip.

Before ``put_image`` the holder writes its intent into the same item (``pending_digest``,
``pending_sequence``, ``pending_token``, ``pending_caller``, ``pending_request_id``) with
an ``Update`` fenced the same way; the record ``Put`` replaces the whole item, which
clears the intent. Items without these attributes carry no intent; an item holding only
an intent (the tag's first push died) has no record yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from service.adapters.aws import backend_error, describe_active
from service.adapters.history import to_item
from service.domain.errors import LeaseLost
from service.domain.models import Fence, HistoryEntry, ImageRef, PendingPush, TagRecord

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import TransactWriteItemTypeDef

# Attribute names of a tag record item.
PK = "pk"
LEASE_HELD = "#owner = :owner AND #token = :token"
LEASE_UNEXPIRED = "#expires_at > :now"
RECORD_FRESH = "attribute_not_exists(#token)"
RECORD_OLDER = "#token <= :token"
PENDING_FRESH = "attribute_not_exists(#pending_token)"
PENDING_OLDER = "#pending_token <= :token"
#: a write by ``:token`` is allowed over neither a newer record nor a newer intent
NOT_NEWER = f"({RECORD_FRESH} OR {RECORD_OLDER}) AND ({PENDING_FRESH} OR {PENDING_OLDER})"
PENDING_ATTRIBUTES = (
    "pending_digest",
    "pending_sequence",
    "pending_token",
    "pending_caller",
    "pending_request_id",
)


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


def _record(item: dict[str, Any]) -> TagRecord | None:
    if "digest" not in item:
        return None  # only an intent: the tag's first push has no record yet
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


def _pending(item: dict[str, Any]) -> PendingPush | None:
    if "pending_digest" not in item:
        return None
    sequence = item.get("pending_sequence")
    return PendingPush(
        digest=item["pending_digest"]["S"],
        sequence=int(sequence["N"]) if sequence else None,
        token=int(item["pending_token"]["N"]),
        caller=item["pending_caller"]["S"],
        request_id=item["pending_request_id"]["S"],
    )


class DynamoTagRecords:
    def __init__(
        self,
        client: DynamoDBClient,
        *,
        table: str,
        lease_table: str,
        history_table: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self._lease_table = lease_table
        self._history_table = history_table
        self._clock = clock

    async def get(self, ref: ImageRef) -> TagRecord | None:
        record, _ = await self.read(ref)
        return record

    async def read(self, ref: ImageRef) -> tuple[TagRecord | None, PendingPush | None]:
        try:
            answer = await self._client.get_item(
                TableName=self._table, Key={PK: {"S": ref.key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise backend_error(exc, "GetItem on the tags table") from exc
        item = answer.get("Item")
        if not item:
            return None, None
        found = dict(item)
        return _record(found), _pending(found)

    async def put(
        self, record: TagRecord, *, fence: Fence, history: HistoryEntry | None = None
    ) -> None:
        entries: list[TransactWriteItemTypeDef] = []
        if history is not None:
            entries.append({"Put": {"TableName": self._history_table, "Item": to_item(history)}})
        await self._fenced(
            fence,
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _item(record),
                    "ConditionExpression": NOT_NEWER,
                    "ExpressionAttributeNames": {
                        "#token": "token",
                        "#pending_token": "pending_token",
                    },
                    "ExpressionAttributeValues": {":token": {"N": str(fence.token)}},
                }
            },
            "TransactWriteItems of a tag record",
            *entries,
        )

    async def put_pending(self, ref: ImageRef, pending: PendingPush, *, fence: Fence) -> None:
        values: dict[str, Any] = {
            ":token": {"N": str(fence.token)},
            ":repository": {"S": ref.repository},
            ":tag": {"S": ref.tag},
            ":pending_digest": {"S": pending.digest},
            ":pending_token": {"N": str(pending.token)},
            ":pending_caller": {"S": pending.caller},
            ":pending_request_id": {"S": pending.request_id},
        }
        names = {
            "#token": "token",
            "#pending_token": "pending_token",
            "#repository": "repository",
            "#tag": "tag",
            "#pending_digest": "pending_digest",
            "#pending_caller": "pending_caller",
            "#pending_request_id": "pending_request_id",
            "#pending_sequence": "pending_sequence",
        }
        update = (
            "SET #repository = :repository, #tag = :tag, #pending_digest = :pending_digest, "
            "#pending_token = :pending_token, #pending_caller = :pending_caller, "
            "#pending_request_id = :pending_request_id"
        )
        if pending.sequence is None:
            update += " REMOVE #pending_sequence"
        else:
            update += ", #pending_sequence = :pending_sequence"
            values[":pending_sequence"] = {"N": str(pending.sequence)}
        await self._fenced(
            fence,
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {PK: {"S": ref.key}},
                    "UpdateExpression": update,
                    "ConditionExpression": NOT_NEWER,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
            "TransactWriteItems of a tag intent",
        )

    async def clear_pending(self, ref: ImageRef, *, fence: Fence) -> None:
        names = {f"#{name}": name for name in PENDING_ATTRIBUTES}
        names["#token"] = "token"
        await self._fenced(
            fence,
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {PK: {"S": ref.key}},
                    "UpdateExpression": "REMOVE "
                    + ", ".join(f"#{name}" for name in PENDING_ATTRIBUTES),
                    "ConditionExpression": f"attribute_exists(pk) AND {NOT_NEWER}",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {":token": {"N": str(fence.token)}},
                }
            },
            "TransactWriteItems clearing a tag intent",
        )

    async def _fenced(
        self,
        fence: Fence,
        write: TransactWriteItemTypeDef,
        what: str,
        *also: TransactWriteItemTypeDef,
    ) -> None:
        """``write`` on the tags table (and ``also``, unconditional), in one transaction
        with the check that the lease item still names this holder; ``LeaseLost`` when
        either condition fails."""
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
                    write,
                    *also,
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                # The first two entries are the fence: the lease check and the write.
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if not reasons or "ConditionalCheckFailed" in reasons[:2]:
                    raise LeaseLost(fence.key) from exc
            raise backend_error(exc, what) from exc
        except BotoCoreError as exc:
            raise backend_error(exc, what) from exc

    async def ping(self) -> None:
        for table in (self._table, self._lease_table):
            await describe_active(self._client, table)
