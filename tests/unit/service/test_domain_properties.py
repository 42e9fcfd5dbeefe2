"""Properties of the push use case over fakes, for any order of pushes."""

from __future__ import annotations

import asyncio
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.errors import BackendUnavailable
from service.domain.models import Outcome
from tests.unit.service.fakes import World, request

PUSHES = st.lists(
    st.tuples(st.integers(0, 4), st.one_of(st.none(), st.integers(0, 6))), max_size=12
)


@settings(max_examples=60, deadline=None)
@given(PUSHES)
def test_tag_never_moves_backwards_and_matches_its_record(
    pushes: list[tuple[int, int | None]],
) -> None:
    """Whatever the order, whether the use case reads the record or takes it from the
    lease's grant: the recorded sequence never decreases, ECR's tag always equals the
    record, no lease stays held, and a push is superseded exactly when its sequence is
    below the recorded one (and its digest differs)."""

    async def run(*, carried: bool) -> None:
        world = World()
        if carried:
            world.leases.records = world.records
        recorded: int | None = None
        for n, sequence in pushes:
            req = request(n, sequence=sequence)
            before = world.records.items.get(req.ref.key)
            result = await world.push(req)
            after = world.records.items[req.ref.key]
            if recorded is not None:
                assert after.sequence is not None
                assert after.sequence >= recorded
            recorded = after.sequence
            assert after.digest == world.registry.tags[req.ref]
            older = (
                before is not None
                and before.sequence is not None
                and sequence is not None
                and sequence < before.sequence
                and before.digest != req.digest
            )
            assert older == (result.outcome is Outcome.SUPERSEDED)
            assert [] == world.leases.held()

    asyncio.run(run(carried=False))
    asyncio.run(run(carried=True))


REFUSALS = st.lists(
    st.tuples(st.integers(0, 4), st.one_of(st.none(), st.integers(0, 6)), st.booleans()),
    max_size=10,
)


@settings(max_examples=60, deadline=None)
@given(REFUSALS)
def test_no_refused_write_strands_the_tag(pushes: list[tuple[int, int | None, bool]]) -> None:
    """Whatever pushes had their record refused for good after PutImage (a value the
    table cannot store), a later build with a higher sequence is pushed, the tag and the
    record name it, and no intent is left behind."""

    async def run() -> None:
        world = World()
        for n, sequence, refuse in pushes:
            req = request(n, sequence=sequence)
            if refuse:
                error = BackendUnavailable("refused", cause_code="ValidationException")
                error.retryable = False
                world.records.refused[req.digest] = error
            with contextlib.suppress(BackendUnavailable):
                await world.push(req)
        last = request(99, sequence=100)
        result = await world.push(last)
        assert Outcome.PUSHED == result.outcome
        record = world.records.items[last.ref.key]
        assert (last.digest, last.digest, 100) == (
            world.registry.tags[last.ref],
            record.digest,
            record.sequence,
        )
        assert {} == world.records.pending
        assert [] == world.leases.held()

    asyncio.run(run())


class Crash(BaseException):
    """The holder's process dies here (a BaseException: no handler of the use case's
    treats it as an answer)."""


#: where a push's holder may die: after its acquire (its intent written, nothing
#: decided), inside PutImage before it lands, after it landed, after the commit
CRASH_POINTS = st.sampled_from([None, "acquired", "before_put", "after_put", "after_commit"])
CRASHING = st.lists(
    st.tuples(st.integers(0, 4), st.one_of(st.none(), st.integers(0, 6)), CRASH_POINTS),
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(CRASHING)
def test_a_holder_dying_at_any_point_loses_nothing(
    pushes: list[tuple[int, int | None, str | None]],
) -> None:
    """Holders die at every crash point of the push (module doc of ``push``), their
    intent left in the item, their lease lapsing. After each push that lives: ECR's tag
    equals the record, the record's sequence never went down and is at least the
    sequence of every sequenced build whose PutImage landed (a landed put is adopted,
    never forgotten, never adopted below the record), and no lease stays held. A final
    newer build is pushed and leaves no intent."""

    async def run(*, carried: bool) -> None:
        world = World()
        if carried:
            world.leases.records = world.records
        ref = request(0).ref
        landed: list[int] = []  # sequences of sequenced builds ECR accepted
        asked: dict[str, int | None] = {}
        crash_at: list[str | None] = [None]

        def die(point: str) -> None:
            if crash_at[0] == point:
                crash_at[0] = None
                raise Crash

        acquire, append = world.leases.acquire, world.history.append

        async def acquiring(key: str, *, timeout: float, intent: object = None) -> object:
            lease = await acquire(key, timeout=timeout, intent=intent)  # type: ignore[arg-type]
            if crash_at[0] == "acquired":
                world.leases.holders.pop(key, None)  # it lapses: nobody releases it
            die("acquired")
            return lease

        async def appending(entry: object) -> None:
            die("after_commit")
            await append(entry)  # type: ignore[arg-type]

        def put_landed() -> None:
            digest = world.registry.tags[ref]
            if asked.get(digest) is not None:
                landed.append(asked[digest])  # type: ignore[arg-type]
            die("after_put")

        world.leases.acquire = acquiring  # type: ignore[method-assign, assignment]
        world.history.append = appending  # type: ignore[method-assign]
        world.registry.during_put = lambda: die("before_put")
        world.registry.after_put = put_landed
        recorded: int | None = None
        for n, sequence, point in [*pushes, (99, 100, None)]:
            req = request(n, sequence=sequence)
            asked[req.digest] = sequence
            crash_at[0] = point
            try:
                await world.push(req)
            except Crash:
                continue
            finally:
                crash_at[0] = None
            record = world.records.items[req.ref.key]
            assert record.digest == world.registry.tags[req.ref]
            if recorded is not None:
                assert record.sequence is not None
                assert record.sequence >= recorded
            recorded = record.sequence
            assert all(record.sequence is not None and record.sequence >= s for s in landed)
            assert [] == world.leases.held()
        assert request(99).digest == world.registry.tags[ref]
        assert {} == world.records.pending

    asyncio.run(run(carried=False))
    asyncio.run(run(carried=True))
