"""Data carried in the lease item: the requests that write it, fenced like the lease."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from locks._common import decode_data, encode_data
from locks._models import (
    DATA_PREFIX,
    QUEUE_GONE,
    QUEUE_SERVED,
    TOKEN,
    Grant,
    LockConfig,
    lease_model,
)
from locks._protocol import (
    NAMES,
    Call,
    Now,
    Sleep,
    acquire_flow,
    check_data,
    data_of,
    handoff_flow,
    peek_flow,
    release_flow,
    renew_flow,
    update_flow,
)
from locks.exceptions import LeaseLost, LeaseUnavailable
from tests.unit.locks.fakes import KEY, ME, OTHER, T0, TABLE, FakeTable, item, number

CONFIG = LockConfig(lease_seconds=10, max_clock_skew_seconds=1, claim_seconds=2.0)
GRANT = Grant(
    key=KEY,
    owner=ME,
    token=7,
    sent_at_ms=T0,
    expires_at_ms=int(T0) + 10_000,
    trusted_until_ms=T0 + 9_000,
)
RECORD = {"S": "sha256:1"}


def drive(flow: Any, table: FakeTable, now: float = T0) -> Any:
    """Run a flow against ``table`` with a fixed clock; sleeps return at once."""
    answer: Any = None
    while True:
        try:
            request = flow.send(answer)
        except StopIteration as stop:
            return stop.value
        if isinstance(request, Now):
            answer = now
        elif isinstance(request, Call):
            answer = table.execute(request)
        elif isinstance(request, Sleep):
            answer = False
        else:
            answer = None


def with_data(base: dict[str, Any], **data: dict[str, str]) -> dict[str, Any]:
    return {**base, **{DATA_PREFIX + name: value for name, value in data.items()}}


def acquire(table: FakeTable, set_data: dict[str, Any], timeout: float | None = 0) -> Grant:
    flow = acquire_flow(TABLE, KEY, ME, CONFIG, timeout, random.Random(0), set_data=set_data)
    grant: Grant = drive(flow, table)[0]
    return grant


def held_by_me(**data: dict[str, str]) -> FakeTable:
    table = FakeTable()
    table.put(with_data(item(owner=ME, token=7, expires_at=T0 + 10_000), **data))
    return table


def test_acquire_writes_data_in_the_grant() -> None:
    """An acquire's data lands in the item in the same write that grants the lease."""
    table = FakeTable()

    acquire(table, {"intent": RECORD})

    assert [RECORD] == [table.get()[DATA_PREFIX + "intent"]]  # type: ignore[index]
    assert 1 == len(table.calls)


def test_grant_from_the_line_writes_data_and_clears_the_passed_numbers() -> None:
    """A head's grant (conditioned on its place, removing the given-up number it passes)
    writes the acquire's data in that same write."""
    table = FakeTable()
    table.put(
        item(owner=OTHER, token=5, expires_at=0, queue_next=1, queue_served=0, queue_gone=(1,))
    )
    flow = acquire_flow(
        TABLE, KEY, ME, CONFIG, None, random.Random(0), set_data={"intent": RECORD}, queued=True
    )

    grant = drive(flow, table)[0]

    assert ({"intent": RECORD}, 2, None) == (
        grant.data,
        number(table.get(), QUEUE_SERVED),
        table.get().get(QUEUE_GONE),  # type: ignore[union-attr]
    )


def test_acquire_returns_the_items_other_data() -> None:
    """The grant carries every data attribute of the item after the write."""
    table = FakeTable()
    table.put(with_data(item(owner=OTHER, token=5, expires_at=0), record=RECORD))

    grant = acquire(table, {"intent": {"N": "2"}})

    assert {"record": RECORD, "intent": {"N": "2"}} == grant.data


def test_refused_acquire_writes_no_data() -> None:
    """An acquire refused because the lease is held leaves the item's data alone."""
    table = FakeTable()
    table.put(with_data(item(owner=OTHER, token=5, expires_at=T0 + 5_000), record=RECORD))

    with pytest.raises(LeaseUnavailable):
        acquire(table, {"x": RECORD})

    assert {"record": RECORD} == data_of(table.get())


def test_update_writes_and_removes_data_under_our_token() -> None:
    """A fenced update sets and removes data attributes and keeps the token."""
    table = held_by_me(intent=RECORD)

    data = drive(update_flow(TABLE, GRANT, {"record": RECORD}, ("intent",)), table)

    assert ({"record": RECORD}, 7) == (data, number(table.get(), TOKEN))


def test_update_by_an_overtaken_holder_writes_nothing() -> None:
    """An update whose token moved on raises LeaseLost and leaves the data as it was."""
    table = FakeTable()
    table.put(with_data(item(owner=OTHER, token=8, expires_at=T0 + 10_000), record=RECORD))

    with pytest.raises(LeaseLost):
        drive(update_flow(TABLE, GRANT, {"record": {"S": "mine"}}, ()), table)

    assert {"record": RECORD} == data_of(table.get())


def test_update_after_release_writes_nothing() -> None:
    """An update after our own release is refused: the lease is not held."""
    table = FakeTable()
    table.put(item(owner=ME, token=7, expires_at=0))

    with pytest.raises(LeaseLost):
        drive(update_flow(TABLE, GRANT, {"record": RECORD}, ()), table)


def test_release_writes_data_and_frees_the_lease() -> None:
    """A release commits data and frees the lease in one fenced write."""
    table = held_by_me(intent=RECORD)

    released = drive(release_flow(TABLE, GRANT, CONFIG, {"record": RECORD}, ("intent",)), table)

    assert (True, {"record": RECORD}, 0) == (
        released,
        data_of(table.get()),
        number(table.get(), "expires_at"),
    )


def test_release_by_an_overtaken_holder_writes_nothing() -> None:
    """A release whose token moved on returns False and leaves the data alone."""
    table = FakeTable()
    table.put(with_data(item(owner=OTHER, token=8, expires_at=T0 + 10_000), record=RECORD))

    released = drive(release_flow(TABLE, GRANT, CONFIG, {"record": {"S": "mine"}}), table)

    assert (False, {"record": RECORD}) == (released, data_of(table.get()))


def test_handoff_writes_data_and_passes_the_next_token() -> None:
    """A hand-off writes data in the write that passes the lease on, token + 1."""
    table = held_by_me(intent=RECORD)

    new = drive(handoff_flow(TABLE, GRANT, CONFIG, {"record": RECORD}, ("intent",)), table)

    assert (8, {"record": RECORD}) == (new.token, new.data)


def test_renewal_leaves_data_alone() -> None:
    """A renewal returns the data as stored and changes none of it."""
    table = held_by_me(record=RECORD)

    renewed = drive(renew_flow(TABLE, GRANT, CONFIG), table, now=T0 + 1_000)

    assert ({"record": RECORD}, {"record": RECORD}) == (renewed.data, data_of(table.get()))


def test_peek_reads_the_data_consistently() -> None:
    """peek returns the item's data through a consistent read, lease fields left out."""
    table = held_by_me(record=RECORD)

    data = drive(peek_flow(TABLE, KEY), table)

    assert ({"record": RECORD}, True) == (data, table.calls[0].params["ConsistentRead"])


def test_peek_of_a_missing_item_is_none() -> None:
    """peek of a key that has no item returns None."""
    assert drive(peek_flow(TABLE, KEY), FakeTable()) is None


@pytest.mark.parametrize("name", ["", "x" * 201, 3])
def test_bad_data_names_are_refused(name: Any) -> None:
    """Data names must be strings of 1 to 200 characters."""
    with pytest.raises(ValueError, match="data names"):
        check_data({name: RECORD}, ())


@pytest.mark.parametrize(
    ("set_data", "remove", "defaults"),
    [({"a": RECORD}, ["a"], {}), ({}, ["a"], {"a": RECORD}), ({"a": RECORD}, [], {"a": RECORD})],
)
def test_a_name_given_twice_is_refused(set_data: Any, remove: Any, defaults: Any) -> None:
    """One write names a data attribute once: set, removed, or set by default."""
    with pytest.raises(ValueError, match="given twice"):
        check_data(set_data, remove, defaults)


def test_lock_attributes_never_use_the_data_prefix() -> None:
    """No attribute of the lock's own starts with the data prefix, so data cannot collide."""
    model = lease_model("t")
    own = set(NAMES.values()) | {attr.attr_name for attr in model.get_attributes().values()}

    assert [] == [name for name in own if name.startswith(DATA_PREFIX)]


def test_data_values_round_trip_as_python_values() -> None:
    """Python values are typed for DynamoDB and read back (numbers as Decimal)."""
    data = {"n": 3, "s": "x", "m": {"k": [b"b", True, None]}}

    typed, _, _ = encode_data(data)

    assert {"n": Decimal(3), "s": "x", "m": {"k": [b"b", True, None]}} == {
        name: value.value if hasattr(value, "value") else value
        for name, value in decode_data(typed).items()
    }


def test_a_float_value_is_refused() -> None:
    """Floats are refused (DynamoDB numbers are exact: pass int or Decimal)."""
    with pytest.raises(ValueError, match="cannot store"):
        encode_data({"f": 1.5})
