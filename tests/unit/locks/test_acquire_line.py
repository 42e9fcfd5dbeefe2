"""acquire_flow against the fake table: the line of waiters across processes (numbers
taken, served in order, given up, passed by time) as the table's conditions enforce it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from locks._models import QUEUE_GONE, QUEUE_NEXT, QUEUE_SERVED, Grant, Holder
from locks._protocol import (
    Call,
    Now,
    Place,
    Sleep,
    acquire_flow,
    acquire_request,
    join_request,
    release_request,
)
from locks.exceptions import AcquireTimeout, LeaseUnavailable, LockBackendError
from tests.unit.locks.fakes import CONFIG, HELD, KEY, ME, OTHER, T0, TABLE, FakeTable, item, number

HANDED = Grant(KEY, ME, 99, T0 + 30, int(T0) + 10_030, T0 + 9_030)  # from a local holder
BACKEND_ERROR = LockBackendError(
    "DynamoDB update_item failed", code="InternalServerError", cause=None
)
JOIN = "#queue_next = if_not_exists"  # in a join's update expression only
WITHDRAW = "ADD #queue_gone"  # in a withdrawal's


def gone(table: FakeTable) -> list[int]:
    """The given-up numbers the item holds."""
    return [int(n) for n in (table.get() or {}).get(QUEUE_GONE, {}).get("NS", [])]


def holder_of(table: FakeTable) -> str | None:
    """Who the item names as the lease's holder (or its last one, once released)."""
    return Holder.from_item(table.get()).owner


class FailingTable(FakeTable):
    """A FakeTable whose update calls with ``failing`` in their expression raise a
    backend error instead of landing."""

    def __init__(self, failing: str, **options: Any) -> None:
        super().__init__(**options)
        self.failing = failing

    def execute(self, call: object) -> Any:
        assert isinstance(call, Call), call
        if self.failing in call.params.get("UpdateExpression", ""):
            self.calls.append(call)
            raise BACKEND_ERROR
        return super().execute(call)


class Waiter:
    """One acquire flow of ``owner`` against ``table``: every clock reading is the time
    given to ``run``, every call goes to the table (a backend error into the flow)."""

    def __init__(
        self, table: FakeTable, owner: str = ME, timeout: float | None = None, **options: Any
    ) -> None:
        self.flow = acquire_flow(TABLE, KEY, owner, CONFIG, timeout, random.Random(0), **options)
        self.table = table
        self.calls: list[Call] = []

    def run(self, now: float, answer: Any = None) -> Any:
        """Go on (answering the last Sleep with ``answer``) to the next Sleep, which it
        returns, or to the flow's end: its grant."""
        error: LockBackendError | None = None
        while True:
            try:
                request = self.flow.throw(error) if error else self.flow.send(answer)
            except StopIteration as stop:
                return stop.value[0]
            error = None
            if isinstance(request, Sleep):
                return request
            if isinstance(request, Now):
                answer = now
                continue
            assert isinstance(request, Call), request
            self.calls.append(request)
            try:
                answer = self.table.execute(request)
            except LockBackendError as raised:
                error = raised


def release(table: FakeTable, now: float, grant: Grant | None = None) -> None:
    """Release ``grant`` (by default the holder of HELD's, sent a second before T0)."""
    grant = grant or Grant(KEY, OTHER, 5, T0 - 1_000, int(T0) + 60_000, T0 + 59_000)
    assert "Attributes" in table.execute(release_request(TABLE, grant, now, CONFIG))


def held(table: FakeTable | None = None) -> FakeTable:
    table = table or FakeTable()
    table.put(HELD)
    return table


def test_uncontended_acquire_is_one_call():
    """A free key with nobody in line: one write, no number taken."""
    waiter = Waiter(FakeTable())

    grant = waiter.run(T0)

    assert (ME, 1, None) == (grant.owner, len(waiter.calls), number(waiter.table.get(), QUEUE_NEXT))


@pytest.mark.parametrize("queued", [False, True])
def test_single_attempt_takes_no_number(queued):
    """timeout=0 on a held lease: one attempt, LeaseUnavailable, the item untouched."""
    table = held()
    waiter = Waiter(table, timeout=0, queued=queued)

    with pytest.raises(LeaseUnavailable):
        waiter.run(T0)

    assert (1, HELD) == (len(waiter.calls), table.get())


def test_head_takes_a_freed_lease_in_one_write_serving_its_number():
    """Woken after the release, the only waiter takes the lease with one conditional
    write as number 1, which moves queue_served to 1."""
    table = held()
    waiter = Waiter(table)
    waiter.run(T0)
    release(table, T0 + 100)
    before = len(waiter.calls)

    grant = waiter.run(T0 + 200)

    expected = [acquire_request(TABLE, KEY, ME, T0 + 200, CONFIG, place=Place(1, 0))]
    assert (ME, expected, 1) == (
        grant.owner,
        waiter.calls[before:],
        number(table.get(), QUEUE_SERVED),
    )


def test_queued_waiter_joins_first_and_sleeps_on_the_joins_view():
    """With ``queued`` on a held lease the waiter takes a number, then sleeps: no attempt."""
    waiter = Waiter(held(), queued=True)

    sleep = waiter.run(T0)

    assert ([join_request(TABLE, KEY)], Sleep) == (waiter.calls, type(sleep))


def test_queued_head_of_an_empty_line_on_a_free_lease_tries_at_once():
    """With ``queued``, a number at the head while nobody holds the lease: the attempt
    follows the join at once, from that place."""
    table = FakeTable()
    table.put(item(owner=OTHER, token=5, expires_at=0, freed_at=T0 - 5_000))
    waiter = Waiter(table, queued=True)

    grant = waiter.run(T0)

    expected = [
        join_request(TABLE, KEY),
        acquire_request(TABLE, KEY, ME, T0, CONFIG, place=Place(1, 0)),
    ]
    assert (ME, expected) == (grant.owner, waiter.calls)


def test_queued_waiter_on_a_missing_item_tries_at_once():
    """With ``queued`` and no item the join is refused: the waiter tries at once, with
    no number."""
    waiter = Waiter(FakeTable(), queued=True)

    grant = waiter.run(T0)

    expected = [join_request(TABLE, KEY), acquire_request(TABLE, KEY, ME, T0, CONFIG)]
    assert (ME, expected) == (grant.owner, waiter.calls)


def test_local_hand_off_leaves_the_number_given_up():
    """A waiter served by a local hand-off returns that grant and its number is in
    queue_gone, for the waiters behind it to pass at once."""
    table = held()
    waiter = Waiter(table)
    waiter.run(T0)

    assert (HANDED, [1]) == (waiter.run(T0 + 30, HANDED), gone(table))


def test_local_hand_off_survives_a_failed_withdrawal():
    """A backend error on the withdrawal is swallowed: the handed grant is returned."""
    waiter = Waiter(held(FailingTable(WITHDRAW)))
    waiter.run(T0)

    assert HANDED == waiter.run(T0 + 30, HANDED)


def test_timed_out_waiter_leaves_its_number_given_up():
    """A waiter that timed out withdrew its number: it is in queue_gone."""
    table = held()
    waiter = Waiter(table, timeout=0.05)
    waiter.run(T0)

    with pytest.raises(AcquireTimeout):
        waiter.run(T0 + 60)

    assert [1] == gone(table)


def test_failed_join_leaves_the_waiter_sleeping_without_a_number():
    """A backend error on the join is swallowed: no number is taken, the waiter sleeps."""
    table = held(FailingTable(JOIN))
    waiter = Waiter(table)

    assert (Sleep, None) == (type(waiter.run(T0)), number(table.get(), QUEUE_NEXT))


def test_line_is_served_first_come_first_served():
    """A then B wait on a held lease; after its release B (woken first) is refused and
    A, ahead of it, is granted."""
    table = held()
    first, second = Waiter(table, "a"), Waiter(table, "b")
    first.run(T0)
    second.run(T0 + 10)
    release(table, T0 + 100)

    refused_b = second.run(T0 + 110)
    granted_a = first.run(T0 + 120)

    assert (Sleep, "a", "a") == (type(refused_b), granted_a.owner, holder_of(table))


def test_grant_counts_the_waiters_behind_it():
    """A grant taken with another waiter still in line says so (``waiting``)."""
    table = held()
    first, second = Waiter(table, "a"), Waiter(table, "b")
    first.run(T0)
    second.run(T0 + 10)
    release(table, T0 + 100)

    assert 1 == first.run(T0 + 120).waiting


def test_withdrawn_number_ahead_is_passed_at_once_and_cleared():
    """Behind a number given up, a waiter is head once it sees so: it tries again at once
    and its grant removes that number from queue_gone."""
    table = held()
    quitter, waiter = Waiter(table, "a", timeout=0.05), Waiter(table, "b")
    quitter.run(T0)
    waiter.run(T0 + 10)
    with pytest.raises(AcquireTimeout):
        quitter.run(T0 + 60)
    release(table, T0 + 100)

    sleep = waiter.run(T0 + 110)  # refused: it still counted the quitter ahead
    grant = waiter.run(T0 + 110)

    assert (0.0, "b", 2, []) == (
        sleep.seconds,
        grant.owner,
        number(table.get(), QUEUE_SERVED),
        gone(table),
    )


def test_newcomer_does_not_take_a_free_lease_ahead_of_the_line():
    """A free lease with a waiter in line refuses an attempt without a number: the
    newcomer joins behind."""
    table = held()
    Waiter(table, "a").run(T0)  # number 1
    release(table, T0 + 100)

    sleep = Waiter(table, "c").run(T0 + 110)

    assert (Sleep, OTHER, 2) == (type(sleep), holder_of(table), number(table.get(), QUEUE_NEXT))


def test_waiter_passed_while_asleep_is_refused_and_joins_again():
    """A head that slept through its turn was passed (queue_served moved past it): its
    attempt on the lease freed again is refused, and it takes a new number at the back."""
    table = held()
    sleeper, passer = Waiter(table, "a"), Waiter(table, "b")
    sleeper.run(T0)  # number 1
    passer.run(T0 + 10)  # number 2
    release(table, T0 + 100)
    release(table, T0 + 2_200, passer.run(T0 + 2_101))  # passes number 1, then releases

    sleep = sleeper.run(T0 + 2_300)

    assert (Sleep, "b", 3) == (type(sleep), holder_of(table), number(table.get(), QUEUE_NEXT))


@pytest.mark.parametrize(("free_for", "holder"), [(2_000, OTHER), (2_001, ME)])
def test_dead_waiter_ahead_is_passed_once_the_lease_was_free_for_claim(free_for, holder):
    """A number taken by a waiter that died (nobody behind it takes its turn) holds the
    line only while the lease has been free for at most ``claim`` (2 s) per such number."""
    table = held()
    table.execute(join_request(TABLE, KEY))  # number 1, then nothing
    waiter = Waiter(table)
    waiter.run(T0)  # number 2
    release(table, T0 + 100)

    waiter.run(T0 + 100 + free_for)

    assert holder == holder_of(table)


def test_waiter_works_without_all_old():
    """On a backend that sends no old item with a failed condition (dynalite), the
    waiter reads the item, joins and is granted after the release."""
    table = held(FakeTable(all_old=False))
    waiter = Waiter(table)
    waiter.run(T0)
    release(table, T0 + 100)

    grant = waiter.run(T0 + 200)

    ops = ["update_item", "get_item", "update_item", "update_item"]
    assert (ME, ops) == (grant.owner, [call.op for call in waiter.calls])


def test_a_waiter_that_cannot_take_a_number_backs_off():
    """Joining fails every time (a throttled table): the waiter's sleeps grow towards the
    cap instead of polling at the base delay forever."""
    waiter = Waiter(held(FailingTable(JOIN)))

    sleeps = [waiter.run(T0).seconds]
    sleeps += [waiter.run(T0, answer=True).seconds for _ in range(5)]

    # base 0.02 s, cap 0.25 s, jitter takes up to half off
    assert sleeps[0] <= CONFIG.retry_base_seconds
    assert sleeps[-1] >= CONFIG.retry_cap_seconds / 2


def test_a_try_on_a_free_lease_with_a_line_of_given_up_numbers_is_granted():
    """Everyone in line gave up: a single attempt is refused by the line, takes a number
    and is granted from its place at once (no sleep), clearing the line."""
    table = FakeTable()
    table.put(
        item(owner=OTHER, token=5, expires_at=0, queue_next=2, queue_served=0, queue_gone=(1, 2))
    )
    waiter = Waiter(table, timeout=0)

    assert 0 == waiter.run(T0).seconds
    grant = waiter.run(T0, answer=False)

    assert ME == grant.owner
    assert (3, 3, []) == (
        number(table.get(), QUEUE_SERVED),
        number(table.get(), QUEUE_NEXT),
        gone(table),
    )


def test_a_try_behind_a_live_waiter_on_a_free_lease_gives_its_number_back():
    """A waiter ahead may still come for the lease (it was freed just now): the single
    attempt is refused from its place too, withdraws the number and raises."""
    table = FakeTable()
    table.put(item(owner=OTHER, token=5, expires_at=0, freed_at=T0, queue_next=1, queue_served=0))
    waiter = Waiter(table, timeout=0)

    assert 0 == waiter.run(T0).seconds
    with pytest.raises(LeaseUnavailable):
        waiter.run(T0, answer=False)

    assert [2] == gone(table)
