"""Coalescing: of the pushes of one tag waiting in this process, only the newest needs a
PutImage.

``CoalescingPushService`` wraps a ``PushService``: its ``push`` first passes a per-tag
*gate* in this process: one push per repo:tag runs the use case (lease, record,
``put_image``) at a time; the others wait at the gate, not in the lease queue. When the
running push ends, the gate goes to the **newest** waiter: the highest ``sequence`` when
every waiter has one, else the latest arrival. When a push *succeeds*, each waiter that
the use case would now answer without a PutImage is answered at once, without ever taking
the lease:

- ``unchanged`` / ``superseded``: ``decision.decide`` on the tag as the successful push
  left it says so, with no record write;
- ``superseded``: neither carries a sequence, the successful push arrived after the
  waiter (without sequences the latest arrival wins), and it moved the tag off the image
  its record named, which shows the tag is mutable. Behind a push that did not (the
  tag's first push, an ``unchanged``), such a waiter runs: on an immutable tag the use
  case answers it ``tag_immutable``, and so must the gate.

Why this is safe: a waiter is only ever answered from a push that has *already succeeded*
— ECR accepted its PutImage and its record was written under its lease — while the waiter
was waiting. The waiter is linearized just after that push (without sequences: just
before it, which a concurrent waiter allows), and at that point the use case would have
given the same answer. A failed push answers nobody: the next newest waiter takes the
gate and runs normally, so no one is told ``superseded`` by a push that never landed.
Waiting at the gate counts against the push's ``wait_seconds``; a push whose wait runs
out there fails with ``lease_timeout``, as it would have in the lease queue.

Every coalesced push is appended to history like any other (``outcome`` ``superseded`` or
``unchanged``, the token of the push it was answered from, ``detail`` naming it).
Coalescing is per process: replicas still serialize through the lease, and a push waiting
on another replica is answered by its own replica's rules.

It is on by default (``PUSHGATE_COALESCE``; ``bench/service_bench.py`` measures a hot
tag with and without it). With it, history no longer holds one entry per lease token
(coalesced entries share the token of the push that answered them, and say so in
``detail``); a consumer of history that needs one token per entry turns it off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from service.domain.decision import Named, Superseded, Unchanged, decide
from service.domain.errors import LeaseTimeout
from service.domain.journal import PushCall
from service.domain.models import Answer, Outcome, PushRequest, PushResult
from service.domain.ports import Defer
from service.domain.push import PushService

log = structlog.get_logger("pushgate.coalesce")


@dataclass(frozen=True, slots=True)
class Settled:
    """A successful push, as waiters are judged against it."""

    request: PushRequest
    arrival: int
    result: PushResult
    request_id: str

    @property
    def moved_a_tag(self) -> bool:
        """Its PutImage moved the tag off the image its record named: the tag is mutable."""
        return self.result.outcome is Outcome.PUSHED and self.result.previous_digest is not None


def coalesced_outcome(waiter: PushRequest, waiter_arrival: int, done: Settled) -> Answer | None:
    """What the use case would answer ``waiter`` right after ``done`` succeeded, when that
    answer needs no PutImage and no record write; None when the waiter must run."""
    after = Named(done.result.current_digest, done.result.current_sequence)
    match decide(after, None, waiter):
        case Unchanged(raise_to=None):
            return Outcome.UNCHANGED
        case Superseded():
            return Outcome.SUPERSEDED
    if (
        waiter.sequence is None
        and done.request.sequence is None
        and done.arrival > waiter_arrival
        and done.moved_a_tag
    ):
        return Outcome.SUPERSEDED
    return None


@dataclass(eq=False, slots=True)
class _Waiter:
    request: PushRequest
    arrival: int
    #: set to None when it is this waiter's turn to run, or to the push it is answered from
    answer: asyncio.Future[Settled | None]


@dataclass(slots=True)
class _Gate:
    waiters: list[_Waiter] = field(default_factory=list)


def newest(waiters: list[_Waiter]) -> _Waiter:
    """Highest sequence when every waiter has one (ties: latest arrival); else the latest
    arrival."""
    if all(w.request.sequence is not None for w in waiters):
        return max(waiters, key=lambda w: (w.request.sequence, w.arrival))
    return max(waiters, key=lambda w: w.arrival)


class CoalescingPushService:
    """Wraps ``use_case`` with a per-tag gate that coalesces waiting pushes (module doc).

    ``enabled=False`` passes every push straight to the use case (the ``coalesce``
    setting); ``on_coalesced`` is called with each coalesced outcome (metrics)."""

    def __init__(
        self,
        use_case: PushService,
        *,
        enabled: bool = True,
        on_coalesced: Callable[[Outcome], None] | None = None,
    ) -> None:
        self._use_case = use_case
        self._clock = use_case.clock
        self._journal = use_case.journal
        self._gates: dict[str, _Gate] = {}
        self._arrivals = itertools.count()
        self._on_coalesced = on_coalesced
        self._enabled = enabled

    async def push(
        self,
        request: PushRequest,
        *,
        caller: str,
        request_id: str,
        defer: Defer | None = None,
        arrived_at: float | None = None,
    ) -> PushResult:
        if not self._enabled:
            return await self._use_case.push(
                request, caller=caller, request_id=request_id, defer=defer, arrived_at=arrived_at
            )
        key = request.ref.key
        arrival = next(self._arrivals)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate()
            return await self._run(
                gate, key, request, arrival, caller, request_id, defer, arrived_at
            )
        call = PushCall(request, caller, request_id, self._clock())
        waiter = _Waiter(request, arrival, asyncio.get_running_loop().create_future())
        gate.waiters.append(waiter)
        try:
            done, _ = await asyncio.wait({waiter.answer}, timeout=request.wait_seconds)
        except asyncio.CancelledError:
            self._abandon(gate, key, waiter)
            raise
        if not done:
            gate.waiters.remove(waiter)
            exc = LeaseTimeout(key, holder="this replica", expires_at=None, retry_after=1.0)
            await self._journal.failed(call, exc, token=None, previous_digest=None)
            raise exc
        settled = waiter.answer.result()
        if settled is None:  # our turn: run with what is left of the wait
            waited = max(0.0, self._clock() - call.started_at)
            rest = dataclasses.replace(
                request, wait_seconds=max(0.0, request.wait_seconds - waited)
            )
            result = await self._run(
                gate, key, rest, arrival, caller, request_id, defer, call.started_at
            )
            return dataclasses.replace(result, waited_ms=result.waited_ms + waited * 1000)
        return await self._answer(call, waiter.arrival, settled)

    async def _run(
        self,
        gate: _Gate,
        key: str,
        request: PushRequest,
        arrival: int,
        caller: str,
        request_id: str,
        defer: Defer | None,
        arrived_at: float | None,
    ) -> PushResult:
        try:
            result = await self._use_case.push(
                request, caller=caller, request_id=request_id, defer=defer, arrived_at=arrived_at
            )
            self._settle(gate, Settled(request, arrival, result, request_id))
            return result
        finally:
            self._hand_over(gate, key)

    def _settle(self, gate: _Gate, done: Settled) -> None:
        """Answer every waiter that ``done`` made needless."""
        keep: list[_Waiter] = []
        for waiter in gate.waiters:
            if coalesced_outcome(waiter.request, waiter.arrival, done) is None:
                keep.append(waiter)
            else:
                waiter.answer.set_result(done)
        gate.waiters = keep

    def _hand_over(self, gate: _Gate, key: str) -> None:
        """The gate goes to the newest waiter, or closes."""
        if not gate.waiters:
            del self._gates[key]
            return
        chosen = newest(gate.waiters)
        gate.waiters.remove(chosen)
        chosen.answer.set_result(None)

    def _abandon(self, gate: _Gate, key: str, waiter: _Waiter) -> None:
        """A cancelled waiter leaves; if the gate was just handed to it, pass it on."""
        if waiter in gate.waiters:
            gate.waiters.remove(waiter)
        elif waiter.answer.done() and waiter.answer.result() is None:
            self._hand_over(gate, key)

    async def _answer(self, call: PushCall, arrival: int, done: Settled) -> PushResult:
        request = call.request
        outcome = coalesced_outcome(request, arrival, done)
        assert outcome is not None  # noqa: S101 - _settle answered it because of this
        result = PushResult(
            outcome=outcome,
            ref=request.ref,
            digest=request.digest,
            previous_digest=done.result.current_digest,
            sequence=request.sequence,
            token=done.result.token,
            waited_ms=round(max(0.0, self._clock() - call.started_at) * 1000, 3),
            current_digest=done.result.current_digest,
            current_sequence=done.result.current_sequence,
        )
        await self._journal.answered(
            call,
            outcome,
            token=done.result.token,
            previous_digest=done.result.current_digest,
            detail=f"coalesced: answered from push {done.request_id} "
            f"(sequence {done.request.sequence}, token {done.result.token}); no PutImage",
        )
        if self._on_coalesced is not None:
            self._on_coalesced(outcome)
        log.info(
            "push_coalesced",
            outcome=outcome.value,
            digest=request.digest,
            sequence=request.sequence,
            by_request_id=done.request_id,
            token=done.result.token,
        )
        return result
