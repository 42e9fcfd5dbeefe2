"""A hypothesis state machine: the lease core against a reference DynamoDB table.

Three hosts (two of them threads of one process, sharing an owner id) with clocks offset from true time by up to half the configured skew
(so any two differ by at most the skew) acquire (single attempts and waits with
claims), renew, release, crash and stall. Each DynamoDB call a host sends waits
for a later step to land, so true time passes between a host reading its clock
and its write taking effect (a paused process, a slow network); a call may also
fail, applied or not. TTL deletes the item once true time passes ``cleanup_at``.
The table is ``FakeTable``, which evaluates the expressions the protocol builds.

A request still in flight ``MAX_IN_FLIGHT_MS`` after its clock reading is
rejected instead of applied (as SigV4 rejects stale signatures). Without such a
bound, a delayed acquire can re-create a TTL-deleted item with a stale token
floor: see ``test_requests.test_delayed_acquire_after_ttl_cleanup_keeps_tokens_increasing``.

Invariants:

- at any true instant at most one host trusts a grant (its clock is before the
  grant's ``trusted_until_ms``), and that grant is the item in the table;
- the item's token never goes down, and every grant's token is above every
  earlier one, across TTL deletion;
- a release never frees another holder's grant;
- a single attempt on a free key (no item, or released and unclaimed) is granted;
- data carried in the item (written by acquires, updates, releases and hand-offs)
  changes only in a write by the grant the item holds at that moment: a holder
  that was overtaken, crashed or delayed never writes data over a newer grant's.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from locks._models import (
    CLAIMANT,
    CLEANUP_AT,
    DATA_PREFIX,
    EXPIRES_AT,
    OWNER,
    TOKEN,
    Grant,
    LockConfig,
)
from locks._protocol import (
    Call,
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
from tests.unit.locks.fakes import KEY, T0, TABLE, FakeTable, Item, number

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
# host_acts' ``action`` for a host that holds nothing: a wait with a timeout, a
# single attempt at an edge of the expiry model, or (else) a single attempt.
TIMEOUTS = {3: 0.3, 4: 2.0}
RACES = {5: 1, 6: SKEW, 7: SKEW + 1}
DELIVER = 11
WAITING = "waiting for a hand-off"
SPREADS = st.one_of(st.sampled_from([-SKEW, SKEW]), st.floats(-SKEW, SKEW))


@dataclass
class Host:
    name: str
    owner: str
    offset: float  # host clock = true time + offset
    rng: random.Random
    flow: Any = None
    kind: str | None = None  # acquire / renew / release
    pending: Call | Sleep | None = None
    sent_at: int = 0  # true time the pending call was built
    grant: Grant | None = None  # the grant this host holds
    releasing: Grant | None = None  # the grant a release or hand-off gives up
    heir: Host | None = None  # the local waiter a hand-off goes to


def text(value: Item | None, name: str) -> str | None:
    return None if value is None or name not in value else value[name]["S"]


class LeaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = int(T0)  # true time, ms
        self.table = FakeTable()
        self.hosts: list[Host] = []
        self.highest_grant = 0
        self.highest_item_token = 0
        self.deleted = False

    @initialize(
        spread=SPREADS,
        all_old=st.booleans(),
    )
    def hosts_with_skewed_clocks(self, spread: float, all_old: bool) -> None:
        """Host a on one machine; b1 and b2 are two threads of one process on another
        (same clock, same owner id, as two threads sharing one LeaseLock)."""
        self.table.all_old = all_old
        self.hosts = [
            Host("a", "a", -spread / 2, random.Random(0)),
            Host("b1", "b", spread / 2, random.Random(1)),
            Host("b2", "b", spread / 2, random.Random(2)),
        ]

    # --- a driver for one host ----------------------------------------------------------

    def clock(self, host: Host) -> float:
        return self.now + host.offset

    def start(self, host: Host, kind: str, flow: Any) -> None:
        host.flow, host.kind = flow, kind
        self.run(host, None)

    def run(self, host: Host, answer: Any, error: BaseException | None = None) -> None:
        self.drive(host, answer, error)
        heir = host.heir
        if host.kind == "handoff" and host.flow is None and heir and heir.flow == WAITING:
            heir.flow = None  # the hand-off failed: the waiter gives up waiting for it

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
            assert host.heir is not None
            assert value.token > self.highest_grant, "a hand-off must increase the token"
            self.highest_grant = value.token
            host.heir.grant, host.heir.flow = value, None
        if host.kind == "acquire":
            grant, _ = value
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
        is_acquire = ":floor" in call.params.get("ExpressionAttributeValues", {})
        if is_acquire and before is not None and after != before and number(before, EXPIRES_AT):
            event("took over an unreleased, expired lease")
        if after != before and after is not None and CLAIMANT in after:
            event("claim written")
        if host.kind in {"release", "handoff"} and after != before:
            assert host.releasing is not None
            expected = (host.releasing.owner, host.releasing.token)
            assert expected == (text(before, OWNER), number(before, TOKEN)), (
                "a release changed another holder's grant"
            )
        free = before is None or (number(before, EXPIRES_AT) == 0 and CLAIMANT not in before)
        if is_acquire and free:
            assert "Attributes" in answer, "an acquire on a free key must be granted"
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

    # --- rules ------------------------------------------------------------------------

    @rule(ms=STEPS)
    def time_passes(self, ms: int) -> None:
        self.now += ms

    @rule(i=st.integers(0, 2), delta=st.sampled_from([-MARGIN - 1, -MARGIN, 1, SKEW, SKEW + 1]))
    def time_passes_to_an_edge(self, i: int, delta: int) -> None:
        """Jump to where host ``i``'s clock reads the item's expiry + ``delta``: the
        instants where trust ends and takeover begins, where races are tightest."""
        expires_at = number(self.table.get(), EXPIRES_AT)
        if expires_at:
            self.now = max(self.now, math.ceil(expires_at + delta - self.hosts[i].offset))

    def local_waiter(self, host: Host) -> Host | None:
        """An idle thread of ``host``'s process (same owner) with no lease."""
        waiters = [
            h
            for h in self.hosts
            if h is not host and h.owner == host.owner and h.flow is None and h.grant is None
        ]
        return waiters[0] if waiters else None

    def race_at_the_edge(self, host: Host, delta: int) -> None:
        """A single quick attempt just as the host's clock passes the item's
        expiry + ``delta``: the tightest takeover race."""
        self.time_passes_to_an_edge(self.hosts.index(host), delta)
        self.start(host, "acquire", acquire_flow(TABLE, KEY, host.owner, CONFIG, 0, host.rng))
        while isinstance(host.pending, Call):
            self.act(host, DELIVER)

    @rule(delta=st.sampled_from(sorted(RACES.values())))
    def fastest_clock_races(self, delta: int) -> None:
        """The idle host whose clock runs furthest ahead races at an edge: the
        adversarial schedule for a takeover."""
        free = [h for h in self.hosts if h.flow is None and h.grant is None]
        if free:
            self.race_at_the_edge(max(free, key=lambda h: h.offset), delta)

    @rule(i=st.integers(0, 2), action=st.integers(0, 11), quick=st.booleans())
    def host_acts(self, i: int, action: int, quick: bool) -> None:
        """Host ``i`` takes its next step, whatever state it is in (``action`` picks
        among the steps open to it). ``quick``: the calls of an operation it starts
        land at once, with no time passing."""
        host = self.hosts[i]
        if host.flow == WAITING:
            return  # a thread blocked on a hand-off from its local holder
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
            timeout = TIMEOUTS.get(action, 0)
            acquired = {"acquired_by": {"S": host.name}}
            flow = acquire_flow(
                TABLE, KEY, host.owner, CONFIG, timeout, host.rng, set_data=acquired
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
            heir.flow = WAITING
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

    @rule()
    def ttl_cleanup(self) -> None:
        """DynamoDB TTL deletes the item some time after cleanup_at (true time)."""
        cleanup_at = number(self.table.get(), CLEANUP_AT)
        if cleanup_at is not None and cleanup_at * 1000 < self.now:
            event("TTL deleted the item")
            self.table.delete()
            self.deleted = True

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
        current = self.table.get()
        for host in self.trusting():
            assert host.grant is not None
            assert current is not None, "a trusted grant's item was deleted"
            assert (host.owner, host.grant.token) == (text(current, OWNER), number(current, TOKEN))
            assert (number(current, EXPIRES_AT) or 0) >= host.grant.expires_at_ms


LeaseMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=60, deadline=None)
test_lease_core_against_reference_table = LeaseMachine.TestCase
