# Generated from _async.py by scripts/unasync.py: edit that file, then run the script.
"""The blocking driver: a boto3 DynamoDB client, a heartbeat thread per lease.

Generated from ``_async.py`` by ``scripts/unasync.py``
(what differs lives in ``_synchronization.py``). The protocol decides, this
file only carries out its requests.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from botocore.exceptions import BotoCoreError, ClientError

from locks._common import (
    Clock,
    Recent,
    create_table_params,
    decode_data,
    default_owner,
    encode_data,
    log,
    queued_out,
    translate,
    wall_clock_ms,
)
from locks._models import CLEANUP_AT, Grant, Holder, LeaseInfo, LockConfig
from locks._protocol import (
    NO_DATA,
    Call,
    Current,
    Data,
    Flow,
    Now,
    Renewed,
    Sleep,
    acquire_flow,
    handoff_flow,
    heartbeat_flow,
    may_hand_off,
    peek_flow,
    read_request,
    release_flow,
    renew_flow,
    update_flow,
)
from locks._synchronization import (
    Background,
    Condition,
    Event,
    Lock,
    SleepFn,
    ThreadLock,
    default_client,
    open_client,
    shield,
    sleep,
)
from locks.exceptions import (
    LeaseLost,
    LeaseUnavailable,
    LockBackendError,
    LockError,
    LockStateError,
)

if TYPE_CHECKING:
    import boto3
    from types_boto3_dynamodb import DynamoDBClient


class _Ticket:
    def __init__(self, set_attributes: Data = NO_DATA, defaults: Data = NO_DATA) -> None:
        self.wake = Event()
        self.grant: Grant | None = None  # set by a local holder handing the lease over
        # what the waiter's acquire writes: a local hand-off writes it instead
        self.set_attributes = set_attributes
        self.defaults = defaults

    def sleep(self, seconds: float) -> bool | Grant:
        """Wait for a local release or hand-off; the handed-over grant if any."""
        if self.grant is None:
            woke = self.wake.wait(seconds)
            self.wake.clear()
            if self.grant is None:
                return woke
        return self.grant


def handoff_data(
    typed: Data, removed: tuple[str, ...], ticket: _Ticket
) -> tuple[Data, tuple[str, ...], Data]:
    """The data changes of a hand-off: our release's, then the waiter's acquire's on
    top. A waiter's default lands plainly where our release removes the attribute, and
    not at all where our release sets it."""
    set_attributes = {**typed, **ticket.set_attributes}
    defaults = {}
    for name, value in ticket.defaults.items():
        if name in removed:
            set_attributes[name] = value
        elif name not in typed:
            defaults[name] = value
    taken = set(ticket.set_attributes) | set(ticket.defaults)
    return set_attributes, tuple(name for name in removed if name not in taken), defaults


class _LocalQueue:
    """FIFO of this lock's waiters per key; only the head talks to DynamoDB."""

    def __init__(self) -> None:
        self._turns = Condition()
        self._queues: dict[str, deque[_Ticket]] = {}

    def join(self, key: str, set_attributes: Data = NO_DATA, defaults: Data = NO_DATA) -> _Ticket:
        ticket = _Ticket(set_attributes, defaults)
        with self._turns:
            self._queues.setdefault(key, deque()).append(ticket)
        return ticket

    def wait_turn(self, key: str, ticket: _Ticket, timeout: float | None) -> bool:
        return self._turns.wait_for(lambda: self._queues[key][0] is ticket, timeout)

    def leave(self, key: str, ticket: _Ticket) -> Grant | None:
        """Leave the queue; a grant handed over meanwhile is the caller's to keep."""
        with self._turns:
            queue = self._queues[key]
            queue.remove(ticket)
            if not queue:
                del self._queues[key]
            self._turns.notify_all()
            return ticket.grant

    def head(self, key: str) -> _Ticket | None:
        with self._turns:
            queue = self._queues.get(key)
            return queue[0] if queue else None

    def deliver(self, key: str, ticket: _Ticket, grant: Grant) -> bool:
        """Hand ``grant`` to ``ticket`` if it is still waiting."""
        with self._turns:
            if ticket not in self._queues.get(key, ()):
                return False
            ticket.grant = grant
            ticket.wake.set()
            return True

    def released(self, key: str) -> None:
        """A local holder released: wake the head waiter at once."""
        with self._turns:
            queue = self._queues.get(key)
            if queue:
                queue[0].wake.set()


class LeaseLock:
    """Leases on keys of one DynamoDB table, for threads.

    Pass ``client`` (a boto3 DynamoDB client you manage), or ``session`` to build
    one from (default: the standard AWS chain, with botocore's standard retry mode).
    ``clock`` returns epoch milliseconds and is injectable for tests of skew.
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        session: boto3.Session | None = None,
        config: LockConfig | None = None,
        owner: str | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.table_name = table_name
        self.config = config or LockConfig()
        self._client: DynamoDBClient | None = (
            client if client is not None else default_client(session, self.config)
        )
        self._session = session
        self._stack: contextlib.ExitStack | None = None
        self.owner = owner or default_owner()
        self.clock = clock or wall_clock_ms
        self._rng = rng or random.Random()
        self._queue = _LocalQueue()
        self._mutex = ThreadLock()
        self._holding: dict[str, int] = {}  # leases held in this process, per key
        self._streaks: dict[str, int] = {}  # local hand-offs in a row, per key
        self._queued = Recent()  # keys whose last grant here saw waiters of other processes

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            raise LockStateError("no client: pass client= or use 'with LeaseLock(...)'")
        return self._client

    def __enter__(self) -> Self:
        if self._client is None:
            self._stack = contextlib.ExitStack()
            self._client = open_client(self._stack, self._session, self.config)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None
            self._client = None

    def acquire(
        self,
        key: str,
        timeout: float | None = None,
        *,
        set_attributes: Mapping[str, Any] | None = None,
        default_attributes: Mapping[str, Any] | None = None,
    ) -> Lease:
        """Block until ``key`` is granted; ``timeout`` in seconds (None: forever).

        ``set_attributes`` is written to the item's data in the grant's own conditional
        write, ``default_attributes`` too where the item has no such attribute (an
        earlier holder's value stays); ``lease.data`` holds all of the item's data
        after it. Raises :class:`AcquireTimeout` (or :class:`LeaseUnavailable` for 0).
        """
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0 or None")
        typed, _, defaults = encode_data(set_attributes, (), default_attributes)
        started = self.clock()
        ticket = self._queue.join(key, typed, defaults)
        try:
            if not self._queue.wait_turn(key, ticket, timeout):
                queued_out(key, timeout, self.clock() - started)
            # the flow counts the timeout from ``started``: time queued here included
            flow = acquire_flow(
                self.table_name,
                key,
                self.owner,
                self.config,
                timeout,
                self._rng,
                started,
                local_holder=self._holding.get(key, 0) > 0,
                set_data=typed,
                defaults=defaults,
                queued=key in self._queued,
            )
            grant, _ = self._run(flow, ticket.sleep)
        except LeaseUnavailable as exc:
            handed = self._queue.leave(key, ticket)
            if handed is None:
                log.debug("lease_unavailable", key=key, owner=self.owner, holder=exc.holder)
                raise
            grant = handed  # a hand-off crossed our timeout: the lease is ours
        except BaseException:
            # any other error, a cancellation or Ctrl-C: the ticket must not stay at the
            # head of the queue, or every later acquire of this key would wait behind it
            orphan = self._queue.leave(key, ticket)
            if orphan is not None:  # a hand-off reached us meanwhile: free it
                freeing = release_flow(self.table_name, orphan, self.config)
                try:
                    with contextlib.suppress(LockError):  # else it expires; the first error matters
                        shield(self._run(freeing, None))
                finally:
                    self._queue.released(key)
            raise
        else:
            self._queue.leave(key, ticket)
        lease = Lease(self, grant, waited_ms=self.clock() - started)
        log.info(
            "lease_acquired",
            key=key,
            owner=self.owner,
            token=grant.token,
            waited_ms=lease.waited_ms,
        )
        return lease

    def try_acquire(
        self,
        key: str,
        *,
        set_attributes: Mapping[str, Any] | None = None,
        default_attributes: Mapping[str, Any] | None = None,
    ) -> Lease | None:
        """One attempt, never blocks: the lease, or None if someone holds it."""
        try:
            return self.acquire(
                key,
                timeout=0,
                set_attributes=set_attributes,
                default_attributes=default_attributes,
            )
        except LeaseUnavailable:
            return None

    def describe(self, key: str) -> LeaseInfo | None:
        """The lease item for ``key`` as stored, or None (a consistent read)."""
        answer = self._run(_single(read_request(self.table_name, key)), None)
        item = answer.get("Item")
        if item is None:
            return None
        holder = Holder.from_item(item)
        return LeaseInfo(key, holder.owner, holder.token, holder.expires_at_ms)

    def peek(self, key: str) -> dict[str, Any] | None:
        """The data of ``key``'s item, without taking the lease (a consistent read);
        None if there is no item."""
        typed = self._run(peek_flow(self.table_name, key), None)
        return None if typed is None else decode_data(typed)

    def ensure_table(self, *, poll_seconds: float = 0.5, wait_seconds: float = 120.0) -> None:
        """Create the table if missing (PAY_PER_REQUEST, TTL on ``cleanup_at``) and
        wait until it is ACTIVE. A no-op when it exists."""
        client = self.client
        try:
            try:
                status = (client.describe_table(TableName=self.table_name))["Table"]["TableStatus"]
            except client.exceptions.ResourceNotFoundException:
                try:
                    client.create_table(**create_table_params(self.table_name))
                    log.info("lease_table_created", table=self.table_name)
                except client.exceptions.ResourceInUseException:
                    pass  # created concurrently by another process
                status = "CREATING"
            if status != "ACTIVE":
                client.get_waiter("table_exists").wait(
                    TableName=self.table_name,
                    WaiterConfig={
                        "Delay": poll_seconds,  # type: ignore[typeddict-item]
                        "MaxAttempts": max(1, int(wait_seconds / poll_seconds)),
                    },
                )
            self._enable_ttl()
        except (ClientError, BotoCoreError) as exc:
            raise LockBackendError(
                f"could not ensure table {self.table_name!r}: {exc}",
                code=getattr(exc, "response", {}).get("Error", {}).get("Code"),
                cause=exc,
            ) from exc

    def _enable_ttl(self) -> None:
        try:
            ttl = self.client.describe_time_to_live(TableName=self.table_name)
            if ttl["TimeToLiveDescription"].get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}:
                return
            self.client.update_time_to_live(
                TableName=self.table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": CLEANUP_AT},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "UnknownOperationException":
                raise
            # dynalite and some emulators have no TTL; tokens stay safe, items stay forever
            log.warning("lease_table_ttl_unsupported", table=self.table_name)

    # --- driver ------------------------------------------------------------

    def _hold(self, key: str, delta: int) -> None:
        with self._mutex:
            self._holding[key] = self._holding.get(key, 0) + delta
            if self._holding[key] <= 0:
                del self._holding[key]

    def _streak(self, key: str, *, handed_off: bool) -> None:
        with self._mutex:
            if handed_off:
                self._streaks[key] = self._streaks.get(key, 0) + 1
            else:
                self._streaks.pop(key, None)

    def _execute(self, call: Call) -> Any:
        method = getattr(self.client, call.op)
        try:
            return method(**call.params)
        except (ClientError, BotoCoreError) as exc:
            answer = translate(exc, call)
            if isinstance(answer, LockError):
                raise answer from exc
            return answer

    def _run(
        self,
        flow: Flow,
        wait: SleepFn | None,
        lease: Lease | None = None,
    ) -> Any:
        answer: Any = None
        error: LockBackendError | None = None
        while True:
            try:
                request = flow.throw(error) if error is not None else flow.send(answer)
            except StopIteration as stop:
                return stop.value
            answer, error = None, None
            try:
                answer = self._answer(request, wait, lease)
            except LockBackendError as exc:  # the flow decides: retry, or let it propagate
                error = exc

    def _answer(self, request: Any, wait: SleepFn | None, lease: Lease | None) -> Any:
        if isinstance(request, Now):
            return self.clock()
        if isinstance(request, Call):
            if lease is not None:
                with lease._io:  # noqa: SLF001 - renewals of one lease never overlap
                    return self._execute(request)
            return self._execute(request)
        if isinstance(request, Sleep):
            if wait is None:
                sleep(request.seconds)
                return False
            return wait(request.seconds)
        if isinstance(request, Renewed):
            if lease is not None:
                lease._renewed(request.grant)  # noqa: SLF001
            return None
        if isinstance(request, Current):
            assert lease is not None  # noqa: S101 - only heartbeats ask
            return lease._grant  # noqa: SLF001
        raise TypeError(f"unknown request {request!r}")


def _single(call: Call) -> Flow:
    return (yield call)


class Lease:
    """A held lease. Renews itself in a heartbeat thread until released.

    Use it as a context manager: leaving the block releases it and raises
    :class:`LeaseLost` if the lease was lost while the block ran (an exception
    from the block always propagates, with a note if the lease was lost too).
    """

    def __init__(self, lock: LeaseLock, grant: Grant, *, waited_ms: float) -> None:
        self._lock = lock
        self._grant = grant
        self._io = Lock()
        self._state = ThreadLock()
        self._lost_reason: str | None = None
        self._released = False
        self._stop = Event()
        self.waited_ms = waited_ms
        self._data = grant.data  # only this holder's writes change it while held
        lock._hold(grant.key, 1)  # noqa: SLF001
        self._beat = Background(self._heartbeat, name=f"lease-heartbeat-{grant.key}")

    @property
    def key(self) -> str:
        return self._grant.key

    @property
    def owner(self) -> str:
        return self._grant.owner

    @property
    def token(self) -> int:
        return self._grant.token

    @property
    def grant(self) -> Grant:
        return self._grant

    @property
    def data(self) -> dict[str, Any]:
        """The item's data as of this holder's last write (acquire or update)."""
        return decode_data(self._data)

    @property
    def lost(self) -> bool:
        ran_out = self._lock.clock() >= self._grant.trusted_until_ms
        if self._lost_reason is None and not self._released and ran_out:
            self._mark_lost("it ran out without a successful renewal")
        return self._lost_reason is not None

    def remaining(self) -> float:
        """Seconds this holder may still trust the lease (0 once lost or released)."""
        if self.lost or self._released:
            return 0.0
        return max(0.0, (self._grant.trusted_until_ms - self._lock.clock()) / 1000)

    def ensure_held(self) -> None:
        """Raise :class:`LeaseLost` unless the lease is still trusted."""
        if self._released:
            raise LockStateError(f"lease {self.key!r} was released")
        if self.lost:
            raise LeaseLost(self.key, self.token, self._lost_reason or "lost")

    def renew(self) -> None:
        """Renew now (the heartbeat also does this). Raises :class:`LeaseLost`."""
        self.ensure_held()
        try:
            flow = renew_flow(self._lock.table_name, self._grant, self._lock.config)
            self._lock._run(flow, None, self)  # noqa: SLF001
        except LeaseLost as exc:
            self._mark_lost(exc.reason)
            raise

    def update(
        self,
        *,
        set_attributes: Mapping[str, Any] | None = None,
        remove_attributes: Iterable[str] = (),
    ) -> None:
        """Write data in one write fenced by this grant (owner and token).

        Raises :class:`LeaseLost` (nothing written) if the lease moved on.
        """
        typed, removed, _ = encode_data(set_attributes, remove_attributes)
        self.ensure_held()
        if not typed and not removed:
            return
        flow = update_flow(self._lock.table_name, self._grant, typed, removed)
        try:
            self._data = self._lock._run(flow, None, self)  # noqa: SLF001
        except LeaseLost as exc:
            self._mark_lost(exc.reason)
            raise

    def release(
        self,
        *,
        set_attributes: Mapping[str, Any] | None = None,
        remove_attributes: Iterable[str] = (),
    ) -> None:
        """Release the lease. Idempotent; never frees another holder's lease.

        ``set_attributes`` / ``remove_attributes`` change the item's data in the release's own
        fenced write; if the lease had moved on, nothing is written and
        :class:`LeaseLost` is raised.
        """
        typed, removed, _ = encode_data(set_attributes, remove_attributes)
        with self._state:
            if self._released:
                return
            self._released = True
        self._stop.set()
        lock = self._lock
        # before any I/O: a release interrupted there must not leave this process counting
        # a local holder (its waiters would wait for a hand-off that never comes)
        lock._hold(self.key, -1)  # noqa: SLF001
        # a renewal in flight ends first; one that lands after this release fails its condition
        self._beat.stopped()
        try:
            written = None if self.lost else self._hand_off(typed, removed)
            if written is None:
                written = self._release(typed, removed)
        except LockBackendError:
            if not (typed or removed):
                raise
            # the data was refused (too large, say): free the lease anyway, report the error
            with contextlib.suppress(LockError):
                self._release(NO_DATA, ())
            raise
        if (typed or removed) and not written:
            raise LeaseLost(self.key, self.token, "the data was not written: the lease moved on")

    def _release(self, typed: Data, removed: tuple[str, ...]) -> bool:
        lock = self._lock
        flow = release_flow(lock.table_name, self._grant, lock.config, typed, removed)
        written: bool = lock._run(flow, None, self)  # noqa: SLF001
        if not written:
            self._mark_lost("another holder took it over before release")
        lock._streak(self.key, handed_off=False)  # noqa: SLF001
        lock._queued.mark(self.key, seen=self._grant.waiting > 0)  # noqa: SLF001
        lock._queue.released(self.key)  # noqa: SLF001
        log.info("lease_released", key=self.key, owner=self.owner, token=self.token)
        return written

    def _hand_off(self, typed: Data, removed: tuple[str, ...]) -> bool | None:
        """Pass the lease to the next waiter of this process in one write, if allowed:
        None if not, False if our grant had moved on (nothing written)."""
        lock = self._lock
        ticket = lock._queue.head(self.key)  # noqa: SLF001
        streak = lock._streaks.get(self.key, 0)  # noqa: SLF001
        if ticket is None or not may_hand_off(self._grant, lock.config, streak):
            return None
        set_attributes, remove, defaults = handoff_data(typed, removed, ticket)
        marker = uuid.uuid4().hex  # tells this write apart if its answer is lost
        flow = handoff_flow(
            lock.table_name, self._grant, lock.config, set_attributes, remove, defaults, marker
        )
        try:
            new = lock._run(flow, None, self)  # noqa: SLF001
        except LockBackendError:
            if not (ticket.set_attributes or ticket.defaults):
                raise
            # the waiter's data may be what was refused: release plainly, it tries itself
            return None
        if new is None:
            self._mark_lost("another holder took it over before release")
            return False
        lock._streak(self.key, handed_off=True)  # noqa: SLF001
        if not lock._queue.deliver(self.key, ticket, new):  # noqa: SLF001
            # the waiter gave up meanwhile: free the grant made for it
            lock._run(release_flow(lock.table_name, new, lock.config), None, None)  # noqa: SLF001
            lock._queue.released(self.key)  # noqa: SLF001
        log.info(
            "lease_handed_off", key=self.key, owner=self.owner, token=self.token, to_token=new.token
        )
        return True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lost_before = self.lost
        try:
            self.release()
        except LockError as release_error:
            if exc is None:
                raise
            exc.add_note(f"releasing lease {self.key!r} also failed: {release_error}")
            return
        if self._lost_reason is not None or lost_before:
            lost = LeaseLost(self.key, self.token, self._lost_reason or "lost")
            if exc is None:
                raise lost
            exc.add_note(f"the lease was lost while the block ran: {lost}")

    # --- internals ---------------------------------------------------------

    def _renewed(self, grant: Grant) -> None:
        if grant.sent_at_ms >= self._grant.sent_at_ms:
            self._grant = grant
        log.debug("lease_renewed", key=grant.key, owner=grant.owner, token=grant.token)

    def _mark_lost(self, reason: str) -> None:
        with self._state:  # the heartbeat and the caller may both find it lost
            if self._lost_reason is not None:
                return
            self._lost_reason = reason
        log.warning("lease_lost", key=self.key, owner=self.owner, token=self.token, reason=reason)

    def _heartbeat(self) -> None:
        lock = self._lock
        flow = heartbeat_flow(lock.table_name, self._grant, lock.config, lock._rng)  # noqa: SLF001
        try:
            lock._run(flow, self._stop.wait, self)  # noqa: SLF001
        except LeaseLost as exc:
            if not self._released:
                self._mark_lost(exc.reason)
        except LockError as exc:  # pragma: no cover - the flow handles backend errors
            self._mark_lost(str(exc))
