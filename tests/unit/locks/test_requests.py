"""The DynamoDB requests the lease core builds: conditions, values, tokens."""

from __future__ import annotations

import math
import re

import pytest

from locks._models import EXPIRES_AT, OWNER, PK, TOKEN, Grant, LockConfig
from locks._protocol import (
    CLAIM_MINE,
    CLAIM_STALE,
    CLAIM_YOUNGER,
    EXPIRED,
    FREE,
    NAMES,
    NOT_RELEASED,
    OURS,
    UNCLAIMED,
    Call,
    acquire_request,
    claim_request,
    handoff_request,
    read_request,
    release_request,
    renew_request,
    unclaim_request,
)
from tests.unit.locks.fakes import (
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

CONFIG = LockConfig(
    lease_seconds=10,
    max_clock_skew_seconds=1,
    retry_base_seconds=0.02,
    retry_cap_seconds=0.25,
    claim_seconds=2.0,
)
SKEW = CONFIG.skew_ms
SINCE = T0 - 2_000  # when "me" started waiting
GRANT = Grant(
    key=KEY,
    owner=ME,
    token=7,
    sent_at_ms=T0,
    expires_at_ms=int(T0) + 10_000,
    trusted_until_ms=T0 + 9_000,
)


def builders() -> dict[str, Call]:
    return {
        "acquire": acquire_request(TABLE, KEY, ME, T0, CONFIG),
        "renew": renew_request(TABLE, GRANT, T0, CONFIG),
        "release": release_request(TABLE, GRANT, T0, CONFIG),
        "claim": claim_request(TABLE, KEY, ME, T0, CONFIG, SINCE),
        "unclaim": unclaim_request(TABLE, KEY, ME),
        "handoff": handoff_request(TABLE, GRANT, T0, CONFIG),
    }


ALL = pytest.mark.parametrize(
    "name", ["acquire", "renew", "release", "claim", "unclaim", "handoff"]
)
FAILING_WRITES = pytest.mark.parametrize(
    "name", ["acquire", "renew", "release", "claim", "handoff"]
)


def values(call: Call) -> dict[str, str]:
    return {
        k: v["N"] if "N" in v else v["S"]
        for k, v in call.params["ExpressionAttributeValues"].items()
    }


def expressions(call: Call) -> str:
    return f"{call.params['UpdateExpression']} {call.params['ConditionExpression']}"


# --- conditions, by clause ------------------------------------------------------


def test_acquire_condition_is_free_or_expired_and_not_claimed_by_another():
    """A grant needs the key free or expired, and no live claim from an older waiter."""
    expected = (
        f"({FREE} OR {EXPIRED}) AND "
        f"({UNCLAIMED} OR {CLAIM_MINE} OR {CLAIM_STALE} OR {CLAIM_YOUNGER})"
    )

    assert expected == builders()["acquire"].params["ConditionExpression"]


def test_renew_condition_is_ours_and_not_released():
    """A renewal needs our owner and token, on a lease we have not released."""
    assert f"{OURS} AND {NOT_RELEASED}" == builders()["renew"].params["ConditionExpression"]


def test_release_condition_is_ours():
    """A release needs our owner and token, and nothing else (so it is idempotent)."""
    assert OURS == builders()["release"].params["ConditionExpression"]


def test_claim_condition_needs_an_item_and_no_live_claim_by_another():
    """A claim is only written on an existing item with no live claim from an older waiter."""
    expected = (
        f"attribute_exists(#pk) AND "
        f"({UNCLAIMED} OR {CLAIM_MINE} OR {CLAIM_STALE} OR {CLAIM_YOUNGER})"
    )

    assert expected == builders()["claim"].params["ConditionExpression"]


def test_unclaim_condition_is_claim_mine():
    """A waiter only removes its own claim."""
    assert CLAIM_MINE == builders()["unclaim"].params["ConditionExpression"]


def test_named_clauses_compare_what_their_names_say():
    """The named clauses read as the expiry model describes them."""
    expected = {
        "FREE": "attribute_not_exists(#pk)",
        "EXPIRED": "#expires_at < :stale_before",
        "UNCLAIMED": "attribute_not_exists(#claimant)",
        "CLAIM_MINE": "#claimant = :owner",
        "CLAIM_STALE": "#claim_expires_at < :stale_before",
        "CLAIM_YOUNGER": "#claim_since > :since",
        "OURS": "#owner = :owner AND #token = :token",
        "NOT_RELEASED": "#expires_at > :zero",
    }
    actual = {
        "FREE": FREE,
        "EXPIRED": EXPIRED,
        "UNCLAIMED": UNCLAIMED,
        "CLAIM_MINE": CLAIM_MINE,
        "CLAIM_STALE": CLAIM_STALE,
        "CLAIM_YOUNGER": CLAIM_YOUNGER,
        "OURS": OURS,
        "NOT_RELEASED": NOT_RELEASED,
    }

    assert expected == actual


# --- well-formed requests -------------------------------------------------------


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


@FAILING_WRITES
def test_failed_writes_return_the_old_item(name):
    """Writes ask for ALL_OLD on a failed condition, so a failure names the holder with no read."""
    assert "ALL_OLD" == builders()[name].params["ReturnValuesOnConditionCheckFailure"]


@FAILING_WRITES
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


# --- values and token arithmetic -------------------------------------------------


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


def test_claim_records_when_the_claimant_started_waiting():
    """The claim carries ``since``, so an older waiter can take the turn from a younger one."""
    assert str(int(SINCE)) == values(builders()["claim"])[":since"]


def test_unclaim_removes_the_whole_claim():
    """Giving up a claim removes claimant, claim expiry and claim start together."""
    table = FakeTable()
    table.put(item(expires_at=T0, claimant=ME, claim_expires_at=T0, claim_since=SINCE))

    table.execute(unclaim_request(TABLE, KEY, ME))

    assert item(expires_at=T0) == table.get()


def test_claim_expires_claim_seconds_after_now():
    """A claim is valid for ``claim`` seconds of the claimant's clock."""
    assert str(int(T0 + CONFIG.claim * 1000)) == values(builders()["claim"])[":claim_expires_at"]


def test_acquire_clears_the_claim():
    """A grant removes the claimant, so the next waiter can claim."""
    table = FakeTable()
    table.put(
        item(owner=OTHER, expires_at=0, claimant=ME, claim_expires_at=T0 + 1_000, claim_since=T0)
    )

    table.execute(acquire_request(TABLE, KEY, ME, T0, CONFIG))

    assert {PK, OWNER, TOKEN, EXPIRES_AT, "granted_at", "cleanup_at"} == set(table.get() or {})


# --- conditions, by behaviour (evaluated by the fake table) ---------------------


OLDER = SINCE - 1_000  # a claimant that started waiting before "me"
YOUNGER = SINCE + 1_000


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(None, True, id="no-item"),
        pytest.param(item(expires_at=0), True, id="released"),
        pytest.param(item(expires_at=T0 - SKEW - 1), True, id="expired-past-skew"),
        pytest.param(item(expires_at=T0 - SKEW), False, id="expired-within-skew"),
        pytest.param(item(expires_at=T0 + 5_000), False, id="live"),
        pytest.param(
            item(expires_at=0, claimant=OTHER, claim_expires_at=T0, claim_since=OLDER),
            False,
            id="claimed-by-older-other",
        ),
        pytest.param(
            item(expires_at=0, claimant=OTHER, claim_expires_at=T0, claim_since=SINCE),
            False,
            id="claimed-by-other-waiting-as-long",
        ),
        pytest.param(
            item(expires_at=0, claimant=OTHER, claim_expires_at=T0, claim_since=YOUNGER),
            True,
            id="claimed-by-younger-other",
        ),
        pytest.param(
            item(expires_at=0, claimant=ME, claim_expires_at=T0, claim_since=SINCE),
            True,
            id="claimed-by-me",
        ),
        pytest.param(
            item(expires_at=0, claimant=OTHER, claim_expires_at=T0 - SKEW - 1, claim_since=OLDER),
            True,
            id="stale-claim",
        ),
        pytest.param(
            item(expires_at=T0 + 5_000, claimant=ME, claim_expires_at=T0, claim_since=SINCE),
            False,
            id="live-claimed-by-me",
        ),
    ],
)
def test_acquire_is_granted_iff_free_or_expired_and_no_older_live_claim(current, expected):
    """DynamoDB accepts the acquire exactly when no live lease or older live claim exists."""
    call = acquire_request(TABLE, KEY, ME, T0, CONFIG, SINCE)

    assert expected == condition_holds(call, current)


def test_acquire_since_defaults_to_now():
    """Without ``since``, the acquirer counts as having started waiting now."""
    assert str(int(T0)) == values(acquire_request(TABLE, KEY, ME, T0, CONFIG))[":since"]


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


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(None, False, id="no-item"),
        pytest.param(item(expires_at=T0 + 5_000), True, id="unclaimed"),
        pytest.param(
            item(expires_at=T0 + 5_000, claimant=ME, claim_expires_at=T0, claim_since=SINCE),
            True,
            id="mine",
        ),
        pytest.param(
            item(expires_at=T0 + 5_000, claimant=OTHER, claim_expires_at=T0, claim_since=OLDER),
            False,
            id="older-other",
        ),
        pytest.param(
            item(expires_at=T0 + 5_000, claimant=OTHER, claim_expires_at=T0, claim_since=YOUNGER),
            True,
            id="younger-other",
        ),
        pytest.param(
            item(
                expires_at=T0 + 5_000,
                claimant=OTHER,
                claim_expires_at=T0 - SKEW - 1,
                claim_since=OLDER,
            ),
            True,
            id="stale",
        ),
    ],
)
def test_claim_is_accepted_iff_item_exists_and_no_older_live_claim(current, expected):
    """A waiter claims the next turn from nobody, itself, a stale or a younger claimant."""
    call = claim_request(TABLE, KEY, ME, T0, CONFIG, SINCE)

    assert expected == condition_holds(call, current)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(item(claimant=ME, claim_expires_at=T0), True, id="mine"),
        pytest.param(item(claimant=OTHER, claim_expires_at=T0), False, id="other"),
        pytest.param(item(), False, id="unclaimed"),
    ],
)
def test_unclaim_is_accepted_iff_the_claim_is_ours(current, expected):
    """A timed-out waiter never removes another waiter's claim."""
    assert expected == condition_holds(unclaim_request(TABLE, KEY, ME), current)


# --- hand-off -----------------------------------------------------------------------


def test_handoff_condition_is_ours_and_not_released():
    """A hand-off, like a renewal, needs our owner and token on an unreleased lease."""
    assert f"{OURS} AND {NOT_RELEASED}" == builders()["handoff"].params["ConditionExpression"]


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
