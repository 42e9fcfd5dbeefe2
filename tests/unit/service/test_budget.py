"""The account-wide PutImage budget over an in-memory DynamoDB item (no network)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from structlog.testing import capture_logs

from service.adapters.budget import (
    IDLE,
    MICROS,
    UNMOVED,
    BudgetedRegistry,
    DynamoPutImageBudget,
    Plan,
    budget_scope,
    fitting,
    plan,
    take_slot,
)
from service.domain.errors import RegistryThrottled
from service.domain.models import Outcome
from tests.unit.service.fakes import FakeClock, FakeRegistry, World, request

INTERVAL = 0.1  # 10/s at share 1.0


def conditional_failure(item: dict[str, Any]) -> ClientError:
    """DynamoDB's answer to a failed condition with ReturnValuesOnConditionCheckFailure."""
    response: dict[str, Any] = {
        "Error": {"Code": "ConditionalCheckFailedException", "Message": "no"},
        "Item": item,
    }
    return ClientError(response, "UpdateItem")  # type: ignore[arg-type]


class FakeBudgetTable:
    """The two conditional UpdateItems of the budget, applied to a dict (like DynamoDB:
    atomically, answering ConditionalCheckFailed with the old item)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.fail_with: Exception | None = None

    async def update_item(self, **params: Any) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(0)  # a round trip: other callers run meanwhile
        if self.fail_with is not None:
            raise self.fail_with
        key = params["Key"]["pk"]["S"]
        values = params["ExpressionAttributeValues"]
        item = self.items.get(key)
        tat = int(item["tat"]["N"]) if item else None
        if params["ConditionExpression"] == IDLE:
            ok = tat is None or tat <= int(values[":now"]["N"])
        else:
            assert params["ConditionExpression"] == UNMOVED
            ok = tat == int(values[":old"]["N"])
        if not ok:
            raise conditional_failure(dict(item or {}))
        self.items[key] = {
            "pk": {"S": key},
            "tat": values[":new"],
            "cleanup_at": values[":cleanup"],
        }
        return {}


def budget(table: FakeBudgetTable, clock: FakeClock, **options: Any) -> DynamoPutImageBudget:
    return DynamoPutImageBudget(
        table,  # type: ignore[arg-type]
        table="budget",
        rate_per_second=10.0,
        share=1.0,
        clock=clock,
        **options,
    )


def test_plan_when_idle_takes_now() -> None:
    """Believing the item idle (or absent), the slot is now and the condition is 'idle'."""
    assert Plan(slot=50, new_tat=60, old=None) == plan(50, None, 10)
    assert Plan(slot=50, new_tat=60, old=None) == plan(50, 40, 10)


def test_plan_when_busy_queues_after_the_believed_tat() -> None:
    """Believing a future tat, the slot is that tat, conditional on it being unmoved."""
    assert Plan(slot=70, new_tat=80, old=70) == plan(50, 70, 10)


def test_plan_for_a_batch_moves_tat_by_all_its_slots() -> None:
    """Reserving n slots at once moves tat n intervals past the first slot."""
    assert Plan(slot=70, new_tat=100, old=70) == plan(50, 70, 10, count=3)


def test_fitting_skips_callers_that_cannot_wait_without_using_a_slot() -> None:
    """A caller whose slot would be too far gets none; the next caller gets that slot."""
    assert [True, False, True, False] == fitting(100, 100, 10, [50, 5, 50, 15])


def test_scope_is_per_registry_and_region() -> None:
    """One schedule per account and Region, as ECR's quota."""
    assert "putimage#123456789012#eu-west-1" == budget_scope("123456789012", "eu-west-1")
    assert "putimage#default#default" == budget_scope(None, None)


def test_rate_and_share_are_validated() -> None:
    """A zero rate or a share above 1 is refused at construction."""
    with pytest.raises(ValueError, match="rate_per_second"):
        DynamoPutImageBudget(FakeBudgetTable(), table="t", rate_per_second=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="share"):
        DynamoPutImageBudget(FakeBudgetTable(), table="t", share=1.5)  # type: ignore[arg-type]


class SlowBudgetTable(FakeBudgetTable):
    """Each UpdateItem takes ``round_trip`` seconds of the clock."""

    def __init__(self, clock: FakeClock, round_trip: float) -> None:
        super().__init__()
        self.clock = clock
        self.round_trip = round_trip

    async def update_item(self, **params: Any) -> dict[str, Any]:
        answer = await super().update_item(**params)
        self.clock.now += self.round_trip
        return answer


async def test_waits_run_from_the_answer_not_from_before_the_round_trip() -> None:
    """Each reservation's write takes 0.05 s: the waits returned are counted from when
    they are returned, so a caller adding one to its clock lands on its slot (the first
    at once, the next one interval later), not a round trip after it."""
    clock = FakeClock()
    start = clock.now
    budget_ = budget(SlowBudgetTable(clock, 0.05), clock)
    slots = []
    for _ in range(2):
        wait = await budget_.reserve(5.0)
        slots.append(clock.now + wait - start)
    assert slots == pytest.approx([0.0, INTERVAL], abs=1e-6)


async def test_an_idle_slot_is_planned_a_round_trip_ahead() -> None:
    """Once a 0.05 s round trip has been seen, a reservation on an idle schedule gets the
    slot at which its answer comes back (a wait of 0), not the instant its write left
    (a wait of -0.05, a slot already past that would start beside the next one)."""
    clock = FakeClock()
    budget_ = budget(SlowBudgetTable(clock, 0.05), clock)
    await budget_.reserve(5.0)  # learns the round trip
    clock.now += 10.0  # the schedule is idle again
    assert 0.0 == pytest.approx(await budget_.reserve(5.0), abs=1e-6)


async def test_the_round_trip_lead_is_at_most_one_interval() -> None:
    """A 0.3 s round trip (a loaded replica's own lag) moves an idle slot at most one
    interval (0.1 s) ahead of its write, so a lag spike cannot idle the schedule for long:
    the slot is 0.2 s past when the answer comes."""
    clock = FakeClock()
    budget_ = budget(SlowBudgetTable(clock, 0.3), clock)
    await budget_.reserve(5.0)
    clock.now += 10.0
    assert -0.2 == pytest.approx(await budget_.reserve(5.0), abs=1e-6)


async def test_reservations_at_one_instant_are_spaced_by_the_interval() -> None:
    """Five reservations at the same instant get slots 0, 0.1, ..., 0.4 s away, one
    UpdateItem each."""
    table, clock = FakeBudgetTable(), FakeClock()
    shared = budget(table, clock)
    waits = [await shared.reserve(10.0) for _ in range(5)]
    assert [0.0, 0.1, 0.2, 0.3, 0.4] == pytest.approx(waits)
    assert 5 == table.calls


async def test_concurrent_local_reservations_are_batched() -> None:
    """Eight callers of one process at once: the first reserves alone, the seven that
    queued meanwhile share one UpdateItem; slots stay one interval apart."""
    table, clock = FakeBudgetTable(), FakeClock()
    shared = budget(table, clock)
    waits = await asyncio.gather(*(shared.reserve(10.0) for _ in range(8)))
    assert [i * INTERVAL for i in range(8)] == pytest.approx(sorted(waits))
    assert 2 == table.calls


async def test_a_cancelled_turn_leaves_the_queue_served() -> None:
    """The caller holding the turn is cancelled inside its UpdateItem: the callers queued
    behind it are still served by the next turn."""
    table, clock = FakeBudgetTable(), FakeClock()
    shared = budget(table, clock)
    entered, release = asyncio.Event(), asyncio.Event()
    plain = table.update_item

    async def slow(**params: Any) -> dict[str, Any]:
        entered.set()
        await release.wait()
        return await plain(**params)

    table.update_item = slow  # type: ignore[method-assign]
    holder = asyncio.create_task(shared.reserve(10.0))
    await entered.wait()
    others = [asyncio.create_task(shared.reserve(10.0)) for _ in range(3)]
    await asyncio.sleep(0)
    holder.cancel()
    table.update_item = plain  # type: ignore[method-assign]
    waits = await asyncio.wait_for(asyncio.gather(*others), 5)
    assert [0.0, 0.1, 0.2] == pytest.approx(sorted(waits))


async def test_idle_budget_answers_at_once() -> None:
    """After the schedule has drained, a reservation waits nothing."""
    table, clock = FakeBudgetTable(), FakeClock()
    shared = budget(table, clock)
    await shared.reserve(10.0)
    await shared.reserve(10.0)
    clock.now += 5
    assert 0.0 == await shared.reserve(10.0)


async def test_two_replicas_never_share_a_slot() -> None:
    """Two replicas (own belief each) on one item: every slot is distinct and slots are
    at least one interval apart."""
    table, clock = FakeBudgetTable(), FakeClock()
    one, two = budget(table, clock), budget(table, clock)
    slots: list[float] = []
    for i in range(12):
        replica = (one, two)[i % 3 == 0]
        slots.append(clock.now + await replica.reserve(10.0))
        clock.now += 0.013 * (i % 4)
    ordered = sorted(slots)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) >= INTERVAL - 1e-6


async def test_stale_belief_costs_one_failed_condition() -> None:
    """A replica whose belief is stale learns the real tat from the failed condition
    (ALL_OLD) and queues behind it with a second UpdateItem, no read."""
    table, clock = FakeBudgetTable(), FakeClock()
    one, two = budget(table, clock), budget(table, clock)
    await one.reserve(10.0)
    await one.reserve(10.0)
    calls = table.calls
    assert 0.2 == pytest.approx(await two.reserve(10.0))
    assert calls + 2 == table.calls


async def test_slot_beyond_the_allowed_wait_is_refused_and_not_taken() -> None:
    """A slot further away than max_wait raises registry_throttled with a Retry-After
    and leaves the schedule as it was."""
    table, clock = FakeBudgetTable(), FakeClock()
    shared = budget(table, clock)
    for _ in range(3):
        await shared.reserve(10.0)
    before = dict(table.items)
    with pytest.raises(RegistryThrottled) as caught:
        await shared.reserve(0.25)
    assert caught.value.retry_after == pytest.approx(0.3)
    assert "PutImageBudget" == caught.value.cause_code
    assert before == table.items
    assert 0.3 == pytest.approx(await shared.reserve(0.3))


async def test_endless_contention_is_bounded() -> None:
    """A condition that keeps failing ends after max_attempts with registry_throttled."""

    class Racing(FakeBudgetTable):
        async def update_item(self, **params: Any) -> dict[str, Any]:
            self.calls += 1
            raise conditional_failure({"tat": {"N": str(int(clock.now * MICROS) + self.calls)}})

    table, clock = Racing(), FakeClock()
    shared = budget(table, clock, max_attempts=4)
    with pytest.raises(RegistryThrottled):
        await shared.reserve(10.0)
    assert 4 == table.calls


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "x"}}, "UpdateItem"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
    ],
)
async def test_budget_table_failure_fails_open(error: Exception) -> None:
    """A DynamoDB error other than a failed condition lets the PutImage go at once and
    logs putimage_budget_unavailable."""
    table, clock = FakeBudgetTable(), FakeClock()
    table.fail_with = error
    with capture_logs() as logs:
        assert 0.0 == await budget(table, clock).reserve(10.0)
    assert ["putimage_budget_unavailable"] == [e["event"] for e in logs]


async def test_item_carries_a_ttl_a_day_ahead() -> None:
    """The item gets cleanup_at (epoch seconds) for the table's TTL."""
    table, clock = FakeBudgetTable(), FakeClock()
    await budget(table, clock).reserve(1.0)
    (item,) = table.items.values()
    assert int(clock.now + 86_400) == int(item["cleanup_at"]["N"])


# --- BudgetedRegistry -------------------------------------------------------------------


async def put(registry: BudgetedRegistry, *, timeout: float) -> None:
    req = request(1)
    await registry.put_image(
        req.ref,
        manifest=req.manifest,
        media_type=req.media_type,
        digest=req.digest,
        timeout=timeout,
    )


class ScriptedBudget:
    def __init__(self, waits: list[float | Exception]) -> None:
        self.waits = waits
        self.asked: list[float] = []

    async def reserve(self, max_wait: float) -> float:
        self.asked.append(max_wait)
        answer = self.waits.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def ping(self) -> None:
        return None


async def test_put_waits_for_its_slot_then_calls_with_what_is_left() -> None:
    """PutImage sleeps the reserved wait and the call gets the timeout less that wait."""
    clock, inner = FakeClock(), FakeRegistry()
    waits: list[float] = []
    registry = BudgetedRegistry(
        inner, ScriptedBudget([0.7]), clock=clock, sleep=clock.sleep, on_wait=waits.append
    )
    await put(registry, timeout=5.0)
    assert clock.sleeps == pytest.approx([0.7])
    assert waits == pytest.approx([0.7])
    assert inner.puts[0].timeout == pytest.approx(4.3)


async def test_reserved_slot_is_the_one_put_image_uses() -> None:
    """``reserve`` takes the slot ahead of the call (beside the intent write); the
    following PutImage of that digest waits for it without asking the budget again."""
    clock, inner = FakeClock(), FakeRegistry()
    budget_ = ScriptedBudget([0.4, 9.0])
    registry = BudgetedRegistry(inner, budget_, clock=clock, sleep=clock.sleep)
    req = request(1)
    await registry.reserve(req.ref, req.digest)
    await registry.reserve(req.ref, req.digest)  # already held: no second slot
    await put(registry, timeout=5.0)
    assert clock.sleeps == pytest.approx([0.4])
    assert 1 == len(budget_.asked)


class SlowScriptedBudget(ScriptedBudget):
    """Each reservation takes ``seconds`` of the clock (a slow or contended DynamoDB)."""

    def __init__(self, waits: list[float | Exception], clock: FakeClock, seconds: float) -> None:
        super().__init__(waits)
        self.clock = clock
        self.seconds = seconds

    async def reserve(self, max_wait: float) -> float:
        self.clock.now += self.seconds
        return await super().reserve(max_wait)


async def test_a_slow_reservation_counts_against_the_call_timeout() -> None:
    """A reservation that took 4 s of a 10 s timeout, then a 1 s wait for the slot: the
    ECR call gets the 5 s left, so it still ends when the use case said it must."""
    clock, inner = FakeClock(), FakeRegistry()
    start = clock.now
    registry = BudgetedRegistry(
        inner, SlowScriptedBudget([1.0], clock, 4.0), clock=clock, sleep=clock.sleep
    )
    await put(registry, timeout=10.0)
    assert clock.now - start + inner.puts[0].timeout == pytest.approx(10.0)
    assert inner.puts[0].timeout == pytest.approx(5.0)


async def test_a_reservation_longer_than_the_timeout_calls_no_ecr() -> None:
    """A reservation that took the call's whole timeout: registry_throttled and no ECR
    call; its slot is not kept (it would be stale by the retry), the retry reserves anew."""
    clock, inner = FakeClock(), FakeRegistry()
    budget_ = SlowScriptedBudget([0.0, 0.0], clock, 6.0)
    registry = BudgetedRegistry(inner, budget_, clock=clock, sleep=clock.sleep)
    with pytest.raises(RegistryThrottled):
        await put(registry, timeout=5.0)
    assert [] == inner.puts
    await put(registry, timeout=10.0)
    assert (2, 1) == (len(budget_.asked), len(inner.puts))


async def test_a_slot_that_began_during_its_reservation_is_due_from_the_answer() -> None:
    """The budget was idle: the slot is "now" as the write left, 0.1 s before the answer
    came (a wait of -0.1). Reserved ahead and called at once, it is the call's: no second
    reservation, although it began longer ago than forget_after."""
    clock, inner = FakeClock(), FakeRegistry()
    budget_ = SlowScriptedBudget([-0.1], clock, 0.1)
    registry = BudgetedRegistry(
        inner, budget_, clock=clock, sleep=clock.sleep, forget_after_seconds=0.05
    )
    req = request(1)
    await registry.reserve(req.ref, req.digest)
    await put(registry, timeout=5.0)
    assert (1, 1, []) == (len(budget_.asked), len(inner.puts), clock.sleeps)


async def test_slots_are_reserved_up_to_max_wait() -> None:
    """The budget is asked for a slot at most max_wait away, whatever the call timeout."""
    budget_ = ScriptedBudget([0.0, 0.0])
    registry = BudgetedRegistry(FakeRegistry(), budget_, max_wait_seconds=30.0)
    for timeout in (10.0, 2.5):
        await put(registry, timeout=timeout)
    assert [30.0, 30.0] == budget_.asked


async def test_slot_beyond_the_call_timeout_is_held_across_retries() -> None:
    """A slot 12 s away with a 5 s timeout (1 s reserve): the call waits 4 s and raises
    registry_throttled; the retry of the same push waits for the same slot (no second
    reservation) and then calls ECR."""
    clock, inner = FakeClock(), FakeRegistry()
    budget_ = ScriptedBudget([12.0])
    registry = BudgetedRegistry(
        inner, budget_, clock=clock, sleep=clock.sleep, call_reserve_seconds=1.0
    )
    with pytest.raises(RegistryThrottled) as caught:
        await put(registry, timeout=5.0)
    assert caught.value.retry_after == pytest.approx(8.0)
    assert [] == inner.puts
    await clock.sleep(1.0)  # the use case's backoff
    for _ in range(2):
        with contextlib.suppress(RegistryThrottled):
            await put(registry, timeout=5.0)
    assert 1 == len(inner.puts)
    assert clock.sleeps == pytest.approx([4.0, 1.0, 4.0, 3.0])
    assert [30.0] == budget_.asked


async def test_held_slots_nobody_came_back_for_are_forgotten() -> None:
    """A held slot long past is dropped; the next push of that key reserves afresh."""
    clock = FakeClock()
    budget_ = ScriptedBudget([12.0, 0.0])
    registry = BudgetedRegistry(FakeRegistry(), budget_, clock=clock, sleep=clock.sleep)
    with pytest.raises(RegistryThrottled):
        await put(registry, timeout=5.0)
    clock.now += 600
    await put(registry, timeout=5.0)
    assert 2 == len(budget_.asked)


async def put_late(
    late: float, waits: list[float | Exception]
) -> tuple[FakeClock, FakeRegistry, ScriptedBudget]:
    """Reserve a slot (forget_after 50 ms), then call PutImage ``late`` seconds after it."""
    clock, inner = FakeClock(), FakeRegistry()
    budget_ = ScriptedBudget(waits)
    registry = BudgetedRegistry(
        inner, budget_, clock=clock, sleep=clock.sleep, forget_after_seconds=0.05
    )
    req = request(1)
    await registry.reserve(req.ref, req.digest)
    clock.now += late
    await put(registry, timeout=5.0)
    return clock, inner, budget_


async def test_a_call_within_forget_after_of_its_held_slot_uses_it() -> None:
    """A reserved slot already past by less than forget_after (the intent write took a
    few ms) is the call's: it goes at once, without a second reservation."""
    clock, inner, budget_ = await put_late(0.04, [0.0])
    assert (1, 1, []) == (len(budget_.asked), len(inner.puts), clock.sleeps)


async def test_a_call_later_than_forget_after_drops_its_slot_and_reserves_anew() -> None:
    """A call that comes more than forget_after after its reserved slot would start beside
    the slots after it: the old slot is left unused and the call waits for a new one."""
    clock, inner, budget_ = await put_late(0.2, [0.0, 0.3])
    assert (2, 1) == (len(budget_.asked), len(inner.puts))
    assert clock.sleeps == pytest.approx([0.3])


async def test_exhausted_budget_never_calls_ecr() -> None:
    """No slot in time: registry_throttled, and ECR is not called."""
    inner = FakeRegistry()
    registry = BudgetedRegistry(inner, ScriptedBudget([RegistryThrottled("full")]))
    with pytest.raises(RegistryThrottled):
        await put(registry, timeout=5.0)
    assert [] == inner.puts


async def test_only_put_image_is_budgeted() -> None:
    """Reads (BatchGetImage, DescribeRepositories) pass through without a reservation."""
    budget_ = ScriptedBudget([])
    inner = FakeRegistry()
    registry = BudgetedRegistry(inner, budget_)
    req = request(1)
    inner.tags[req.ref] = req.digest
    inner.images[(req.ref.repository, req.digest)] = (req.manifest, req.media_type)
    assert req.digest == await registry.tag_digest(req.ref)
    assert (req.manifest, req.media_type) == await registry.manifest(req.ref.repository, req.digest)
    await registry.ping()
    assert [] == budget_.asked


async def test_use_case_retries_an_exhausted_budget_then_pushes() -> None:
    """The push use case treats a full budget like ECR throttling: it backs off and tries
    again within its lease, and the push succeeds once a slot is near."""
    world = World()
    world.service._registry = BudgetedRegistry(  # swap the port under test
        world.registry,
        ScriptedBudget([RegistryThrottled("full", retry_after=1.0), 0.2]),
        clock=world.clock,
        sleep=world.clock.sleep,
    )
    result = await world.push(request(1, sequence=1))
    assert Outcome.PUSHED == result.outcome
    assert 1 == len(world.registry.puts)


async def test_use_case_backoff_does_not_outlast_a_held_slot() -> None:
    """A slot 9.02 s away, calls of at most 10 s less 1 s kept for the call: the first
    call waits 9 s and raises with the slot 0.02 s away. The use case's backoff (0.1 s
    here) is cut to that, so the retry meets its slot on time and keeps it."""
    world = World()
    budget_ = ScriptedBudget([9.02])
    world.service._registry = BudgetedRegistry(
        world.registry,
        budget_,
        clock=world.clock,
        sleep=world.clock.sleep,
        forget_after_seconds=0.05,
    )
    start = world.clock.now
    result = await world.push(request(1, sequence=1))
    assert Outcome.PUSHED == result.outcome
    assert (1, 1) == (len(budget_.asked), len(world.registry.puts))
    assert world.clock.sleeps == pytest.approx([9.0, 0.02])
    assert world.clock.now - start == pytest.approx(9.02)


async def test_use_case_keeps_its_place_for_a_slot_beyond_one_call() -> None:
    """A slot 20 s away, ECR calls of at most 10 s: the push waits over two attempts of
    the use case for one reservation, and pushes; the lease is renewed once what is left
    of it could not hold a whole call."""
    world = World()
    budget_ = ScriptedBudget([20.0])
    world.service._registry = BudgetedRegistry(
        world.registry, budget_, clock=world.clock, sleep=world.clock.sleep
    )
    result = await world.push(request(1, sequence=1))
    assert Outcome.PUSHED == result.outcome
    assert (1, 1) == (len(budget_.asked), len(world.registry.puts))
    assert 1 == world.leases.granted[0].renewals


async def test_a_call_that_wakes_too_late_for_its_slot_takes_another() -> None:
    """The event loop stalled: the call woke 0.5 s after its slot (more than
    forget_after). Starting then could bunch with the slots after it, so it reserves
    another slot and waits for that one; a call that wakes on time does not."""
    clock, inner = FakeClock(), FakeRegistry()
    overslept = [0.5]

    async def stalling(seconds: float) -> None:
        await clock.sleep(seconds + (overslept.pop() if overslept else 0.0))

    budget_ = ScriptedBudget([0.3, 0.2])
    registry = BudgetedRegistry(inner, budget_, clock=clock, sleep=stalling)
    await put(registry, timeout=5.0)
    assert (2, 1) == (len(budget_.asked), len(inner.puts))
    assert clock.sleeps == pytest.approx([0.8, 0.2])


async def test_a_push_by_digest_that_wakes_too_late_takes_another_slot() -> None:
    """The same for a call without a lease (a push by digest): a wake-up later than
    forget_after past its slot reserves again, and one on time goes ahead."""
    clock = FakeClock()
    overslept = [0.5]

    async def stalling(seconds: float) -> None:
        await clock.sleep(seconds + (overslept.pop() if overslept else 0.0))

    budget_ = ScriptedBudget([0.3, 0.2])
    await take_slot(budget_, 9.0, forget_after=0.1, clock=clock, sleep=stalling)
    assert 2 == len(budget_.asked)
    assert clock.sleeps == pytest.approx([0.8, 0.2])
