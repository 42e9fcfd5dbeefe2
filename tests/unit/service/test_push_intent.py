"""The intent written into the tag's record before ``put_image``: a holder that dies after
ECR accepted its write and before its record write leaves the intent behind, and the next
holder settles it (adopts the pending digest when ECR names it, else drops it) before it
compares sequences."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from service.domain.errors import BackendUnavailable, LeaseLost, RegistryFault
from service.domain.models import Outcome, PendingPush
from tests.unit.service.fakes import World, request


class Crash(Exception):
    """The holder's process dies here."""


def crash() -> None:
    raise Crash


async def crash_after_put(world: World, sequence: int | None, n: int | None = None) -> str:
    """Push build ``n`` (default: ``sequence``); ECR accepts it, then its holder dies."""
    req = request(sequence if n is None else n, sequence=sequence)  # type: ignore[arg-type]
    world.registry.after_put = crash
    with pytest.raises(Crash):
        await world.push(req)
    world.registry.after_put = None
    return req.digest


async def test_intent_is_written_before_put_image_and_cleared_by_the_record(
    world: World,
) -> None:
    """While PutImage runs the item carries the intent the acquire wrote (the request as
    asked, no token: no write of its own); the commit that follows clears it."""
    req = request(1, sequence=7)
    seen: list[PendingPush | None] = []
    world.registry.during_put = lambda: seen.append(world.records.pending.get(req.ref.key))
    result = await world.push(req)
    assert Outcome.PUSHED == result.outcome
    assert [(req.digest, 7, None, "ci", "req-1")] == [
        (p.digest, p.sequence, p.token, p.caller, p.request_id) for p in seen if p
    ]
    assert (0, 1) == (world.records.intent_writes, world.leases.granted[0].commits)
    assert {} == world.records.pending
    assert req.digest == world.records.items[req.ref.key].digest


async def test_no_intent_left_when_ecr_is_not_called(world: World) -> None:
    """Unchanged and superseded pushes call no PutImage: their release clears the intent
    their acquire wrote, and no push writes an intent of its own."""
    await world.push(request(2, sequence=2))
    assert Outcome.UNCHANGED == (await world.push(request(2, sequence=2))).outcome
    assert {} == world.records.pending
    assert Outcome.SUPERSEDED == (await world.push(request(1, sequence=1))).outcome
    assert {} == world.records.pending
    assert 0 == world.records.intent_writes


async def test_an_undecided_intent_that_would_not_put_is_dropped_without_ecr(
    world: World,
) -> None:
    """A holder died after its acquire wrote its intent, before deciding. Its request
    was older than the record: decided again, it calls no PutImage, so the next holder
    neither asks ECR nor adopts it, even where ECR names its digest (drift)."""
    await world.push(request(5, sequence=5))
    ref = request(0).ref
    world.records.pending[ref.key] = PendingPush(request(2).digest, 2, None, "ci", "old", "n")
    world.registry.tags[ref] = request(2).digest  # ECR names the dead holder's digest
    before = len(world.registry.reads)
    result = await world.push(request(6, sequence=6))
    asked = world.registry.reads[before:]
    assert (Outcome.PUSHED, [], {}) == (result.outcome, asked, world.records.pending)
    assert (request(6).digest, 6) == (
        world.records.items[ref.key].digest,
        world.records.items[ref.key].sequence,
    )
    assert "adopted" not in {e.outcome for e in world.history.entries}


async def test_an_undecided_unsequenced_intent_is_adopted_with_the_records_sequence(
    world: World,
) -> None:
    """An unsequenced push's intent carries no sequence; adopted, it keeps the record's
    (as its own put would have): an older sequenced build stays superseded."""
    await world.push(request(1, sequence=5))
    crashed = await crash_after_put(world, None, 3)
    result = await world.push(request(4, sequence=4))
    assert (Outcome.SUPERSEDED, crashed, 5) == (
        result.outcome,
        result.current_digest,
        result.current_sequence,
    )


async def test_crash_after_put_then_older_build_is_superseded(world: World) -> None:
    """Build 1 pushed; build 3's holder dies after ECR accepted it; build 2 follows. The
    record adopts build 3 (ECR names it), build 2 is superseded, the tag never moves back
    and the verify step puts nothing back."""
    first = request(1, sequence=1)
    await world.push(first)
    crashed = await crash_after_put(world, 3)
    ref = first.ref
    assert crashed == world.registry.tags[ref]
    assert first.digest == world.records.items[ref.key].digest  # ECR ahead of the record
    assert crashed == world.records.pending[ref.key].digest

    older = request(2, sequence=2)
    result = await world.push(older)

    assert Outcome.SUPERSEDED == result.outcome
    assert (crashed, 3) == (result.current_digest, result.current_sequence)
    assert crashed == result.previous_digest
    assert not result.repaired
    assert crashed == world.registry.tags[ref]
    assert 2 == len(world.registry.puts)  # build 1 and build 3 only
    record = world.records.items[ref.key]
    assert (crashed, 3, result.token) == (record.digest, record.sequence, record.token)
    assert {} == world.records.pending
    adopted = [e for e in world.history.entries if e.outcome == "adopted"]
    assert 1 == len(adopted)
    assert (crashed, first.digest, 3) == (
        adopted[0].digest,
        adopted[0].previous_digest,
        adopted[0].sequence,
    )
    assert adopted[0].detail is not None
    assert "adopted" in adopted[0].detail
    assert ["pushed", "adopted", "superseded"] == [
        e.outcome for e in world.history.entries if e.outcome != "failed"
    ]


async def test_crash_on_the_first_push_of_a_tag(world: World) -> None:
    """No record yet, only the intent: the older build that follows is still superseded."""
    crashed = await crash_after_put(world, 5)
    ref = request(0).ref
    assert ref.key not in world.records.items
    result = await world.push(request(4, sequence=4))
    assert Outcome.SUPERSEDED == result.outcome
    assert result.previous_digest == crashed
    assert (crashed, 5) == (
        world.records.items[ref.key].digest,
        world.records.items[ref.key].sequence,
    )
    assert crashed == world.registry.tags[ref]
    assert 1 == len(world.registry.puts)


async def test_retry_of_the_crashed_build_is_unchanged(world: World) -> None:
    """The crashed build's own retry finds its write adopted: unchanged, no second put."""
    await world.push(request(1, sequence=1))
    crashed = await crash_after_put(world, 3)
    result = await world.push(request(3, sequence=3))
    assert Outcome.UNCHANGED == result.outcome
    assert crashed == result.current_digest
    assert 2 == len(world.registry.puts)


async def test_newer_build_after_a_crash_moves_the_tag(world: World) -> None:
    """A newer build than the adopted one is pushed as usual, over the adopted record."""
    await world.push(request(1, sequence=1))
    crashed = await crash_after_put(world, 3)
    newer = request(4, sequence=4)
    result = await world.push(newer)
    assert Outcome.PUSHED == result.outcome
    assert crashed == result.previous_digest
    assert newer.digest == world.registry.tags[newer.ref]
    assert (newer.digest, 4) == (
        world.records.items[newer.ref.key].digest,
        world.records.items[newer.ref.key].sequence,
    )
    assert {} == world.records.pending


async def test_put_that_did_not_land_is_dropped(world: World) -> None:
    """The holder died before ECR accepted its write: the intent is dropped and the older
    build that follows is compared with the record as it was, and pushed."""
    first = request(1, sequence=1)
    await world.push(first)
    world.registry.during_put = crash  # dies before the put lands
    with pytest.raises(Crash):
        await world.push(request(3, sequence=3))
    world.registry.during_put = None
    ref = first.ref
    assert first.digest == world.registry.tags[ref]
    assert ref.key in world.records.pending

    older = request(2, sequence=2)
    result = await world.push(older)

    assert Outcome.PUSHED == result.outcome
    assert first.digest == result.previous_digest
    assert older.digest == world.registry.tags[ref]
    assert (older.digest, 2) == (
        world.records.items[ref.key].digest,
        world.records.items[ref.key].sequence,
    )
    assert {} == world.records.pending
    assert "adopted" not in {e.outcome for e in world.history.entries}


async def test_dropped_intent_on_an_unchanged_push_is_cleared(world: World) -> None:
    """An intent that did not land is dropped even when the push itself calls no ECR."""
    first = request(1, sequence=1)
    await world.push(first)
    world.registry.during_put = crash
    with pytest.raises(Crash):
        await world.push(request(3, sequence=3))
    world.registry.during_put = None
    result = await world.push(request(1, sequence=1))
    assert Outcome.UNCHANGED == result.outcome
    assert {} == world.records.pending
    assert 2 == len(world.registry.puts)


async def test_failed_put_leaves_an_intent_the_next_holder_drops(world: World) -> None:
    """A put that failed for good (every attempt) leaves its intent; the next push drops it
    since ECR does not name the digest, and goes on as usual."""
    world.registry.failures = [RegistryFault("boom") for _ in range(world.policy.attempts)]
    with pytest.raises(RegistryFault):
        await world.push(request(3, sequence=3))
    assert request(3).digest == world.records.pending[request(0).ref.key].digest
    result = await world.push(request(2, sequence=2))
    assert Outcome.PUSHED == result.outcome
    assert {} == world.records.pending


async def test_ecr_read_failure_while_settling_keeps_the_intent(world: World) -> None:
    """When ECR cannot be asked, the push fails and the intent stays for the next one."""
    await world.push(request(1, sequence=1))
    crashed = await crash_after_put(world, 3)

    async def broken(ref: object) -> str | None:
        raise RegistryFault("ECR is down")

    world.registry.tag_digest = broken  # type: ignore[method-assign]
    with pytest.raises(RegistryFault):
        await world.push(request(2, sequence=2))
    key = request(0).ref.key
    assert crashed == world.records.pending[key].digest
    del world.registry.tag_digest
    assert Outcome.SUPERSEDED == (await world.push(request(2, sequence=2))).outcome


async def test_intent_writes_are_fenced(world: World) -> None:
    """A holder that lost its lease can neither write nor clear an intent, and an older
    token cannot overwrite a newer token's intent."""
    ref = request(0).ref
    old = await world.leases.acquire(ref.key, timeout=0)
    world.leases.steal(ref.key)
    pending = PendingPush("sha256:" + "a" * 64, 1, old.token, "ci", "r")
    with pytest.raises(LeaseLost):
        await world.records.put_pending(ref, pending, fence=old.fence())
    with pytest.raises(LeaseLost):
        await world.records.clear_pending(ref, fence=old.fence())
    world.records.pending[ref.key] = PendingPush("sha256:" + "b" * 64, 2, old.token + 5, "c", "r")
    world.leases.holders[ref.key] = (old.owner, old.token)
    with pytest.raises(LeaseLost):
        await world.records.put_pending(ref, pending, fence=old.fence())
    with pytest.raises(LeaseLost):
        await world.records.clear_pending(ref, fence=old.fence())


def refused() -> BackendUnavailable:
    """What the records adapter raises for a value the table cannot store."""
    error = BackendUnavailable("DynamoDB refused the value", cause_code="ValidationException")
    error.retryable = False
    return error


async def test_intent_refused_for_good_leaves_the_tag_pushable(world: World) -> None:
    """An intent write refused for a permanent reason (one of its own, after settling an
    earlier holder's) fails that push before PutImage; nothing of it is left, and the
    next push of the tag is pushed."""
    world.registry.during_put = crash  # an earlier holder dies before its put lands
    with pytest.raises(Crash):
        await world.push(request(9, sequence=9))
    world.registry.during_put = None
    world.records.intent_failures = [refused()]
    with pytest.raises(BackendUnavailable):
        await world.push(request(1, sequence=1))
    assert (1, {}) == (len(world.registry.puts), world.records.pending)
    assert Outcome.PUSHED == (await world.push(request(2, sequence=2))).outcome


async def test_record_refused_for_good_after_put_leaves_the_tag_pushable(world: World) -> None:
    """Build 3 lands in ECR but its record can never be written (a value the table
    refuses, permanently): the next push drops the intent it cannot adopt and is pushed,
    and so is every later push."""
    await world.push(request(1, sequence=1))
    world.records.refused[request(3).digest] = refused()
    with pytest.raises(BackendUnavailable):
        await world.push(request(3, sequence=3))
    assert request(3).digest == world.registry.tags[request(0).ref]
    with capture_logs() as logs:
        result = await world.push(request(4, sequence=4))
    assert (Outcome.PUSHED, request(1).digest) == (result.outcome, result.previous_digest)
    assert "pending_push_unrecordable" in [e["event"] for e in logs]
    assert ({}, request(4).digest) == (world.records.pending, world.registry.tags[result.ref])
    assert Outcome.PUSHED == (await world.push(request(5, sequence=5))).outcome


async def test_unrecordable_intent_is_not_adopted_and_the_tag_is_put_back(world: World) -> None:
    """A push superseded by the record after an unrecordable intent was dropped verifies
    the tag: ECR is put back to the recorded image, which the record still names."""
    await world.push(request(5, sequence=5))
    world.records.refused[request(6).digest] = refused()
    with pytest.raises(BackendUnavailable):
        await world.push(request(6, sequence=6))
    result = await world.push(request(2, sequence=2))
    assert (Outcome.SUPERSEDED, True) == (result.outcome, result.repaired)
    assert request(5).digest == world.registry.tags[result.ref]
    assert "adopted" not in {e.outcome for e in world.history.entries}


async def test_adoption_that_fails_for_now_keeps_the_intent(world: World) -> None:
    """A record write that fails for a reason that may pass (an outage) fails the push
    that settles the intent, and leaves the intent for the next holder, who adopts it."""
    await world.push(request(1, sequence=1))
    crashed = await crash_after_put(world, 3)
    world.records.refused[crashed] = BackendUnavailable("DynamoDB is throttling")
    with pytest.raises(BackendUnavailable):
        await world.push(request(2, sequence=2))
    assert crashed == world.records.pending[request(0).ref.key].digest
    del world.records.refused[crashed]
    result = await world.push(request(2, sequence=2))
    assert (Outcome.SUPERSEDED, crashed) == (result.outcome, result.current_digest)
