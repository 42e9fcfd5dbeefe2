"""``History`` over DynamoDB: one item per push attempt, newest first by sort key.

The item schema is the PynamoDB model ``HistoryItem`` (attribute names, types, keys;
``tables.py`` creates the table from it). I/O goes through the same aioboto3 client as the
rest of the service rather than through PynamoDB's synchronous connection: the service is
asyncio end to end, and running PynamoDB in a thread would need its own connection
settings (host, region, credentials) kept in step with the aioboto3 ones. PynamoDB's
``serialize()`` and ``from_raw_data()`` convert between the model and the raw items, so
the model stays the single definition of the schema.

Sort key: ``<finished epoch ms, 13 digits>#<token, 20 digits>#<process counter>``, so a
``Query`` with ``ScanIndexForward=False`` lists newest first, and two entries of one
millisecond order by fencing token. Pages are cursors: the base64 of
``LastEvaluatedKey``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from service.adapters.aws import backend_error, describe_active
from service.domain.errors import InvalidRequest
from service.domain.models import HistoryEntry, HistoryPage, ImageRef
from service.domain.promote import history_ref

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


class HistoryItem(Model):
    """One recorded push (or repair) of a repo:tag."""

    class Meta:
        table_name = "pushgate-history"
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True)  # "repository:tag"
    sk = UnicodeAttribute(range_key=True)
    repository = UnicodeAttribute()
    tag = UnicodeAttribute()
    outcome = UnicodeAttribute()
    digest = UnicodeAttribute(null=True)
    previous_digest = UnicodeAttribute(null=True)
    observed_digest = UnicodeAttribute(null=True)
    sequence = NumberAttribute(null=True)
    token = NumberAttribute(null=True)
    caller = UnicodeAttribute()
    request_id = UnicodeAttribute()
    started_at = NumberAttribute()  # epoch seconds
    finished_at = NumberAttribute()  # epoch seconds
    error = UnicodeAttribute(null=True)
    detail = UnicodeAttribute(null=True)


_counter = itertools.count()


def to_item(entry: HistoryEntry) -> dict[str, Any]:
    sort_key = (
        f"{round(entry.finished_at * 1000):013d}#{entry.token or 0:020d}#{next(_counter):010d}"
    )
    model = HistoryItem(
        pk=entry.ref.key,
        sk=sort_key,
        repository=entry.ref.repository,
        tag=entry.ref.tag,
        outcome=entry.outcome,
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
    item: dict[str, Any] = model.serialize()
    return item


def from_item(item: dict[str, Any]) -> HistoryEntry:
    model = HistoryItem.from_raw_data(item)
    return HistoryEntry(
        ref=history_ref(model.repository, model.tag),  # @sha256:... too
        outcome=model.outcome,
        digest=model.digest,
        previous_digest=model.previous_digest,
        sequence=None if model.sequence is None else int(model.sequence),
        token=None if model.token is None else int(model.token),
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


def decode_cursor(cursor: str, ref: ImageRef) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error) as exc:
        raise InvalidRequest("cursor", "is not a cursor this service issued") from exc
    if (
        not isinstance(key, dict)
        or key.get("pk") != {"S": ref.key}
        or not isinstance(key.get("sk"), dict)
        or not isinstance(key["sk"].get("S"), str)
    ):
        raise InvalidRequest("cursor", "belongs to another tag or is malformed")
    return {"pk": key["pk"], "sk": {"S": key["sk"]["S"]}}


class DynamoHistory:
    def __init__(self, client: DynamoDBClient, *, table: str) -> None:
        self._client = client
        self._table = table

    async def append(self, entry: HistoryEntry) -> None:
        try:
            await self._client.put_item(TableName=self._table, Item=to_item(entry))
        except (ClientError, BotoCoreError) as exc:
            raise backend_error(exc, "PutItem on the history table") from exc

    async def page(self, ref: ImageRef, *, limit: int, cursor: str | None) -> HistoryPage:
        extra: dict[str, Any] = {}
        if cursor:
            extra["ExclusiveStartKey"] = decode_cursor(cursor, ref)
        try:
            answer = await self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": ref.key}},
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
