"""``TagRecords`` over DynamoDB: one ``TagItem`` per repo:tag in the tags table.

Every write is a ``TransactWriteItems``: a ``ConditionCheck`` that the lease item still
names this holder (owner, token, not yet expired by the holder's clock) beside the write
itself, conditioned on the item holding neither a newer record nor a newer intent. A
holder whose lease ran out, or was taken over, therefore cannot overwrite a newer
holder's record. A push's history entry (a ``HistoryItem``) rides in the record's
transaction, so the record and its entry land together, in one round trip.

The intent (``pending_*``) is written with an ``Update`` that leaves the record as it
is; the record ``Put`` replaces the whole item, which clears the intent.

A write refused for a reason that retrying cannot fix (a value the table cannot store,
a denied action) is raised as a ``BackendUnavailable`` that is not retryable, so the
use case can tell it from an outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from locks import lease_model
from service.adapters.aws import backend_error, describe_active
from service.adapters.history import history_item
from service.adapters.items import TagItem, on_table
from service.domain.errors import BackendUnavailable, LeaseLost
from service.domain.models import Fence, HistoryEntry, ImageRef, PendingPush, TagRecord

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import TransactWriteItemTypeDef

#: DynamoDB error codes (and transaction cancellation reasons) that retrying cannot fix
PERMANENT = frozenset(
    {
        "AccessDeniedException",
        "ResourceNotFoundException",
        "SerializationException",
        "UnrecognizedClientException",
        "ValidationError",
        "ValidationException",
    }
)
PENDING = (
    TagItem.pending_digest,
    TagItem.pending_sequence,
    TagItem.pending_token,
    TagItem.pending_caller,
    TagItem.pending_request_id,
)


def not_newer(token: int) -> Condition:
    """A write by ``token`` is allowed over neither a newer record nor a newer intent."""
    condition: Condition = (TagItem.token.does_not_exist() | (TagItem.token <= token)) & (
        TagItem.pending_token.does_not_exist() | (TagItem.pending_token <= token)
    )
    return condition


def to_item(record: TagRecord) -> TagItem:
    return TagItem(
        pk=record.ref.key,
        repository=record.ref.repository,
        tag=record.ref.tag,
        digest=record.digest,
        sequence=record.sequence,
        token=record.token,
        owner=record.owner,
        caller=record.caller,
        request_id=record.request_id,
        updated_at=record.updated_at,
    )


def from_item(item: TagItem) -> tuple[TagRecord | None, PendingPush | None]:
    """The record (None for an item holding only an intent) and the intent, if any."""
    record = pending = None
    if item.digest is not None:
        record = TagRecord(
            ref=ImageRef(item.repository, item.tag),
            digest=item.digest,
            sequence=item.sequence,
            token=int(item.token or 0),
            owner=item.owner or "",
            caller=item.caller or "",
            request_id=item.request_id or "",
            updated_at=float(item.updated_at or 0.0),
        )
    if item.pending_digest is not None:
        pending = PendingPush(
            digest=item.pending_digest,
            sequence=item.pending_sequence,
            token=int(item.pending_token or 0),
            caller=item.pending_caller or "",
            request_id=item.pending_request_id or "",
        )
    return record, pending


def write_error(exc: ClientError | BotoCoreError, what: str) -> BackendUnavailable:
    error = backend_error(exc, what)
    if isinstance(exc, ClientError):
        reasons = exc.response.get("CancellationReasons", [])
        codes = {error.cause_code, *(r.get("Code") for r in reasons)}
        if codes & PERMANENT:
            error.retryable = False
    return error


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
        self._lease = lease_model(lease_table)
        self._history_table = history_table
        self._clock = clock

    async def get(self, ref: ImageRef) -> TagRecord | None:
        record, _ = await self.read(ref)
        return record

    async def read(self, ref: ImageRef) -> tuple[TagRecord | None, PendingPush | None]:
        key = TagItem.get_operation_kwargs_from_class(ref.key)["Key"]
        try:
            answer = await self._client.get_item(
                TableName=self._table, Key=key, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise backend_error(exc, "GetItem on the tags table") from exc
        item = answer.get("Item")
        if not item:
            return None, None
        return from_item(TagItem.from_raw_data(dict(item)))

    async def put(
        self, record: TagRecord, *, fence: Fence, history: HistoryEntry | None = None
    ) -> None:
        write = to_item(record).get_save_kwargs_from_instance(condition=not_newer(fence.token))
        entries: list[Any] = []
        if history is not None:
            item = history_item(history).serialize()
            entries.append({"Put": {"TableName": self._history_table, "Item": item}})
        await self._fenced(
            fence, {"Put": on_table(write, self._table)}, "TransactWriteItems of a record", *entries
        )

    async def put_pending(self, ref: ImageRef, pending: PendingPush, *, fence: Fence) -> None:
        actions: list[Action] = [
            TagItem.repository.set(ref.repository),
            TagItem.tag.set(ref.tag),
            TagItem.pending_digest.set(pending.digest),
            TagItem.pending_token.set(pending.token),
            TagItem.pending_caller.set(pending.caller),
            TagItem.pending_request_id.set(pending.request_id),
            TagItem.pending_sequence.remove()
            if pending.sequence is None
            else TagItem.pending_sequence.set(pending.sequence),
        ]
        write = TagItem(pk=ref.key).get_update_kwargs_from_instance(
            actions, condition=not_newer(fence.token)
        )
        await self._fenced(
            fence, {"Update": on_table(write, self._table)}, "TransactWriteItems of an intent"
        )

    async def clear_pending(self, ref: ImageRef, *, fence: Fence) -> None:
        write = TagItem(pk=ref.key).get_update_kwargs_from_instance(
            [attribute.remove() for attribute in PENDING],
            condition=TagItem.pk.exists() & not_newer(fence.token),
        )
        await self._fenced(
            fence, {"Update": on_table(write, self._table)}, "TransactWriteItems clearing an intent"
        )

    async def _fenced(self, fence: Fence, write: Any, what: str, *also: Any) -> None:
        """``write`` on the tags table (and ``also``, unconditional), in one transaction
        with the check that the lease item still names this holder; ``LeaseLost`` when
        either condition fails."""
        lease: Any = self._lease  # its attributes are built at run time, per table
        now_ms = int(self._clock() * 1000)
        held = (
            (lease.owner == fence.owner)
            & (lease.token == fence.token)
            & (lease.expires_at > now_ms)
        )
        check = lease.get_operation_kwargs_from_class(fence.key, condition=held)
        items: list[TransactWriteItemTypeDef] = [{"ConditionCheck": check}, write, *also]
        try:
            await self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                # The first two entries are the fence: the lease check and the write.
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if not reasons or "ConditionalCheckFailed" in reasons[:2]:
                    raise LeaseLost(fence.key) from exc
            raise write_error(exc, what) from exc
        except BotoCoreError as exc:
            raise write_error(exc, what) from exc

    async def ping(self) -> None:
        for table in (self._table, self._lease_table):
            await describe_active(self._client, table)
