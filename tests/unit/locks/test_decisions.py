"""Expiry decisions of the lease core: who is live, who claims, how long to wait."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from locks._models import Grant, Holder, LockConfig
from locks._protocol import (
    claim_is_live,
    grant_from,
    is_live,
    may_hand_off,
    remote_claim,
    should_claim,
    wait_seconds,
)
from tests.unit.locks.fakes import KEY, ME, OTHER, T0

CONFIG = LockConfig(
    lease_seconds=10,
    max_clock_skew_seconds=1,
    retry_base_seconds=0.02,
    retry_cap_seconds=0.25,
    claim_seconds=2.0,
)
SKEW = CONFIG.skew_ms
BASE = CONFIG.retry_base_seconds
CAP = CONFIG.retry_cap_seconds
CLAIM_MS = int(CONFIG.claim * 1000)


def holder(
    *,
    expires_at: int | None = None,
    claimant: str | None = None,
    claim_expires_at: int | None = None,
    claim_since: int | None = None,
    token: int | None = 5,
) -> Holder:
    return Holder(
        owner=OTHER,
        token=token,
        expires_at_ms=expires_at,
        claimant=claimant,
        claim_expires_at_ms=claim_expires_at,
        claim_since_ms=claim_since,
    )


NOW = int(T0)
FAR = NOW + 60_000
FREE = holder(expires_at=0)


# --- is_live ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_at", "expected"),
    [
        pytest.param(None, False, id="no-item"),
        pytest.param(0, False, id="released"),
        pytest.param(NOW - SKEW - 1, False, id="past-expiry-plus-skew"),
        pytest.param(NOW - SKEW, True, id="exactly-expiry-plus-skew"),
        pytest.param(NOW - 1, True, id="within-skew"),
        pytest.param(FAR, True, id="future"),
    ],
)
def test_lease_is_live_until_expiry_plus_skew_on_the_waiters_clock(expires_at, expected):
    """A waiter counts a lease live until its clock passes expires_at + skew."""
    assert expected == is_live(holder(expires_at=expires_at), NOW, CONFIG)


def test_is_live_agrees_with_the_expired_condition():
    """is_live is exactly the negation of the EXPIRED clause (expires_at < now - skew)."""
    cases = range(NOW - SKEW - 3, NOW - SKEW + 3)

    assert [not (e < NOW - SKEW) for e in cases] == [
        is_live(holder(expires_at=e), NOW, CONFIG) for e in cases
    ]


# --- claim_is_live ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claimant", "claim_expires_at", "expected"),
    [
        pytest.param(None, None, False, id="unclaimed"),
        pytest.param(OTHER, None, False, id="claimant-without-expiry"),
        pytest.param(None, FAR, False, id="expiry-without-claimant"),
        pytest.param(OTHER, NOW - SKEW - 1, False, id="stale"),
        pytest.param(OTHER, NOW - SKEW, True, id="exactly-skew-old"),
        pytest.param(OTHER, FAR, True, id="fresh"),
    ],
)
def test_claim_is_live_until_its_expiry_plus_skew(claimant, claim_expires_at, expected):
    """A claim counts until the waiter's clock passes claim_expires_at + skew."""
    actual = claim_is_live(
        holder(claimant=claimant, claim_expires_at=claim_expires_at), NOW, CONFIG
    )

    assert expected == actual


# --- should_claim -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "since", "expected"),
    [
        pytest.param(holder(token=None), NOW, False, id="no-item"),
        pytest.param(holder(expires_at=FAR), NOW, True, id="unclaimed"),
        pytest.param(
            holder(expires_at=FAR, claimant=ME, claim_expires_at=FAR, claim_since=NOW),
            NOW,
            False,
            id="own-fresh-claim",
        ),
        pytest.param(
            holder(
                expires_at=FAR,
                claimant=ME,
                claim_expires_at=NOW + CLAIM_MS // 2 - 1,
                claim_since=NOW,
            ),
            NOW,
            True,
            id="own-claim-half-run-out",
        ),
        pytest.param(
            holder(
                expires_at=FAR, claimant=ME, claim_expires_at=NOW + CLAIM_MS // 2, claim_since=NOW
            ),
            NOW,
            False,
            id="own-claim-exactly-half-left",
        ),
        pytest.param(
            holder(expires_at=FAR, claimant=ME, claim_since=NOW),
            NOW,
            True,
            id="own-claim-without-expiry",
        ),
        pytest.param(
            holder(expires_at=FAR, claimant=OTHER, claim_expires_at=NOW - SKEW - 1),
            NOW,
            True,
            id="stale-claim",
        ),
        pytest.param(
            holder(expires_at=FAR, claimant=OTHER, claim_expires_at=FAR, claim_since=NOW - 5),
            NOW,
            False,
            id="older-live-claim",
        ),
        pytest.param(
            holder(expires_at=FAR, claimant=OTHER, claim_expires_at=FAR, claim_since=NOW),
            NOW,
            False,
            id="live-claim-waiting-as-long",
        ),
        pytest.param(
            holder(expires_at=FAR, claimant=OTHER, claim_expires_at=FAR, claim_since=NOW + 5),
            NOW,
            True,
            id="younger-live-claim",
        ),
        pytest.param(
            holder(expires_at=FAR, claimant=OTHER, claim_expires_at=FAR, claim_since=NOW + 5),
            None,
            False,
            id="younger-live-claim-but-no-since",
        ),
        pytest.param(
            holder(expires_at=FAR, claimant=OTHER, claim_expires_at=FAR),
            NOW,
            False,
            id="live-claim-without-since",
        ),
    ],
)
def test_should_claim_unless_no_item_an_older_live_claim_or_a_fresh_own_claim(
    current, since, expected
):
    """A waiter claims on an existing item unless another live claim is at least as old;
    it refreshes its own claim once half of it has run out."""
    assert expected == should_claim(current, ME, NOW, CONFIG, since)


# --- wait_seconds -------------------------------------------------------------------


def test_backoff_survives_any_number_of_attempts():
    """A long wait (attempt 1024 and beyond) still sleeps the cap, not OverflowError."""
    assert CAP == wait_seconds(holder(expires_at=FAR), NOW, CONFIG, 1024, 1.0)


def test_non_claimant_polls_less_often_than_the_claimant():
    """A waiter that is not next in line backs off further than the claimant's cap."""
    claimant = wait_seconds(holder(expires_at=FAR), NOW, CONFIG, 50, 1.0, claimant=True)
    other = wait_seconds(holder(expires_at=FAR), NOW, CONFIG, 50, 1.0, claimant=False)

    assert (CAP, True) == (claimant, other > claimant)


def test_wait_on_a_long_held_lease_is_the_backoff():
    """Far from the holder's expiry, a waiter sleeps the capped exponential backoff."""
    assert BASE * 4 == wait_seconds(holder(expires_at=FAR), NOW, CONFIG, 2, 1.0)


def test_backoff_is_capped():
    """However many attempts, a waiter never sleeps longer than retry_cap."""
    assert CAP == wait_seconds(holder(expires_at=FAR), NOW, CONFIG, 50, 1.0)


def test_wait_ends_at_the_holders_expiry_plus_skew_when_sooner():
    """A waiter wakes when the lease can be taken over, if that is before the backoff."""
    current = holder(expires_at=NOW - SKEW + 100)  # takeover possible in 100 ms

    assert pytest.approx(0.1) == wait_seconds(current, NOW, CONFIG, 50, 1.0)


def test_wait_on_a_free_lease_claimed_by_another_ends_when_the_claim_goes_stale():
    """A released lease with someone else's live claim waits for that claim, if sooner."""
    current = holder(expires_at=0, claimant=OTHER, claim_expires_at=NOW - SKEW + 150)

    assert pytest.approx(0.15) == wait_seconds(current, NOW, CONFIG, 50, 1.0)


def test_wait_on_a_free_unclaimed_lease_is_retry_base():
    """Nothing to wait for (a race lost): retry after retry_base."""
    assert BASE == wait_seconds(FREE, NOW, CONFIG, 50, 1.0)


def test_wait_is_at_least_retry_base_before_jitter():
    """An expiry a moment away still waits retry_base, so waiters do not spin."""
    current = holder(expires_at=NOW - SKEW + 1)

    assert BASE == wait_seconds(current, NOW, CONFIG, 50, 1.0)


def test_jitter_zero_halves_the_wait():
    """Jitter scales the wait down to half at most."""
    assert BASE * 4 / 2 == wait_seconds(holder(expires_at=FAR), NOW, CONFIG, 2, 0.0)


@given(
    expires_at=st.one_of(st.none(), st.integers(NOW - 5_000, NOW + 60_000)),
    claim_expires_at=st.one_of(st.none(), st.integers(NOW - 5_000, NOW + 60_000)),
    attempt=st.integers(0, 64),
    jitter=st.floats(0.0, 1.0, exclude_max=True),
    claimant=st.booleans(),
)
def test_wait_stays_between_half_retry_base_and_the_cap(
    expires_at, claim_expires_at, attempt, jitter, claimant
):
    """Whatever the item, a wait lies in [retry_base / 2, the waiter's cap]."""
    current = holder(
        expires_at=expires_at,
        claimant=None if claim_expires_at is None else OTHER,
        claim_expires_at=claim_expires_at,
    )

    wait = wait_seconds(current, NOW, CONFIG, attempt, jitter, claimant=claimant)

    cap = wait_seconds(holder(expires_at=FAR), NOW, CONFIG, 64, 1.0, claimant=claimant)

    assert (True, True) == (BASE / 2 <= wait, wait <= cap)


@given(
    until_ms=st.integers(1, 60_000),
    attempt=st.integers(0, 64),
    jitter=st.floats(0.0, 1.0, exclude_max=True),
    claimant=st.booleans(),
)
def test_wait_never_oversleeps_a_takeover_by_more_than_retry_base(
    until_ms, attempt, jitter, claimant
):
    """A waiter is awake by the holder's expiry + skew, or retry_base, whichever is later."""
    current = holder(expires_at=NOW - SKEW + until_ms)

    wait = wait_seconds(current, NOW, CONFIG, attempt, jitter, claimant=claimant)

    assert wait <= max(BASE, until_ms / 1000)


# --- grant_from ---------------------------------------------------------------------


def test_grant_from_trusts_until_sent_at_plus_lease_minus_margin():
    """The holder trusts the grant from its own send time, less the safety margin."""
    attributes = {"token": {"N": "42"}, "expires_at": {"N": str(NOW + 10_000)}}
    expected = Grant(KEY, ME, 42, T0, NOW + 10_000, T0 + 10_000 - 1_000)

    assert expected == grant_from(attributes, KEY, ME, T0, CONFIG)


def test_grant_from_remembers_the_claim_it_saw():
    """A grant records the item's claim, so the holder knows a remote waiter is next."""
    attributes = {
        "token": {"N": "42"},
        "expires_at": {"N": str(NOW + 10_000)},
        "claimant": {"S": OTHER},
        "claim_expires_at": {"N": str(NOW + 2_000)},
    }
    grant = grant_from(attributes, KEY, ME, T0, CONFIG)

    assert (OTHER, NOW + 2_000) == (grant.claimant, grant.claim_expires_at_ms)


# --- hand-off decisions ---------------------------------------------------------------


def claimed_grant(claimant: str | None, claim_expires_at: int | None) -> Grant:
    return Grant(KEY, ME, 42, T0, NOW + 10_000, T0 + 9_000, claimant, claim_expires_at)


@pytest.mark.parametrize(
    ("claimant", "claim_expires_at", "expected"),
    [
        pytest.param(None, None, False, id="unclaimed"),
        pytest.param(ME, FAR, False, id="own-process-claim"),
        pytest.param(OTHER, None, False, id="claim-without-expiry"),
        pytest.param(OTHER, NOW - SKEW - 1, False, id="stale-remote-claim"),
        pytest.param(OTHER, NOW - SKEW, True, id="remote-claim-at-skew"),
        pytest.param(OTHER, FAR, True, id="live-remote-claim"),
    ],
)
def test_remote_claim_is_a_live_claim_by_another_owner(claimant, claim_expires_at, expected):
    """Only a live claim by a different owner counts as a remote waiter."""
    assert expected == remote_claim(claimed_grant(claimant, claim_expires_at), NOW, CONFIG)


@pytest.mark.parametrize(
    ("claimant", "streak", "expected"),
    [
        pytest.param(None, 0, True, id="no-remote-waiter"),
        pytest.param(None, 100, True, id="no-remote-waiter-long-streak"),
        pytest.param(OTHER, 3, True, id="remote-waiter-streak-below-limit"),
        pytest.param(OTHER, 4, False, id="remote-waiter-streak-at-limit"),
    ],
)
def test_may_hand_off_until_a_remote_waiter_has_waited_local_handoffs(claimant, streak, expected):
    """Local hand-offs are unlimited without a remote claim, bounded by local_handoffs with one."""
    config = LockConfig(lease_seconds=10, max_clock_skew_seconds=1, local_handoffs=4)
    grant = claimed_grant(claimant, FAR if claimant else None)

    assert expected == may_hand_off(grant, NOW, config, streak)


def test_no_hand_off_when_disabled():
    """local_handoffs=0 turns hand-off off, even with nobody else waiting."""
    config = LockConfig(lease_seconds=10, max_clock_skew_seconds=1, local_handoffs=0)

    assert False is may_hand_off(claimed_grant(None, None), NOW, config, 0)
