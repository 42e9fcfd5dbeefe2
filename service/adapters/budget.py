"""The account-wide PutImage budget, shared by every replica through one DynamoDB item.

ECR allows 10 PutImage/s per account and Region, for all repositories together. Each
PutImage first reserves a time slot in the scope's item (GCRA: the item holds ``tat``,
the earliest start of the next PutImage), then sleeps until its slot and calls ECR.
The design (batching, planning a round trip ahead, clock skew, held slots, failing
open) is in docs/budget.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from service.adapters.aws import create_table, describe_active
from service.domain.errors import RegistryThrottled
from service.domain.models import ImageRef
from service.domain.ports import PutStatus, Registry

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = structlog.get_logger("pushgate.budget")

PK = "pk"
TAT = "tat"
CLEANUP_AT = "cleanup_at"
IDLE = "attribute_not_exists(#tat) OR #tat <= :now"
UNMOVED = "#tat = :old"
MICROS = 1_000_000
#: how many times a call that woke too late for its slot reserves another
LATE_WAKES = 2

BUDGET_SCHEMA: dict[str, Any] = {
    "key_schema": [{"AttributeName": PK, "KeyType": "HASH"}],
    "attribute_definitions": [{"AttributeName": PK, "AttributeType": "S"}],
}


def budget_scope(registry_id: str | None, region: str | None) -> str:
    """The item key: one budget per account (registry) and Region, as ECR's quota."""
    return f"putimage#{registry_id or 'default'}#{region or 'default'}"


def exhausted(wait: float, reason: str) -> RegistryThrottled:
    return RegistryThrottled(
        f"The account's PutImage budget has no slot soon enough ({reason}).",
        cause_code="PutImageBudget",
        retry_after=max(0.0, wait),
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """One reservation attempt (pure): the first slot it asks for, the ``tat`` it writes,
    and the condition that makes it valid. ``old`` is None for the idle condition."""

    slot: int
    new_tat: int
    old: int | None


def plan(now: int, believed: int | None, interval: int, count: int = 1) -> Plan:
    """The attempt to reserve ``count`` consecutive slots for callers at ``now`` who
    believe the item holds ``believed`` (microseconds; None: no item, or not known)."""
    if believed is None or believed <= now:
        return Plan(slot=now, new_tat=now + count * interval, old=None)
    return Plan(slot=believed, new_tat=believed + count * interval, old=believed)


def fitting(first_slot: int, now: int, interval: int, max_waits: list[int]) -> list[bool]:
    """Which callers (in arrival order) get one of the consecutive slots from
    ``first_slot``: a caller whose next slot is further than its ``max_wait`` gets none
    and does not use one up."""
    taken = 0
    fits = []
    for max_wait in max_waits:
        ok = first_slot + taken * interval - now <= max_wait
        fits.append(ok)
        taken += ok
    return fits


@dataclass(eq=False, slots=True)
class _Request:
    max_wait: int  # microseconds
    answer: asyncio.Future[float]


class PutImageBudget(Protocol):
    async def reserve(self, max_wait: float) -> float:
        """Reserve one PutImage; return the seconds from now to its slot (at most
        ``max_wait``; negative when the slot has already begun, e.g. during the
        reservation's own round trip), or raise ``RegistryThrottled`` when no slot is
        that close."""
        ...

    async def ping(self) -> None:
        """Raise ``PushError`` unless the budget's store answers (``/readyz``)."""
        ...


class DynamoPutImageBudget:
    """The shared schedule in one item of ``table`` (docs/budget.md, "The schedule")."""

    def __init__(
        self,
        client: DynamoDBClient,
        *,
        table: str,
        scope: str = "putimage#default#default",
        rate_per_second: float = 10.0,
        share: float = 0.95,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 16,
        cleanup_after_seconds: float = 86_400.0,
    ) -> None:
        if rate_per_second <= 0 or not 0 < share <= 1:
            raise ValueError("rate_per_second must be positive and share in (0, 1]")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._client = client
        self._table = table
        self._scope = scope
        self._interval = max(1, round(MICROS / (rate_per_second * share)))
        self._clock = clock
        self._max_attempts = max_attempts
        self._cleanup_after = cleanup_after_seconds
        self._believed: int | None = None
        self._lead = 0  # microseconds: a reservation's round trip, as recently seen
        self._turn = asyncio.Lock()
        self._queue: list[_Request] = []

    @property
    def interval_seconds(self) -> float:
        return self._interval / MICROS

    async def ping(self) -> None:
        await describe_active(self._client, self._table)

    async def reserve(self, max_wait: float) -> float:
        request = _Request(
            max(0, int(max_wait * MICROS)), asyncio.get_running_loop().create_future()
        )
        self._queue.append(request)
        try:
            async with self._turn:
                if not request.answer.done():  # not served by the previous turn's batch
                    batch, self._queue = self._queue, []
                    try:
                        await self._serve(batch)
                    finally:  # cancelled mid-call: the next turn serves the others
                        self._queue[:0] = [
                            r for r in batch if not r.answer.done() and r is not request
                        ]
        except asyncio.CancelledError:
            if request in self._queue:
                self._queue.remove(request)
            elif request.answer.done():
                request.answer.exception()  # retrieved: nobody else will
            raise
        return request.answer.result()

    async def _serve(self, batch: list[_Request]) -> None:
        """Reserve slots for every request queued in this process, in one UpdateItem."""
        for _ in range(self._max_attempts):
            sent = int(self._clock() * MICROS)
            # Plan from when the answer is expected back: an idle slot planned at the
            # instant the write leaves is already a round trip old when its caller hears
            # of it, and would start right beside the next slot.
            now = sent + self._lead
            first = plan(now, self._believed, self._interval).slot
            fits = fitting(first, now, self._interval, [r.max_wait for r in batch])
            count = sum(fits)
            attempt = plan(now, self._believed, self._interval, count)
            if count:
                try:
                    await self._write(attempt, now)
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != (
                        "ConditionalCheckFailedException"
                    ):
                        self._fail_open(exc, batch)
                        return
                    self._learn(sent)
                    self._believed = _tat_of(exc.response.get("Item"))  # type: ignore[arg-type]
                    continue
                except BotoCoreError as exc:
                    self._fail_open(exc, batch)
                    return
                self._learn(sent)
                self._believed = attempt.new_tat
            # Waits run from now, not from ``now`` above: the write took a round trip, and
            # a caller adding a wait from before it to its clock after it would start late.
            answered = int(self._clock() * MICROS)
            slot = attempt.slot
            for request, fit in zip(batch, fits, strict=True):
                if fit:
                    request.answer.set_result((slot - answered) / MICROS)
                    slot += self._interval
                else:
                    wait = (slot - now) / MICROS
                    request.answer.set_exception(
                        exhausted(
                            wait,
                            f"next slot in {wait:.2f} s, {request.max_wait / MICROS:.2f} s allowed",
                        )
                    )
            return
        error = exhausted(self.interval_seconds, "too many concurrent reservations")
        for request in batch:
            request.answer.set_exception(error)

    def _learn(self, sent: int) -> None:
        """Track the round trip: up at once (a slot planned too early bunches with the
        next), down by half each time (a spike should not keep later calls waiting),
        never above an interval: a loaded replica's "round trip" is mostly its own
        event loop's lag, and a lead of a second would leave a second of the schedule
        unused each time the queue runs dry."""
        trip = max(0, int(self._clock() * MICROS) - sent)
        self._lead = min(self._interval, max(trip, (self._lead + trip) // 2))

    async def _write(self, attempt: Plan, now: int) -> None:
        values: dict[str, Any] = {
            ":new": {"N": str(attempt.new_tat)},
            ":cleanup": {"N": str(int(now / MICROS + self._cleanup_after))},
        }
        if attempt.old is None:
            condition = IDLE
            values[":now"] = {"N": str(now)}
        else:
            condition = UNMOVED
            values[":old"] = {"N": str(attempt.old)}
        await self._client.update_item(
            TableName=self._table,
            Key={PK: {"S": self._scope}},
            UpdateExpression="SET #tat = :new, #cleanup = :cleanup",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#tat": TAT, "#cleanup": CLEANUP_AT},
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _fail_open(self, exc: ClientError | BotoCoreError, batch: list[_Request]) -> None:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
        log.warning("putimage_budget_unavailable", table=self._table, error=code or str(exc))
        self._believed = None
        for request in batch:
            request.answer.set_result(0.0)


def _tat_of(item: dict[str, Any] | None) -> int | None:
    if not item or TAT not in item:
        return None
    return int(item[TAT]["N"])


async def take_slot(
    budget: PutImageBudget,
    max_wait: float,
    *,
    forget_after: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Reserve a slot and sleep until it, for a call with no lease to retry within (a
    push by digest). A wake-up later than ``forget_after`` past the slot (a stalled event
    loop) takes another slot, as ``BudgetedRegistry`` does: a call started then could
    bunch with the slots after it."""
    for _ in range(LATE_WAKES + 1):
        wait = await budget.reserve(max_wait)
        slot = clock() + max(0.0, wait)  # due from the answer, as a held slot is
        if wait <= 0:
            return
        await sleep(wait)
        late = clock() - slot
        if late <= forget_after:
            return
        log.warning("putimage_slot_missed", late_ms=round(late * 1000, 1))
    raise exhausted(0.0, "woke too late for its slot, again and again")


@dataclass(slots=True)
class _Held:
    slot: float  # epoch seconds
    reserved_at: float


class BudgetedRegistry:
    """A ``Registry`` whose PutImage waits for the shared budget; other calls pass through.

    A slot further away than one call may wait (its ``timeout`` less
    ``call_reserve_seconds``) is *held*: the call raises ``registry_throttled`` and the
    use case's retry of the same repo:tag and digest waits for that slot instead of
    queueing anew. A held slot is used by a call at most ``forget_after_seconds`` after it
    is due, else dropped, so no PutImage starts outside the schedule (docs/budget.md,
    "Held slots")."""

    def __init__(
        self,
        inner: Registry,
        budget: PutImageBudget,
        *,
        max_wait_seconds: float = 30.0,
        call_reserve_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_wait: Callable[[float], None] | None = None,
        forget_after_seconds: float = 0.05,
    ) -> None:
        self._inner = inner
        self._budget = budget
        self._max_wait = max_wait_seconds
        self._reserve = call_reserve_seconds
        self._clock = clock
        self._sleep = sleep
        self._on_wait = on_wait
        self._forget_after = forget_after_seconds
        self._held: dict[tuple[str, str], _Held] = {}

    async def _slot(self, key: tuple[str, str]) -> _Held:
        now = self._clock()
        for stale in [k for k, h in self._held.items() if h.slot < now - self._forget_after]:
            del self._held[stale]
        held = self._held.pop(key, None)
        if held is None:
            wait = await self._budget.reserve(self._max_wait)
            # a slot that began during the reservation's round trip is due from its
            # answer: nobody can call before knowing the slot is theirs
            held = _Held(slot=self._clock() + max(0.0, wait), reserved_at=now)
        return held

    async def put_image(
        self,
        ref: ImageRef,
        *,
        manifest: str,
        media_type: str | None,
        digest: str,
        timeout: float,
    ) -> PutStatus:
        # The call must end by ``deadline`` (the use case set it inside the lease); the
        # reservation's own round trip and the wait for the slot both count against it.
        deadline = self._clock() + timeout
        key = (ref.key, digest)
        for _ in range(LATE_WAKES + 1):
            held = await self._slot(key)
            if self._clock() >= deadline:  # the slot goes unused: it will be stale by the retry
                raise exhausted(0.0, "the reservation took the call's whole timeout")
            allowed = max(0.0, deadline - self._clock() - self._reserve)
            wait = held.slot - self._clock()
            if wait > allowed:
                self._held[key] = held
                await self._sleep(allowed)
                left = held.slot - self._clock()
                raise exhausted(left, f"slot held, {left:.2f} s away; retry within the lease")
            if wait > 0:
                await self._sleep(wait)
            # woken later than a held slot may be used (a stalled event loop): starting now
            # could bunch with the slots after it, so the slot is dropped and another taken
            late = self._clock() - held.slot
            if late <= self._forget_after or wait <= 0:
                break
            log.warning("putimage_slot_missed", key=ref.key, late_ms=round(late * 1000, 1))
        else:
            raise exhausted(0.0, "woke too late for its slot, again and again")
        waited = max(0.0, self._clock() - held.reserved_at)
        if self._on_wait is not None:
            self._on_wait(waited)
        if waited > 0:
            log.debug("putimage_budget_waited", key=ref.key, waited_ms=round(waited * 1000, 1))
        return await self._inner.put_image(
            ref,
            manifest=manifest,
            media_type=media_type,
            digest=digest,
            timeout=deadline - self._clock(),
        )

    async def reserve(self, ref: ImageRef, digest: str) -> None:
        """Reserve the slot of the coming ``put_image`` of ``digest`` now, and hold it for
        that call (the use case does this while its acquire is in flight)."""
        key = (ref.key, digest)
        if key not in self._held:
            self._held[key] = await self._slot(key)

    async def tag_digest(self, ref: ImageRef) -> str | None:
        return await self._inner.tag_digest(ref)

    async def manifest(self, repository: str, digest: str) -> tuple[str, str | None] | None:
        return await self._inner.manifest(repository, digest)

    async def ping(self) -> None:
        await self._inner.ping()


async def ensure_budget_table(client: DynamoDBClient, table: str) -> None:
    """Create the budget table (PAY_PER_REQUEST) with TTL on ``cleanup_at``; no-op when
    it exists. Emulators without TTL keep their (one per scope) items."""
    await create_table(client, table, BUDGET_SCHEMA)
    try:
        ttl = await client.describe_time_to_live(TableName=table)
        if ttl["TimeToLiveDescription"].get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}:
            return
        await client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": CLEANUP_AT},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "UnknownOperationException":
            raise
        log.warning("budget_table_ttl_unsupported", table=table)
