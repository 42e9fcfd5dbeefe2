"""Values of the lease library: configuration, grants and the item schema.

The item schema is a PynamoDB model (``lease_model``); the protocol core builds
raw requests with the same attribute names, which a unit test checks against
the model so the sync, async and PynamoDB views of one table never drift.
PynamoDB is imported only when ``lease_model`` is called; the drivers never need it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pynamodb.models import Model

# Attribute names of a lease item. The protocol, both drivers and the PynamoDB
# model use these and nothing else.
PK = "pk"
OWNER = "owner"
TOKEN = "token"  # noqa: S105 - the fencing token's attribute name, not a secret
EXPIRES_AT = "expires_at"  # epoch ms by the writer's clock; 0 once released
GRANTED_AT = "granted_at"  # epoch ms by the holder's clock when the grant was sent
CLEANUP_AT = "cleanup_at"  # epoch seconds: DynamoDB TTL deletes the item after this
FREED_AT = "freed_at"  # epoch ms by the releasing holder's clock, at its last release
HELD_MS = "held_ms"  # how long the last released grant was held: waiters time their polls
# The line of waiters of other processes (a ticket dispenser): a waiter takes the number
# ``queue_next`` after adding one; ``queue_served`` is the last number granted or passed;
# ``queue_gone`` holds numbers whose waiters gave up. Waiting: next - served.
QUEUE_NEXT = "queue_next"
QUEUE_SERVED = "queue_served"
QUEUE_GONE = "queue_gone"
HANDOFF = "handoff_id"  # a random mark of the last local hand-off's write: its own to tell
# The data a lease guards is stored beside it as ``data_<name>`` attributes: the
# lock's own names never start with the prefix, so the two cannot collide. (A
# nested ``data`` map would need the map to exist before a path in it can be
# set, which a first acquire cannot know in one write.)
DATA_PREFIX = "data_"
MAX_DATA_NAME = 200  # characters of a data attribute's name, prefix excluded

# A fresh item (first ever, or after TTL cleanup) starts its token at
# epoch-ms * TOKEN_SCALE: see the expiry model in ``_protocol``.
TOKEN_SCALE = 1000


@dataclass(frozen=True)
class LockConfig:
    """Timings of a lease. Validated on construction; every field in seconds.

    - ``lease_seconds``: how long a grant or renewal is valid.
    - ``heartbeat_seconds``: renewal period (default a third of the lease).
    - ``max_clock_skew_seconds``: the largest offset between any two hosts' clocks
      that the lease stays safe under.
    - ``safety_margin_seconds``: the holder stops trusting its lease this long before
      its own expiry (default a tenth of the lease, at most 1 s).
    - ``retry_base_seconds`` / ``retry_cap_seconds``: the backoff of the waiter at
      the head of the line between attempts on a lease held by another process
      (capped, jittered) when the holder's release cannot be foreseen.
    - ``claim_seconds``: how long a free lease waits for each waiter ahead in the line
      before a waiter behind may pass them (one that died in line, or slept through its
      turn); default 2 x the cap. An awake head polls at least every cap. Passing is a
      matter of order, not of safety (the lease is free either way), so clock skew
      only moves it by up to the skew.
    - ``local_handoffs``: how many times in a row a releasing holder may hand the
      lease straight to a waiter of its own process (one write, new token) while
      waiters of other processes are in line; 0 turns hand-off off. With nobody in
      line hand-off has no limit.
    - ``cleanup_after_seconds``: how long after its last expiry DynamoDB TTL may
      delete an item. Must exceed ``lease + 2 x skew`` for fencing tokens to keep
      increasing across cleanup.
    """

    lease_seconds: float = 10.0
    heartbeat_seconds: float | None = None
    max_clock_skew_seconds: float = 1.0
    safety_margin_seconds: float | None = None
    retry_base_seconds: float = 0.02
    retry_cap_seconds: float = 0.1
    claim_seconds: float | None = None
    cleanup_after_seconds: float = 86_400.0
    local_handoffs: int = 8

    def __post_init__(self) -> None:
        def positive(name: str, value: float) -> None:
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

        positive("lease_seconds", self.lease_seconds)
        positive("retry_base_seconds", self.retry_base_seconds)
        positive("retry_cap_seconds", self.retry_cap_seconds)
        positive("cleanup_after_seconds", self.cleanup_after_seconds)
        if not (math.isfinite(self.max_clock_skew_seconds) and self.max_clock_skew_seconds >= 0):
            raise ValueError("max_clock_skew_seconds must be >= 0")
        if self.retry_base_seconds > self.retry_cap_seconds:
            raise ValueError("retry_base_seconds must not exceed retry_cap_seconds")
        margin = self.margin
        if not (0 <= margin < self.lease_seconds):
            raise ValueError("safety_margin_seconds must be >= 0 and shorter than the lease")
        heartbeat = self.heartbeat
        positive("heartbeat_seconds", heartbeat)
        if heartbeat * 2 > self.lease_seconds - margin:
            raise ValueError(
                "heartbeat_seconds must be at most half of (lease - safety margin), "
                "so a failed renewal can be retried before the lease runs out"
            )
        if self.claim_seconds is not None:
            positive("claim_seconds", self.claim_seconds)
        if self.local_handoffs < 0:
            raise ValueError("local_handoffs must be >= 0")
        if self.cleanup_after_seconds <= self.lease_seconds + 2 * self.max_clock_skew_seconds:
            raise ValueError("cleanup_after_seconds must exceed lease_seconds + 2 x max skew")

    @property
    def heartbeat(self) -> float:
        if self.heartbeat_seconds is not None:
            return self.heartbeat_seconds
        return self.lease_seconds / 3

    @property
    def margin(self) -> float:
        if self.safety_margin_seconds is not None:
            return self.safety_margin_seconds
        return min(1.0, self.lease_seconds / 10)

    @property
    def claim(self) -> float:
        if self.claim_seconds is not None:
            return self.claim_seconds
        return 2 * self.retry_cap_seconds

    @property
    def lease_ms(self) -> int:
        return round(self.lease_seconds * 1000)

    @property
    def skew_ms(self) -> int:
        return math.ceil(self.max_clock_skew_seconds * 1000)


@dataclass(frozen=True)
class Grant:
    """One grant of a lease, as the holder knows it.

    ``token`` is the fencing token: strictly greater than every earlier grant's
    for the key. It stays the same across renewals, so one critical section is
    fenced by one number. ``trusted_until_ms`` is when the holder stops trusting
    the grant (its own clock), always before any other host may take it over.
    """

    key: str
    owner: str
    token: int
    sent_at_ms: float
    expires_at_ms: int
    trusted_until_ms: float
    # waiters of other processes in line when this grant was written or last renewed
    waiting: int = 0
    # the item's data attributes after the write, DynamoDB-typed, prefix stripped
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Holder:
    """What a failed conditional write (or a read) told us about the item."""

    owner: str | None
    token: int | None
    expires_at_ms: int | None
    granted_at_ms: int | None = None
    held_ms: int | None = None
    freed_at_ms: int | None = None
    queue_next: int = 0
    queue_served: int = 0
    queue_gone: frozenset[int] = frozenset()

    @property
    def waiting(self) -> int:
        """Waiters in line: numbers taken, not yet served or passed, not given up."""
        gone = sum(1 for n in self.queue_gone if self.queue_served < n <= self.queue_next)
        return max(0, self.queue_next - self.queue_served - gone)

    @classmethod
    def from_item(cls, item: dict[str, Any] | None) -> Holder:
        if not item:
            return cls(owner=None, token=None, expires_at_ms=None)

        def text(name: str) -> str | None:
            value = item.get(name)
            return None if value is None else str(value["S"])

        def number(name: str) -> int | None:
            value = item.get(name)
            return None if value is None else int(value["N"])

        gone = item.get(QUEUE_GONE)
        return cls(
            owner=text(OWNER),
            token=number(TOKEN),
            expires_at_ms=number(EXPIRES_AT),
            granted_at_ms=number(GRANTED_AT),
            held_ms=number(HELD_MS),
            freed_at_ms=number(FREED_AT),
            queue_next=number(QUEUE_NEXT) or 0,
            queue_served=number(QUEUE_SERVED) or 0,
            queue_gone=frozenset(int(n) for n in gone["NS"]) if gone else frozenset(),
        )


@dataclass(frozen=True)
class LeaseInfo:
    """A lease item as read from the table (``describe``)."""

    key: str
    owner: str | None
    token: int | None
    expires_at_ms: int | None
    extra: dict[str, Any] = field(default_factory=dict)


def lease_model(
    table_name: str, *, region: str | None = None, host: str | None = None
) -> type[Model]:
    """The PynamoDB model of a lease table (one class per table name)."""
    from pynamodb.attributes import (  # noqa: PLC0415
        NumberAttribute,
        NumberSetAttribute,
        TTLAttribute,
        UnicodeAttribute,
    )
    from pynamodb.models import Model  # noqa: PLC0415 - only callers of lease_model need PynamoDB

    meta_attrs: dict[str, Any] = {"table_name": table_name, "billing_mode": "PAY_PER_REQUEST"}
    if region is not None:
        meta_attrs["region"] = region
    if host is not None:
        meta_attrs["host"] = host
    meta = type("Meta", (), meta_attrs)
    attrs: dict[str, Any] = {
        "Meta": meta,
        "pk": UnicodeAttribute(hash_key=True, attr_name=PK),
        "owner": UnicodeAttribute(null=True, attr_name=OWNER),
        "token": NumberAttribute(null=True, attr_name=TOKEN),
        "expires_at": NumberAttribute(null=True, attr_name=EXPIRES_AT),
        "granted_at": NumberAttribute(null=True, attr_name=GRANTED_AT),
        "cleanup_at": TTLAttribute(null=True, attr_name=CLEANUP_AT),
        "freed_at": NumberAttribute(null=True, attr_name=FREED_AT),
        "held_ms": NumberAttribute(null=True, attr_name=HELD_MS),
        "queue_next": NumberAttribute(null=True, attr_name=QUEUE_NEXT),
        "queue_served": NumberAttribute(null=True, attr_name=QUEUE_SERVED),
        "queue_gone": NumberSetAttribute(null=True, attr_name=QUEUE_GONE),
        "handoff_id": UnicodeAttribute(null=True, attr_name=HANDOFF),
    }
    return type(f"LeaseItem_{table_name}", (Model,), attrs)
