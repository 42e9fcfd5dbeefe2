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
