"""renew_flow, heartbeat_flow and release_flow driven by hand."""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import pytest

from locks._models import EXPIRES_AT, FREED_AT, HELD_MS, TOKEN, Grant
from locks._protocol import (
    ConditionFailed,
    Current,
    Now,
    Renewed,
    Sleep,
    handoff_flow,
    handoff_request,
    heartbeat_flow,
    read_request,
    release_flow,
    release_request,
    renew_flow,
    renew_request,
)
from locks.exceptions import LeaseLost, LockBackendError
from tests.unit.locks.fakes import (
    CONFIG,
    KEY,
    ME,
    OTHER,
    T0,
    TABLE,
    FakeTable,
    finish,
    item,
    number,
)

GRANT = Grant(
    key=KEY,
    owner=ME,
    token=7,
    sent_at_ms=T0,
    expires_at_ms=int(T0) + 10_000,
    trusted_until_ms=T0 + 9_000,
)
OURS = item(owner=ME, token=7, expires_at=T0 + 10_000)
BACKEND_ERROR = LockBackendError(
    "DynamoDB update_item failed", code="InternalServerError", cause=None
)


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def renewed_attributes(now: float) -> dict[str, Any]:
    return {"Attributes": item(owner=ME, token=7, expires_at=now + 10_000)}


# --- renew_flow -------------------------------------------------------------------------


def test_renew_sends_a_renewal_built_at_now():
    """A renewal reads the clock and sends the conditional renew built at that time."""
    flow = renew_flow(TABLE, GRANT, CONFIG)
    next(flow)

    assert renew_request(TABLE, GRANT, T0 + 3_000, CONFIG) == flow.send(T0 + 3_000)


def test_renew_of_a_grant_that_ran_out_is_lost_without_a_call():
    """At trusted_until the holder no longer trusts the grant: LeaseLost, no write."""
    flow = renew_flow(TABLE, GRANT, CONFIG)
    next(flow)

    with pytest.raises(LeaseLost) as raised:
        flow.send(GRANT.trusted_until_ms)

    assert (KEY, 7, "it ran out before it could be renewed") == (
        raised.value.key,
        raised.value.token,
        raised.value.reason,
    )


def test_renew_refused_is_lost_naming_the_new_holder():
    """A failed renewal means the token moved on: LeaseLost says to whom."""
    flow = renew_flow(TABLE, GRANT, CONFIG)
    next(flow)
    flow.send(T0 + 3_000)

    with pytest.raises(LeaseLost) as raised:
        flow.send(ConditionFailed(item(owner=OTHER, token=8, expires_at=T0 + 20_000)))

    assert "now held under token 8 by 'other'" == raised.value.reason


def test_renew_refused_without_old_item_is_lost():
    """Without the old item (no ALL_OLD, or TTL deleted it) the renewal is still lost."""
    flow = renew_flow(TABLE, GRANT, CONFIG)
    next(flow)
    flow.send(T0 + 3_000)

    with pytest.raises(LeaseLost) as raised:
        flow.send(ConditionFailed(None))

    assert "the lease item no longer matches this grant" == raised.value.reason


def test_renew_backend_error_propagates():
    """A backend error is not a lost race: renew_flow lets the caller decide."""
    flow = renew_flow(TABLE, GRANT, CONFIG)
    next(flow)
    flow.send(T0 + 3_000)

    with pytest.raises(LockBackendError):
        flow.throw(BACKEND_ERROR)


def test_renew_reports_the_renewed_grant():
    """After a successful renewal the flow tells the driver the new grant."""
    flow = renew_flow(TABLE, GRANT, CONFIG)
    next(flow)
    flow.send(T0 + 3_000)

    expected = Renewed(Grant(KEY, ME, 7, T0 + 3_000, int(T0) + 13_000, T0 + 3_000 + 10_000 - 1_000))
    assert expected == flow.send(renewed_attributes(T0 + 3_000))


def test_renewed_grant_moves_trust_from_the_renewal_send_time():
    """The renewed grant is trusted until renewal time + lease - margin."""
    flow = renew_flow(TABLE, GRANT, CONFIG)
    next(flow)
    flow.send(T0 + 3_000)
    flow.send(renewed_attributes(T0 + 3_000))

    assert T0 + 12_000 == finish(flow, None).trusted_until_ms


def test_renewal_keeps_the_token():
    """Whatever the table answers, a renewal keeps the grant's own fencing token."""
    flow = renew_flow(TABLE, GRANT, CONFIG)
    next(flow)
    flow.send(T0 + 3_000)
    flow.send({"Attributes": item(owner=ME, token=99, expires_at=T0 + 13_000)})

    assert 7 == finish(flow, None).token


def test_renewal_against_the_table_extends_the_item():
    """End to end with the fake table: the item's expiry moves, its token stays."""
    table = FakeTable()
    table.put(OURS)
    flow = renew_flow(TABLE, GRANT, CONFIG)
    next(flow)
    call = flow.send(T0 + 3_000)
    flow.send(table.execute(call))
    finish(flow, None)

    assert (int(T0) + 13_000, 7) == (number(table.get(), EXPIRES_AT), number(table.get(), TOKEN))


# --- heartbeat_flow ----------------------------------------------------------------------


def heartbeat(jitter: float = 0.0) -> Generator[Any, Any, None]:
    return heartbeat_flow(TABLE, GRANT, CONFIG, FixedRandom(jitter))


def test_heartbeat_asks_for_the_newest_grant_first():
    """A manual renew may have moved the grant, so each cycle starts from Current."""
    assert Current() == next(heartbeat())


def test_heartbeat_sleeps_until_a_heartbeat_after_the_last_renewal():
    """The next renewal is due ``heartbeat`` after the grant was sent."""
    flow = heartbeat()
    next(flow)
    flow.send(GRANT)

    assert pytest.approx(CONFIG.heartbeat - 1.0) == flow.send(T0 + 1_000).seconds


def test_overdue_heartbeat_does_not_sleep():
    """A heartbeat already overdue renews at once (never a negative sleep)."""
    flow = heartbeat()
    next(flow)
    flow.send(GRANT)

    assert Sleep(0.0) == flow.send(T0 + 60_000)


def test_heartbeat_stops_when_woken():
    """A Sleep answered True (the lease was released) ends the heartbeat quietly."""
    flow = heartbeat()
    next(flow)
    flow.send(GRANT)
    flow.send(T0)

    assert None is finish(flow, True)


def test_heartbeat_renews_after_sleeping():
    """After the sleep the heartbeat renews the grant it was given."""
    flow = heartbeat()
    next(flow)
    flow.send(GRANT)
    flow.send(T0)
    assert Now() == flow.send(False)

    assert renew_request(TABLE, GRANT, T0 + 3_333, CONFIG) == flow.send(T0 + 3_333)


def test_heartbeat_renews_the_current_grant_not_the_first():
    """The heartbeat renews whatever grant the driver holds now."""
    newer = Grant(KEY, ME, 7, T0 + 2_000, int(T0) + 12_000, T0 + 11_000)
    flow = heartbeat()
    next(flow)
    flow.send(newer)
    flow.send(T0 + 2_000)
    flow.send(False)

    assert renew_request(TABLE, newer, T0 + 5_333, CONFIG) == flow.send(T0 + 5_333)


def _to_renewal(flow: Generator[Any, Any, None], now: float = T0 + 3_333) -> Any:
    next(flow)
    flow.send(GRANT)
    flow.send(T0)
    flow.send(False)
    return flow.send(now)


def test_heartbeat_reports_a_successful_renewal_then_starts_over():
    """A renewal is reported (Renewed) and the next cycle asks for the grant again."""
    flow = heartbeat()
    _to_renewal(flow)
    assert Renewed is type(flow.send(renewed_attributes(T0 + 3_333)))

    assert Current() == flow.send(None)


def test_heartbeat_is_lost_when_the_renewal_is_refused():
    """A conditional-check failure on renewal ends the heartbeat with LeaseLost."""
    flow = heartbeat()
    _to_renewal(flow)

    with pytest.raises(LeaseLost):
        flow.send(ConditionFailed(item(owner=OTHER, token=8, expires_at=T0 + 20_000)))


def test_heartbeat_retries_a_backend_error():
    """A backend error on renewal does not end the heartbeat: it starts another cycle."""
    flow = heartbeat()
    _to_renewal(flow)

    assert Current() == flow.throw(BACKEND_ERROR)


@pytest.mark.parametrize(("failures", "jitter"), [(1, 0.0), (1, 0.999), (2, 0.5), (6, 0.999)])
def test_heartbeat_retry_backs_off_with_jitter(failures, jitter):
    """After n failures the retry sleeps min(cap, base * 2**n) scaled into [1/2, 1)."""
    flow = heartbeat(jitter)
    _to_renewal(flow)
    for _ in range(failures - 1):
        flow.throw(BACKEND_ERROR)  # -> Current
        flow.send(GRANT)  # -> Now
        flow.send(T0 + 3_333)  # -> Sleep
        flow.send(False)  # -> Now
        flow.send(T0 + 3_333)  # -> renew
    flow.throw(BACKEND_ERROR)
    flow.send(GRANT)

    backoff = min(CONFIG.retry_cap_seconds, CONFIG.retry_base_seconds * 2.0**failures)
    assert pytest.approx(backoff * (0.5 + 0.5 * jitter)) == flow.send(T0 + 3_333).seconds


def test_heartbeat_is_lost_when_retries_run_past_trust():
    """Retrying stops being possible once the grant ran out: LeaseLost, no further write."""
    flow = heartbeat()
    _to_renewal(flow)
    flow.throw(BACKEND_ERROR)
    flow.send(GRANT)
    flow.send(T0 + 8_999)
    flow.send(False)

    with pytest.raises(LeaseLost):
        flow.send(GRANT.trusted_until_ms)


def test_heartbeat_success_resets_the_backoff():
    """After a successful retry the next sleep is a full heartbeat again."""
    flow = heartbeat()
    _to_renewal(flow)
    flow.throw(BACKEND_ERROR)
    flow.send(GRANT)
    flow.send(T0 + 3_400)
    flow.send(False)
    flow.send(T0 + 3_500)  # -> renew
    flow.send(renewed_attributes(T0 + 3_500))  # -> Renewed
    flow.send(None)  # -> Current
    renewed = Grant(KEY, ME, 7, T0 + 3_500, int(T0) + 13_500, T0 + 12_500)
    flow.send(renewed)

    assert pytest.approx(CONFIG.heartbeat) == flow.send(T0 + 3_500).seconds


# --- release_flow -----------------------------------------------------------------------


def test_release_sends_the_release_built_at_now():
    """Release reads the clock and sends the conditional release."""
    flow = release_flow(TABLE, GRANT, CONFIG)
    assert Now() == next(flow)

    assert release_request(TABLE, GRANT, T0 + 1, CONFIG) == flow.send(T0 + 1)


def test_release_of_our_grant_returns_true():
    """A release the table accepted reports True."""
    table = FakeTable()
    table.put(OURS)
    flow = release_flow(TABLE, GRANT, CONFIG)
    next(flow)

    assert True is finish(flow, table.execute(flow.send(T0 + 1)))


def test_release_of_a_grant_that_moved_on_returns_false_and_changes_nothing():
    """Releasing after a takeover frees nothing and reports False."""
    table = FakeTable()
    theirs = item(owner=OTHER, token=8, expires_at=T0 + 20_000)
    table.put(theirs)
    flow = release_flow(TABLE, GRANT, CONFIG)
    next(flow)

    assert (False, theirs) == (finish(flow, table.execute(flow.send(T0 + 1))), table.get())


def test_release_is_idempotent():
    """A second release of the same grant succeeds and changes nothing more."""
    table = FakeTable()
    table.put(OURS)
    for _ in range(2):
        flow = release_flow(TABLE, GRANT, CONFIG)
        next(flow)
        finish(flow, table.execute(flow.send(T0 + 1)))
    once = table.get()
    flow = release_flow(TABLE, GRANT, CONFIG)
    next(flow)

    assert (True, once) == (finish(flow, table.execute(flow.send(T0 + 1))), table.get())


def test_release_records_when_it_freed_the_lease_and_how_long_it_was_held():
    """A release writes its clock (freed_at) and the grant's hold (held_ms): waiters time
    their polls by them, and pass a dead waiter by the time since freed_at."""
    table = FakeTable()
    table.put(OURS)
    flow = release_flow(TABLE, GRANT, CONFIG)
    next(flow)
    finish(flow, table.execute(flow.send(T0 + 1_500)))

    assert (int(T0) + 1_500, 1_500) == (
        number(table.get(), FREED_AT),
        number(table.get(), HELD_MS),
    )


def test_release_backend_error_propagates():
    """A backend error on release reaches the caller."""
    flow = release_flow(TABLE, GRANT, CONFIG)
    next(flow)
    flow.send(T0)

    with pytest.raises(LockBackendError):
        flow.throw(BACKEND_ERROR)


# --- handoff_flow -----------------------------------------------------------------------


def test_handoff_sends_the_handoff_built_at_now():
    """A hand-off reads the clock and sends one conditional write."""
    flow = handoff_flow(TABLE, GRANT, CONFIG)
    assert Now() == next(flow)

    assert handoff_request(TABLE, GRANT, T0 + 5, CONFIG) == flow.send(T0 + 5)


def test_handoff_returns_the_new_grant_with_the_next_token():
    """The handed-over grant carries the next token and is trusted from the hand-off."""
    table = FakeTable()
    table.put(OURS)
    flow = handoff_flow(TABLE, GRANT, CONFIG)
    next(flow)

    grant = finish(flow, table.execute(flow.send(T0 + 5)))

    assert Grant(KEY, ME, 8, T0 + 5, int(T0) + 10_005, T0 + 9_005) == grant


def test_handoff_records_how_long_the_lease_was_held_and_frees_nothing():
    """A hand-off writes the hold it ends (held_ms) but no freed_at: the lease was never
    free, so no waiter may count time from it."""
    table = FakeTable()
    table.put(OURS)
    flow = handoff_flow(TABLE, GRANT, CONFIG)
    next(flow)
    finish(flow, table.execute(flow.send(T0 + 700)))

    assert (700, None) == (number(table.get(), HELD_MS), number(table.get(), FREED_AT))


def test_handoff_of_a_grant_that_moved_on_returns_none():
    """If another holder took over, there is nothing to hand on."""
    flow = handoff_flow(TABLE, GRANT, CONFIG)
    next(flow)
    flow.send(T0)

    assert None is finish(flow, ConditionFailed(item(owner=OTHER, token=8, expires_at=T0)))


MARK = "f00d"


def handed(now: float, token: int = 8, mark: str = MARK) -> dict[str, Any]:
    """The item after a hand-off marked ``mark``, sent at ``now``, landed."""
    landed = item(owner=ME, token=token, expires_at=now + 10_000)
    landed["handoff_id"] = {"S": mark}
    return landed


def test_a_marked_handoff_writes_its_mark():
    """The hand-off's write carries its mark."""
    flow = handoff_flow(TABLE, GRANT, CONFIG, marker=MARK)
    next(flow)

    sent = flow.send(T0 + 5)

    assert handoff_request(TABLE, GRANT, T0 + 5, CONFIG, marker=MARK) == sent
    assert (
        "#handoff = :handoff"
        in handoff_request(TABLE, GRANT, T0 + 5, CONFIG, marker=MARK).params["UpdateExpression"]
    )


def test_a_retried_handoff_that_had_landed_is_taken_as_done():
    """The client retried a hand-off whose first write landed: the retry fails its
    condition, but the old item shows our hand-off (next token, our mark), so the grant
    stands rather than a lost lease."""
    flow = handoff_flow(TABLE, GRANT, CONFIG, marker=MARK)
    next(flow)
    flow.send(T0 + 5)

    grant = finish(flow, ConditionFailed(handed(T0 + 5)))

    assert (8, T0 + 9_005) == (grant.token, grant.trusted_until_ms)


def test_a_failed_condition_without_the_old_item_reads_it():
    """A backend that sends no old item (dynalite) is asked with a read."""
    flow = handoff_flow(TABLE, GRANT, CONFIG, marker=MARK)
    next(flow)
    flow.send(T0 + 5)

    read = flow.send(ConditionFailed(None))

    assert read_request(TABLE, KEY) == read
    assert None is finish(flow, {"Item": item(owner=OTHER, token=8, expires_at=T0)})


def test_a_handoff_that_failed_but_landed_is_taken_as_done():
    """The write failed (a timeout after retries) yet landed: a read shows it."""
    flow = handoff_flow(TABLE, GRANT, CONFIG, marker=MARK)
    next(flow)
    flow.send(T0 + 5)

    read = flow.throw(BACKEND_ERROR)

    assert read_request(TABLE, KEY) == read
    assert 8 == finish(flow, {"Item": handed(T0 + 5)}).token


def test_a_handoff_that_failed_and_did_not_land_raises():
    """The write failed and the item still shows our own grant: the error stands."""
    flow = handoff_flow(TABLE, GRANT, CONFIG, marker=MARK)
    next(flow)
    flow.send(T0 + 5)
    flow.throw(BACKEND_ERROR)

    with pytest.raises(LockBackendError):
        flow.send({"Item": OURS})


def test_another_write_of_our_owner_with_the_next_token_is_not_ours():
    """Our owner and the next token, written by another flow of our owner in the same
    millisecond (an expired lease taken over), carry another mark: not this hand-off."""
    flow = handoff_flow(TABLE, GRANT, CONFIG, marker=MARK)
    next(flow)
    flow.send(T0 + 5)

    assert None is finish(flow, ConditionFailed(handed(T0 + 5, mark="beef")))


def test_an_unmarked_handoff_that_failed_its_condition_reads_nothing():
    """Without a mark nothing can tell the write apart: a failed condition is a moved-on
    grant, at once."""
    flow = handoff_flow(TABLE, GRANT, CONFIG)
    next(flow)
    flow.send(T0 + 5)

    assert None is finish(flow, ConditionFailed(None))
