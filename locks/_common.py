"""What both drivers share: error translation, owner ids, the default clock, logging."""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from locks._models import PK, LockConfig
from locks._protocol import Call, ConditionFailed, Data, check_data
from locks.exceptions import AcquireTimeout, LeaseUnavailable, LockBackendError, TableNotFound

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

log = structlog.get_logger("locks")

Clock = Callable[[], float]


def wall_clock_ms() -> float:
    return time.time() * 1000


def default_owner() -> str:
    """Host, process and a random suffix: unique per lock object, readable in logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def botocore_config(config: LockConfig) -> Config:
    """Throttling and 5xx are retried by botocore's standard mode; a call never
    hangs longer than a third of the lease, so a heartbeat can try again."""
    read_timeout = max(1.0, min(10.0, config.lease_seconds / 3))
    return Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=min(2.0, read_timeout),
        read_timeout=read_timeout,
    )


@functools.cache
def _types() -> tuple[TypeSerializer, TypeDeserializer]:
    # boto3's converters: imported on first use, so ``import locks`` stays botocore-only
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # noqa: PLC0415

    return TypeSerializer(), TypeDeserializer()


def encode_data(
    set_data: Mapping[str, Any] | None,
    remove: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> tuple[Data, tuple[str, ...], Data]:
    """Validate data changes and type their values for DynamoDB (boto3's rules:
    str, bytes, bool, None, int or Decimal, and lists, sets and dicts of them)."""
    set_data = dict(set_data or {})
    defaults = dict(defaults or {})
    removed = check_data(set_data, remove, defaults)
    return _typed(set_data), removed, _typed(defaults)


def _typed(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    try:
        return {name: dict(_types()[0].serialize(value)) for name, value in values.items()}
    except TypeError as exc:
        raise ValueError(f"a data value DynamoDB cannot store: {exc}") from exc


def decode_data(typed: Mapping[str, Any]) -> dict[str, Any]:
    """Data attributes back to Python values (numbers come back as Decimal)."""
    return {name: _types()[1].deserialize(value) for name, value in typed.items()}


def queued_out(key: str, timeout: float | None, waited: float) -> None:
    """Raise for a waiter whose time ran out behind others of its own process."""
    if timeout == 0:
        raise LeaseUnavailable(key, "a waiter in this process", None)
    raise AcquireTimeout(key, "a waiter in this process", None, waited)


def translate(exc: Exception, call: Call) -> ConditionFailed | LockBackendError:
    """Map a botocore error to the protocol's answer or to our error tree."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code")
        if code == "ConditionalCheckFailedException":
            item: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            return ConditionFailed(item=item)
        if code == "ResourceNotFoundException":
            return TableNotFound(call.params["TableName"], exc)
        message = error.get("Message", str(exc))
        return LockBackendError(
            f"DynamoDB {call.op} failed: {code}: {message}", code=code, cause=exc
        )
    if isinstance(exc, BotoCoreError):
        return LockBackendError(f"DynamoDB {call.op} failed: {exc}", code=None, cause=exc)
    raise exc


def create_table_params(table_name: str) -> dict[str, Any]:
    """CreateTable of a lease table: ``lease_model``'s key, pay per request (a test
    checks the two agree, so the drivers need not import PynamoDB)."""
    return {
        "TableName": table_name,
        "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": PK, "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


class Recent:
    """A bounded set of keys (the newest ``size`` marked), safe across threads: what a
    lock remembers of keys it saw contended, without growing with every key it ever held."""

    def __init__(self, size: int = 1024) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._mutex = threading.Lock()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def mark(self, key: str, *, seen: bool) -> None:
        with self._mutex:
            if not seen:
                self._keys.pop(key, None)
                return
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)
