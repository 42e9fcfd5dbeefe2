"""Coalescing of waiting pushes of one tag, over the in-memory fakes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.coalesce import CoalescingPushService, Settled, coalesced_outcome
from service.domain.errors import LayersNotFound, LeaseTimeout, PushError, TagImmutable
from service.domain.models import Answer, ImageRef, Outcome, PushRequest, PushResult
from service.domain.ports import PutStatus
from service.domain.push import PushService
from tests.unit.service.fakes import FakeRegistry, World, request


@dataclass
class HeldRegistry(FakeRegistry):
    """PutImage blocks until ``release`` is set; ``entered`` is set by each call.
    ``refuse`` lists digests ECR refuses (layers missing)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    refuse: set[str] = field(default_factory=set)

    async def put_image(
        self,
        ref: ImageRef,
        *,
        manifest: str,
        media_type: str | None,
        digest: str,
        timeout: float,
    ) -> PutStatus:
        self.entered.set()
        await self.release.wait()
        if digest in self.refuse:
            self.puts.append(self.puts[-1] if self.puts else None)  # type: ignore[arg-type]
            raise LayersNotFound([], registry_message="layers missing")
        return await super().put_image(
            ref, manifest=manifest, media_type=media_type, digest=digest, timeout=timeout
        )


class Coalescing:
    """A coalescing service over the fakes of a ``World``."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.world = World()
        self.registry = HeldRegistry()
        self.coalesced: list[Outcome] = []
        self.service = CoalescingPushService(
            PushService(
                registry=self.registry,
                leases=self.world.leases,
                records=self.world.records,
                history=self.world.history,
                policy=self.world.policy,
                clock=self.world.clock,
                sleep=self.world.clock.sleep,
                jitter=lambda: 0.5,
            ),
            enabled=enabled,
            on_coalesced=self.coalesced.append,
        )
        self.ids = 0

    def push(self, req: PushRequest) -> asyncio.Task[PushResult]:
        self.ids += 1
        return asyncio.create_task(
            self.service.push(req, caller="ci", request_id=f"req-{self.ids}")
        )

    async def first_holds_put(self, req: PushRequest) -> asyncio.Task[PushResult]:
        """Start ``req`` and wait until it is inside PutImage."""
        task = self.push(req)
        await asyncio.wait_for(self.registry.entered.wait(), 5)
        return task

    async def queue(self, *reqs: PushRequest) -> list[asyncio.Task[PushResult]]:
        tasks = []
        for req in reqs:
            tasks.append(self.push(req))
            await asyncio.sleep(0)  # arrival order = list order
        await asyncio.sleep(0)
        return tasks

    @property
    def put_digests(self) -> list[str]:
        return [p.digest for p in self.registry.puts]


async def settle(*tasks: asyncio.Task[PushResult]) -> list[PushResult | BaseException]:
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


def outcomes(results: list[PushResult | BaseException]) -> list[str]:
    return [r.outcome.value if isinstance(r, PushResult) else type(r).__name__ for r in results]


# --- the decision (pure) ----------------------------------------------------------------

OTHER = "sha256:" + "e" * 64


def settled(
    req: PushRequest,
    *,
    arrival: int = 10,
    outcome: Answer = Outcome.PUSHED,
    current_sequence: int | None = None,
    previous: str | None = OTHER,
) -> Settled:
    """``req`` succeeded with ``outcome``; ``previous``: the digest its record named before
    (default: another image, so a pushed ``req`` moved the tag)."""
    result = PushResult(
        outcome=outcome,
        ref=req.ref,
        digest=req.digest,
        previous_digest=previous,
        sequence=req.sequence,
        token=7,
        waited_ms=0.0,
        current_digest=req.digest,
        current_sequence=req.sequence if current_sequence is None else current_sequence,
    )
    return Settled(req, arrival, result, "req-x")


@pytest.mark.parametrize(
    ("waiter", "done", "expected"),
    [
        (request(1, sequence=3), settled(request(2, sequence=5)), Outcome.SUPERSEDED),
        (request(2, sequence=5), settled(request(2, sequence=5)), Outcome.UNCHANGED),
        (request(2, sequence=4), settled(request(2, sequence=5)), Outcome.UNCHANGED),
        # a higher sequence with the same digest must still write the record: it runs
        (request(2, sequence=6), settled(request(2, sequence=5)), None),
        (request(3, sequence=6), settled(request(2, sequence=5)), None),
        # equal sequence, other digest: the use case would push it
        (request(3, sequence=5), settled(request(2, sequence=5)), None),
        # no sequences: the later arrival that moved the tag wins
        (request(1), settled(request(2), arrival=10), Outcome.SUPERSEDED),
        (request(2), settled(request(2)), Outcome.UNCHANGED),
        # mixed: a sequenced push runs after an unsequenced one, and vice versa
        (request(1, sequence=3), settled(request(2)), None),
        (request(1), settled(request(2, sequence=5)), None),
        # a superseded push still reports the record's (higher) sequence
        (
            request(1, sequence=3),
            settled(request(2, sequence=4), outcome=Outcome.SUPERSEDED, current_sequence=9),
            Outcome.SUPERSEDED,
        ),
    ],
)
def test_coalesced_outcome(waiter: PushRequest, done: Settled, expected: Outcome | None) -> None:
    """A waiter is answered from a successful push only with what the use case would
    answer right after it without a PutImage or a record write."""
    assert expected == coalesced_outcome(waiter, 5, done)


def test_a_waiter_arriving_after_an_unsequenced_push_is_not_superseded_by_it() -> None:
    """Without sequences only an *earlier* waiter is superseded by a push."""
    assert coalesced_outcome(request(1), 11, settled(request(2), arrival=10)) is None


@pytest.mark.parametrize(
    "done",
    [
        settled(request(2), previous=None),  # the tag's first push
        settled(request(2), outcome=Outcome.UNCHANGED, previous=request(2).digest),
    ],
)
def test_unsequenced_waiter_runs_unless_the_push_showed_the_tag_mutable(done: Settled) -> None:
    """Without sequences, a waiter is superseded only by a push that moved the tag off
    another image: behind a tag's first push or an unchanged one the tag may be immutable,
    where the use case answers tag_immutable, so the waiter runs."""
    assert coalesced_outcome(request(1), 5, done) is None


def test_same_digest_waiter_behind_a_first_push_is_unchanged() -> None:
    """A waiter pushing the digest a tag's first push put is unchanged, mutable or not."""
    assert Outcome.UNCHANGED == coalesced_outcome(request(2), 5, settled(request(2), previous=None))


# --- the service ------------------------------------------------------------------------


async def test_only_the_newest_waiter_puts_and_the_older_are_superseded() -> None:
    """While seq 1 is inside PutImage, seqs 2-5 wait; seq 5 runs next and 2-4 are then
    answered superseded: two PutImage calls for five pushes, the tag ends on 5."""
    c = Coalescing()
    first = await c.first_holds_put(request(1, sequence=1))
    waiting = await c.queue(*(request(n, sequence=n) for n in (3, 2, 5, 4)))
    c.registry.release.set()
    results = await settle(first, *waiting)
    assert ["pushed", "superseded", "superseded", "pushed", "superseded"] == outcomes(results)
    assert [request(1).digest, request(5).digest] == c.put_digests
    ref = request(5).ref
    assert request(5).digest == c.registry.tags[ref]
    assert [Outcome.SUPERSEDED] * 3 == c.coalesced


async def test_coalesced_pushes_are_in_history_with_the_token_that_answered_them() -> None:
    """Every push, coalesced or not, has one history entry; a coalesced one carries the
    token and names the request of the push it was answered from."""
    c = Coalescing()
    first = await c.first_holds_put(request(1, sequence=1))
    waiting = await c.queue(request(2, sequence=2), request(3, sequence=3))
    c.registry.release.set()
    results = await settle(first, *waiting)
    entries = {e.sequence: e for e in c.world.history.entries}
    assert {1, 2, 3} == set(entries)
    newest = results[2]
    assert isinstance(newest, PushResult)
    assert ("superseded", newest.token) == (entries[2].outcome, entries[2].token)
    assert "req-3" in (entries[2].detail or "")
    superseded = results[1]
    assert isinstance(superseded, PushResult)
    assert (newest.token, request(3).digest, 3) == (
        superseded.token,
        superseded.current_digest,
        superseded.current_sequence,
    )


async def test_same_digest_waiter_is_unchanged() -> None:
    """A waiter pushing what the newest push put is answered unchanged."""
    c = Coalescing()
    first = await c.first_holds_put(request(1, sequence=1))
    waiting = await c.queue(request(2, sequence=2), request(2, sequence=2))
    c.registry.release.set()
    results = await settle(first, *waiting)
    assert ["pushed", "unchanged", "pushed"] == outcomes(results)
    assert 2 == len(c.registry.puts)


async def test_failed_newest_push_supersedes_no_one() -> None:
    """The newest waiter fails (ECR refuses its manifest): the older waiters are not told
    superseded; the next newest runs and pushes, and only then are the rest superseded."""
    c = Coalescing()
    c.registry.refuse.add(request(5).digest)
    first = await c.first_holds_put(request(1, sequence=1))
    waiting = await c.queue(*(request(n, sequence=n) for n in (2, 3, 4, 5)))
    c.registry.release.set()
    results = await settle(first, *waiting)
    assert ["pushed", "superseded", "superseded", "pushed", "LayersNotFound"] == outcomes(results)
    assert request(4).digest == c.registry.tags[request(4).ref]


async def test_unsequenced_pushes_latest_arrival_wins() -> None:
    """Without sequences the latest arrival runs and earlier waiters are superseded."""
    c = Coalescing()
    first = await c.first_holds_put(request(1))
    waiting = await c.queue(request(2), request(3), request(4))
    c.registry.release.set()
    results = await settle(first, *waiting)
    assert ["pushed", "superseded", "superseded", "pushed"] == outcomes(results)
    assert request(4).digest == c.registry.tags[request(4).ref]


async def test_waiter_newer_than_the_running_push_runs_after_it() -> None:
    """A waiter with a higher sequence than anything that succeeded is never coalesced."""
    c = Coalescing()
    c.registry.refuse.add(request(9).digest)
    first = await c.first_holds_put(request(9, sequence=9))
    waiting = await c.queue(request(3, sequence=3))
    c.registry.release.set()
    results = await settle(first, *waiting)
    assert ["LayersNotFound", "pushed"] == outcomes(results)


async def test_wait_at_the_gate_counts_against_wait_seconds() -> None:
    """A waiter whose wait_seconds run out at the gate fails with lease_timeout and is
    recorded as failed in history; the running push is unaffected."""
    c = Coalescing()
    first = await c.first_holds_put(request(1, sequence=1))
    impatient = PushRequest.create(
        repository="team/app",
        tag="v1",
        manifest=request(2).manifest,
        sequence=2,
        wait_seconds=0.01,
        default_wait_seconds=5.0,
        max_wait_seconds=60.0,
    )
    (late,) = await c.queue(impatient)
    with pytest.raises(LeaseTimeout):
        await asyncio.wait_for(late, 5)
    c.registry.release.set()
    assert ["pushed"] == outcomes(await settle(first))
    failed = [e for e in c.world.history.entries if e.outcome == "failed"]
    assert [("lease_timeout", 2)] == [(e.error, e.sequence) for e in failed]


async def test_cancelled_waiter_passes_the_gate_on() -> None:
    """A waiter cancelled right after being handed the gate passes it to the next one."""
    c = Coalescing()
    first = await c.first_holds_put(request(1, sequence=1))
    older, newest = await c.queue(request(2, sequence=2), request(3, sequence=3))
    # the gate is handed over inside first's last step; its done callback runs before
    # the newest waiter resumes, so the waiter is cancelled holding the gate, unused
    first.add_done_callback(lambda _: newest.cancel())
    c.registry.release.set()
    results = await settle(first, older)
    assert ["pushed", "pushed"] == outcomes(results)
    assert newest.cancelled()
    assert 2 == len(c.registry.puts)


async def test_other_tags_do_not_wait_for_each_other() -> None:
    """The gate is per repo:tag: a push of another tag runs while one is inside PutImage."""
    c = Coalescing()
    first = await c.first_holds_put(request(1, sequence=1))
    other = c.push(request(2, sequence=1, tag="v2"))
    await asyncio.sleep(0.01)
    assert 2 == len(c.world.leases.holders)
    c.registry.release.set()
    assert ["pushed", "pushed"] == outcomes(await settle(first, other))


async def test_disabled_is_the_plain_use_case() -> None:
    """enabled=False: no gate, every push goes straight to the lease (the fake lease
    refuses a second holder at once)."""
    c = Coalescing(enabled=False)
    first = await c.first_holds_put(request(1, sequence=1))
    (second,) = await c.queue(request(2, sequence=2))
    c.registry.release.set()
    assert ["pushed", "LeaseTimeout"] == outcomes(await settle(first, second))


async def test_failures_of_the_running_push_still_hand_the_gate_over() -> None:
    """A push failing with any PushError hands the gate to the next waiter."""
    c = Coalescing()
    c.registry.refuse.add(request(1).digest)
    first = await c.first_holds_put(request(1, sequence=1))
    (second,) = await c.queue(request(2, sequence=2))
    c.registry.release.set()
    results = await settle(first, second)
    assert isinstance(results[0], PushError)
    assert "pushed" == outcomes(results)[1]
    assert {} == c.service._gates  # every gate closed


async def test_push_that_waited_at_the_gate_is_recorded_from_its_arrival() -> None:
    """The push that runs after waiting at the gate starts, in history, when it arrived,
    and its ``waited_ms`` counts the gate: history then places its lease grant at
    ``started_at + waited_ms``, after the push it waited for."""
    c = Coalescing()
    arrived = c.world.clock.now
    first = await c.first_holds_put(request(1, sequence=1))
    waiting = await c.queue(request(2, sequence=2))
    c.world.clock.now += 5.0
    c.registry.release.set()
    results = await settle(first, *waiting)
    entry = next(e for e in c.world.history.entries if e.sequence == 2)
    result = results[1]
    assert isinstance(result, PushResult)
    assert ("pushed", arrived) == (entry.outcome, entry.started_at)
    assert result.waited_ms >= 5000


async def test_immutable_tag_waiters_get_what_the_use_case_answers() -> None:
    """On an immutable repository, unsequenced waiters behind a failed push are answered
    as the use case answers them once the newest is pushed: tag_immutable naming its
    digest, or unchanged for that digest; never superseded."""
    c = Coalescing()
    c.registry.immutable.add(request(1).ref.repository)
    c.registry.refuse.add(request(9).digest)
    first = await c.first_holds_put(request(9))
    waiting = await c.queue(request(1), request(3), request(2), request(3))
    c.registry.release.set()
    results = await settle(first, *waiting)
    expected = ["LayersNotFound", "TagImmutable", "unchanged", "TagImmutable", "pushed"]
    assert expected == outcomes(results)
    existing = {r.existing_digest for r in results if isinstance(r, TagImmutable)}
    assert {request(3).digest} == existing
    assert request(3).digest == c.registry.tags[request(1).ref]


WAITERS = st.lists(
    st.tuples(st.integers(1, 3), st.one_of(st.none(), st.integers(0, 3))), min_size=1, max_size=6
)


@settings(max_examples=40, deadline=None)
@given(WAITERS, st.booleans())
def test_no_immutable_tag_answer_the_use_case_could_not_give(
    pushes: list[tuple[int, int | None]], first_fails: bool
) -> None:
    """Any pushes of an immutable tag waiting behind a first push (that lands or fails):
    at most one is pushed; an unsequenced push is never superseded; every tag_immutable
    names the image the tag ends on, and only that image is answered unchanged."""

    async def run() -> list[tuple[PushRequest, PushResult | BaseException]]:
        c = Coalescing()
        c.registry.immutable.add(request(1).ref.repository)
        if first_fails:
            c.registry.refuse.add(request(9).digest)
        reqs = [request(9), *(request(n, sequence=s) for n, s in pushes)]
        first = await c.first_holds_put(reqs[0])
        waiting = await c.queue(*reqs[1:])
        c.registry.release.set()
        return list(zip(reqs, await settle(first, *waiting), strict=True))

    answers = asyncio.run(run())
    pushed = [r for _, r in answers if isinstance(r, PushResult) and r.outcome is Outcome.PUSHED]
    assert len(pushed) <= 1
    final = pushed[0].digest if pushed else None
    for req, answer in answers:
        if isinstance(answer, TagImmutable):
            assert final == answer.existing_digest
        elif isinstance(answer, PushResult) and answer.outcome is Outcome.UNCHANGED:
            assert final == req.digest
        elif isinstance(answer, PushResult) and answer.outcome is Outcome.SUPERSEDED:
            assert req.sequence is not None
