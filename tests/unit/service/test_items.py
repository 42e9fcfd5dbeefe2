"""The DynamoDB items (PynamoDB models) and the records adapter's request building; no
network."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from service.adapters.items import HistoryItem, IntegerAttribute, TagItem, table_schema
from service.adapters.records import from_item, to_item, write_error
from service.domain.models import ImageRef, PendingPush, TagRecord


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


def test_record_round_trips_through_its_item() -> None:
    """A record written as an item reads back equal, with no intent."""
    record = TagRecord(
        ImageRef("team/app", "v1"), "sha256:" + "a" * 64, 10**30, 7, "o", "c", "r", 1.5
    )
    raw = to_item(record).serialize()
    assert (record, None) == from_item(TagItem.from_raw_data(raw))


def test_an_item_with_only_an_intent_has_no_record() -> None:
    """The tag's first push died after its intent: no record, the intent."""
    raw: dict[str, Any] = {
        "pk": {"S": "team/app:v1"},
        "repository": {"S": "team/app"},
        "tag": {"S": "v1"},
        "pending_digest": {"S": "sha256:" + "b" * 64},
        "pending_token": {"N": "9"},
        "pending_caller": {"S": "ci"},
        "pending_request_id": {"S": "r"},
    }
    assert (None, PendingPush("sha256:" + "b" * 64, None, 9, "ci", "r")) == from_item(
        TagItem.from_raw_data(raw)
    )


def client_error(code: str, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "m"}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": reason} for reason in reasons]
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (client_error("ValidationException"), False),
        (client_error("AccessDeniedException"), False),
        (client_error("TransactionCanceledException", ["None", "ValidationError"]), False),
        (client_error("ThrottlingException"), True),
        (client_error("TransactionCanceledException", ["None", "TransactionConflict"]), True),
    ],
)
def test_refusals_that_retrying_cannot_fix_are_not_retryable(
    error: ClientError, retryable: bool
) -> None:
    """A value the table refuses or a denied write is permanent; throttling and
    transaction conflicts are not."""
    assert retryable == write_error(error, "a write").retryable
