"""The lease protocol: pure decisions and DynamoDB request builders.

Nothing here does I/O or reads a clock. Each operation is a generator that
yields requests (:class:`Now`, :class:`Call`, :class:`Sleep`, :class:`Renewed`,
:class:`Current`)
and receives their answers, as httpx's ``Auth.auth_flow`` does; the sync and
async drivers only carry requests out. Tests drive the generators by hand with
any clock they like.

Expiry model
============

Clocks. Every host reads its own wall clock in epoch milliseconds. No clock is
trusted to agree with another's beyond ``max_clock_skew`` (S): at any instant
two hosts' clocks differ by at most S. DynamoDB's clock is not used at all; it
only applies conditional writes atomically.

Timeline of one grant, holder H and waiter W, lease length L, margin M::

    H clock: t0 ── send acquire ── ... ── t0+L-M ──── t0+L
             │   item.expires_at = t0+L      │          │
             │                       H stops trusting   H's expiry
    W clock:                                                ... t0+L+S ── W may take over

- H reads ``t0`` *before* sending the write and stores ``expires_at = t0 + L``.
  H trusts the grant until ``t0 + L - M`` on its own clock (``trusted_until``);
  each renewal sent at ``tr`` moves both to ``tr + L`` and ``tr + L - M``.
- W treats the lease as expired only when its own clock reads more than
  ``expires_at + S``; the takeover is a conditional write
  ``expires_at < now_W - S``, so DynamoDB refuses it if H renewed meanwhile.
- When W's clock reads ``t0 + L + S``, H's reads at least ``t0 + L``, which is
  ``M`` past the moment H stopped trusting. So H always stops before anyone
  else can start: never two holders, for any skew up to S.
- What H does after ``ensure_held()`` may still outlive the grant (a GC pause, a
  slow call). The fencing token exists for that: downstream writes conditioned
  on ``token`` reject a holder that was overtaken.

Fencing token. Each grant writes ``token = if_not_exists(token, floor) + 1``
with ``floor = now_ms * 1000``: one more than the previous grant while the item
exists, and above the previous token after DynamoDB TTL deleted the item,
provided the key saw fewer than 1000 grants per millisecond on average (DynamoDB
allows about one write per millisecond per item), ``cleanup_after`` exceeds
``L + 2S`` (validated by :class:`LockConfig`), and no write lands more than
``cleanup_after - L - 2S`` after its sender read the clock: a write delayed past
TTL cleanup would re-create the item from a stale floor. AWS refuses SigV4
signatures older than five minutes, so with the default ``cleanup_after`` of one
day this cannot happen; keep it well above 15 minutes in production (emulators do
not check signatures). Renewals keep the token.

Release writes ``expires_at = 0`` (and keeps ``token``), conditional on owner
and token, so it never frees another holder's lease and the next grant still
counts up from it. It also writes ``freed_at`` (its clock) and ``held_ms`` (how long
the grant was held), which waiters use to time their polls and to pass a dead waiter.

Hand-off. A holder that releases while a waiter of its own process is next
in the local queue passes the lease to it in one conditional write (owner and
token ours, token + 1, a fresh expiry) instead of release + acquire; the
waiter never calls DynamoDB. The write carries a random mark (``handoff_id``): a
hand-off whose answer was lost (the client retried it, or it failed after landing)
is known by the mark in the item and taken as done, rather than as a lost lease.
While waiters of other processes are in line, at most ``local_handoffs``
hand-offs happen in a row before a real release lets the head of the line in (lock
cohorting: the throughput of local hand-off with bounded unfairness).

Data. An item may carry the data the lease guards (as the AWS Java lock client
does), in ``data_<name>`` attributes. An acquire can set some in its own
conditional write, others only where the item has none (defaults: an earlier
holder's value stays), and returns them all; a renewal leaves them alone; a fenced
update, release or hand-off (conditional on owner and token, like renewal) can
set or remove them. So whoever writes the data held the lease when the write
landed, and a holder that was overtaken writes nothing. A consistent read
(``peek``) sees the data without taking the lease. A grant handed to an
interrupted waiter, or to one that gave up, still carries what that waiter asked
to set; the grant is then released as usual.

Fairness: a line of waiters in the item, a ticket dispenser (Lamport's bakery).
Waiters in one process queue FIFO in the driver; only the head of that queue talks to
DynamoDB, and it is woken the moment a local holder releases. Across processes:

- A waiter whose attempt failed takes a number: ``queue_next + 1``, in one UpdateItem
  whose answer is the item. ``queue_served`` is the last number granted or passed, so
  the waiters in line are the numbers after it, less those in ``queue_gone``.
- An attempt without a number requires an empty line (``queue_next = queue_served``),
  so nobody takes the lease ahead of the line. The head of the line (no live number
  between ``queue_served`` and its own) takes a free lease with ``queue_served = its
  number`` as the condition and the write: the line moves by one per grant.
- Only the head polls often. It sleeps until the holder's expected release (the
  item's ``granted_at`` plus the last ``held_ms`` and a round trip), then backs off
  (capped at ``retry_cap``), never past the holder's expiry plus skew. A waiter with
  ``k`` waiters ahead sleeps ``k`` turns more, so it wakes about when it is head.
- A waiter that gives up (timeout, or served by a local hand-off) adds its number to
  ``queue_gone``. A waiter that died in line is passed by time: a free lease that the
  ``k`` live waiters ahead have not taken within ``k x claim`` of its release (or of
  its expiry, and not before the expiry plus skew) may be taken by the one behind them;
  the passed numbers are void (one that was merely slow sees its number passed and
  joins again, at the back). An awake head polls at least every ``retry_cap``, below
  ``claim``; passing decides order, not safety, so skew only moves it.
- So the lease goes to the waiters in the order they took their numbers, each served
  after the finite turns ahead of it: no waiter can starve. A waiter's calls: its
  number, its grant, its release, and each poll that found it early.

A process that last saw others in line (its previous grant's answer) takes its number
at once, rather than first sending an attempt the line would refuse.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator, Iterable
from dataclasses import replace
from typing import Any

from locks._models import (
    EXPIRES_AT,
    HANDOFF,
    TOKEN,
    Grant,
    Holder,
    LockConfig,
)
from locks._requests import (
    EXPIRED,
    FREE,
    HELD,
    NAMES,
    NO_DATA,
    NO_LINE,
    NOT_RELEASED,
    OURS,
    PASSABLE,
    SERVED,
    TAKEN,
    WAITING,
    Call,
    ConditionFailed,
    Current,
    Data,
    Flow,
    Now,
    Op,
    Place,
    Renewed,
    Request,
    Sleep,
    acquire_request,
    check_data,
    data_of,
    handoff_request,
    join_request,
    read_request,
    release_request,
    renew_request,
    update_request,
    withdraw_request,
)
from locks.exceptions import AcquireTimeout, LeaseLost, LeaseUnavailable, LockBackendError

# The request types and builders live in ``_requests``; importers find them here too.
__all__ = [
    "EXPIRED",
    "FREE",
    "HELD",
    "NAMES",
    "NOT_RELEASED",
    "NO_DATA",
    "NO_LINE",
    "OURS",
    "PASSABLE",
    "SERVED",
    "TAKEN",
    "WAITING",
    "Call",
    "ConditionFailed",
    "Current",
    "Data",
    "Flow",
    "Now",
    "Op",
    "Place",
    "Renewed",
    "Request",
    "Sleep",
    "acquire_flow",
    "acquire_request",
    "check_data",
    "data_of",
    "grant_from",
    "handoff_flow",
    "handoff_request",
    "heartbeat_flow",
    "is_live",
    "join_request",
    "may_hand_off",
    "peek_flow",
    "place_in_line",
    "poll_seconds",
    "read_request",
    "release_flow",
    "release_request",
    "renew_flow",
    "renew_request",
    "update_flow",
    "update_request",
    "withdraw_request",
]

# --- decisions -------------------------------------------------------------


def is_live(holder: Holder, now: float, config: LockConfig) -> bool:
    """Would a waiter at ``now`` (its clock) consider the lease held?"""
    return holder.expires_at_ms is not None and holder.expires_at_ms >= now - config.skew_ms


def place_in_line(holder: Holder, number: int) -> Place | None:
    """Our place in the line as ``holder`` (a view of the item) shows it; None when our
    number was served or passed (or the item is gone): it is void, the waiter joins again."""
    if holder.token is None or not holder.queue_served < number <= holder.queue_next:
        return None
    between = number - holder.queue_served - 1
    gone = [n for n in holder.queue_gone if holder.queue_served < n < number]
    passed = tuple(sorted(n for n in holder.queue_gone if n < number))
    return Place(number, holder.queue_served, passed, between - len(gone))


def poll_seconds(
    holder: Holder,
    place: Place | None,
    now: float,
    config: LockConfig,
    rtt_ms: float,
    attempt: int,
    jitter: float,
) -> float:
    """How long a waiter sleeps before its next attempt (``_protocol``'s doc, Fairness).

    A turn of the line is estimated from below (the last grant's hold and a round trip,
    the round trip trusted up to the hold: a burst of waiters slows the ones it measures):
    a waiter behind others wakes early, costing a poll, rather than late, which would
    leave the lease idle while its head sleeps. A held lease: until the holder's expected
    release (its grant time, the last grant's hold, a round trip), a turn more per waiter
    ahead; once overdue, the head polls a round trip later, then less often (capped at
    ``retry_cap``), and one behind waits a turn. After a poll that found the line where
    it was, the wait is at least that backoff: a streak of local hand-offs in the
    holder's process moves the grant, not the line. Never past the holder's expiry plus
    skew. A free lease: the head at once; one behind a turn per
    waiter ahead, but no later than when it may pass them. Without a number: a capped
    exponential backoff. ``jitter`` in [0, 1) spreads the backoffs.
    """
    rtt = max(1.0, rtt_ms)
    ahead = place.ahead if place is not None else 0
    if place is None:
        delay = _backoff(config.retry_base_seconds, config.retry_cap_seconds, attempt, jitter)
        if is_live(holder, now, config):
            assert holder.expires_at_ms is not None  # noqa: S101 - is_live checked it
            return min(delay, (holder.expires_at_ms + config.skew_ms - now) / 1000)
        return delay
    held = holder.held_ms or 0
    if held:  # a burst of waiters slows the round trips it measures: trust at most the hold
        rtt = min(rtt, held)
    turn = held + rtt
    if is_live(holder, now, config):
        assert holder.expires_at_ms is not None  # noqa: S101 - is_live checked it
        granted = holder.granted_at_ms if holder.granted_at_ms is not None else now
        # the release lands half a round trip after it is sent; our write after it
        due = granted + held + rtt + ahead * turn
        # a round trip, then less often: once overdue, or when the line did not move
        # since the last poll although the grant did (a streak of local hand-offs)
        late = _backoff(rtt, config.retry_cap_seconds * 1000, attempt, jitter)
        if due > now:
            delay = max(due - now, late if attempt else 0.0)
        elif ahead == 0:  # overdue: the release is near
            delay = late
        else:
            delay = turn * (0.5 + 0.5 * jitter)
        expiry = holder.expires_at_ms + config.skew_ms - now
        return max(0.0, min(delay, expiry + ahead * turn)) / 1000
    if ahead == 0:
        return 0.0
    free_since = holder.freed_at_ms if holder.expires_at_ms == 0 else holder.expires_at_ms
    passable = (free_since or 0) + ahead * config.claim * 1000
    return max(0.0, min(ahead * turn, passable - now)) / 1000


def _backoff(first: float, cap: float, attempt: int, jitter: float) -> float:
    """``first`` doubled per attempt, at most ``cap`` (any unit), scaled by ``jitter`` in
    [0, 1) to between half and all of it."""
    return min(cap, first * 2.0 ** min(attempt, 32)) * (0.5 + 0.5 * jitter)


def grant_from(
    attributes: dict[str, Any], key: str, owner: str, sent_at: float, config: LockConfig
) -> Grant:
    token = int(attributes[TOKEN]["N"])
    expires_at = int(attributes[EXPIRES_AT]["N"])
    seen = Holder.from_item(attributes)
    return Grant(
        key=key,
        owner=owner,
        token=token,
        sent_at_ms=sent_at,
        expires_at_ms=expires_at,
        trusted_until_ms=sent_at + config.lease_ms - config.margin * 1000,
        waiting=seen.waiting,
        data=data_of(attributes),
    )


def may_hand_off(grant: Grant, config: LockConfig, streak: int) -> bool:
    """Hand off locally unless waiters of other processes are in line and have waited
    through ``local_handoffs`` local hand-offs in a row (lock cohorting: throughput, with
    bounded unfairness)."""
    if config.local_handoffs == 0:
        return False
    return streak < config.local_handoffs or grant.waiting == 0


# --- flows -----------------------------------------------------------------


def acquire_flow(
    table: str,
    key: str,
    owner: str,
    config: LockConfig,
    timeout: float | None,
    rng: random.Random,
    since: float | None = None,
    *,
    local_holder: bool = False,
    set_data: Data = NO_DATA,
    defaults: Data = NO_DATA,
    queued: bool = False,
) -> Generator[Request, Any, tuple[Grant, float]]:
    """Acquire ``key``: returns the grant and the milliseconds waited.

    ``timeout=None`` waits forever, ``0`` makes one attempt and raises
    :class:`LeaseUnavailable`; otherwise :class:`AcquireTimeout` after ``timeout``.
    ``since`` is when the caller started waiting (where ``timeout`` runs from); it
    defaults to the flow's start. With ``local_holder`` (a lease on the key is held in
    this process) the waiter first waits for that holder to hand the lease over, rather
    than asking DynamoDB what it already knows. With ``queued`` (this process last saw
    waiters in line) it takes a number before its first attempt, which would only fail.
    """
    start: float = yield Now()
    since = start if since is None else since
    if local_holder and timeout != 0:
        woke = yield Sleep(_within(config.lease_seconds, timeout, start - since))
        if isinstance(woke, Grant):
            return woke, (yield Now()) - start
    line = _Line(table, key)
    attempt = 0
    rtt = math.inf
    view: Holder | None = None  # a view from taking a number, to wait on before trying
    if queued and timeout != 0:
        sent: float = yield Now()
        view = yield from line.join()
        rtt = (yield Now()) - sent
        if view is not None and line.my_turn(view, sent, config):
            view = None  # our turn already: try at once
    while True:
        if view is None:
            now: float = yield Now()
            answer = yield acquire_request(
                table, key, owner, now, config, set_data, defaults, line.place
            )
            # the fastest round trip seen: waits err early rather than late
            rtt = min(rtt, (yield Now()) - now)
            if not isinstance(answer, ConditionFailed):
                return grant_from(answer["Attributes"], key, owner, now, config), now - start
            view = Holder.from_item((yield from _old_item(answer, table, key)))
            waited = now - since
            if timeout == 0 and not _line_only(view, now, config, line):
                yield from line.leave()
                raise LeaseUnavailable(key, view.owner, view.expires_at_ms)
            if timeout and waited >= timeout * 1000:
                yield from line.leave()
                raise AcquireTimeout(key, view.owner, view.expires_at_ms, waited)
            view, moved = yield from line.seen(view)
            if moved:
                attempt = 0  # the line moved: time the next poll from the new view
        now = yield Now()  # the calls above took time too: read the clock again
        delay = poll_seconds(view, line.place, now, config, rtt, attempt, rng.random())
        delay = _within(delay, timeout, now - since)
        view = None
        woke = yield Sleep(delay)
        if isinstance(woke, Grant):  # a local holder handed it over: leave the line
            yield from line.leave()
            return woke, (yield Now()) - start
        attempt += 1


def _line_only(view: Holder, now: float, config: LockConfig, line: _Line) -> bool:
    """A single attempt was refused only for a line on a free lease (its waiters may all
    have given up or died): it takes a number and tries once more from its place, so a
    try succeeds whenever a waiting acquire would at once."""
    return line.number is None and view.token is not None and not is_live(view, now, config)


def _within(delay: float, timeout: float | None, waited_ms: float) -> float:
    """``delay``, cut to what is left of ``timeout`` (None: no cut)."""
    if timeout is None:
        return delay
    return min(delay, max(0.0, timeout - waited_ms / 1000))


class _Line:
    """A waiter's number in the line of ``key`` and its place by its last view."""

    def __init__(self, table: str, key: str) -> None:
        self.table, self.key = table, key
        self.number: int | None = None
        self.place: Place | None = None

    def join(self) -> Generator[Request, Any, Holder | None]:
        """Take a number; the item after it, or None if there is no item (nothing to
        wait for) or the call failed (the next attempt decides)."""
        try:
            answer = yield join_request(self.table, self.key)
        except LockBackendError:
            return None
        if isinstance(answer, ConditionFailed):
            return None
        view = Holder.from_item(answer["Attributes"])
        self.number, self.place = view.queue_next, place_in_line(view, view.queue_next)
        return view

    def my_turn(self, view: Holder, now: float, config: LockConfig) -> bool:
        return self.place is not None and not self.place.ahead and not is_live(view, now, config)

    def seen(self, view: Holder) -> Generator[Request, Any, tuple[Holder, bool]]:
        """Our place by ``view`` (a failed attempt's item), joining when we are not in
        line or were passed. Returns the view to wait on (the join's, if it joined) and
        whether we are in line and it moved since our last view."""
        before = self.place
        self.place = None if self.number is None else place_in_line(view, self.number)
        if self.place is None and view.token is not None:
            view = (yield from self.join()) or view
        # without a number (the item is gone, or joining failed) the backoff grows
        moved = self.place is not None and (before is None or self.place.served != before.served)
        return view, moved

    def leave(self) -> Generator[Request, Any, None]:
        """Give our number up (best effort: the waiters behind pass it by time)."""
        if self.number is None:
            return
        try:
            yield withdraw_request(self.table, self.key, self.number)
        except LockBackendError:
            return


def renew_flow(table: str, grant: Grant, config: LockConfig) -> Generator[Request, Any, Grant]:
    """Renew once; raises :class:`LeaseLost` if the grant ran out or moved on."""
    now: float = yield Now()
    if now >= grant.trusted_until_ms:
        raise LeaseLost(grant.key, grant.token, "it ran out before it could be renewed")
    answer = yield renew_request(table, grant, now, config)
    if isinstance(answer, ConditionFailed):
        raise LeaseLost(grant.key, grant.token, _moved_on(answer.item))
    renewed = replace(
        grant_from(answer["Attributes"], grant.key, grant.owner, now, config), token=grant.token
    )
    yield Renewed(renewed)
    return renewed


def heartbeat_flow(
    table: str, grant: Grant, config: LockConfig, rng: random.Random
) -> Generator[Request, Any, None]:
    """Renew every ``heartbeat`` until stopped; raises :class:`LeaseLost`.

    A backend error is retried with backoff while the grant is still trusted;
    once it is not, the lease is lost.
    """
    failures = 0
    while True:
        grant = yield Current()
        now: float = yield Now()
        if failures == 0:
            delay = max(0.0, (grant.sent_at_ms + config.heartbeat * 1000 - now) / 1000)
        else:
            delay = _backoff(
                config.retry_base_seconds, config.retry_cap_seconds, failures, rng.random()
            )
        if (yield Sleep(delay)):
            return
        try:
            grant = yield from renew_flow(table, grant, config)
        except LockBackendError:
            failures += 1
            continue
        failures = 0


def handoff_flow(
    table: str,
    grant: Grant,
    config: LockConfig,
    set_data: Data = NO_DATA,
    remove: Iterable[str] = (),
    defaults: Data = NO_DATA,
    marker: str | None = None,
) -> Generator[Request, Any, Grant | None]:
    """Pass the lease to a local waiter; None if our grant had already moved on.

    The write moves the token on, so a retry of one that landed (its answer lost) fails
    its condition, and a write that failed may have landed. With a ``marker`` (random,
    written with the hand-off) the item then tells: our owner, the next token and our
    marker mean the hand-off landed, and it is taken as done.
    """
    now: float = yield Now()
    request = handoff_request(table, grant, now, config, set_data, remove, defaults, marker)
    try:
        answer = yield request
    except LockBackendError:
        if marker is None:
            raise
        item = (yield read_request(table, grant.key)).get("Item")
        if not _handed_off(item, grant, marker):
            raise
        return grant_from(item, grant.key, grant.owner, now, config)
    if not isinstance(answer, ConditionFailed):
        return grant_from(answer["Attributes"], grant.key, grant.owner, now, config)
    if marker is None:
        return None
    item = yield from _old_item(answer, table, grant.key)
    if item is None or not _handed_off(item, grant, marker):
        return None
    return grant_from(item, grant.key, grant.owner, now, config)


def _old_item(
    answer: ConditionFailed, table: str, key: str
) -> Generator[Request, Any, dict[str, Any] | None]:
    """The item a failed condition met: sent back with the failure, or read (dynalite
    does not return ALL_OLD)."""
    if answer.item is not None:
        return answer.item
    found: dict[str, Any] | None = (yield read_request(table, key)).get("Item")
    return found


def _handed_off(item: dict[str, Any] | None, grant: Grant, marker: str) -> bool:
    """Does ``item`` show our hand-off of ``grant``, marked ``marker``, as landed?"""
    if not item:
        return False
    holder = Holder.from_item(item)
    mark = item.get(HANDOFF)
    return (
        holder.owner == grant.owner
        and holder.token == grant.token + 1
        and mark is not None
        and mark.get("S") == marker
    )


def release_flow(
    table: str,
    grant: Grant,
    config: LockConfig,
    set_data: Data = NO_DATA,
    remove: Iterable[str] = (),
) -> Generator[Request, Any, bool]:
    """Release; returns False if the lease had already moved on (it was lost)."""
    now: float = yield Now()
    answer = yield release_request(table, grant, now, config, set_data, remove)
    return not isinstance(answer, ConditionFailed)


def update_flow(
    table: str, grant: Grant, set_data: Data, remove: Iterable[str]
) -> Generator[Request, Any, dict[str, Any]]:
    """Write data under our grant; returns the item's data after the write.
    Raises :class:`LeaseLost` if the grant moved on."""
    answer = yield update_request(table, grant, set_data, remove)
    if isinstance(answer, ConditionFailed):
        raise LeaseLost(grant.key, grant.token, _moved_on(answer.item))
    return data_of(answer["Attributes"])


def peek_flow(table: str, key: str) -> Generator[Request, Any, dict[str, Any] | None]:
    """The data of ``key``'s item by a consistent read; None if there is no item."""
    answer = yield read_request(table, key)
    item = answer.get("Item")
    return None if item is None else data_of(item)


def _moved_on(item: dict[str, Any] | None) -> str:
    holder = Holder.from_item(item)
    if holder.token is None:
        return "the lease item no longer matches this grant"
    return f"now held under token {holder.token} by {holder.owner!r}"
