"""The DynamoDB requests of the lease protocol (pure, no I/O, no clock).

The request types a flow yields, the item's named condition clauses (joined as
Powertools' idempotency does) and the UpdateItem builders. ``_protocol`` holds
the decisions and flows that use them, and the expiry model.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from locks._models import (
    CLEANUP_AT,
    DATA_PREFIX,
    EXPIRES_AT,
    FREED_AT,
    GRANTED_AT,
    HANDOFF,
    HELD_MS,
    MAX_DATA_NAME,
    OWNER,
    PK,
    QUEUE_GONE,
    QUEUE_NEXT,
    QUEUE_SERVED,
    TOKEN,
    TOKEN_SCALE,
    Grant,
    LockConfig,
)

Op = Literal["update_item", "get_item"]


@dataclass(frozen=True)
class Now:
    """Ask the driver for its clock, in epoch milliseconds."""


@dataclass(frozen=True)
class Call:
    """One DynamoDB call. The answer is the response dict or :class:`ConditionFailed`."""

    op: Op
    params: dict[str, Any]


@dataclass(frozen=True)
class Sleep:
    """Wait up to ``seconds``. The answer is True if the driver woke early
    (a local release for waiters, a stop for heartbeats), or the :class:`Grant`
    a local holder handed over to this waiter."""

    seconds: float


@dataclass(frozen=True)
class Renewed:
    """Tell the driver the grant was renewed. The answer is ignored."""

    grant: Grant


@dataclass(frozen=True)
class Current:
    """Ask the driver for the newest grant it holds (a manual renew may have moved it)."""


@dataclass(frozen=True)
class ConditionFailed:
    """A conditional write failed; ``item`` is the old item if the backend sent it."""

    item: dict[str, Any] | None


Request = Now | Call | Sleep | Renewed | Current
Flow = Generator[Request, Any, Any]
# Data attributes by name (no prefix), values in DynamoDB's typed form ({"S": "x"}).
Data = Mapping[str, dict[str, Any]]
NO_DATA: Data = {}

NAMES = {
    "#pk": PK,
    "#owner": OWNER,
    "#token": TOKEN,
    "#expires_at": EXPIRES_AT,
    "#granted_at": GRANTED_AT,
    "#cleanup_at": CLEANUP_AT,
    "#freed_at": FREED_AT,
    "#held_ms": HELD_MS,
    "#queue_next": QUEUE_NEXT,
    "#queue_served": QUEUE_SERVED,
    "#queue_gone": QUEUE_GONE,
    "#handoff": HANDOFF,
}


@dataclass(frozen=True)
class Place:
    """A waiter's place in the line, as its last view of the item showed it: its
    ``number``, the number ``served`` then, the given-up numbers it passes (``passed``,
    removed from the item by its grant) and how many live waiters are ``ahead`` of it."""

    number: int
    served: int
    passed: tuple[int, ...] = ()
    ahead: int = 0


def _names(expression: str) -> dict[str, str]:
    """Only the placeholders an expression uses (DynamoDB rejects unused ones)."""
    return {k: v for k, v in NAMES.items() if k in expression}


def _n(value: float) -> dict[str, str]:
    return {"N": str(int(value))}


def _cleanup_at(expires_at_ms: float, config: LockConfig) -> int:
    return math.ceil(expires_at_ms / 1000 + config.cleanup_after_seconds)


def check_data(set_data: Data, remove: Iterable[str], defaults: Data = NO_DATA) -> tuple[str, ...]:
    """Validate data names (non-empty strings of at most ``MAX_DATA_NAME``
    characters, each named once among set, removed and defaults); returns
    ``remove`` as a tuple."""
    removed = (remove,) if isinstance(remove, str) else tuple(remove)
    for name in (*set_data, *removed, *defaults):
        if not isinstance(name, str) or not 0 < len(name) <= MAX_DATA_NAME:
            raise ValueError(
                f"data names must be strings of 1 to {MAX_DATA_NAME} characters, got {name!r}"
            )
    both = (set(set_data) | set(defaults)) & set(removed) | set(set_data) & set(defaults)
    if both:
        raise ValueError(f"data names given twice (set, removed, default): {sorted(both)}")
    return removed


def data_of(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The data attributes of an item, prefix stripped (still DynamoDB-typed)."""
    return {
        name.removeprefix(DATA_PREFIX): value
        for name, value in (attributes or {}).items()
        if name.startswith(DATA_PREFIX)
    }


@dataclass(frozen=True)
class _Clauses:
    """An update expression's actions, plus the placeholders the data ones use."""

    sets: list[str]
    removes: list[str]
    names: dict[str, str]
    values: dict[str, Any]
    deletes: list[str] = field(default_factory=list)

    def expression(self) -> str:
        parts = []
        if self.sets:
            parts.append("SET " + ", ".join(self.sets))
        if self.removes:
            parts.append("REMOVE " + ", ".join(self.removes))
        if self.deletes:
            parts.append("DELETE " + ", ".join(self.deletes))
        return " ".join(parts)


def _with_data(
    sets: list[str],
    removes: list[str],
    set_data: Data,
    remove: Iterable[str],
    defaults: Data = NO_DATA,
) -> _Clauses:
    """``defaults`` are set only where the item has no such attribute."""
    clauses = _Clauses(list(sets), list(removes), {}, {})
    for n, (name, value) in enumerate(sorted(set_data.items())):
        clauses.names[f"#d{n}"] = DATA_PREFIX + name
        clauses.values[f":d{n}"] = value
        clauses.sets.append(f"#d{n} = :d{n}")
    for n, (name, value) in enumerate(sorted(defaults.items()), start=len(set_data)):
        clauses.names[f"#d{n}"] = DATA_PREFIX + name
        clauses.values[f":d{n}"] = value
        clauses.sets.append(f"#d{n} = if_not_exists(#d{n}, :d{n})")
    for n, name in enumerate(sorted(set(remove)), start=len(set_data) + len(defaults)):
        clauses.names[f"#d{n}"] = DATA_PREFIX + name
        clauses.removes.append(f"#d{n}")
    return clauses


def _update(
    table: str,
    key: str,
    update: str | _Clauses,
    condition: str,
    values: dict[str, Any],
) -> dict[str, Any]:
    data_names: dict[str, str] = {}
    if isinstance(update, _Clauses):
        data_names, values = update.names, {**values, **update.values}
        update = update.expression()
    return {
        "TableName": table,
        "Key": {PK: {"S": key}},
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {**_names(update + " " + condition), **data_names},
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


# Named condition clauses, joined below (Powertools' idempotency style).
FREE = "attribute_not_exists(#pk)"
EXPIRED = "#expires_at < :stale_before"
NO_LINE = "(attribute_not_exists(#queue_next) OR #queue_next = #queue_served)"
SERVED = "#queue_served = :served"  # the line has not moved since the waiter's view
# free for long enough that the waiters ahead had their turn (released, or expired)
PASSABLE = (
    "((#expires_at = :zero AND (attribute_not_exists(#freed_at) OR #freed_at < :pass_before))"
    " OR (#expires_at > :zero AND #expires_at < :pass_before))"
)
OURS = "#owner = :owner AND #token = :token"
NOT_RELEASED = "#expires_at > :zero"
HELD = "attribute_exists(#pk) AND #expires_at >= :stale_before"
WAITING = "#queue_served < :number"
# our number is in this item's line (a TTL deletion of the item starts a new one)
TAKEN = "#queue_next >= :number"


def acquire_request(
    table: str,
    key: str,
    owner: str,
    now: float,
    config: LockConfig,
    set_data: Data = NO_DATA,
    defaults: Data = NO_DATA,
    place: Place | None = None,
) -> Call:
    """A grant: the key is free or expired, and either nobody is in line (no ``place``)
    or the line stands where ``place`` saw it and every waiter ahead was passed by time.
    ``set_data`` is written in the same conditional write, ``defaults`` where the item
    has no such attribute."""
    expires_at = now + config.lease_ms
    values: dict[str, Any] = {
        ":owner": {"S": owner},
        ":floor": _n(now * TOKEN_SCALE),
        ":one": _n(1),
        ":expires_at": _n(expires_at),
        ":now": _n(now),
        ":cleanup_at": _n(_cleanup_at(expires_at, config)),
        ":stale_before": _n(now - config.skew_ms),
    }
    sets = [
        "#owner = :owner",
        "#token = if_not_exists(#token, :floor) + :one",
        "#expires_at = :expires_at",
        "#granted_at = :now",
        "#cleanup_at = :cleanup_at",
    ]
    if place is None:
        condition = f"({FREE} OR {EXPIRED}) AND {NO_LINE}"
    else:
        condition = f"{EXPIRED} AND {SERVED} AND {TAKEN}"
        values[":served"] = _n(place.served)
        values[":number"] = _n(place.number)
        sets.append("#queue_served = :number")
        if place.ahead:
            condition += f" AND {PASSABLE}"
            values[":zero"] = _n(0)
            values[":pass_before"] = _n(now - place.ahead * config.claim * 1000)
    update = _with_data(sets, [], set_data, (), defaults)
    if place is not None and place.passed:
        update.deletes.append("#queue_gone :passed")
        values[":passed"] = {"NS": [str(n) for n in sorted(place.passed)]}
    return Call("update_item", _update(table, key, update, condition, values))


def join_request(table: str, key: str) -> Call:
    """Take the next number in the line of ``key``'s waiters; the answer holds the item."""
    values = {":zero": _n(0), ":one": _n(1)}
    update = (
        "SET #queue_next = if_not_exists(#queue_next, :zero) + :one, "
        "#queue_served = if_not_exists(#queue_served, :zero)"
    )
    return Call("update_item", _update(table, key, update, "attribute_exists(#pk)", values))


def withdraw_request(table: str, key: str, number: int) -> Call:
    """Give up our number (a waiter that timed out or was served in its own process),
    so the waiters behind it need not wait for it."""
    values = {":number": _n(number), ":gone": {"NS": [str(number)]}}
    condition = f"{WAITING} AND {TAKEN}"
    return Call("update_item", _update(table, key, "ADD #queue_gone :gone", condition, values))


def renew_request(table: str, grant: Grant, now: float, config: LockConfig) -> Call:
    """Extend our own grant; fails if the token moved on or we released."""
    expires_at = now + config.lease_ms
    values = {
        ":owner": {"S": grant.owner},
        ":token": _n(grant.token),
        ":zero": _n(0),
        ":expires_at": _n(expires_at),
        ":cleanup_at": _n(_cleanup_at(expires_at, config)),
    }
    update = "SET #expires_at = :expires_at, #cleanup_at = :cleanup_at"
    return Call(
        "update_item", _update(table, grant.key, update, f"{OURS} AND {NOT_RELEASED}", values)
    )


def handoff_request(
    table: str,
    grant: Grant,
    now: float,
    config: LockConfig,
    set_data: Data = NO_DATA,
    remove: Iterable[str] = (),
    defaults: Data = NO_DATA,
    marker: str | None = None,
) -> Call:
    """Pass our grant to a waiter of our own process: one write, the next token,
    with the data changes of our release and of the waiter's acquire. ``marker`` (random)
    is written too, so a write that landed unanswered is known by it."""
    expires_at = now + config.lease_ms
    values = {
        ":owner": {"S": grant.owner},
        ":token": _n(grant.token),
        ":one": _n(1),
        ":zero": _n(0),
        ":now": _n(now),
        ":expires_at": _n(expires_at),
        ":held": _n(max(0.0, now - grant.sent_at_ms)),
        ":cleanup_at": _n(_cleanup_at(expires_at, config)),
    }
    sets = [
        "#token = #token + :one",
        "#expires_at = :expires_at",
        "#granted_at = :now",
        "#held_ms = :held",
        "#cleanup_at = :cleanup_at",
    ]
    if marker is not None:
        sets.append("#handoff = :handoff")
        values[":handoff"] = {"S": marker}
    update = _with_data(sets, [], set_data, remove, defaults)
    return Call(
        "update_item", _update(table, grant.key, update, f"{OURS} AND {NOT_RELEASED}", values)
    )


def release_request(
    table: str,
    grant: Grant,
    now: float,
    config: LockConfig,
    set_data: Data = NO_DATA,
    remove: Iterable[str] = (),
) -> Call:
    """Free our grant, keeping the token for the next one, with our last data changes."""
    values = {
        ":owner": {"S": grant.owner},
        ":token": _n(grant.token),
        ":zero": _n(0),
        ":now": _n(now),
        ":held": _n(max(0.0, now - grant.sent_at_ms)),
        ":cleanup_at": _n(_cleanup_at(now, config)),
    }
    sets = [
        "#expires_at = :zero",
        "#freed_at = :now",
        "#held_ms = :held",
        "#cleanup_at = :cleanup_at",
    ]
    update = _with_data(sets, [], set_data, remove)
    return Call("update_item", _update(table, grant.key, update, OURS, values))


def update_request(table: str, grant: Grant, set_data: Data, remove: Iterable[str]) -> Call:
    """Write data while we hold the lease; fails if the token moved on or we released."""
    values = {":owner": {"S": grant.owner}, ":token": _n(grant.token), ":zero": _n(0)}
    update = _with_data([], [], set_data, remove)
    return Call(
        "update_item", _update(table, grant.key, update, f"{OURS} AND {NOT_RELEASED}", values)
    )


def read_request(table: str, key: str) -> Call:
    return Call("get_item", {"TableName": table, "Key": {PK: {"S": key}}, "ConsistentRead": True})
