"""``TagRecords`` over DynamoDB: the record and the intent ride in the repo:tag's lease
item, as lease data (``locks``: ``data_<name>`` attributes).

- ``data_record``: the tag's record (digest, sequence, token, ...), a JSON string;
- ``data_pending``: the intent of a holder that may call PutImage, a JSON string: written
  by the holder's acquire where the item holds none (``token`` null: the request as
  asked), or after its decision (``token`` set: the PutImage it decided on);
- ``data_journal``: the history entry of the last record write, the serialized history
  item as a JSON string, carried until a later holder replaces it.

Every write here is one conditional ``UpdateItem`` on the lease item, fenced like a
lease renewal: the item still names this holder (owner, token) and has not expired by
the holder's clock. A holder whose lease ran out, or was taken over, therefore cannot
overwrite a newer holder's record, and no transaction is needed (the service runs on
DynamoDB emulators without ``TransactWriteItems``). The push's own intent and its commit
go through the lease (``adapters.leases``: the acquire's defaults, the release's data);
this module writes what happens beside them (an intent after settling another's, an
adoption, a raised sequence).

A record's history entry is written into the item with the record (``data_journal``) and
returned with the entry the previous record write carried, for the use case to append
after its answer: history items are keyed by their content (``history.history_item``),
so appending an entry twice writes it once, and a holder that died between its record
write and its history write loses no history (the next record write hands it on).

A write refused for a reason that retrying cannot fix (a value the table cannot store,
a denied action) is raised as a ``BackendUnavailable`` that is not retryable, so the
use case can tell it from an outage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from locks import lease_model
from service.adapters.aws import backend_error, describe_active
from service.adapters.history import from_item as entry_from_item
from service.adapters.history import history_item
from service.domain.errors import BackendUnavailable, LeaseLost
from service.domain.models import Fence, HistoryEntry, ImageRef, PendingPush, TagRecord

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = structlog.get_logger("pushgate.records")

#: DynamoDB error codes that retrying cannot fix
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
RECORD = "data_record"
PENDING = "data_pending"
JOURNAL = "data_journal"


def data_name(attribute: str) -> str:
    """The lease data name (``locks``) of one of the item's attributes above."""
    return attribute.removeprefix("data_")


def record_json(record: TagRecord) -> str:
    return json.dumps(
        {
            "digest": record.digest,
            "sequence": record.sequence,
            "token": record.token,
            "owner": record.owner,
            "caller": record.caller,
            "request_id": record.request_id,
            "updated_at": record.updated_at,
        },
        sort_keys=True,
    )


def journal_json(entry: HistoryEntry) -> str:
    return json.dumps(history_item(entry).serialize(), sort_keys=True)


def journal_entry(text: object) -> HistoryEntry | None:
    """The history entry a ``data_journal`` value carries, if any. One this release
    cannot read (written by another release, say) is logged and skipped: it must never
    fail the record write that hands it on."""
    if not isinstance(text, str):
        return None
    try:
        return entry_from_item(json.loads(text))
    except Exception as exc:  # noqa: BLE001 - any unreadable entry is skipped, not raised
        log.warning("carried_history_unreadable", error=type(exc).__name__)
        return None


def pending_json(pending: PendingPush) -> str:
    return json.dumps(
        {
            "digest": pending.digest,
            "sequence": pending.sequence,
            "token": pending.token,
            "caller": pending.caller,
            "request_id": pending.request_id,
            "nonce": pending.nonce,
        },
        sort_keys=True,
    )


def from_item(ref: ImageRef, item: dict[str, Any]) -> tuple[TagRecord | None, PendingPush | None]:
    """The record and the intent a lease item carries, if any."""
    data = {data_name(name): item[name]["S"] for name in (RECORD, PENDING) if name in item}
    return from_data(ref, data)


def from_data(ref: ImageRef, data: dict[str, Any]) -> tuple[TagRecord | None, PendingPush | None]:
    """The record and the intent in a lease's data (``locks``: names without their
    ``data_`` prefix, values decoded), if any."""
    record = pending = None
    if isinstance(data.get("record"), str):
        data_record = json.loads(data["record"])
        record = TagRecord(
            ref=ref,
            digest=data_record["digest"],
            sequence=data_record["sequence"],
            token=int(data_record["token"]),
            owner=data_record["owner"],
            caller=data_record["caller"],
            request_id=data_record["request_id"],
            updated_at=float(data_record["updated_at"]),
        )
    if isinstance(data.get("pending"), str):
        data_pending = json.loads(data["pending"])
        token = data_pending["token"]
        pending = PendingPush(
            digest=data_pending["digest"],
            sequence=data_pending["sequence"],
            token=None if token is None else int(token),
            caller=data_pending["caller"],
            request_id=data_pending["request_id"],
            nonce=str(data_pending.get("nonce", "")),
        )
    return record, pending


def write_error(exc: ClientError | BotoCoreError, what: str) -> BackendUnavailable:
    error = backend_error(exc, what)
    if error.cause_code in PERMANENT:
        error.retryable = False
    return error


class DynamoTagRecords:
    def __init__(
        self,
        client: DynamoDBClient,
        *,
        lease_table: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._lease_table = lease_table
        self._lease: Any = lease_model(lease_table)  # attributes built at run time
        self._clock = clock

    def _key(self, key: str) -> dict[str, Any]:
        found: dict[str, Any] = self._lease.get_operation_kwargs_from_class(key)["Key"]
        return found

    async def get(self, ref: ImageRef) -> TagRecord | None:
        record, _ = await self.read(ref)
        return record

    async def read(self, ref: ImageRef) -> tuple[TagRecord | None, PendingPush | None]:
        try:
            answer = await self._client.get_item(
                TableName=self._lease_table, Key=self._key(ref.key), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise backend_error(exc, "GetItem on the lease table") from exc
        return from_item(ref, dict(answer.get("Item", {})))

    async def put(
        self, record: TagRecord, *, fence: Fence, history: HistoryEntry | None = None
    ) -> tuple[HistoryEntry, ...]:
        sets: dict[str, Any] = {RECORD: {"S": record_json(record)}}
        if history is not None:
            sets[JOURNAL] = {"S": journal_json(history)}
        old = await self._fenced(record.ref, fence, sets, [PENDING], "UpdateItem of a record")
        carried = journal_entry(old.get(JOURNAL, {}).get("S")) if history is not None else None
        return () if carried is None else (carried,)

    async def put_pending(self, ref: ImageRef, pending: PendingPush, *, fence: Fence) -> None:
        intent = {PENDING: {"S": pending_json(pending)}}
        await self._fenced(ref, fence, intent, [], "UpdateItem of an intent")

    async def clear_pending(self, ref: ImageRef, *, fence: Fence) -> None:
        await self._fenced(ref, fence, {}, [PENDING], "UpdateItem clearing an intent")

    async def _fenced(
        self, ref: ImageRef, fence: Fence, sets: dict[str, Any], removes: list[str], what: str
    ) -> dict[str, Any]:
        """Set and remove data attributes of ``ref``'s lease item if it still names
        this holder (``fence``), unexpired by this holder's clock; the values it had
        before (of the attributes set); ``LeaseLost`` when it names another holder."""
        lease = self._lease
        now_ms = int(self._clock() * 1000)
        held = (
            (lease.owner == fence.owner)
            & (lease.token == fence.token)
            & (lease.expires_at > now_ms)
        )
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        condition = held.serialize(names, values)
        placeholders = {placeholder: name for name, placeholder in names.items()}
        actions: list[str] = []
        assignments = []
        for n, (name, value) in enumerate(sorted(sets.items())):
            placeholders[f"#set{n}"] = name
            values[f":set{n}"] = value
            assignments.append(f"#set{n} = :set{n}")
        if assignments:
            actions.append("SET " + ", ".join(assignments))
        if removes:
            for n, name in enumerate(removes):
                placeholders[f"#rm{n}"] = name
            actions.append("REMOVE " + ", ".join(f"#rm{n}" for n in range(len(removes))))
        try:
            answer = await self._client.update_item(
                TableName=self._lease_table,
                Key=self._key(ref.key),
                UpdateExpression=" ".join(actions),
                ConditionExpression=condition,
                ExpressionAttributeNames=placeholders,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise LeaseLost(fence.key) from exc
            raise write_error(exc, what) from exc
        except BotoCoreError as exc:
            raise write_error(exc, what) from exc
        return dict(answer.get("Attributes", {}))

    async def ping(self) -> None:
        await describe_active(self._client, self._lease_table)
