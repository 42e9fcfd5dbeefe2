"""The DynamoDB items (PynamoDB models) and the records adapter's request building; no
network."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from service.adapters.history import from_item as entry_from_item
from service.adapters.history import history_item
from service.adapters.items import HistoryItem, IntegerAttribute, table_schema
from service.adapters.records import (
    PENDING,
    RECORD,
    from_item,
    pending_json,
    record_json,
    write_error,
)
from service.domain.models import HistoryEntry, ImageRef, Outcome, PendingPush, TagRecord


def test_integers_read_back_exactly() -> None:
    """A number DynamoDB hands back in exponent form is read as the exact integer."""
    assert 10**37 == IntegerAttribute().deserialize("1E+37")


def test_history_table_keys_come_from_the_model() -> None:
    """The history table is keyed by the model's hash and range attributes."""
    assert {
        "key_schema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "attribute_definitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
    } == table_schema(HistoryItem)


def test_record_round_trips_through_the_lease_item() -> None:
    """A record written into the lease item reads back equal, with no intent."""
    ref = ImageRef("team/app", "v1")
    record = TagRecord(ref, "sha256:" + "a" * 64, 10**30, 7, "o", "c", "r", 1.5)
    assert (record, None) == from_item(ref, {RECORD: {"S": record_json(record)}})


def test_an_item_with_only_an_intent_has_no_record() -> None:
    """The tag's first push died after its intent: no record, the intent."""
    ref = ImageRef("team/app", "v1")
    pending = PendingPush("sha256:" + "b" * 64, None, 9, "ci", "r")
    assert (None, pending) == from_item(ref, {PENDING: {"S": pending_json(pending)}})


def test_an_entry_appended_twice_has_one_key() -> None:
    """A history entry read back from its item keys the same item again (a retried or
    handed-on append overwrites, never duplicates); another entry keys another item."""
    entry = HistoryEntry(
        ref=ImageRef("team/app", "v1"),
        outcome=Outcome.PUSHED,
        digest="sha256:" + "a" * 64,
        previous_digest=None,
        sequence=3,
        token=7,
        caller="ci",
        request_id="r",
        started_at=1_800_000_000.125,
        finished_at=1_800_000_000.5,
    )
    again = entry_from_item(history_item(entry).serialize())
    other = replace(entry, request_id="r2")
    assert (history_item(entry).sk, False) == (
        history_item(again).sk,
        history_item(other).sk == history_item(entry).sk,
    )


def client_error(code: str) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "m"}}
    return ClientError(response, "UpdateItem")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (client_error("ValidationException"), False),
        (client_error("AccessDeniedException"), False),
        (client_error("ThrottlingException"), True),
        (client_error("InternalServerError"), True),
    ],
)
def test_refusals_that_retrying_cannot_fix_are_not_retryable(
    error: ClientError, retryable: bool
) -> None:
    """A value the table refuses or a denied write is permanent; throttling and faults
    are not."""
    assert retryable == write_error(error, "a write").retryable
