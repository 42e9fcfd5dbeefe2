"""Properties of the push use case over fakes, for any order of pushes."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

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
    """Whatever the order: the recorded sequence never decreases, ECR's tag always equals
    the record, no lease stays held, and a push is superseded exactly when its sequence is
    below the recorded one (and its digest differs)."""

    async def run() -> None:
        world = World()
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

    asyncio.run(run())
