"""Records of an earlier deployment's tags table, copied into the lease items.

Before tag records rode in the lease item, each repo:tag had an item in a tags table of
its own (``pk`` = ``repository:tag``; ``digest`` ... ``updated_at``; ``pending_*`` for
an intent). An upgraded service that started without them would let an older build move
a tag back once, so ``pushgate init --import-tags-table NAME`` copies them first.

Each record is written into its lease item (``records``: ``data_record``, and the intent
as ``data_pending``, to be settled against ECR by the next holder) with one conditional
write that lands only where the item carries no record: a record this version already
wrote is newer and stays, and a second import changes nothing. An intent already in the
item (a push of this version that failed before its record) stays too, and is decided
again against the imported record by the next push. A lease item the import creates is
released (``expires_at`` 0) and has no token yet, so the next acquire takes it as a free
key. Run it before the new version serves pushes: a push decided without the old record
could move its tag back.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from locks import lease_model
from service.adapters.aws import backend_error
from service.adapters.records import PENDING, RECORD, pending_json, record_json
from service.domain.errors import PushError
from service.domain.models import ImageRef, PendingPush, TagRecord

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


@dataclass(frozen=True, slots=True)
class ImportReport:
    imported: int  # records (with their intent, if any) copied into lease items
    kept: int  # lease items that carry a record already: left as they are
    empty: int  # tags-table items with neither record nor intent
    unreadable: int = 0  # items not in the tags table's format: skipped


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _number(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    return None if value is None else int(Decimal(value["N"]))


def from_tags_item(item: dict[str, Any]) -> tuple[TagRecord | None, PendingPush | None]:
    """The record and intent of one tags-table item (DynamoDB-typed)."""
    key = _text(item, "pk") or ""
    repository, _, tag = key.rpartition(":")
    ref = ImageRef(_text(item, "repository") or repository, _text(item, "tag") or tag)
    record = pending = None
    digest = _text(item, "digest")
    if digest is not None:
        record = TagRecord(
            ref=ref,
            digest=digest,
            sequence=_number(item, "sequence"),
            token=_number(item, "token") or 0,
            owner=_text(item, "owner") or "",
            caller=_text(item, "caller") or "",
            request_id=_text(item, "request_id") or "",
            updated_at=float(Decimal(item["updated_at"]["N"])) if "updated_at" in item else 0.0,
        )
    pending_digest = _text(item, "pending_digest")
    if pending_digest is not None:
        pending = PendingPush(
            digest=pending_digest,
            sequence=_number(item, "pending_sequence"),
            token=_number(item, "pending_token") or 0,
            caller=_text(item, "pending_caller") or "",
            request_id=_text(item, "pending_request_id") or "",
        )
    return record, pending


async def import_tags_table(
    client: DynamoDBClient, *, source: str, lease_table: str
) -> ImportReport:
    """Copy every record of the tags table ``source`` into ``lease_table`` (module doc)."""
    model: Any = lease_model(lease_table)  # attributes built at run time
    expires_at = model.expires_at.attr_name
    imported = kept = empty = unreadable = 0
    paginator = client.get_paginator("scan")
    try:
        async for page in paginator.paginate(TableName=source, ConsistentRead=True):
            for item in page.get("Items", []):
                try:
                    record, pending = from_tags_item(dict(item))
                except (KeyError, TypeError, ValueError, ArithmeticError, PushError):
                    unreadable += 1
                    continue
                if record is None and pending is None:
                    empty += 1
                    continue
                key = model.get_operation_kwargs_from_class(_text(dict(item), "pk"))["Key"]
                if await _copy(client, lease_table, key, expires_at, record, pending):
                    imported += 1
                else:
                    kept += 1
    except (ClientError, BotoCoreError) as exc:
        raise backend_error(exc, f"importing the tags table {source!r}") from exc
    return ImportReport(imported=imported, kept=kept, empty=empty, unreadable=unreadable)


async def _copy(
    client: DynamoDBClient,
    table: str,
    key: dict[str, Any],
    expires_at: str,
    record: TagRecord | None,
    pending: PendingPush | None,
) -> bool:
    sets = ["#expires_at = if_not_exists(#expires_at, :zero)"]
    names = {"#expires_at": expires_at, "#record": RECORD}
    values: dict[str, Any] = {":zero": {"N": "0"}}
    if record is not None:
        sets.append("#record = :record")
        values[":record"] = {"S": record_json(record)}
    if pending is not None:
        sets.append("#pending = if_not_exists(#pending, :pending)")
        names["#pending"] = PENDING
        values[":pending"] = {"S": pending_json(pending)}
    try:
        await client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_not_exists(#record)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True
