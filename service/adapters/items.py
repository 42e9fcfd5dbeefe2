"""The service's DynamoDB items, defined once as PynamoDB models.

The models give attribute names, types, keys, and the (de)serialization of items; the
I/O goes through the service's aioboto3 client rather than PynamoDB's synchronous
connection (the service is asyncio end to end). Requests are built from the models too:
``serialize()``/``from_raw_data()`` for items, PynamoDB's condition and update
expressions (``get_save_kwargs_from_instance`` and its siblings, the public builders of
PynamoDB's own transactions) for writes; each request then names the configured table.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pynamodb.attributes import Attribute, NumberAttribute, UnicodeAttribute
from pynamodb.constants import NUMBER
from pynamodb.models import Model


class IntegerAttribute(Attribute[int]):
    """A DynamoDB number read back as an exact ``int`` (PynamoDB's ``NumberAttribute``
    reads through ``json.loads``, which turns ``1E+37`` into a rounded float)."""

    attr_type = NUMBER

    def serialize(self, value: int) -> str:
        return str(int(value))

    def deserialize(self, value: str) -> int:
        return int(Decimal(value))


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
    sequence = IntegerAttribute(null=True)
    token = IntegerAttribute(null=True)
    caller = UnicodeAttribute()
    request_id = UnicodeAttribute()
    started_at = NumberAttribute()  # epoch seconds
    finished_at = NumberAttribute()  # epoch seconds
    error = UnicodeAttribute(null=True)
    detail = UnicodeAttribute(null=True)


def table_schema(model: type[Model]) -> dict[str, Any]:
    """The key schema and key attribute definitions of ``model``'s table, from its
    attributes (PynamoDB builds this only inside its synchronous ``create_table``)."""
    keys = sorted(
        (a for a in model.get_attributes().values() if a.is_hash_key or a.is_range_key),
        key=lambda a: not a.is_hash_key,
    )
    return {
        "key_schema": [
            {"AttributeName": a.attr_name, "KeyType": "HASH" if a.is_hash_key else "RANGE"}
            for a in keys
        ],
        "attribute_definitions": [
            {"AttributeName": a.attr_name, "AttributeType": a.attr_type} for a in keys
        ],
    }


def on_table(request: dict[str, Any], table: str) -> dict[str, Any]:
    """A request PynamoDB built for the model's default table, sent to ``table``."""
    return {**request, "TableName": table}
