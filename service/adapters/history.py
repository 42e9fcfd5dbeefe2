"""``History`` over DynamoDB: one item per push attempt, newest first by sort key.

The item is the PynamoDB model ``items.HistoryItem``; I/O goes through the service's
aioboto3 client (``items`` says why).

Sort key: ``<finished epoch ms, 13 digits>#<token, 20 digits>#<content hash, 10 hex>``,
so a ``Query`` with ``ScanIndexForward=False`` lists newest first, two entries of one
millisecond order by fencing token, and appending one entry twice (a retry, or an entry
handed on by the next holder) writes one item. Pages are cursors: the base64 of
``LastEvaluatedKey``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from service.adapters.aws import backend_error, describe_active
from service.adapters.items import HistoryItem
from service.domain.errors import InvalidRequest
from service.domain.models import HistoryEntry, HistoryPage, ImageRef, Outcome
from service.domain.promote import history_ref

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


def content_hash(entry: HistoryEntry) -> str:
    """Ten hex digits naming what the entry says (its key, with its time and token)."""
    fields = (
        entry.ref.key,
        entry.outcome.value,
        entry.digest,
        entry.previous_digest,
        entry.observed_digest,
        entry.sequence,
        entry.caller,
        entry.request_id,
        repr(entry.started_at),
        entry.error,
        entry.detail,
    )
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:10]


def history_item(entry: HistoryEntry) -> HistoryItem:
    sort_key = (
        f"{round(entry.finished_at * 1000):013d}#{entry.token or 0:020d}#{content_hash(entry)}"
    )
    return HistoryItem(
        pk=entry.ref.key,
        sk=sort_key,
        repository=entry.ref.repository,
        tag=entry.ref.tag,
        outcome=entry.outcome.value,
        digest=entry.digest,
        previous_digest=entry.previous_digest,
        observed_digest=entry.observed_digest,
        sequence=entry.sequence,
        token=entry.token,
        caller=entry.caller,
        request_id=entry.request_id,
        started_at=entry.started_at,
        finished_at=entry.finished_at,
        error=entry.error,
        detail=entry.detail,
    )


def from_item(item: dict[str, Any]) -> HistoryEntry:
    model = HistoryItem.from_raw_data(item)
    return HistoryEntry(
        ref=history_ref(model.repository, model.tag),  # @sha256:... too
        outcome=Outcome(model.outcome),
        digest=model.digest,
        previous_digest=model.previous_digest,
        sequence=model.sequence,
        token=model.token,
        caller=model.caller,
        request_id=model.request_id,
        started_at=float(model.started_at),
        finished_at=float(model.finished_at),
        observed_digest=model.observed_digest,
        error=model.error,
        detail=model.detail,
    )


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def history_key(ref: ImageRef, sort_key: str | None = None) -> dict[str, Any]:
    """The serialized key of ``ref``'s entries (with ``sort_key``: of one entry)."""
    key: dict[str, Any] = HistoryItem.get_operation_kwargs_from_class(ref.key, sort_key)["Key"]
    return key


def decode_cursor(cursor: str, ref: ImageRef) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error) as exc:
        raise InvalidRequest("cursor", "is not a cursor this service issued") from exc
    sort_key = key.get("sk") if isinstance(key, dict) else None
    if (
        not isinstance(key, dict)
        or key.get("pk") != history_key(ref)["pk"]
        or not isinstance(sort_key, dict)
        or not isinstance(sort_key.get(HistoryItem.sk.attr_type), str)
    ):
        raise InvalidRequest("cursor", "belongs to another tag or is malformed")
    return history_key(ref, sort_key[HistoryItem.sk.attr_type])


class DynamoHistory:
    def __init__(self, client: DynamoDBClient, *, table: str) -> None:
        self._client = client
        self._table = table

    async def append(self, entry: HistoryEntry) -> None:
        try:
            item = history_item(entry).serialize()
            await self._client.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise backend_error(exc, "PutItem on the history table") from exc

    async def page(self, ref: ImageRef, *, limit: int, cursor: str | None) -> HistoryPage:
        extra: dict[str, Any] = {}
        if cursor:
            extra["ExclusiveStartKey"] = decode_cursor(cursor, ref)
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        condition = (HistoryItem.pk == ref.key).serialize(names, values)
        try:
            answer = await self._client.query(
                TableName=self._table,
                KeyConditionExpression=condition,
                ExpressionAttributeNames={placeholder: name for name, placeholder in names.items()},
                ExpressionAttributeValues=values,
                ScanIndexForward=False,
                Limit=limit,
                ConsistentRead=True,
                **extra,
            )
        except (ClientError, BotoCoreError) as exc:
            raise backend_error(exc, "Query on the history table") from exc
        items = [from_item(dict(item)) for item in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        return HistoryPage(items=items, next_cursor=encode_cursor(dict(last)) if last else None)

    async def ping(self) -> None:
        await describe_active(self._client, self._table)
