"""The push use case over in-memory fakes: outcomes, ordering, retries, leases, repair."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from service.domain.errors import (
    BackendUnavailable,
    LeaseLost,
    LeaseTimeout,
    QuotaExceeded,
    RegistryFault,
    RegistryThrottled,
    RegistryTimeout,
    RepositoryNotFound,
    TagImmutable,
)
from service.domain.models import ImageRef, Outcome, PendingPush, TagRecord
from service.domain.push import PushPolicy
from tests.unit.service.fakes import FakeLease, World, request


async def test_new_tag_is_pushed_recorded_and_released(world: World) -> None:
    """A first push moves the tag, writes the record under the lease and releases it."""
    req = request(1, sequence=1)
    result = await world.push(req)
    assert Outcome.PUSHED == result.outcome
    assert req.digest == world.registry.tags[req.ref]
    assert req.digest == world.records.items[req.ref.key].digest
    assert result.token == world.records.items[req.ref.key].token
    assert [] == world.leases.held()


async def test_same_digest_as_record_is_unchanged_without_ecr_call(world: World) -> None:
    """Re-pushing what the record already names answers unchanged and spends no PutImage."""
    await world.push(request(1))
    result = await world.push(request(1))
    assert Outcome.UNCHANGED == result.outcome
    assert 1 == len(world.registry.puts)


async def test_lower_sequence_is_superseded_without_ecr_call(world: World) -> None:
    """An older build arriving after a newer one does not move the tag."""
    newer = request(2, sequence=10)
    await world.push(newer)
    result = await world.push(request(1, sequence=9))
    assert Outcome.SUPERSEDED == result.outcome
    assert newer.digest == world.registry.tags[newer.ref]
    assert 10 == result.current_sequence
    assert 1 == len(world.registry.puts)


async def test_higher_sequence_moves_the_tag(world: World) -> None:
    """A newer build replaces the recorded one and its sequence is recorded."""
    await world.push(request(1, sequence=1))
    newer = request(2, sequence=2)
    result = await world.push(newer)
    assert Outcome.PUSHED == result.outcome
    assert 2 == world.records.items[newer.ref.key].sequence


async def test_push_without_sequence_keeps_recorded_sequence(world: World) -> None:
    """Unsequenced pushes apply in lease order and leave the recorded sequence in place."""
    await world.push(request(1, sequence=5))
    await world.push(request(2))
    assert 5 == world.records.items[request(2).ref.key].sequence
    assert Outcome.SUPERSEDED == (await world.push(request(3, sequence=4))).outcome


async def test_higher_sequence_same_digest_updates_record_only(world: World) -> None:
    """The same digest with a newer sequence is unchanged but raises the recorded sequence."""
    await world.push(request(1, sequence=1))
    result = await world.push(request(1, sequence=7))
    assert Outcome.UNCHANGED == result.outcome
    assert 7 == world.records.items[request(1).ref.key].sequence
    assert 1 == len(world.registry.puts)


async def test_already_exists_with_same_digest_is_unchanged(world: World) -> None:
    """ECR's "already exists" for this very digest (no record yet) is success."""
    req = request(1)
    world.registry.tags[req.ref] = req.digest
    result = await world.push(req)
    assert Outcome.UNCHANGED == result.outcome
    assert req.digest == world.records.items[req.ref.key].digest


async def test_immutable_tag_with_other_digest_is_tag_immutable(world: World) -> None:
    """An immutable tag holding another image answers tag_immutable with that digest."""
    req = request(1)
    world.registry.immutable.add(req.ref.repository)
    world.registry.tags[req.ref] = "sha256:" + "e" * 64
    with pytest.raises(TagImmutable) as caught:
        await world.push(req)
    assert "sha256:" + "e" * 64 == caught.value.existing_digest
    assert [] == world.leases.held()
    assert "tag_immutable" == world.history.entries[-1].error


async def test_throttling_is_retried_with_jittered_backoff(world: World) -> None:
    """Throttling is retried after full-jitter sleeps that grow per attempt."""
    world.registry.failures = [RegistryThrottled("slow down"), RegistryThrottled("slow down")]
    result = await world.push(request(1))
    assert Outcome.PUSHED == result.outcome
    assert [0.1, 0.2] == world.clock.sleeps  # ceilings 0.2, 0.4 times jitter 0.5


async def test_persistent_throttling_ends_in_registry_throttled(world: World) -> None:
    """After the last attempt, throttling is answered with a Retry-After hint."""
    world.registry.failures = [RegistryThrottled("slow down") for _ in range(4)]
    with pytest.raises(RegistryThrottled) as caught:
        await world.push(request(1))
    assert world.policy.throttle_retry_after_seconds == caught.value.retry_after
    assert 4 == len(world.registry.puts)
    assert [] == world.leases.held()


async def test_quota_exceeded_is_not_retried(world: World) -> None:
    """LimitExceeded (a quota) fails at once: waiting does not raise a quota."""
    world.registry.failures = [QuotaExceeded("too many images")]
    with pytest.raises(QuotaExceeded):
        await world.push(request(1))
    assert 1 == len(world.registry.puts)


async def test_server_fault_is_retried(world: World) -> None:
    """A 5xx fault is retried and the push then succeeds."""
    world.registry.failures = [RegistryFault("boom")]
    assert Outcome.PUSHED == (await world.push(request(1))).outcome
    assert 2 == len(world.registry.puts)


async def test_repository_not_found_is_not_retried(world: World) -> None:
    """A missing repository fails at once and leaves no lease behind."""
    world.registry.failures = [RepositoryNotFound("team/app")]
    with pytest.raises(RepositoryNotFound):
        await world.push(request(1))
    assert (1, []) == (len(world.registry.puts), world.leases.held())


async def test_timed_out_put_that_landed_counts_as_pushed(world: World) -> None:
    """A put that timed out but is found on the tag afterwards is a success."""
    req = request(1)

    def land() -> None:
        world.registry.tags[req.ref] = req.digest

    world.registry.during_put = land
    world.registry.failures = [RegistryTimeout("late")]
    assert Outcome.PUSHED == (await world.push(req)).outcome
    assert 1 == len(world.registry.puts)


async def test_fault_after_the_put_landed_is_still_pushed(world: World) -> None:
    """ECR applied the put but the answer was lost (a 5xx): the retry gets "already
    exists" from this push's own image, and the push answers pushed, not unchanged."""
    req = request(1)
    lost: list[RegistryFault] = [RegistryFault("answer lost")]

    def lose_answer() -> None:
        if lost:
            raise lost.pop()

    world.registry.after_put = lose_answer
    result = await world.push(req)
    assert (Outcome.PUSHED, 2) == (result.outcome, len(world.registry.puts))
    assert ["pushed"] == [e.outcome for e in world.history.entries]


async def test_already_there_without_a_failed_attempt_is_unchanged(world: World) -> None:
    """ECR already names the digest (no earlier attempt of this push): unchanged."""
    req = request(1)
    world.registry.tags[req.ref] = req.digest
    assert Outcome.UNCHANGED == (await world.push(req)).outcome


async def test_throttle_with_retry_after_zero_still_backs_off(world: World) -> None:
    """A throttle saying "retry after 0 s" does not cut the backoff to nothing: the
    retries sleep the jittered backoff (0.1, 0.2, 0.4 s here)."""
    world.registry.failures = [
        RegistryThrottled("slow budget", retry_after=0.0) for _ in range(world.policy.attempts)
    ]
    with pytest.raises(RegistryThrottled):
        await world.push(request(1))
    assert world.clock.sleeps == pytest.approx([0.1, 0.2, 0.4])


async def test_full_budget_keeps_its_retry_after(world: World) -> None:
    """A budget whose next slot is 45 s away: the push fails registry_throttled telling
    the client to come back in 45 s, not the policy's 2 s."""
    world.registry.failures = [
        RegistryThrottled("full", cause_code="PutImageBudget", retry_after=45.0)
        for _ in range(world.policy.attempts)
    ]
    with pytest.raises(RegistryThrottled) as caught:
        await world.push(request(1))
    assert 45.0 == caught.value.retry_after


async def test_ecr_timeout_ends_inside_the_lease() -> None:
    """The ECR call's timeout is the configured one, cut to the lease minus the margin."""
    short = World(PushPolicy(ecr_timeout_seconds=10.0, lease_margin_seconds=2.0))
    original = short.leases.acquire

    async def acquire(key: str, *, timeout: float, intent: PendingPush | None = None) -> FakeLease:
        lease = await original(key, timeout=timeout, intent=intent)
        lease.lease_seconds = 5.0
        lease.expires_at = short.clock() + 5.0
        return lease

    short.leases.acquire = acquire  # type: ignore[method-assign]
    await short.push(request(1))
    assert 3.0 == short.registry.puts[0].timeout


async def test_fresh_lease_is_not_renewed_for_the_call(world: World) -> None:
    """A lease with room for a whole ECR call (30 s left, 10 s call, 2 s margin) is not
    renewed on the push's path: the fenced record write confirms it afterwards."""
    await world.push(request(1))
    assert 0 == world.leases.granted[0].renewals


async def test_short_lease_is_renewed_before_the_call(world: World) -> None:
    """A lease with less left than a whole ECR call plus the margin is renewed first."""
    original = world.leases.acquire

    async def acquire(key: str, *, timeout: float, intent: PendingPush | None = None) -> FakeLease:
        lease = await original(key, timeout=timeout, intent=intent)
        lease.expires_at = world.clock() + 11.0  # 11 - 2 < 10
        return lease

    world.leases.acquire = acquire  # type: ignore[method-assign]
    await world.push(request(1))
    assert (1, 10.0) == (world.leases.granted[0].renewals, world.registry.puts[0].timeout)


async def test_lease_lost_before_the_call_never_calls_ecr(world: World) -> None:
    """A lease the heartbeat already found lost ends in lease_lost before any ECR call."""
    original = world.registry.reserve

    async def reserve(ref: ImageRef, digest: str) -> None:
        await original(ref, digest)
        world.leases.steal(ref.key)

    world.registry.reserve = reserve  # type: ignore[method-assign]
    with pytest.raises(LeaseLost):
        await world.push(request(1))
    assert [] == world.registry.puts


async def test_lease_lost_during_call_reports_what_ecr_holds(world: World) -> None:
    """A lease taken over during the ECR call ends in lease_lost with the tag read back,
    and the stale holder does not write the record."""
    req = request(1)
    world.registry.during_put = lambda: world.leases.steal(req.ref.key)
    with pytest.raises(LeaseLost) as caught:
        await world.push(req)
    assert req.digest == caught.value.observed_digest
    assert req.ref.key not in world.records.items
    assert "lease_lost" == world.history.entries[-1].error
    assert world.leases.granted[0].released


async def test_lease_timeout_never_calls_ecr(world: World) -> None:
    """A busy lease ends in lease_timeout; ECR is never called and history says so."""
    req = request(1)
    world.leases.busy.add(req.ref.key)
    with pytest.raises(LeaseTimeout):
        await world.push(req)
    assert [] == world.registry.puts
    assert ("failed", "lease_timeout") == (
        world.history.entries[-1].outcome,
        world.history.entries[-1].error,
    )


async def test_drifted_tag_is_repaired_and_recorded(world: World) -> None:
    """A tag that no longer matches its record (a late stale write) is put back, after
    the push's own history entry."""
    first = request(1, sequence=5)
    await world.push(first)
    world.registry.tags[first.ref] = "sha256:" + "b" * 64  # a stale holder's late write
    result = await world.push(request(2, sequence=1))
    assert (Outcome.SUPERSEDED, True) == (result.outcome, result.repaired)
    assert first.digest == world.registry.tags[first.ref]
    assert ["pushed", "superseded", "repaired"] == [e.outcome for e in world.history.entries]


async def test_repair_without_the_image_is_recorded_as_failed(world: World) -> None:
    """When the recorded image is gone from ECR, the repair failure is written to history."""
    first = request(1, sequence=5)
    await world.push(first)
    world.registry.images.clear()
    world.registry.tags[first.ref] = "sha256:" + "b" * 64
    result = await world.push(request(2, sequence=1))
    assert not result.repaired
    assert "repair_failed" == world.history.entries[-1].outcome


async def test_repair_refused_by_an_immutable_tag_is_recorded_as_failed(world: World) -> None:
    """A drifted tag on an immutable repository: ECR refuses the repair ("already
    exists"), so the push reports no repair and history says repair_failed."""
    first = request(1, sequence=5)
    await world.push(first)
    world.registry.immutable.add(first.ref.repository)
    world.registry.tags[first.ref] = "sha256:" + "b" * 64
    result = await world.push(request(2, sequence=1))
    assert (Outcome.SUPERSEDED, False) == (result.outcome, result.repaired)
    assert ["pushed", "superseded", "repair_failed"] == [e.outcome for e in world.history.entries]


async def test_every_push_is_appended_to_history(world: World) -> None:
    """History holds one entry per push with digest, previous digest, token and caller."""
    one, two = request(1, sequence=1), request(2, sequence=2)
    await world.push(one)
    await world.push(two)
    last = world.history.entries[-1]
    assert (two.digest, one.digest, 2, "ci", "req-1") == (
        last.digest,
        last.previous_digest,
        last.sequence,
        last.caller,
        last.request_id,
    )
    first_token, last_token = world.history.entries[0].token, last.token
    assert first_token is not None
    assert last_token is not None
    assert first_token < last_token


async def test_stale_record_is_never_overwritten() -> None:
    """A record carrying a newer token refuses a write fenced by an older one."""
    world = World()
    req = request(1)
    world.records.items[req.ref.key] = TagRecord(
        req.ref, "sha256:" + "c" * 64, None, 10**9, "other", "x", "r", 0.0
    )
    with pytest.raises(LeaseLost):
        await world.push(req)


async def test_repair_is_logged(world: World) -> None:
    """A repair emits tag_drift_detected and tag_repaired with the digests."""
    first = request(1, sequence=5)
    await world.push(first)
    world.registry.tags[first.ref] = "sha256:" + "b" * 64
    with capture_logs() as logs:
        await world.push(request(2, sequence=1))
    repaired = next(e for e in logs if e["event"] == "tag_repaired")
    assert (first.digest, "sha256:" + "b" * 64) == (repaired["digest"], repaired["observed"])
    assert "tag_drift_detected" in [e["event"] for e in logs]


async def test_history_failure_does_not_fail_a_push_without_putimage(world: World) -> None:
    """A history table outage while answering ``unchanged`` is logged; the push succeeds."""
    await world.push(request(1))

    async def broken(entry: object) -> None:
        raise BackendUnavailable("history table down")

    world.history.append = broken  # type: ignore[method-assign]
    with capture_logs() as logs:
        result = await world.push(request(1))
    assert Outcome.UNCHANGED == result.outcome
    assert "history_append_failed" in [e["event"] for e in logs]


async def test_history_failure_does_not_fail_a_push_that_landed(world: World) -> None:
    """A PutImage's entry rides in the record's write and is appended after the answer;
    when the history table fails, the push still answers pushed with its record written,
    and the failed append is logged."""
    req = request(1)

    async def broken(entry: object) -> None:
        raise BackendUnavailable("history table down")

    world.history.append = broken  # type: ignore[method-assign]
    with capture_logs() as logs:
        result = await world.push(req)
    assert (Outcome.PUSHED, req.digest) == (result.outcome, world.records.items[req.ref.key].digest)
    assert req.ref.key not in world.records.pending
    events = [e["event"] for e in logs]
    assert "history_append_failed" in events


async def test_deferred_push_answers_before_verifying_and_releasing(world: World) -> None:
    """With ``defer``, a PutImage push answers once its commit (record, release) landed;
    the deferred job appends its history and verifies nothing (PutImage said what the tag
    names). An unchanged push answers holding its lease: the job verifies the tag, puts
    it back, and releases."""
    jobs: list[Callable[[], Awaitable[None]]] = []
    req = request(1)
    result = await world.service.push(req, caller="ci", request_id="r", defer=jobs.append)
    lease = world.leases.granted[0]
    assert (Outcome.PUSHED, 1, True, []) == (
        result.outcome,
        len(jobs),
        lease.released,
        world.history.entries,
    )
    stale = "sha256:" + "e" * 64
    world.registry.tags[req.ref] = stale  # a late stale write lands
    await jobs.pop()()
    assert (["pushed"], stale) == (
        [e.outcome for e in world.history.entries],
        world.registry.tags[req.ref],
    )
    again = await world.service.push(req, caller="ci", request_id="r", defer=jobs.append)
    second = world.leases.granted[1]
    assert (Outcome.UNCHANGED, False) == (again.outcome, second.released)
    await jobs.pop()()
    assert (True, req.digest) == (second.released, world.registry.tags[req.ref])
    assert ["pushed", "unchanged", "repaired"] == [e.outcome for e in world.history.entries]


async def test_failed_push_releases_before_raising_even_with_defer(world: World) -> None:
    """A failing push releases its lease itself and defers nothing."""
    jobs: list[Callable[[], Awaitable[None]]] = []
    world.registry.failures = [QuotaExceeded("too many images")]
    with pytest.raises(QuotaExceeded):
        await world.service.push(request(1), caller="ci", request_id="r", defer=jobs.append)
    assert ([], True) == (jobs, world.leases.granted[0].released)


async def test_entry_of_a_holder_that_died_after_its_record_is_appended_later(
    world: World,
) -> None:
    """A holder that wrote its record but never appended its entry (it died, here: the
    append failed) loses no history: the entry rides in the item, and the next record
    write hands it on to be appended."""
    working = world.history.append

    async def broken(entry: object) -> None:
        raise BackendUnavailable("history table down")

    first, second = request(1, sequence=1), request(2, sequence=2)
    world.history.append = broken  # type: ignore[method-assign]
    await world.push(first)
    world.history.append = working  # type: ignore[method-assign]
    await world.push(second)
    assert [("pushed", first.digest), ("pushed", second.digest)] == [
        (e.outcome, e.digest) for e in world.history.entries
    ]


async def test_record_carried_by_the_grant_is_not_read_again(world: World) -> None:
    """A lease whose grant carries the tag's item (the acquire's answer) gives the use
    case the record and intent: it decides from them without reading."""
    first = request(1, sequence=1)
    await world.push(first)
    world.leases.records = world.records

    async def unreadable(ref: object) -> object:
        raise AssertionError("read although the grant carried the item")

    world.records.read = unreadable  # type: ignore[method-assign, assignment]
    results = [await world.push(request(1, sequence=1)), await world.push(request(0, sequence=0))]
    assert [Outcome.UNCHANGED, Outcome.SUPERSEDED] == [r.outcome for r in results]


async def test_unchanged_and_superseded_answer_before_any_ecr_call(world: World) -> None:
    """A push that calls no PutImage answers from its lease's grant before asking ECR
    anything: the tag is verified by the deferred job."""
    world.leases.records = world.records
    await world.push(request(1, sequence=5))
    asked = world.registry.reads
    asked.clear()
    answers = []
    for req in (request(1, sequence=5), request(2, sequence=1)):
        jobs: list[Callable[[], Awaitable[None]]] = []
        result = await world.service.push(req, caller="ci", request_id="r", defer=jobs.append)
        answers.append((result.outcome, len(asked)))
        await jobs[0]()
    assert [(Outcome.UNCHANGED, 0), (Outcome.SUPERSEDED, 1)] == answers


async def test_the_slot_is_reserved_while_the_acquire_is_in_flight(world: World) -> None:
    """A push expected to put reserves its PutImage slot while its acquire is in flight,
    also right after a committed push of the same tag whose after-answer work (history)
    has not run yet: that push let its lease go at its commit. A push the process
    expects to be unchanged reserves nothing."""
    seen: list[int] = []
    acquire = world.leases.acquire

    async def acquiring(
        key: str, *, timeout: float, intent: PendingPush | None = None
    ) -> FakeLease:
        for _ in range(3):  # the acquire's round trip: the reservation runs meanwhile
            await asyncio.sleep(0)
        seen.append(len(world.registry.reserved))
        return await acquire(key, timeout=timeout, intent=intent)

    world.leases.acquire = acquiring  # type: ignore[method-assign]
    jobs: list[Callable[[], Awaitable[None]]] = []
    for req in (request(1, sequence=1), request(2, sequence=2), request(2, sequence=2)):
        await world.service.push(req, caller="ci", request_id="r", defer=jobs.append)
    assert [1, 2, 2] == seen  # the third (unchanged) reserved nothing
    for job in jobs:
        await job()
