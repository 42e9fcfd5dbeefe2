"""The DynamoDB requests the lease core builds: conditions, values, tokens, the line."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from locks._models import (
    EXPIRES_AT,
    FREED_AT,
    HELD_MS,
    PK,
    QUEUE_GONE,
    QUEUE_NEXT,
    QUEUE_SERVED,
    TOKEN,
    Grant,
)
from locks._protocol import (
    EXPIRED,
    FREE,
    HELD,
    NAMES,
    NO_LINE,
    NOT_RELEASED,
    OURS,
    PASSABLE,
    SERVED,
    TAKEN,
    WAITING,
    Call,
    ConditionFailed,
    Place,
    acquire_request,
    handoff_request,
    join_request,
    read_request,
    release_request,
    renew_request,
    withdraw_request,
)
from tests.unit.locks.fakes import (
    CONFIG,
    KEY,
    ME,
    OTHER,
    T0,
    TABLE,
    FakeTable,
    condition_holds,
    item,
    number,
)

SKEW = CONFIG.skew_ms
CLAIM_MS = 2_000  # CONFIG.claim in ms: how long a free lease waits per waiter ahead
GRANT = Grant(
    key=KEY,
    owner=ME,
    token=7,
    sent_at_ms=T0,
    expires_at_ms=int(T0) + 10_000,
    trusted_until_ms=T0 + 9_000,
)
# number 5 in a line served up to 2: 3 gave up, 4 is a live waiter ahead
BEHIND = Place(number=5, served=2, passed=(3,), ahead=1)
HEAD = Place(number=3, served=2)


def builders() -> dict[str, Call]:
    return {
        "acquire": acquire_request(TABLE, KEY, ME, T0, CONFIG),
        "acquire-head": acquire_request(TABLE, KEY, ME, T0, CONFIG, place=HEAD),
        "acquire-behind": acquire_request(TABLE, KEY, ME, T0, CONFIG, place=BEHIND),
        "renew": renew_request(TABLE, GRANT, T0, CONFIG),
        "release": release_request(TABLE, GRANT, T0, CONFIG),
        "handoff": handoff_request(TABLE, GRANT, T0, CONFIG),
        "join": join_request(TABLE, KEY),
        "withdraw": withdraw_request(TABLE, KEY, 5),
    }


ALL = pytest.mark.parametrize("name", list(builders()))


def values(call: Call) -> dict[str, Any]:
    """The request's values, untyped: a number or string as text, a number set as a list."""
    return {k: next(iter(v.values())) for k, v in call.params["ExpressionAttributeValues"].items()}


def expressions(call: Call) -> str:
    return f"{call.params['UpdateExpression']} {call.params['ConditionExpression']}"


OURS_NOW = item(owner=ME, token=7, expires_at=T0 + 10_000)  # GRANT's item


def applied(call: Call, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The item after ``call`` on ``current`` (None: no item); {} if there is none."""
    table = FakeTable()
    if current is not None:
        table.put(current)
    table.execute(call)
    return table.get() or {}


# --- conditions, by clause -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("acquire", f"({FREE} OR {EXPIRED}) AND {NO_LINE}", id="acquire-no-line"),
        pytest.param("acquire-head", f"{EXPIRED} AND {SERVED} AND {TAKEN}", id="head-line-stands"),
        pytest.param(
            "acquire-behind",
            f"{EXPIRED} AND {SERVED} AND {TAKEN} AND {PASSABLE}",
            id="behind-passable",
        ),
        pytest.param("renew", f"{OURS} AND {NOT_RELEASED}", id="renew-ours-unreleased"),
        pytest.param("release", OURS, id="release-ours-only"),
        pytest.param("handoff", f"{OURS} AND {NOT_RELEASED}", id="handoff-ours-unreleased"),
        pytest.param("join", "attribute_exists(#pk)", id="join-item-exists"),
        pytest.param("withdraw", f"{WAITING} AND {TAKEN}", id="withdraw-still-waiting"),
    ],
)
def test_each_write_is_conditional_on_its_named_clauses(name, expected):
    """A grant without a number needs an empty line; the head, a line that has not
    moved; one behind others, a lease free long enough to pass them; both, a line that
    holds their number (not one an item re-created after TTL deletion never gave out).
    Renew and hand-off need our unreleased grant, release only ours (idempotent); a
    number is taken on an existing item and given up only while taken and not yet
    served."""
    assert expected == builders()[name].params["ConditionExpression"]


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        pytest.param(FREE, "attribute_not_exists(#pk)", id="FREE"),
        pytest.param(EXPIRED, "#expires_at < :stale_before", id="EXPIRED"),
        pytest.param(
            NO_LINE,
            "(attribute_not_exists(#queue_next) OR #queue_next = #queue_served)",
            id="NO_LINE",
        ),
        pytest.param(SERVED, "#queue_served = :served", id="SERVED"),
        pytest.param(OURS, "#owner = :owner AND #token = :token", id="OURS"),
        pytest.param(NOT_RELEASED, "#expires_at > :zero", id="NOT_RELEASED"),
        pytest.param(HELD, "attribute_exists(#pk) AND #expires_at >= :stale_before", id="HELD"),
        pytest.param(WAITING, "#queue_served < :number", id="WAITING"),
    ],
)
def test_named_clauses_compare_what_their_names_say(clause, expected):
    """The named clauses read as the expiry model and the line describe them."""
    assert expected == clause


# --- well-formed requests --------------------------------------------------------


@ALL
def test_attribute_names_are_exactly_the_placeholders_used(name):
    """DynamoDB rejects unused ExpressionAttributeNames, so each request sends only its own."""
    call = builders()[name]

    assert set(re.findall(r"#\w+", expressions(call))) == set(
        call.params["ExpressionAttributeNames"]
    )


@ALL
def test_attribute_values_are_exactly_the_placeholders_used(name):
    """DynamoDB rejects unused ExpressionAttributeValues too."""
    call = builders()[name]

    assert set(re.findall(r":\w+", expressions(call))) == set(
        call.params["ExpressionAttributeValues"]
    )


@ALL
def test_attribute_names_map_to_the_item_schema(name):
    """Every placeholder resolves to the attribute the protocol's NAMES table gives it."""
    names = builders()[name].params["ExpressionAttributeNames"]

    assert {k: NAMES[k] for k in names} == names


@ALL
def test_failed_writes_return_the_old_item(name):
    """Writes ask for ALL_OLD on a failed condition, so a failure names the holder with no read."""
    assert "ALL_OLD" == builders()[name].params["ReturnValuesOnConditionCheckFailure"]


@ALL
def test_writes_return_the_new_item(name):
    """Writes ask for ALL_NEW, so the driver learns the granted token from the write itself."""
    assert "ALL_NEW" == builders()[name].params["ReturnValues"]


@ALL
def test_requests_address_the_table_and_key(name):
    """Every call names the table and the key as the item's partition key."""
    params = builders()[name].params

    assert (TABLE, {PK: {"S": KEY}}) == (params["TableName"], params["Key"])


def test_read_request_is_a_consistent_get_item():
    """The fallback read (backend without ALL_OLD) is strongly consistent."""
    expected = Call(
        "get_item", {"TableName": TABLE, "Key": {PK: {"S": KEY}}, "ConsistentRead": True}
    )

    assert expected == read_request(TABLE, KEY)


# --- values, tokens and what the writes leave ------------------------------------


def test_acquire_stale_before_is_now_minus_skew():
    """A waiter only takes over a lease whose expiry is more than the skew behind its clock."""
    assert str(int(T0) - SKEW) == values(builders()["acquire"])[":stale_before"]


def test_acquire_writes_expiry_lease_after_now():
    """The grant expires one lease length after the acquirer read its clock."""
    assert str(int(T0) + 10_000) == values(builders()["acquire"])[":expires_at"]


def test_acquire_writes_cleanup_after_the_expiry():
    """TTL cleanup (epoch seconds) is cleanup_after past the expiry, rounded up."""
    expected = str(math.ceil((T0 + 10_000) / 1000 + CONFIG.cleanup_after_seconds))

    assert expected == values(builders()["acquire"])[":cleanup_at"]


def test_acquire_token_floor_is_now_ms_times_1000():
    """A fresh item's token starts from the acquirer's clock in ms times 1000."""
    assert (str(int(T0) * 1000), "1") == (
        values(builders()["acquire"])[":floor"],
        values(builders()["acquire"])[":one"],
    )


def test_acquire_increments_the_token_if_present_else_the_floor():
    """The token update is ``if_not_exists(token, floor) + 1``."""
    update = builders()["acquire"].params["UpdateExpression"]

    assert "#token = if_not_exists(#token, :floor) + :one" in update


def test_acquire_token_floor_truncates_a_fractional_clock():
    """A float clock (time.time() * 1000) gives an integral floor."""
    call = acquire_request(TABLE, KEY, ME, T0 + 0.75, CONFIG)

    assert str(int(T0) * 1000 + 750) == values(call)[":floor"]


def test_first_grant_token_is_floor_plus_one():
    """On a key with no item, the first token is now_ms * 1000 + 1."""
    table = FakeTable()

    table.execute(acquire_request(TABLE, KEY, ME, T0, CONFIG))

    assert int(T0) * 1000 + 1 == number(table.get(), TOKEN)


def test_next_grant_token_is_previous_plus_one():
    """While the item exists, each grant is one more than the last, whatever the clock."""
    table = FakeTable()
    table.put(item(owner=OTHER, token=42, expires_at=0))

    table.execute(acquire_request(TABLE, KEY, ME, T0, CONFIG))

    assert 43 == number(table.get(), TOKEN)


def test_token_after_ttl_cleanup_exceeds_the_deleted_items_token():
    """After TTL deleted the item, the next token still beats every earlier one."""
    table = FakeTable()
    table.execute(acquire_request(TABLE, KEY, OTHER, T0, CONFIG))
    for i in range(500):  # a busy key: many grants within one millisecond of clock
        table.execute(release_request(TABLE, _grant_of(table, OTHER), T0, CONFIG))
        table.execute(acquire_request(TABLE, KEY, OTHER, T0 + i / 1000, CONFIG))
    before = number(table.get(), TOKEN) or 0
    table.delete()
    later = T0 + CONFIG.cleanup_after_seconds * 1000  # TTL runs only after cleanup_at

    table.execute(acquire_request(TABLE, KEY, ME, later, CONFIG))

    assert (number(table.get(), TOKEN) or 0) > before


def _grant_of(table: FakeTable, owner: str) -> Grant:
    current = table.get()
    return Grant(KEY, owner, number(current, TOKEN) or 0, T0, number(current, EXPIRES_AT) or 0, T0)


def test_renew_does_not_touch_the_token():
    """Renewals keep the grant's token: one critical section, one fencing number."""
    assert "#token" not in builders()["renew"].params["UpdateExpression"]


def test_renew_moves_expiry_and_cleanup():
    """A renewal sent at ``now`` expires a lease length later and pushes TTL cleanup on."""
    later = T0 + 3_000
    call = renew_request(TABLE, GRANT, later, CONFIG)
    expected = {
        ":expires_at": str(int(later) + 10_000),
        ":cleanup_at": str(math.ceil((later + 10_000) / 1000 + CONFIG.cleanup_after_seconds)),
    }

    assert expected == {k: values(call)[k] for k in expected}


def test_renew_is_conditional_on_the_grants_owner_and_token():
    """The renewal names the holder's owner and token."""
    assert (ME, "7") == (
        values(builders()["renew"])[":owner"],
        values(builders()["renew"])[":token"],
    )


def test_release_zeroes_expiry_and_keeps_the_token():
    """Release writes expires_at = 0 and leaves the token for the next grant to count on."""
    table = FakeTable()
    table.put(item(owner=ME, token=7, expires_at=T0 + 10_000))

    table.execute(release_request(TABLE, GRANT, T0, CONFIG))

    assert (0, 7) == (number(table.get(), EXPIRES_AT), number(table.get(), TOKEN))


def test_release_cleanup_is_cleanup_after_past_now():
    """A released item may be cleaned up cleanup_after past the release."""
    expected = str(math.ceil(T0 / 1000 + CONFIG.cleanup_after_seconds))

    assert expected == values(builders()["release"])[":cleanup_at"]


def test_release_writes_when_it_freed_and_how_long_it_held():
    """Release writes freed_at (its clock) and held_ms (since the grant was sent)."""
    after = applied(release_request(TABLE, GRANT, T0 + 3_000, CONFIG), OURS_NOW)

    assert (int(T0) + 3_000, 3_000) == (number(after, FREED_AT), number(after, HELD_MS))


def test_release_held_ms_is_never_negative():
    """A clock that stepped back between grant and release writes a hold of 0, not less."""
    assert 0 == number(applied(release_request(TABLE, GRANT, T0 - 500, CONFIG), OURS_NOW), HELD_MS)


def test_release_keeps_the_line():
    """Releasing leaves the waiters' numbers as they are: the line outlives the grant."""
    line = {QUEUE_NEXT: {"N": "5"}, QUEUE_SERVED: {"N": "2"}, QUEUE_GONE: {"NS": ["3"]}}

    after = applied(release_request(TABLE, GRANT, T0, CONFIG), {**OURS_NOW, **line})

    assert line == {name: after[name] for name in line}


def test_first_grant_writes_the_grant_and_no_line():
    """A grant on a fresh key writes owner, token, expiry, granted_at (its clock) and
    cleanup: no line attributes, as nobody ever waited."""
    cleanup_at = math.ceil((T0 + 10_000) / 1000 + CONFIG.cleanup_after_seconds)
    expected = item(
        owner=ME,
        token=int(T0) * 1000 + 1,
        expires_at=T0 + 10_000,
        granted_at=T0,
        cleanup_at=cleanup_at,
    )

    assert expected == applied(acquire_request(TABLE, KEY, ME, T0, CONFIG))


def test_acquire_in_line_moves_the_line_to_its_number():
    """The grant sets queue_served to the waiter's number and leaves queue_next alone."""
    call = acquire_request(TABLE, KEY, ME, T0, CONFIG, place=HEAD)

    after = applied(call, item(expires_at=0, queue_next=4, queue_served=2))

    assert (3, 4) == (number(after, QUEUE_SERVED), number(after, QUEUE_NEXT))


def test_acquire_in_line_removes_the_numbers_it_passed():
    """The given-up numbers a grant passes leave queue_gone; later ones stay."""
    current = item(expires_at=0, queue_next=7, queue_served=2, queue_gone=(1, 3, 6))
    call = acquire_request(TABLE, KEY, ME, T0, CONFIG, place=Place(5, 2, passed=(1, 3), ahead=1))

    assert {"NS": ["6"]} == applied(call, current)[QUEUE_GONE]


# --- conditions, by behaviour (evaluated by the fake table) ----------------------


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(None, True, id="no-item"),
        pytest.param(item(expires_at=0), True, id="released"),
        pytest.param(item(expires_at=T0 - SKEW - 1), True, id="expired-past-skew"),
        pytest.param(item(expires_at=T0 - SKEW), False, id="expired-within-skew"),
        pytest.param(item(expires_at=T0 + 5_000), False, id="live"),
        pytest.param(item(expires_at=0, queue_next=3, queue_served=3), True, id="empty-line"),
        pytest.param(item(expires_at=0, queue_next=4, queue_served=3), False, id="a-waiter"),
        pytest.param(
            item(expires_at=T0 - SKEW - 1, queue_next=4, queue_served=3), False, id="expired-waiter"
        ),
        pytest.param(
            item(expires_at=0, queue_next=4, queue_served=3, queue_gone=(4,)),
            False,
            id="line-of-given-up-numbers",
        ),
    ],
)
def test_acquire_without_a_place_is_granted_iff_free_or_expired_and_no_line(current, expected):
    """A waiter without a number never takes the lease ahead of the line."""
    assert expected == condition_holds(acquire_request(TABLE, KEY, ME, T0, CONFIG), current)


def _head(**lease: Any) -> dict[str, Any]:
    """The item HEAD saw: served 2, 3 ours, nobody behind."""
    return item(queue_next=3, queue_served=2, **lease)


def _line(**lease: Any) -> dict[str, Any]:
    """The item BEHIND saw: served 2, 3 gave up, 4 waiting, 5 ours."""
    return item(queue_next=5, queue_served=2, queue_gone=(3,), **lease)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(_head(expires_at=0), True, id="released"),
        pytest.param(_head(expires_at=T0 - SKEW - 1), True, id="expired-past-skew"),
        pytest.param(_head(expires_at=T0 - SKEW), False, id="expired-within-skew"),
        pytest.param(_head(expires_at=T0 + 5_000), False, id="live"),
        pytest.param(item(expires_at=0, queue_next=4, queue_served=3), False, id="line-moved-on"),
        pytest.param(None, False, id="no-item"),
    ],
)
def test_acquire_at_the_head_is_granted_iff_free_and_the_line_stands(current, expected):
    """The head takes a free lease only while queue_served is what its view showed."""
    call = acquire_request(TABLE, KEY, ME, T0, CONFIG, place=HEAD)

    assert expected == condition_holds(call, current)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(_line(expires_at=0, freed_at=T0 - CLAIM_MS), False, id="freed-claim-ago"),
        pytest.param(_line(expires_at=0, freed_at=T0 - CLAIM_MS - 1), True, id="freed-before"),
        pytest.param(_line(expires_at=0), True, id="released-without-freed-at"),
        pytest.param(_line(expires_at=T0 - CLAIM_MS), False, id="expired-claim-ago"),
        pytest.param(_line(expires_at=T0 - CLAIM_MS - 1), True, id="expired-before"),
        pytest.param(_line(expires_at=T0 + 5_000), False, id="live"),
        pytest.param(
            item(expires_at=0, freed_at=T0 - 60_000, queue_next=5, queue_served=4),
            False,
            id="line-moved-on",
        ),
    ],
)
def test_acquire_behind_others_is_granted_once_the_lease_was_free_a_claim_per_waiter(
    current, expected
):
    """One behind a live waiter passes it only if the lease stayed free over ``claim``
    since its release (freed_at) or expiry (expires_at)."""
    call = acquire_request(TABLE, KEY, ME, T0, CONFIG, place=BEHIND)

    assert expected == condition_holds(call, current)


@pytest.mark.parametrize(
    ("freed_at", "expected"),
    [
        pytest.param(T0 - 2 * CLAIM_MS, False, id="two-claims-ago"),
        pytest.param(T0 - 2 * CLAIM_MS - 1, True, id="before-two-claims"),
    ],
)
def test_passing_waits_a_claim_for_each_waiter_ahead(freed_at, expected):
    """With two live waiters ahead, the lease must have been free for two claims."""
    current = item(expires_at=0, freed_at=freed_at, queue_next=5, queue_served=2)
    call = acquire_request(TABLE, KEY, ME, T0, CONFIG, place=Place(5, 2, ahead=2))

    assert expected == condition_holds(call, current)


# --- the line: taking and giving up a number -------------------------------------


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        pytest.param((None, None), (1, 0), id="no-line"),
        pytest.param((0, 0), (1, 0), id="empty-line"),
        pytest.param((4, 2), (5, 2), id="line"),
    ],
)
def test_join_takes_the_number_after_queue_next(before, expected):
    """A number is queue_next + 1, read from the write's own answer; the served count
    starts at zero with the first number and is left alone after."""
    table = FakeTable()
    table.put(item(expires_at=T0 + 5_000, queue_next=before[0], queue_served=before[1]))

    after = table.execute(join_request(TABLE, KEY))["Attributes"]

    assert expected == (number(after, QUEUE_NEXT), number(after, QUEUE_SERVED))


def test_join_leaves_the_lease_alone():
    """Taking a number touches the line only: owner, token and expiry stay."""
    after = applied(join_request(TABLE, KEY), item(owner=OTHER, expires_at=T0 + 5_000))

    assert item(owner=OTHER, expires_at=T0 + 5_000, queue_next=1, queue_served=0) == after


def test_join_without_an_item_is_refused_and_creates_none():
    """No item, no holder: the join fails rather than create a line on an empty key."""
    table = FakeTable()

    answer = table.execute(join_request(TABLE, KEY))

    assert (ConditionFailed(None), None) == (answer, table.get())


def test_withdraw_adds_the_number_to_queue_gone():
    """A waiter that gives up leaves its number in queue_gone for those behind to skip."""
    after = applied(
        withdraw_request(TABLE, KEY, 4), item(queue_next=5, queue_served=2, queue_gone=(3,))
    )

    assert item(queue_next=5, queue_served=2, queue_gone=(3, 4)) == after


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(item(queue_next=5, queue_served=4), True, id="waiting"),
        pytest.param(item(queue_next=5, queue_served=5), False, id="served"),
        pytest.param(item(queue_next=7, queue_served=6), False, id="passed"),
        pytest.param(item(), False, id="no-line"),
        pytest.param(None, False, id="no-item"),
    ],
)
def test_withdraw_is_accepted_iff_the_number_is_still_waiting(current, expected):
    """A number already served or passed is never added to queue_gone."""
    assert expected == condition_holds(withdraw_request(TABLE, KEY, 5), current)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(item(owner=ME, token=7, expires_at=T0 + 1), True, id="ours"),
        pytest.param(
            item(owner=ME, token=7, expires_at=T0 - 60_000), True, id="ours-expired-untaken"
        ),
        pytest.param(item(owner=ME, token=7, expires_at=0), False, id="released"),
        pytest.param(item(owner=ME, token=8, expires_at=T0 + 1), False, id="token-moved"),
        pytest.param(item(owner=OTHER, token=7, expires_at=T0 + 1), False, id="other-owner"),
        pytest.param(None, False, id="no-item"),
    ],
)
def test_renew_is_accepted_iff_ours_and_not_released(current, expected):
    """A renewal succeeds only on our own, unreleased grant."""
    assert expected == condition_holds(renew_request(TABLE, GRANT, T0, CONFIG), current)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(item(owner=ME, token=7, expires_at=T0 + 1), True, id="ours"),
        pytest.param(item(owner=ME, token=7, expires_at=0), True, id="already-released"),
        pytest.param(item(owner=ME, token=8, expires_at=T0 + 1), False, id="token-moved"),
        pytest.param(item(owner=OTHER, token=7, expires_at=T0 + 1), False, id="other-owner"),
        pytest.param(None, False, id="no-item"),
    ],
)
def test_release_is_accepted_iff_ours(current, expected):
    """A release never frees another holder's grant, and repeats harmlessly."""
    assert expected == condition_holds(release_request(TABLE, GRANT, T0, CONFIG), current)


# --- hand-off --------------------------------------------------------------------


def test_handoff_writes_the_next_token_and_a_fresh_expiry():
    """A hand-off is a new grant in one write: token + 1, expiry a lease after now."""
    table = FakeTable()
    table.put(item(owner=ME, token=7, expires_at=T0 + 1_000))

    table.execute(handoff_request(TABLE, GRANT, T0 + 500, CONFIG))

    assert (8, int(T0) + 10_500) == (number(table.get(), TOKEN), number(table.get(), EXPIRES_AT))


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(item(owner=ME, token=7, expires_at=T0 + 1), True, id="ours"),
        pytest.param(item(owner=ME, token=7, expires_at=0), False, id="released"),
        pytest.param(item(owner=ME, token=8, expires_at=T0 + 1), False, id="token-moved"),
        pytest.param(item(owner=OTHER, token=7, expires_at=T0 + 1), False, id="other-owner"),
        pytest.param(None, False, id="no-item"),
    ],
)
def test_handoff_is_accepted_iff_ours_and_not_released(current, expected):
    """A hand-off never passes on a lease this process no longer holds."""
    assert expected == condition_holds(handoff_request(TABLE, GRANT, T0, CONFIG), current)


def test_handoff_writes_how_long_the_grant_was_held():
    """A hand-off records the hold it ends, as a release does, for waiters to time polls."""
    assert 500 == number(
        applied(handoff_request(TABLE, GRANT, T0 + 500, CONFIG), OURS_NOW), HELD_MS
    )


def test_a_number_from_before_a_ttl_deletion_is_not_in_the_new_line():
    """The item was deleted by TTL and re-created with a shorter line: a waiter's old
    number (5) neither takes the lease nor withdraws a number nobody has taken yet."""
    renewed = item(owner=OTHER, token=9, expires_at=0, queue_next=2, queue_served=2)
    place = Place(number=5, served=2)

    assert not condition_holds(acquire_request(TABLE, KEY, ME, T0, CONFIG, place=place), renewed)
    assert not condition_holds(withdraw_request(TABLE, KEY, 5), renewed)
