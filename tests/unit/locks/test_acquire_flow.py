"""acquire_flow driven by hand: grants, refusals, joining the line, sleeps, timeouts and
hand-overs (the line against the fake table: test_acquire_line)."""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locks._models import QUEUE_NEXT, QUEUE_SERVED, TOKEN, Grant
from locks._protocol import (
    Call,
    ConditionFailed,
    Now,
    Place,
    Sleep,
    acquire_request,
    join_request,
    read_request,
    withdraw_request,
)
from locks._protocol import (
    acquire_flow as _acquire_flow,
)
from locks.exceptions import AcquireTimeout, LeaseUnavailable, LockBackendError
from tests.unit.locks.fakes import (
    CONFIG,
    HELD,
    KEY,
    ME,
    OTHER,
    T0,
    TABLE,
    FakeTable,
    Item,
    finish,
    item,
    number,
)

# held since long before its expected release (granted 10 s ago, the last hold 0.1 s)
OVERDUE = item(owner=OTHER, token=5, expires_at=T0 + 60_000, granted_at=T0 - 10_000, held_ms=100)
BACKEND_ERROR = LockBackendError(
    "DynamoDB update_item failed", code="InternalServerError", cause=None
)


class _Scripted:
    """The acquire flow, with its clock readings after a call (a round trip's end, the
    next sleep's start) answered with the last clock value sent, so scripts here need
    not answer them; tests of those readings use the bare flow."""

    def __init__(self, flow: Generator[Any, Any, Any]) -> None:
        self._flow = flow
        self._clock: float | None = None

    def __next__(self) -> Any:
        return next(self._flow)

    def send(self, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self._clock = value
        request = self._flow.send(value)
        while isinstance(value, (ConditionFailed, dict)) and request == Now():
            request = self._flow.send(self._clock)
        return request

    def throw(self, error: BaseException) -> Any:
        return self._flow.throw(error)


def acquire_flow(*args: Any, **kwargs: Any) -> Any:
    return _Scripted(_acquire_flow(*args, **kwargs))


class FixedRandom(random.Random):
    """An rng whose ``random()`` is always ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def start(
    timeout: float | None, *, now: float = T0, since: float | None = None, jitter: float = 0.0
) -> tuple[Any, Any]:
    """Run the flow to its first write; returns the flow and that write."""
    flow = acquire_flow(TABLE, KEY, ME, CONFIG, timeout, FixedRandom(jitter), since)
    assert Now() == next(flow)
    assert Now() == flow.send(now)
    return flow, flow.send(now)


def refused(current: Item | None = HELD) -> ConditionFailed:
    return ConditionFailed(current)


def lined(base: Item = HELD, queue_next: int = 1, queue_served: int = 0) -> Item:
    """``base`` with a line: numbers up to ``queue_next`` taken, up to ``queue_served``
    served or passed."""
    return {**base, QUEUE_NEXT: {"N": str(queue_next)}, QUEUE_SERVED: {"N": str(queue_served)}}


def joined(base: Item = HELD, queue_next: int = 1, queue_served: int = 0) -> dict[str, Any]:
    """A join's answer: the item after the waiter took number ``queue_next``."""
    return {"Attributes": lined(base, queue_next, queue_served)}


def waiting(timeout: float | None = None, *, jitter: float = 0.0, view: Item = HELD) -> Any:
    """Run the flow to its first sleep: refused by ``view``, then number 1 in line."""
    flow, _ = start(timeout, jitter=jitter)
    flow.send(refused(view))
    assert Sleep is type(flow.send(joined(view)))
    return flow


# --- first attempt ----------------------------------------------------------------------


def test_first_request_after_the_clock_is_the_acquire_write():
    """No read before write: the first call is the conditional acquire, built at ``now``."""
    _, call = start(None)

    assert acquire_request(TABLE, KEY, ME, T0, CONFIG) == call


def test_uncontended_acquire_is_granted_on_the_first_write():
    """A free key is granted by one write; the grant carries the written token and expiry."""
    table = FakeTable()
    flow, call = start(None)

    grant, waited = finish(flow, table.execute(call))

    expected = Grant(KEY, ME, int(T0) * 1000 + 1, T0, int(T0) + 10_000, T0 + 9_000)
    assert (expected, 0.0, 1) == (grant, waited, len(table.calls))


def test_grant_token_is_the_written_token():
    """The grant's token is what DynamoDB returned, not a local guess."""
    table = FakeTable()
    table.put(item(owner=OTHER, token=41, expires_at=0))
    flow, call = start(None)

    grant, _ = finish(flow, table.execute(call))

    assert (42, 42) == (grant.token, number(table.get(), TOKEN))


def test_timeout_zero_raises_lease_unavailable_naming_the_holder():
    """A single attempt on a held key raises LeaseUnavailable with holder and expiry."""
    flow, _ = start(0)

    with pytest.raises(LeaseUnavailable) as raised:
        flow.send(refused())

    assert (LeaseUnavailable, OTHER, int(T0) + 60_000) == (
        type(raised.value),
        raised.value.holder,
        raised.value.expires_at,
    )


def test_failure_without_old_item_reads_the_item():
    """A backend that ignores ALL_OLD (dynalite) makes the flow read the holder."""
    flow, _ = start(0)

    assert read_request(TABLE, KEY) == flow.send(ConditionFailed(None))


def test_holder_comes_from_the_read_when_the_write_returned_none():
    """The holder named by LeaseUnavailable is the one the fallback read found."""
    flow, _ = start(0)
    flow.send(ConditionFailed(None))

    with pytest.raises(LeaseUnavailable) as raised:
        flow.send({"Item": HELD})

    assert OTHER == raised.value.holder


def test_read_finding_no_item_reports_no_holder():
    """If the item vanished between write and read, the holder is unknown (None)."""
    flow, _ = start(0)
    flow.send(ConditionFailed(None))

    with pytest.raises(LeaseUnavailable) as raised:
        flow.send({})

    assert (None, None) == (raised.value.holder, raised.value.expires_at)


def test_backend_error_on_the_write_propagates():
    """A DynamoDB error that is not a lost race is the caller's, not retried by the flow."""
    flow, _ = start(None)

    with pytest.raises(LockBackendError) as raised:
        flow.throw(BACKEND_ERROR)

    assert BACKEND_ERROR is raised.value


# --- waiting: the line and the sleeps ---------------------------------------------------


def test_refused_waiter_joins_the_line():
    """After a refusal on a held lease, a waiter takes a number in the line."""
    flow, _ = start(None)

    assert join_request(TABLE, KEY) == flow.send(refused())


def test_waiter_in_line_does_not_join_again():
    """A waiter whose number the refusal still shows in line just sleeps again."""
    flow = waiting()
    flow.send(False)
    flow.send(T0 + 20)

    assert Sleep is type(flow.send(refused(lined())))


def test_waiter_whose_number_was_passed_joins_again():
    """A refusal showing the line served past our number (we were passed): a new number."""
    flow = waiting()
    flow.send(False)
    flow.send(T0 + 20)

    assert join_request(TABLE, KEY) == flow.send(refused(lined(queue_next=2, queue_served=2)))


def test_waiter_does_not_join_when_there_is_no_item():
    """With no item there is no line to join (the refusal was a race): just retry."""
    flow, _ = start(None)
    flow.send(ConditionFailed(None))

    assert Sleep is type(flow.send({}))


def test_waiter_sleeps_until_the_expected_release_by_the_joins_view():
    """The head sleeps on the item its join returned: until the grant time plus the last
    hold plus a round trip (here 100 ms ago + 300 ms + 1 ms)."""
    view = item(owner=OTHER, token=5, expires_at=T0 + 60_000, granted_at=T0 - 100, held_ms=300)
    flow, _ = start(None)
    flow.send(refused())

    assert pytest.approx(0.201) == flow.send(joined(view)).seconds


def test_waiter_tries_again_after_sleeping_from_its_place():
    """After a sleep the waiter reads its clock and writes again, as number 1 in line."""
    flow = waiting()
    assert Now() == flow.send(False)

    expected = acquire_request(TABLE, KEY, ME, T0 + 20, CONFIG, place=Place(1, 0))
    assert expected == flow.send(T0 + 20)


def test_waiter_woken_early_tries_again_at_once():
    """A wake-up (a local release) leads straight to the next attempt."""
    flow = waiting()

    assert Now() == flow.send(True)


def test_head_backoff_on_an_overdue_holder_doubles_up_to_the_cap():
    """Past the holder's expected release, the head polls a round trip (1 ms here) later,
    then twice as long each time, up to retry_cap."""
    flow = waiting(jitter=1.0 - 1e-12, view=OVERDUE)
    sleeps = []
    for _ in range(10):
        flow.send(False)  # -> Now
        flow.send(T0)  # -> acquire
        sleeps.append(flow.send(refused(lined(OVERDUE))).seconds)

    expected = [0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.25, 0.25, 0.25]
    assert expected == [round(s, 9) for s in sleeps]


def test_granted_after_waiting_reports_the_time_waited():
    """waited_ms is the time from the flow's start to the granting write."""
    table = FakeTable()
    flow, _ = start(None)
    flow.send(ConditionFailed(None))
    flow.send({})  # -> Sleep
    flow.send(False)  # -> Now
    call = flow.send(T0 + 250)

    _, waited = finish(flow, table.execute(call))

    assert 250 == waited


# --- timeouts ---------------------------------------------------------------------------


def test_sleep_is_cut_to_the_remaining_timeout():
    """A waiter never sleeps past its deadline."""
    long = item(owner=OTHER, token=5, expires_at=T0 + 60_000, granted_at=T0, held_ms=5_000)
    flow = waiting(0.05, view=long)
    flow.send(False)
    flow.send(T0 + 45)  # -> acquire, 45 of 50 ms gone

    assert pytest.approx(0.005) == flow.send(refused(lined(long))).seconds


def test_timeout_raises_acquire_timeout_with_the_time_waited():
    """Once the timeout has passed, the next refusal raises AcquireTimeout."""
    flow, _ = start(0.05)
    flow.send(ConditionFailed(None))
    flow.send({})  # no item: no number -> Sleep
    flow.send(False)
    flow.send(T0 + 50)

    with pytest.raises(AcquireTimeout) as raised:
        flow.send(refused())

    assert (OTHER, 50) == (raised.value.holder, raised.value.waited_ms)


def test_timeout_runs_from_since():
    """``since`` is when the caller started waiting: a refusal 500 ms after it ends a
    500 ms wait, whatever the flow's own start."""
    flow, _ = start(0.5, since=T0 - 500)

    with pytest.raises(AcquireTimeout) as raised:
        flow.send(refused())

    assert 500 == raised.value.waited_ms


def test_timeout_withdraws_the_number():
    """A waiter that timed out gives its number up before raising."""
    flow = waiting(0.05)
    flow.send(False)
    flow.send(T0 + 50)

    assert withdraw_request(TABLE, KEY, 1) == flow.send(refused(lined()))


def test_timeout_raises_after_the_withdrawal():
    """The withdrawal's answer, whatever it is, is followed by AcquireTimeout."""
    flow = waiting(0.05)
    flow.send(False)
    flow.send(T0 + 50)
    flow.send(refused(lined()))

    with pytest.raises(AcquireTimeout):
        flow.send(ConditionFailed(None))


def test_withdrawal_backend_error_is_swallowed():
    """Withdrawing is best effort: a backend error still ends in AcquireTimeout."""
    flow = waiting(0.05)
    flow.send(False)
    flow.send(T0 + 50)
    flow.send(refused(lined()))

    with pytest.raises(AcquireTimeout):
        flow.throw(BACKEND_ERROR)


def test_join_backend_error_is_swallowed():
    """Joining is best effort: a backend error leaves the waiter sleeping without a number."""
    flow, _ = start(None)
    flow.send(refused())
    assert Now() == flow.throw(BACKEND_ERROR)

    assert Sleep is type(flow.send(T0))


def test_timeout_without_a_number_sends_no_withdrawal():
    """A waiter whose join failed has nothing to give up: it raises at once."""
    flow, _ = start(0.05)
    flow.send(refused())
    flow.throw(BACKEND_ERROR)  # the join -> Now
    flow.send(T0)  # -> Sleep
    flow.send(False)
    flow.send(T0 + 50)

    with pytest.raises(AcquireTimeout):
        flow.send(refused())


@settings(max_examples=50, deadline=None)  # a loaded host must not fail it
@given(
    timeout=st.floats(0.001, 1.0),
    oversleeps=st.lists(st.integers(0, 40), min_size=60, max_size=60),
    jitter=st.floats(0.0, 1.0, exclude_max=True),
)
def test_sleeps_never_exceed_the_remaining_timeout(timeout, oversleeps, jitter):
    """However late each sleep returns, every sleep fits in what is left of the timeout."""
    with pytest.raises(AcquireTimeout):
        _wait_out(timeout, oversleeps, jitter)


def _wait_out(timeout: float, oversleeps: list[int], jitter: float) -> None:
    """Drive a waiter on a held key until it gives up, checking every sleep."""
    table = FakeTable()
    table.put(OVERDUE)
    flow = acquire_flow(TABLE, KEY, ME, CONFIG, timeout, FixedRandom(jitter))
    clock = T0
    request = next(flow)
    oversleep = iter(oversleeps)
    for _ in range(10_000):
        if isinstance(request, Now):
            request = flow.send(clock)
        elif isinstance(request, Call):
            request = flow.send(table.execute(request))
        else:
            assert isinstance(request, Sleep)
            assert request.seconds <= max(0.0, timeout - (clock - T0) / 1000) + 1e-9
            # a real clock always moves on: never less than 1 ms per sleep
            clock += max(1, math.ceil(request.seconds * 1000)) + next(oversleep, 0)
            request = flow.send(False)


def test_sleep_accounts_for_time_spent_in_calls():
    """Time spent in the refused write and the join counts against the timeout.

    With 30 ms calls and a 50 ms timeout, the join returns 60 ms after the start:
    the deadline has passed, so the waiter must not sleep any more.
    """
    table = FakeTable()
    table.put(HELD)
    clock = T0
    flow = _acquire_flow(TABLE, KEY, ME, CONFIG, 0.05, FixedRandom(1.0 - 1e-12))
    request = next(flow)
    while not isinstance(request, Sleep):
        if isinstance(request, Now):
            request = flow.send(clock)
        else:
            clock += 30  # each DynamoDB round trip takes 30 ms
            request = flow.send(table.execute(request))
    remaining = max(0.0, 0.05 - (clock - T0) / 1000)

    assert request.seconds <= remaining


def test_head_survives_more_than_a_thousand_polls():
    """acquire(timeout=None) may wait for minutes: poll 1025 must still compute a sleep.

    ``2.0**attempt`` overflows a float at attempt 1024 (OverflowError), which a head
    polling every 0.25 s on a holder that overruns its expected release reaches after
    about four minutes.
    """
    flow = waiting(view=OVERDUE)
    request = None
    for attempt in range(1100):
        flow.send(False)  # -> Now
        flow.send(T0 + attempt)  # -> acquire
        request = flow.send(refused(lined(OVERDUE)))  # -> Sleep

    assert Sleep is type(request)


# --- hand-over from a local holder -------------------------------------------------------

HANDED = Grant(KEY, ME, 99, T0 + 30, int(T0) + 10_030, T0 + 9_030)


def test_waiter_behind_a_local_holder_first_waits_for_a_hand_off():
    """With a lease held in this process, the waiter sleeps before asking DynamoDB."""
    flow = acquire_flow(TABLE, KEY, ME, CONFIG, 3.0, FixedRandom(0.0), local_holder=True)
    next(flow)

    assert Sleep(3.0) == flow.send(T0)


def test_wait_for_a_hand_off_is_at_most_a_lease():
    """Without a timeout, the first wait for a local hand-off lasts one lease at most."""
    flow = acquire_flow(TABLE, KEY, ME, CONFIG, None, FixedRandom(0.0), local_holder=True)
    next(flow)

    assert Sleep(CONFIG.lease_seconds) == flow.send(T0)


def test_handed_over_grant_is_returned_without_a_call():
    """A grant handed over by the local holder ends the flow: no DynamoDB call."""
    flow = acquire_flow(TABLE, KEY, ME, CONFIG, None, FixedRandom(0.0), local_holder=True)
    next(flow)
    flow.send(T0)
    assert Now() == flow.send(HANDED)

    assert (HANDED, 30) == finish(flow, T0 + 30)


def test_no_hand_off_falls_back_to_writing():
    """Woken without a grant (the holder released instead), the waiter tries the table."""
    flow = acquire_flow(TABLE, KEY, ME, CONFIG, None, FixedRandom(0.0), local_holder=True)
    next(flow)
    flow.send(T0)
    assert Now() == flow.send(True)

    assert acquire_request(TABLE, KEY, ME, T0 + 5, CONFIG) == flow.send(T0 + 5)


def test_single_attempt_ignores_the_local_holder():
    """timeout=0 never waits, even for a local hand-off."""
    flow = acquire_flow(TABLE, KEY, ME, CONFIG, 0, FixedRandom(0.0), local_holder=True)
    next(flow)

    assert Now() == flow.send(T0)


def test_grant_handed_over_in_line_withdraws_the_number_and_is_returned():
    """A hand-off that arrives while the waiter is in line gives its number up (so the
    line need not wait for it), then ends the wait with that grant."""
    flow = _acquire_flow(TABLE, KEY, ME, CONFIG, None, FixedRandom(0.0))
    next(flow)
    flow.send(T0)  # start
    flow.send(T0)  # -> the acquire write
    flow.send(refused())  # -> Now (the round trip's end)
    flow.send(T0)  # -> the join
    flow.send(joined())  # -> Now
    flow.send(T0)  # -> Sleep
    assert withdraw_request(TABLE, KEY, 1) == flow.send(HANDED)
    assert Now() == flow.send({})

    assert (HANDED, 40) == finish(flow, T0 + 40)
