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
counts up from it.

Hand-off. A holder that releases while a waiter of its own process is next
in the local queue passes the lease to it in one conditional write (owner and
token ours, token + 1, a fresh expiry) instead of release + acquire; the
waiter never calls DynamoDB. The write carries a random mark (``handoff_id``): a
hand-off whose answer was lost (the client retried it, or it failed after landing)
is known by the mark in the item and taken as done, rather than as a lost lease.
When a waiter of another process has claimed the key, at most ``local_handoffs``
hand-offs happen in a row before a real release lets the claimant in (lock
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

Fairness. A waiter whose attempt failed writes itself as the item's
``claimant`` with ``claim_since``, the time it started waiting, when there is
no claim, the claim is stale, or the claimant has waited less; a grant requires
no live claim from an older waiter and clears the claim. So a release goes to
the longest-waiting claimant rather than back to the releasing process (whose
next local waiter would otherwise always be first to try), and every waiter is
served. Waiters in one process queue
FIFO in the driver; only the head talks to DynamoDB and it is woken the moment
a local holder releases.
"""

from __future__ import annotations

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
    CLAIM_MINE,
    CLAIM_STALE,
    CLAIM_YOUNGER,
    EXPIRED,
    FREE,
    HELD,
    NAMES,
    NO_DATA,
    NOT_RELEASED,
    OURS,
    UNCLAIMED,
    Call,
    ConditionFailed,
    Current,
    Data,
    Flow,
    Now,
    Op,
    Renewed,
    Request,
    Sleep,
    acquire_request,
    check_data,
    claim_request,
    data_of,
    handoff_request,
    read_request,
    release_request,
    renew_request,
    unclaim_request,
    update_request,
)
from locks.exceptions import AcquireTimeout, LeaseLost, LeaseUnavailable, LockBackendError

# The request types and builders live in ``_requests``; importers find them here too.
__all__ = [
    "CLAIM_MINE",
    "CLAIM_STALE",
    "CLAIM_YOUNGER",
    "EXPIRED",
    "FREE",
    "HELD",
    "NAMES",
    "NOT_RELEASED",
    "NO_DATA",
    "OURS",
    "UNCLAIMED",
    "Call",
    "ConditionFailed",
    "Current",
    "Data",
    "Flow",
    "Now",
    "Op",
    "Renewed",
    "Request",
    "Sleep",
    "acquire_flow",
    "acquire_request",
    "check_data",
    "claim_is_live",
    "claim_request",
    "data_of",
    "grant_from",
    "handoff_flow",
    "handoff_request",
    "heartbeat_flow",
    "is_live",
    "may_hand_off",
    "peek_flow",
    "read_request",
    "release_flow",
    "release_request",
    "remote_claim",
    "renew_flow",
    "renew_request",
    "should_claim",
    "unclaim_request",
    "update_flow",
    "update_request",
    "wait_seconds",
]

# --- decisions -------------------------------------------------------------


def is_live(holder: Holder, now: float, config: LockConfig) -> bool:
    """Would a waiter at ``now`` (its clock) consider the lease held?"""
    return holder.expires_at_ms is not None and holder.expires_at_ms >= now - config.skew_ms


def claim_is_live(holder: Holder, now: float, config: LockConfig) -> bool:
    return (
        holder.claimant is not None
        and holder.claim_expires_at_ms is not None
        and holder.claim_expires_at_ms >= now - config.skew_ms
    )


def should_claim(
    holder: Holder, owner: str, now: float, config: LockConfig, since: float | None = None
) -> bool:
    """Claim when the item exists and no live claim is older than our wait;
    refresh our own claim once half of it has run out."""
    if holder.token is None:  # no item: nothing to claim on
        return False
    if holder.claimant == owner:
        expires = holder.claim_expires_at_ms
        return expires is None or expires - now < config.claim * 500
    if not claim_is_live(holder, now, config):
        return True
    return since is not None and holder.claim_since_ms is not None and holder.claim_since_ms > since


def wait_seconds(
    holder: Holder,
    now: float,
    config: LockConfig,
    attempt: int,
    jitter: float,
    *,
    claimant: bool = True,
) -> float:
    """How long a waiter sleeps before its next attempt.

    Until the holder's expiry (plus skew) or a capped exponential backoff,
    whichever is sooner, scaled by ``jitter`` in [0, 1) to between half and all
    of it. A lease that is free but claimed by another waits for that claim.
    Only the claimant, next in line, polls at ``retry_cap``; the others, who
    cannot be granted before it, poll half as often to spare the table.
    """
    cap = config.retry_cap_seconds * (1 if claimant else 2)
    backoff = min(cap, config.retry_base_seconds * 2.0 ** min(attempt, 32))
    if is_live(holder, now, config):
        assert holder.expires_at_ms is not None  # noqa: S101 - is_live checked it
        until = (holder.expires_at_ms + config.skew_ms - now) / 1000
    elif claim_is_live(holder, now, config):
        assert holder.claim_expires_at_ms is not None  # noqa: S101
        until = (holder.claim_expires_at_ms + config.skew_ms - now) / 1000
    else:
        until = 0.0
    delay = max(config.retry_base_seconds, min(until, backoff))
    return delay * (0.5 + 0.5 * jitter)


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
        claimant=seen.claimant,
        claim_expires_at_ms=seen.claim_expires_at_ms,
        data=data_of(attributes),
    )


def remote_claim(grant: Grant, now: float, config: LockConfig) -> bool:
    """Did a waiter of another owner claim the key, as last seen by this grant?"""
    return (
        grant.claimant is not None
        and grant.claimant != grant.owner
        and grant.claim_expires_at_ms is not None
        and grant.claim_expires_at_ms >= now - config.skew_ms
    )


def may_hand_off(grant: Grant, now: float, config: LockConfig, streak: int) -> bool:
    """Hand off locally unless a remote waiter has waited through ``local_handoffs``
    local hand-offs in a row (lock cohorting: throughput, with bounded unfairness)."""
    if config.local_handoffs == 0:
        return False
    return streak < config.local_handoffs or not remote_claim(grant, now, config)


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
) -> Generator[Request, Any, tuple[Grant, float]]:
    """Acquire ``key``: returns the grant and the milliseconds waited.

    ``timeout=None`` waits forever, ``0`` makes one attempt and raises
    :class:`LeaseUnavailable`; otherwise :class:`AcquireTimeout` after ``timeout``.
    ``since`` is when the caller started waiting (its place in the cross-process
    line, and where ``timeout`` runs from); it defaults to the flow's start.
    With ``local_holder`` (a lease on the key is held in this process) the waiter
    first waits for that holder to hand the lease over, rather than asking
    DynamoDB what it already knows.
    """
    start: float = yield Now()
    since = start if since is None else since
    if local_holder and timeout != 0:
        first = config.lease_seconds
        if timeout is not None:
            first = min(first, max(0.0, timeout - (start - since) / 1000))
        woke = yield Sleep(first)
        if isinstance(woke, Grant):
            return woke, (yield Now()) - start
    attempt = 0
    claimed = False
    while True:
        now: float = yield Now()
        answer = yield acquire_request(table, key, owner, now, config, since, set_data, defaults)
        if not isinstance(answer, ConditionFailed):
            return grant_from(answer["Attributes"], key, owner, now, config), now - start
        item = yield from _old_item(answer, table, key)
        holder = Holder.from_item(item)
        if timeout == 0:
            raise LeaseUnavailable(key, holder.owner, holder.expires_at_ms)
        waited = now - since
        if timeout is not None and waited >= timeout * 1000:
            if claimed:
                yield from _unclaim(table, key, owner)
            raise AcquireTimeout(key, holder.owner, holder.expires_at_ms, waited)
        claimant = holder.claimant == owner
        if should_claim(holder, owner, now, config, since):
            answer = yield claim_request(table, key, owner, now, config, since)
            claimant = not isinstance(answer, ConditionFailed)
            claimed = claimed or claimant
        delay = wait_seconds(holder, now, config, attempt, rng.random(), claimant=claimant)
        if timeout is not None:  # the calls above took time too: read the clock again
            delay = min(delay, max(0.0, timeout - ((yield Now()) - since) / 1000))
        woke = yield Sleep(delay)
        if isinstance(woke, Grant):  # a local holder handed it over
            if claimed or woke.claimant == owner:  # our claim must not block the others
                yield from _unclaim(table, key, owner)
            return woke, (yield Now()) - start
        attempt += 1


def _unclaim(table: str, key: str, owner: str) -> Generator[Request, Any, None]:
    try:
        yield unclaim_request(table, key, owner)
    except LockBackendError:  # best effort: the claim goes stale on its own
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
            backoff = min(
                config.retry_cap_seconds, config.retry_base_seconds * 2.0 ** min(failures, 32)
            )
            delay = backoff * (0.5 + 0.5 * rng.random())
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
