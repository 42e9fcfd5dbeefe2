"""Decisions of the lease core: who is live, a waiter's place in line, how long it
sleeps, and when a holder may hand off locally."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from locks._models import Grant, Holder, LockConfig
from locks._protocol import (
    Place,
    grant_from,
    is_live,
    may_hand_off,
    place_in_line,
    poll_seconds,
)
from tests.unit.locks.fakes import CONFIG, KEY, ME, OTHER, T0, item

SKEW = CONFIG.skew_ms  # 1000
BASE = CONFIG.retry_base_seconds
CAP = CONFIG.retry_cap_seconds
CLAIM_MS = int(CONFIG.claim * 1000)  # 2000
RTT = 20  # ms, the waiter's fastest round trip

NOW = int(T0)
FAR = NOW + 60_000


def holder(
    *,
    expires_at: int | None = None,
    granted_at: int | None = None,
    held: int | None = None,
    freed_at: int | None = None,
    queue_next: int = 0,
    queue_served: int = 0,
    queue_gone: frozenset[int] = frozenset(),
    token: int | None = 5,
) -> Holder:
    return Holder(
        owner=OTHER,
        token=token,
        expires_at_ms=expires_at,
        granted_at_ms=granted_at,
        held_ms=held,
        freed_at_ms=freed_at,
        queue_next=queue_next,
        queue_served=queue_served,
        queue_gone=queue_gone,
    )


HEAD = Place(number=4, served=3)
SECOND = Place(number=5, served=3, ahead=1)
THIRD = Place(number=6, served=3, ahead=2)


def poll(
    current: Holder,
    place: Place | None,
    *,
    rtt: float = RTT,
    attempt: int = 0,
    jitter: float = 1.0,
) -> float:
    return poll_seconds(current, place, NOW, CONFIG, rtt, attempt, jitter)


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


# --- place_in_line ------------------------------------------------------------------


def test_the_number_after_served_is_the_head_of_the_line():
    """The first number after queue_served has nobody ahead of it."""
    current = holder(expires_at=FAR, queue_next=6, queue_served=3)

    assert Place(4, 3, (), 0) == place_in_line(current, 4)


def test_a_waiter_has_every_live_number_between_served_and_its_own_ahead():
    """The last number taken waits behind all the numbers between served and it."""
    current = holder(expires_at=FAR, queue_next=6, queue_served=3)

    assert Place(6, 3, (), 2) == place_in_line(current, 6)


def test_gone_numbers_ahead_do_not_count_and_are_passed():
    """Numbers that gave up between served and ours are not ahead; our grant passes them."""
    current = holder(expires_at=FAR, queue_next=7, queue_served=3, queue_gone=frozenset({4, 6}))

    assert Place(7, 3, (4, 6), 1) == place_in_line(current, 7)


def test_a_waiter_whose_numbers_ahead_all_gave_up_is_the_head():
    """With all the numbers ahead given up, the waiter is the head."""
    current = holder(expires_at=FAR, queue_next=6, queue_served=3, queue_gone=frozenset({4, 5}))

    assert Place(6, 3, (4, 5), 0) == place_in_line(current, 6)


def test_gone_numbers_behind_ours_are_neither_ahead_nor_passed():
    """A number given up behind ours is no concern of ours: not ahead, not passed."""
    current = holder(expires_at=FAR, queue_next=7, queue_served=3, queue_gone=frozenset({6, 7}))

    assert Place(5, 3, (), 1) == place_in_line(current, 5)


def test_gone_numbers_already_served_are_passed_again():
    """A gone number left at or below served (its withdraw raced a pass) is passed too,
    so the next grant cleans it out of the item; it is not ahead."""
    current = holder(expires_at=FAR, queue_next=6, queue_served=3, queue_gone=frozenset({2, 3}))

    assert Place(5, 3, (2, 3), 1) == place_in_line(current, 5)


@pytest.mark.parametrize(
    ("current", "number"),
    [
        pytest.param(holder(token=None), 1, id="no-item"),
        pytest.param(holder(expires_at=FAR, queue_next=6, queue_served=3), 3, id="just-served"),
        pytest.param(holder(expires_at=FAR, queue_next=6, queue_served=3), 2, id="long-served"),
        pytest.param(holder(expires_at=FAR, queue_next=6, queue_served=3), 7, id="above-next"),
        pytest.param(holder(expires_at=FAR), 1, id="no-line-in-the-item"),
    ],
)
def test_a_number_served_passed_or_unknown_to_the_item_has_no_place(current, number):
    """A number at or below served (granted or passed), above queue_next (the item was
    re-created) or on no item is void: the waiter must take a new one."""
    assert None is place_in_line(current, number)


def test_the_last_number_taken_has_a_place():
    """queue_next itself is in line (the upper bound is inclusive)."""
    current = holder(expires_at=FAR, queue_next=4, queue_served=3)

    assert Place(4, 3, (), 0) == place_in_line(current, 4)


# --- poll_seconds: no number ----------------------------------------------------------


def test_without_a_number_a_waiter_backs_off_exponentially():
    """Not in line, a waiter sleeps retry_base x 2^attempt."""
    assert BASE * 4 == poll(holder(expires_at=FAR), None, attempt=2)


def test_without_a_number_the_backoff_is_capped():
    """However many attempts, the backoff never passes retry_cap."""
    assert CAP == poll(holder(expires_at=FAR), None, attempt=50)


def test_without_a_number_the_backoff_survives_any_number_of_attempts():
    """A long wait (attempt 1024 and beyond) still sleeps the cap, not OverflowError."""
    assert CAP == poll(holder(expires_at=FAR), None, attempt=10_000)


def test_without_a_number_jitter_zero_halves_the_backoff():
    """Jitter scales the backoff down to half at most."""
    assert BASE * 4 / 2 == poll(holder(expires_at=FAR), None, attempt=2, jitter=0.0)


@pytest.mark.parametrize(
    "current",
    [
        pytest.param(holder(expires_at=0), id="released"),
        pytest.param(holder(expires_at=NOW - SKEW - 1), id="expired"),
        pytest.param(holder(token=None), id="no-item"),
    ],
)
def test_without_a_number_a_free_lease_gets_the_plain_backoff(current):
    """A race lost on a free lease (or no item): the backoff, uncut by any expiry."""
    assert BASE * 2 == poll(current, None, attempt=1)


def test_without_a_number_the_backoff_ends_at_the_holders_expiry_plus_skew():
    """A waiter wakes when the lease can be taken over, if that is before the backoff."""
    current = holder(expires_at=NOW - SKEW + 100)  # takeover possible in 100 ms

    assert pytest.approx(0.1) == poll(current, None, attempt=50)


def test_without_a_number_at_the_takeover_instant_the_wait_is_zero():
    """At exactly expiry + skew the cut leaves nothing to sleep."""
    assert 0.0 == poll(holder(expires_at=NOW - SKEW), None, attempt=50)


# --- poll_seconds: in line, lease held ------------------------------------------------

# granted 300 ms ago, the previous grant held for a second: due at NOW + 720 ms
HELD_NOW = holder(expires_at=FAR, granted_at=NOW - 300, held=1000)
TURN = 1000 + RTT  # one turn of the line: a hold and a round trip


def test_the_head_sleeps_until_the_holders_expected_release():
    """The head wakes at granted_at + the last hold + a round trip."""
    assert pytest.approx(0.72) == poll(HELD_NOW, HEAD)


def test_a_waiter_behind_sleeps_a_turn_more_per_waiter_ahead():
    """k waiters ahead add k x (hold + round trip) to the head's wake-up."""
    assert pytest.approx((720 + 2 * TURN) / 1000) == poll(HELD_NOW, THIRD)


def test_the_expected_release_ignores_attempt_and_jitter():
    """Before it is due, the wake-up is a time, not a backoff: attempt and jitter
    do not move it while it is later than the backoff."""
    assert pytest.approx(0.72) == poll(HELD_NOW, HEAD, attempt=7, jitter=0.0)


def test_a_new_grant_the_line_did_not_see_move_waits_at_least_the_backoff():
    """A poll found the line unmoved (attempt 3) but a new grant due soon (a local
    hand-off in the holder's process): the head waits its backoff, 20 ms x 2^3,
    not the 30 ms to that grant's expected release."""
    current = holder(expires_at=FAR, granted_at=NOW - 10, held=20)

    assert pytest.approx(0.03) == poll(current, HEAD)
    assert pytest.approx(0.16) == poll(current, HEAD, attempt=3)


def test_a_round_trip_is_trusted_at_most_up_to_the_hold():
    """A round trip slower than the last hold (a burst slowed it) counts as the hold."""
    current = holder(expires_at=FAR, granted_at=NOW, held=50)

    assert pytest.approx((50 + 50) / 1000) == poll(current, HEAD, rtt=400)


def test_a_turn_uses_the_capped_round_trip():
    """The waiters ahead each cost the hold plus the capped round trip."""
    current = holder(expires_at=FAR, granted_at=NOW, held=50)

    assert pytest.approx((50 + 50 + 2 * (50 + 50)) / 1000) == poll(current, THIRD, rtt=400)


def test_without_a_known_hold_the_round_trip_is_not_capped():
    """With no held_ms in the item the round trip counts in full."""
    current = holder(expires_at=FAR, granted_at=NOW)

    assert pytest.approx(0.4) == poll(current, HEAD, rtt=400)


def test_a_round_trip_counts_at_least_one_millisecond():
    """A zero round trip (a coarse clock) still counts as 1 ms."""
    current = holder(expires_at=FAR, granted_at=NOW, held=100)

    assert pytest.approx(0.101) == poll(current, HEAD, rtt=0)


def test_without_granted_at_the_release_is_expected_from_now():
    """An item with no granted_at: the holder's hold is counted from the waiter's now."""
    current = holder(expires_at=FAR, held=1000)

    assert pytest.approx(1.02) == poll(current, HEAD)


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        pytest.param(0, 1.0, 0.02, id="first-a-round-trip"),
        pytest.param(3, 1.0, 0.16, id="doubling"),
        pytest.param(4, 1.0, CAP, id="capped"),
        pytest.param(50, 1.0, CAP, id="capped-long-after"),
        pytest.param(3, 0.0, 0.08, id="jitter-halves"),
        pytest.param(4, 0.5, CAP * 0.75, id="jitter-scales-the-cap"),
    ],
)
def test_an_overdue_head_polls_a_round_trip_later_then_less_often(attempt, jitter, expected):
    """Past the expected release the head polls after rtt x 2^attempt, capped at
    retry_cap, times 0.5 + 0.5 x jitter."""
    current = holder(expires_at=FAR, granted_at=NOW - 5_000, held=1000)

    assert pytest.approx(expected) == poll(current, HEAD, attempt=attempt, jitter=jitter)


def test_an_overdue_head_backoff_survives_any_number_of_attempts():
    """A head behind a holder that renews for minutes polls at the cap, not OverflowError."""
    current = holder(expires_at=FAR, granted_at=NOW - 5_000, held=1000)

    assert CAP == poll(current, HEAD, attempt=1024)


def test_the_release_due_right_now_is_overdue():
    """At exactly the expected release the head polls a round trip later, not at once."""
    current = holder(expires_at=FAR, granted_at=NOW - TURN, held=1000)

    assert pytest.approx(RTT / 1000) == poll(current, HEAD)


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        pytest.param(0, 1.0, TURN / 1000, id="a-turn"),
        pytest.param(10, 1.0, TURN / 1000, id="no-backoff"),
        pytest.param(0, 0.0, TURN / 2000, id="jitter-halves"),
    ],
)
def test_an_overdue_waiter_behind_sleeps_one_turn(attempt, jitter, expected):
    """Past its expected turn, a waiter behind others sleeps one (jittered) turn."""
    current = holder(expires_at=FAR, granted_at=NOW - 10_000, held=1000)

    assert pytest.approx(expected) == poll(current, THIRD, attempt=attempt, jitter=jitter)


def test_the_head_never_sleeps_past_the_holders_expiry_plus_skew():
    """A release expected later than the takeover point: the head wakes at the takeover."""
    current = holder(expires_at=NOW - SKEW + 300, granted_at=NOW, held=5_000)

    assert pytest.approx(0.3) == poll(current, HEAD)


def test_an_overdue_head_never_sleeps_past_the_holders_expiry_plus_skew():
    """The head's backoff is cut to the takeover point too."""
    current = holder(expires_at=NOW - SKEW + 100, granted_at=NOW - 10_000, held=1000)

    assert pytest.approx(0.1) == poll(current, HEAD, attempt=4)


def test_a_waiter_behind_never_sleeps_past_expiry_plus_its_turns():
    """One behind k waiters wakes by the takeover point plus k turns."""
    current = holder(expires_at=NOW - SKEW + 300, granted_at=NOW, held=5_000)

    assert pytest.approx((300 + 5_020) / 1000) == poll(current, SECOND)


# --- poll_seconds: in line, lease free ------------------------------------------------


@pytest.mark.parametrize(
    "current",
    [
        pytest.param(holder(expires_at=0, freed_at=NOW, held=1000), id="released"),
        pytest.param(holder(expires_at=NOW - SKEW - 1, held=1000), id="expired"),
    ],
)
def test_the_head_tries_a_free_lease_at_once(current):
    """Nobody ahead and the lease free: no sleep."""
    assert 0.0 == poll(current, HEAD, attempt=5)


def test_a_waiter_behind_a_freed_lease_sleeps_a_turn_per_waiter_ahead():
    """Freshly freed, one behind k waiters sleeps k turns (they go first)."""
    current = holder(expires_at=0, freed_at=NOW - 100, held=1000)

    assert pytest.approx(2 * TURN / 1000) == poll(current, THIRD)


def test_a_waiter_behind_wakes_when_it_may_pass_the_waiters_ahead():
    """No later than freed_at + k x claim, when the waiters ahead may be passed."""
    current = holder(expires_at=0, freed_at=NOW - 2 * CLAIM_MS + 500, held=1000)

    assert pytest.approx(0.5) == poll(current, THIRD)


def test_a_waiter_behind_tries_at_once_once_it_may_pass():
    """A lease free longer than k x claim: the waiter behind tries at once."""
    current = holder(expires_at=0, freed_at=NOW - 2 * CLAIM_MS - 1000, held=1000)

    assert 0.0 == poll(current, THIRD)


def test_an_expired_lease_is_passable_from_its_expiry_not_an_old_release():
    """An expired lease counts as free since expires_at; a stale freed_at is ignored."""
    current = holder(expires_at=NOW - 2 * CLAIM_MS + 300, freed_at=NOW - 100_000, held=1000)

    assert pytest.approx(0.3) == poll(current, THIRD)


def test_a_released_lease_without_freed_at_is_passable_at_once():
    """A release that wrote no freed_at (an older writer): PASSABLE holds, so try now."""
    current = holder(expires_at=0, held=1000)

    assert 0.0 == poll(current, SECOND)


def test_a_free_lease_turn_is_a_round_trip_without_a_known_hold():
    """With no held_ms, a turn of the line is one round trip."""
    current = holder(expires_at=0, freed_at=NOW)

    assert pytest.approx(2 * RTT / 1000) == poll(current, THIRD)


# --- poll_seconds: bounds -------------------------------------------------------------

_timestamps = st.one_of(st.none(), st.integers(NOW - 20_000, NOW + 60_000))


@given(
    expires_at=st.one_of(st.none(), st.just(0), st.integers(NOW - 20_000, NOW + 60_000)),
    granted_at=_timestamps,
    held=st.one_of(st.none(), st.integers(0, 30_000)),
    freed_at=_timestamps,
    ahead=st.one_of(st.none(), st.integers(0, 5)),
    rtt=st.floats(0.0, 5_000.0),
    attempt=st.integers(0, 1023),
    jitter=st.floats(0.0, 1.0, exclude_max=True),
)
def test_a_waiter_never_sleeps_past_the_takeover_point(
    expires_at, granted_at, held, freed_at, ahead, rtt, attempt, jitter
):
    """Whatever the item, a wait is >= 0 and, on a held lease, ends by expiry + skew
    plus a turn per waiter ahead (the cap, without a number)."""
    current = holder(expires_at=expires_at, granted_at=granted_at, held=held, freed_at=freed_at)
    place = None if ahead is None else Place(10 + ahead, 9, (), ahead)

    wait = poll(current, place, rtt=rtt, attempt=attempt, jitter=jitter)

    turn = (held or 0) + (min(max(1.0, rtt), held) if held else max(1.0, rtt))
    bound = CAP if place is None else float("inf")
    if is_live(current, NOW, CONFIG):
        assert expires_at is not None
        bound = min(bound, (expires_at + SKEW - NOW + (ahead or 0) * turn) / 1000)
    assert (True, True) == (wait >= 0, wait <= bound + 1e-9)


@given(
    freed_ago=st.integers(0, 20_000),
    held=st.one_of(st.none(), st.integers(0, 30_000)),
    ahead=st.integers(1, 5),
    jitter=st.floats(0.0, 1.0, exclude_max=True),
)
def test_a_waiter_behind_a_free_lease_is_awake_when_it_may_pass(freed_ago, held, ahead, jitter):
    """On a freed lease, one behind k waiters wakes no later than freed_at + k x claim."""
    current = holder(expires_at=0, freed_at=NOW - freed_ago, held=held)

    wait = poll(current, Place(10 + ahead, 9, (), ahead), jitter=jitter)

    assert wait <= max(0.0, (ahead * CLAIM_MS - freed_ago) / 1000) + 1e-9


# --- grant_from ---------------------------------------------------------------------


def test_grant_from_trusts_until_sent_at_plus_lease_minus_margin():
    """The holder trusts the grant from its own send time, less the safety margin."""
    attributes = {"token": {"N": "42"}, "expires_at": {"N": str(NOW + 10_000)}}
    expected = Grant(KEY, ME, 42, T0, NOW + 10_000, T0 + 10_000 - 1_000, waiting=0)

    assert expected == grant_from(attributes, KEY, ME, T0, CONFIG)


def test_grant_from_counts_the_live_waiters_its_write_saw():
    """A grant records how many waiters of other processes were in line: the numbers
    after served, less those given up (a gone number already served does not count)."""
    attributes = item(
        owner=ME,
        token=42,
        expires_at=NOW + 10_000,
        queue_next=7,
        queue_served=3,
        queue_gone=(2, 5),
    )

    assert 3 == grant_from(attributes, KEY, ME, T0, CONFIG).waiting


# --- may_hand_off -------------------------------------------------------------------


def waiting_grant(waiting: int) -> Grant:
    return Grant(KEY, ME, 42, T0, NOW + 10_000, T0 + 9_000, waiting=waiting)


@pytest.mark.parametrize(
    ("waiting", "streak", "expected"),
    [
        pytest.param(0, 0, True, id="nobody-in-line"),
        pytest.param(0, 100, True, id="nobody-in-line-long-streak"),
        pytest.param(2, 0, True, id="line-first-hand-off"),
        pytest.param(2, 3, True, id="line-streak-below-limit"),
        pytest.param(2, 4, False, id="line-streak-at-limit"),
        pytest.param(1, 9, False, id="line-streak-above-limit"),
    ],
)
def test_may_hand_off_until_the_line_has_waited_local_handoffs(waiting, streak, expected):
    """Local hand-offs are unlimited with nobody in line, bounded by local_handoffs
    in a row while waiters of other processes are in line."""
    config = LockConfig(lease_seconds=10, max_clock_skew_seconds=1, local_handoffs=4)

    assert expected == may_hand_off(waiting_grant(waiting), config, streak)


def test_no_hand_off_when_disabled():
    """local_handoffs=0 turns hand-off off, even with nobody in line."""
    config = LockConfig(lease_seconds=10, max_clock_skew_seconds=1, local_handoffs=0)

    assert False is may_hand_off(waiting_grant(0), config, 0)
