"""A hypothesis state machine: the lease core against a reference DynamoDB table.

Three hosts (a, and threads b1, b2 of one process sharing an owner id) with clocks
offset from true time by up to half the configured skew (so any two differ by at most
the skew) acquire (single attempts; waits that take a number in the line of waiters,
queued from the start or not, or that wait for a local hand-off), renew, update,
release, hand off, crash (a holder, or a process with its numbers left in line) and
stall. Each DynamoDB call a host sends waits for a later step to land, so true time
passes between a host reading its clock and its write taking effect (a paused
process, a slow network); a call may also fail, applied or not. TTL deletes the item
once true time passes ``cleanup_at``. The table starts empty or as a crashed fleet
left it (numbers in line); it is ``FakeTable``, which evaluates the expressions the
protocol builds.

A request still in flight ``MAX_IN_FLIGHT_MS`` after its clock reading is
rejected instead of applied (as SigV4 rejects stale signatures). Without such a
bound, a delayed acquire can re-create a TTL-deleted item with a stale token
floor: see ``test_requests.test_token_after_ttl_cleanup_exceeds_the_deleted_items_token``.

Invariants:

- at any true instant at most one host trusts a grant (its clock is before the
  grant's ``trusted_until_ms``), and that grant is the item in the table;
- the item's token never goes down, and every grant's token is above every
  earlier one, across TTL deletion;
- a release never frees another holder's grant;
- a single attempt on a free key (no item, or released and nobody in line:
  ``queue_next`` absent or equal to ``queue_served``) is granted, and an attempt
  without a number is never granted while somebody is in line;
- data carried in the item (written by acquires, updates, releases and hand-offs)
  changes only in a write by the grant the item holds at that moment: a holder
  that was overtaken, crashed or delayed never writes data over a newer grant's;
- the line: in one item's life ``queue_next`` and ``queue_served`` never decrease and
  served never exceeds next; a join takes next + 1; a waiter withdraws only its own
  unserved number; a grant with a number sets served to it, passing a live (not
  withdrawn) number only after the lease was free ``claim`` per number passed (by the
  passer's clock, and in true time up to the skew);
- the line never blocks forever: when every other host dies (waiters with their
  numbers in line, a holder with its lease), the last one gets the lease within
  ``liveness_bound_ms``.

KNOWN: a waiter's number and place outlive a TTL deletion of the item. Its grant and
its withdrawal require the number in the line (``queue_next >= number``), so one
stalled across the deletion acts on the next life only once that line has grown as
long; its old number then stands for a new waiter's (a withdrawal marks that waiter
gone, a grant passes the live numbers before it). Safety holds; the machine marks such
an item ``stale`` and checks the line's bounds and passing only in the others.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from locks._models import (
    CLEANUP_AT,
    DATA_PREFIX,
    EXPIRES_AT,
    FREED_AT,
    HELD_MS,
    OWNER,
    QUEUE_GONE,
    QUEUE_NEXT,
    QUEUE_SERVED,
    TOKEN,
    TOKEN_SCALE,
    Grant,
    LockConfig,
)
from locks._protocol import (
    Call,
    ConditionFailed,
    Current,
    Now,
    Renewed,
    Sleep,
    acquire_flow,
    data_of,
    handoff_flow,
    release_flow,
    renew_flow,
    update_flow,
)
from locks.exceptions import LeaseLost, LeaseUnavailable, LockBackendError
from tests.unit.locks.fakes import KEY, T0, TABLE, FakeTable, Item, item, number

CONFIG = LockConfig(
    lease_seconds=1.0,
    max_clock_skew_seconds=0.2,
    safety_margin_seconds=0.05,
    retry_base_seconds=0.02,
    retry_cap_seconds=0.1,
    claim_seconds=0.6,
    cleanup_after_seconds=1.5,
)
SKEW = CONFIG.skew_ms
CLAIM = round(CONFIG.claim * 1000)
# Longer than a lease (so a write can land after the lease it was meant for
# expired), shorter than cleanup_after - 2 x skew (see the module docstring).
MAX_IN_FLIGHT_MS = round(CONFIG.cleanup_after_seconds * 1000) - 2 * SKEW - 1
LEASE, MARGIN = CONFIG.lease_ms, round(CONFIG.margin * 1000)
# Time steps, biased towards the edges of the expiry model's windows.
STEPS = st.one_of(
    st.integers(1, 100),
    st.integers(1, 1_500),
    st.sampled_from(
        [LEASE - MARGIN - SKEW, LEASE - MARGIN, LEASE - SKEW, LEASE, LEASE + SKEW]
    ).flatmap(lambda edge: st.integers(edge - 30, edge + 30)),
)
# host_acts' ``action`` for a host that holds nothing: a wait with a timeout (None:
# until granted; queued: taking a number before its first attempt), a single attempt
# at an edge of the expiry model, or (else) a single attempt.
TIMEOUTS: dict[int, float | None] = {2: 0.05, 3: 0.3, 4: 2.0, 8: 2.0, 9: None}
QUEUED = {8}
RACES = {5: 1, 6: SKEW, 7: SKEW + 1}
DELIVER = 11
CRASH = 10
WAITING = "waiting for a hand-off"
SPREADS = st.one_of(st.sampled_from([-SKEW, SKEW]), st.floats(-SKEW, SKEW))
HOSTS = st.integers(0, 2)
RTT = 10  # ms a call takes when the last live host runs alone


@dataclass
class Host:
    name: str
    owner: str
    offset: float  # host clock = true time + offset
    rng: random.Random
    flow: Any = None
    kind: str | None = None  # acquire / renew / update / release / handoff
    pending: Call | Sleep | None = None
    sent_at: int = 0  # true time the pending call was built
    grant: Grant | None = None  # the grant this host holds
    releasing: Grant | None = None  # the grant a release or hand-off gives up
    heir: Host | None = None  # the local waiter a hand-off goes to
    handed: bool = False  # a sleeping waiter a local hand-off is under way to
    number: int | None = None  # the number a join of its current acquire took
    life: int = 0  # the item's life (TTL deletions before) that number was taken in


def text(value: Item | None, name: str) -> str | None:
    return None if value is None or name not in value else value[name]["S"]


def gone(value: Item | None) -> set[int]:
    if value is None or QUEUE_GONE not in value:
        return set()
    return {int(n) for n in value[QUEUE_GONE]["NS"]}


def line(value: Item | None) -> tuple[Any, ...]:
    return tuple((value or {}).get(name) for name in (QUEUE_NEXT, QUEUE_SERVED, QUEUE_GONE))


def in_line(value: Item | None) -> bool:
    """Is anybody (even a withdrawn number) in the item's line?"""
    taken = number(value, QUEUE_NEXT)
    return taken is not None and taken != number(value, QUEUE_SERVED)


def value_of(call: Call, name: str) -> int | None:
    found = call.params.get("ExpressionAttributeValues", {}).get(name)
    return None if found is None else int(found["N"])


def liveness_bound_ms(in_line: int, held_ms: int) -> int:
    """How long the last live host may take to get the lease, once the step it was in
    is over: the lease running out (a lease, the skew between the holder's clock and
    ours, the skew the takeover allows), a turn per number in line (``claim``, or the
    last hold if longer: a waiter sleeps a hold per waiter ahead) and a few polls."""
    turn = max(CLAIM, held_ms + RTT)
    return LEASE + 2 * SKEW + in_line * turn + round(CONFIG.retry_cap_seconds * 1000) + 10 * RTT


class LeaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = int(T0)  # true time, ms
        self.table = FakeTable()
        self.hosts: list[Host] = []
        self.highest_grant = 0
        self.highest_item_token = 0
        self.deleted = False
        self.line_seen = (0, 0)  # the highest (queue_served, queue_next) of this item
        self.life = 0  # TTL deletions so far: numbers of an earlier life are void
        self.stale = False  # a number of an earlier life landed in this item (see KNOWN)
        self.alone = False  # the last live host has run alone once in this example
        self.freed_true: float | None = None  # true time the last release was sent
        self.expiry_offset = 0.0  # the clock offset of the host that wrote the expiry

    @initialize(spread=SPREADS, all_old=st.booleans())
    def hosts_with_skewed_clocks(self, spread: float, all_old: bool) -> None:
        """Host a on one machine; b1 and b2 are two threads of one process on another
        (same clock, same owner id, as two threads sharing one LeaseLock)."""
        self.table.all_old = all_old
        self.hosts = [
            Host("a", "a", -spread / 2, random.Random(0)),
            Host("b1", "b", spread / 2, random.Random(1)),
            Host("b2", "b", spread / 2, random.Random(2)),
        ]

    @initialize(
        dead=st.integers(0, 3),
        withdrawn=st.frozensets(st.integers(1, 3)),
        expires_in=st.one_of(st.just(0), st.integers(-LEASE, LEASE)),
    )
    def a_crashed_fleet_left_a_line(
        self, dead: int, withdrawn: frozenset[int], expires_in: int
    ) -> None:
        """Unless ``dead`` is 0, the table starts as processes that died left it: ``dead``
        numbers taken (those in ``withdrawn`` given up), and a lease released
        (``expires_in`` 0) or unreleased, expiring ``expires_in`` ms from now."""
        if not dead:
            return
        token = int((T0 - LEASE) * TOKEN_SCALE) + 1
        self.freed_true = T0 - LEASE // 2  # the dead fleet's clocks read true time
        self.table.put(
            item(
                owner="crashed",
                token=token,
                expires_at=T0 + expires_in if expires_in else 0,
                freed_at=self.freed_true,
                queue_next=dead,
                queue_served=0,
                queue_gone=tuple(n for n in withdrawn if n <= dead),
                cleanup_at=round(T0 / 1000) + 3,  # after any expiry here + cleanup_after
            )
        )
        self.highest_item_token = self.highest_grant = token

    def item(self) -> Item | None:  # to read only: no copy, invariants read it each step
        return self.table.items.get(KEY)

    # --- a driver for one host ----------------------------------------------------------

    def clock(self, host: Host) -> float:
        return self.now + host.offset

    def start(self, host: Host, kind: str, flow: Any) -> None:
        host.flow, host.kind = flow, kind
        if kind == "acquire":
            host.number = None  # a new flow, a new place in the line
        self.run(host, None)

    def acquire(self, host: Host, timeout: float | None, **kwargs: Any) -> Any:
        """An acquire as the driver starts it: waiting first for a local hand-off when
        a thread of the same process holds the lease."""
        local = any(h.grant for h in self.hosts if h is not host and h.owner == host.owner)
        return acquire_flow(
            TABLE, KEY, host.owner, CONFIG, timeout, host.rng, local_holder=local, **kwargs
        )

    def run(self, host: Host, answer: Any, error: BaseException | None = None) -> None:
        self.drive(host, answer, error)
        heir = host.heir
        if host.kind == "handoff" and host.flow is None and heir is not None:
            host.heir = None
            if heir.flow == WAITING:
                heir.flow = None  # the hand-off failed: the waiter gives up waiting for it
            heir.handed = False  # a sleeping waiter sleeps on

    def drive(self, host: Host, answer: Any, error: BaseException | None) -> None:
        while True:
            try:
                request = host.flow.throw(error) if error else host.flow.send(answer)
            except StopIteration as stop:
                host.flow = None
                self.finished(host, stop.value)
                return
            except LeaseUnavailable as exc:  # and AcquireTimeout
                event(type(exc).__name__)
                host.flow = None
                return
            except LeaseLost:
                event("lease lost")
                host.flow, host.grant = None, None
                return
            except LockBackendError:
                host.flow = None
                return
            error = None
            if isinstance(request, Now):
                answer = self.clock(host)
            elif isinstance(request, Renewed):
                if host.grant is None or request.grant.sent_at_ms >= host.grant.sent_at_ms:
                    host.grant = request.grant
                answer = None
            elif isinstance(request, Current):
                answer = host.grant
            else:
                host.pending, host.sent_at = request, self.now
                return

    def finished(self, host: Host, value: Any) -> None:
        if host.kind == "handoff" and value is not None:
            event("handed off")
            heir = host.heir
            assert heir is not None
            assert value.token > self.highest_grant, "a hand-off must increase the token"
            self.highest_grant = value.token
            if heir.flow == WAITING:
                heir.grant, heir.flow = value, None
            elif heir.handed:  # a waiter asleep in its acquire flow: the grant answers its sleep
                event("handed off to a sleeping waiter")
                heir.grant, heir.handed, heir.pending = value, False, None
                self.run(heir, value)
            # else the heir died meanwhile: nobody holds the new grant, it runs out
        if host.kind == "acquire":
            grant, _ = value
            if grant is host.grant:
                return  # handed over by a local holder (counted above)
            event("granted after TTL deleted the item" if self.deleted else "granted")
            assert grant.token > self.highest_grant, "tokens must increase grant by grant"
            self.highest_grant = grant.token
            host.grant = grant

    def apply(self, host: Host, call: Call) -> Any:
        """Carry out ``call`` on the table, checking what each write may do."""
        before = self.table.get()
        answer = self.table.execute(call)
        after = self.table.get()
        if host.kind == "update" and after != before:
            event("data updated")
            assert host.grant is not None
            expected = (host.grant.owner, host.grant.token)
            assert expected == (text(before, OWNER), number(before, TOKEN)), (
                "an update wrote data under another holder's grant"
            )
        is_acquire = value_of(call, ":floor") is not None
        if is_acquire and before is not None and after != before and number(before, EXPIRES_AT):
            event("took over an unreleased, expired lease")
        if host.kind in {"release", "handoff"} and after != before:
            assert host.releasing is not None
            expected = (host.releasing.owner, host.releasing.token)
            assert expected == (text(before, OWNER), number(before, TOKEN)), (
                "a release changed another holder's grant"
            )
        if after != before and value_of(call, ":number") is not None and host.life != self.life:
            event("a number taken before a TTL deletion landed in the new item")
            self.stale = True  # KNOWN: the line checks below do not hold for this item
        if after != before and number(after, EXPIRES_AT) != number(before, EXPIRES_AT):
            if number(after, EXPIRES_AT):
                self.expiry_offset = host.offset
            else:
                self.freed_true = host.sent_at
        if is_acquire:
            granted = not isinstance(answer, ConditionFailed)
            self.check_acquire(host, call, before, after, granted)
        else:
            self.check_line_call(host, call, before, after)
        token = number(after, TOKEN)
        if token is not None:
            assert token >= self.highest_item_token, "the item's token went down"
            self.highest_item_token = token
        if data_of(after) != data_of(before) and host.kind != "acquire":
            # a fenced data write lands only under the grant it was made by
            written = number(after, DATA_PREFIX + "writer")
            assert written in {number(before, TOKEN), number(after, TOKEN)}, (
                "data was written by a grant the item no longer held"
            )
        return answer

    def check_acquire(
        self, host: Host, call: Call, before: Item | None, after: Item | None, granted: bool
    ) -> None:
        mine = value_of(call, ":number")
        if mine is None:  # a single attempt, or a waiter without a number
            free = before is None or (number(before, EXPIRES_AT) == 0 and not in_line(before))
            if free:
                assert granted, "an acquire on a free key must be granted"
            if granted:
                assert not in_line(before), "an attempt without a number went ahead of the line"
                assert line(before) == line(after), "an attempt without a number moved the line"
            return
        if not granted:
            return
        served = number(before, QUEUE_SERVED)
        assert served is not None, "a grant with a number on an item without a line"
        assert served < mine, "a grant took a number already served"
        assert mine == number(after, QUEUE_SERVED), "a grant with a number serves that number"
        passed = set(range(served + 1, mine)) - gone(before)
        if passed and not self.stale:
            event("passed a waiter by time")
            released = number(before, EXPIRES_AT) == 0
            since = number(before, FREED_AT if released else EXPIRES_AT) or 0  # writer's clock
            late = (value_of(call, ":now") or 0) - since
            assert late > len(passed) * CLAIM, f"passed {passed} {late} ms after the lease freed"
            # and in true time, up to the skew between the two clocks (and a rounded ms)
            freed = self.freed_true if released else since - self.expiry_offset
            assert freed is not None
            true_late = host.sent_at - freed
            assert true_late > len(passed) * CLAIM - SKEW - 1, f"passed {true_late} ms after (true)"
        elif mine > served + 1:
            event("passed a withdrawn number")
        else:
            event("granted to the head of the line")

    def check_line_call(
        self, host: Host, call: Call, before: Item | None, after: Item | None
    ) -> None:
        expression = call.params.get("UpdateExpression", "")
        if after == before:
            return
        if expression.startswith("SET #queue_next"):  # a join
            event("took a number")
            taken = number(after, QUEUE_NEXT)
            assert taken == (number(before, QUEUE_NEXT) or 0) + 1, "a join takes the next number"
            host.number, host.life = taken, self.life
        elif expression.startswith("ADD #queue_gone"):
            event("withdrew a number")
            withdrawn = value_of(call, ":number")
            assert host.number == withdrawn, "withdrew another waiter's number"
            assert withdrawn is not None
            assert (number(before, QUEUE_SERVED) or 0) < withdrawn, "withdrew a served number"
        else:
            assert line(before) == line(after), f"{host.kind} changed the line"

    # --- rules ------------------------------------------------------------------------

    @rule(ms=STEPS)
    def time_passes(self, ms: int) -> None:
        self.now += ms

    @rule(i=HOSTS, delta=st.sampled_from([-MARGIN - 1, -MARGIN, 1, SKEW, SKEW + 1]))
    def time_passes_to_an_edge(self, i: int, delta: int) -> None:
        """Jump to where host ``i``'s clock reads the item's expiry + ``delta``: the
        instants where trust ends and takeover begins, where races are tightest."""
        expires_at = number(self.item(), EXPIRES_AT)
        if expires_at:
            self.now = max(self.now, math.ceil(expires_at + delta - self.hosts[i].offset))

    def local_waiter(self, host: Host) -> Host | None:
        """A thread of ``host``'s process (same owner) with no lease, asleep in its
        acquire flow (between polls, or waiting for a hand-off), or else idle."""
        asleep = [h for h in self.hosts if h.kind == "acquire" and isinstance(h.pending, Sleep)]
        idle = [h for h in self.hosts if h.flow is None]
        for h in asleep + idle:  # the driver's local queue: its waiters first
            if h is not host and h.owner == host.owner and h.grant is None and not h.handed:
                return h
        return None

    def race_at_the_edge(self, host: Host, delta: int) -> None:
        """A single quick attempt just as the host's clock passes the item's
        expiry + ``delta``: the tightest takeover race."""
        self.time_passes_to_an_edge(self.hosts.index(host), delta)
        self.start(host, "acquire", self.acquire(host, 0))
        while isinstance(host.pending, Call):
            self.act(host, DELIVER)

    @rule(delta=st.sampled_from(sorted(RACES.values())))
    def fastest_clock_races(self, delta: int) -> None:
        """The idle host whose clock runs furthest ahead races at an edge: the
        adversarial schedule for a takeover."""
        free = [h for h in self.hosts if h.flow is None and h.grant is None]
        if free:
            self.race_at_the_edge(max(free, key=lambda h: h.offset), delta)

    @rule(i=HOSTS, action=st.integers(0, 11), quick=st.booleans())
    def host_acts(self, i: int, action: int, quick: bool) -> None:
        """Host ``i`` takes its next step, whatever state it is in (``action`` picks
        among the steps open to it; ``CRASH`` kills its process mid-operation).
        ``quick``: the calls of an operation it starts land at once, with no time
        passing (or, for a crash, a call it sent lands)."""
        host = self.hosts[i]
        if host.flow == WAITING or host.handed:
            return  # a thread blocked on a hand-off from its local holder
        if action == CRASH and host.flow is not None:
            self.process_crashes(host, lands=quick)  # mid-operation: a waiter leaves its number
            return
        self.act(host, action)
        if quick and host.flow is not None:
            while isinstance(host.pending, Call):
                self.act(host, DELIVER)

    def act(self, host: Host, action: int) -> None:
        if isinstance(host.pending, Call):
            call, host.pending = host.pending, None
            if self.now - host.sent_at > MAX_IN_FLIGHT_MS:
                self.run(host, None, LockBackendError("request expired", code=None, cause=None))
            elif action in {0, 1}:  # the call times out, having landed (0) or not (1)
                if action == 0:
                    self.apply(host, call)
                self.run(host, None, LockBackendError("timed out", code=None, cause=None))
            else:
                self.run(host, self.apply(host, call))
        elif isinstance(host.pending, Sleep):
            host.pending = None
            self.run(host, action == 0)  # woken early by a local release, or slept out
        elif host.grant is None and action in RACES:
            self.race_at_the_edge(host, RACES[action])
        elif host.grant is None:
            acquired = {"acquired_by": {"S": host.name}}
            flow = self.acquire(
                host, TIMEOUTS.get(action, 0), set_data=acquired, queued=action in QUEUED
            )
            self.start(host, "acquire", flow)
        else:
            self.holder_acts(host, host.grant, action)

    def holder_acts(self, host: Host, grant: Grant, action: int) -> None:
        if action <= 2:
            self.start(host, "renew", renew_flow(TABLE, grant, CONFIG))
        elif action <= 5:
            host.releasing, host.grant = grant, None  # stops trusting before the call
            self.start(host, "release", release_flow(TABLE, grant, CONFIG, self.writer(grant)))
        elif action in {7, 8} and (heir := self.local_waiter(host)) is not None:
            # a thread of the same process waits: pass the lease on in one write
            host.releasing, host.grant, host.heir = grant, None, heir
            heir.handed = heir.flow is not None  # asleep in its acquire flow
            heir.flow = heir.flow or WAITING  # or else idle: blocked until the hand-off ends
            mark = f"{host.name}-{grant.token}"  # a hand-off of a grant happens once
            flow = handoff_flow(TABLE, grant, CONFIG, self.writer(grant), marker=mark)
            self.start(host, "handoff", flow)
        elif action in {9, 10}:
            self.start(host, "update", update_flow(TABLE, grant, self.writer(grant), ()))
        elif action == 6:
            event("a holder crashed")
            host.grant = None  # SIGKILL: no release, no more renewals
        # otherwise it keeps holding and does nothing

    @staticmethod
    def writer(grant: Grant) -> dict[str, Any]:
        """Data naming the grant that writes it (and when, so each write changes it)."""
        return {"writer": {"N": str(grant.token)}, "at": {"N": str(int(grant.sent_at_ms))}}

    def kill(self, host: Host, lands: bool) -> None:
        """SIGKILL ``host`` wherever it is: a call it sent lands (``lands``) or not; a
        number it took stays in the line, a lease it held runs out."""
        if isinstance(host.pending, Call) and lands and self.now - host.sent_at <= MAX_IN_FLIGHT_MS:
            self.apply(host, host.pending)
        mine, current = host.number, self.item()
        if mine and (number(current, QUEUE_SERVED) or 0) < mine and mine not in gone(current):
            event("a waiter crashed holding a number")
        if host.grant is not None:
            event("a holder crashed")
        host.flow = host.kind = host.pending = host.grant = host.releasing = host.heir = None
        host.handed, host.number = False, None

    def process_crashes(self, host: Host, lands: bool) -> None:
        """``host``'s process dies with all its threads (b1 and b2 together)."""
        for thread in self.hosts:
            if thread.owner == host.owner:
                self.kill(thread, lands)

    @precondition(lambda self: not self.alone and in_line(self.item()))
    @rule(i=HOSTS, lands=st.booleans())
    def the_last_live_host_gets_the_lease(self, i: int, lands: bool) -> None:
        """Every host but ``i`` dies while somebody is in line (their numbers stay, a
        lease held runs out); ``i`` runs alone, each call taking ``RTT``, each sleep
        slept out, waiting without a timeout once its own wait ends: it gets the lease
        within ``liveness_bound_ms``, passing the dead waiters ahead of it by time."""
        self.alone = True
        survivor = self.hosts[i]
        for host in self.hosts:
            if host is not survivor:
                self.kill(host, lands)
        if survivor.flow == WAITING:
            survivor.flow = None  # its local holder died
        survivor.handed = False
        # the step it was in the middle of ends first: its calls land (a call that waited
        # long in flight makes the flow think round trips are slow), its sleep is slept out
        while isinstance(survivor.pending, Call):
            self.alone_step(survivor)
        if isinstance(survivor.pending, Sleep):
            self.alone_step(survivor)
        first = self.item()
        waiters = (number(first, QUEUE_NEXT) or 0) - (number(first, QUEUE_SERVED) or 0)
        started, held = self.now, 0
        for _ in range(2_000):
            if survivor.flow is None and survivor.grant is not None:
                event("the last live host got the lease")
                return
            held = max(held, number(self.item(), HELD_MS) or 0)
            bound = liveness_bound_ms(waiters, held)
            waited = self.now - started
            assert waited <= bound, f"waited {waited} > {bound} ms: {first} -> {self.item()}"
            self.alone_step(survivor)
        raise AssertionError(f"the last live host polled 2000 times: {self.item()}")

    def alone_step(self, host: Host) -> None:
        """``host``'s next step when nothing else happens: a wait without a timeout if
        it is idle, a call that lands after ``RTT``, a sleep slept out."""
        if host.flow is None:
            self.start(host, "acquire", self.acquire(host, None))
        elif isinstance(host.pending, Call):
            self.now += RTT
            self.act(host, DELIVER)
        else:
            assert isinstance(host.pending, Sleep)
            self.now += max(1, math.ceil(host.pending.seconds * 1000))
            self.act(host, 1)

    @rule()
    def ttl_cleanup(self) -> None:
        """DynamoDB TTL deletes the item some time after cleanup_at (true time)."""
        cleanup_at = number(self.item(), CLEANUP_AT)
        if cleanup_at is not None and cleanup_at * 1000 < self.now:
            event("TTL deleted the item")
            self.table.delete()
            self.deleted = True
            self.line_seen = (0, 0)  # a new item starts a new line
            self.life += 1
            self.stale = False

    # --- invariants -------------------------------------------------------------------

    def trusting(self) -> list[Host]:
        return [
            h
            for h in self.hosts
            if h.grant is not None and self.clock(h) < h.grant.trusted_until_ms
        ]

    @invariant()
    def at_most_one_host_trusts_a_grant(self) -> None:
        assert len(self.trusting()) <= 1, [(h.name, h.grant) for h in self.trusting()]

    @invariant()
    def a_trusted_grant_is_the_tables_item(self) -> None:
        current = self.item()
        for host in self.trusting():
            assert host.grant is not None
            assert current is not None, "a trusted grant's item was deleted"
            assert (host.owner, host.grant.token) == (text(current, OWNER), number(current, TOKEN))
            assert (number(current, EXPIRES_AT) or 0) >= host.grant.expires_at_ms

    @invariant()
    def the_line_only_moves_forward(self) -> None:
        """``queue_served`` and ``queue_next`` never decrease in one item's life; served
        never exceeds next, and every withdrawn number is one that was taken (but see
        KNOWN in the module docstring)."""
        current = self.item()
        taken, served = number(current, QUEUE_NEXT), number(current, QUEUE_SERVED)
        assert (taken is None) == (served is None), "a line has both counters or neither"
        taken, served = taken or 0, served or 0
        was_served, was_taken = self.line_seen
        assert served >= was_served, f"queue_served went back from {was_served} to {served}"
        assert taken >= was_taken, f"queue_next went back from {was_taken} to {taken}"
        self.line_seen = (served, taken)
        if not self.stale:
            assert served <= taken, f"served {served} of the {taken} numbers taken"
            assert all(1 <= n <= taken for n in gone(current)), f"{gone(current)} of {taken}"


LeaseMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=60, deadline=None)
test_lease_core_against_reference_table = LeaseMachine.TestCase
