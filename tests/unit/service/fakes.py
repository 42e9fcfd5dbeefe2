"""In-memory fakes of the push use case's ports (no network, no clock)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from service.adapters.layers import EcrLayers
from service.api.deps import Services
from service.domain.errors import LeaseLost, LeaseTimeout, PushError
from service.domain.models import (
    Fence,
    HistoryEntry,
    HistoryPage,
    ImageRef,
    PendingPush,
    PushRequest,
    PushResult,
    TagRecord,
)
from service.domain.ports import PutStatus
from service.domain.push import PushPolicy, PushService
from service.metrics import Metrics
from service.settings import Settings


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeLease:
    leases: FakeLeases
    key: str
    owner: str
    token: int
    waited_ms: float = 0.0
    #: what a renewal gives, from the fake clock's now
    lease_seconds: float = 30.0
    expires_at: float = 0.0
    released: bool = False
    renewals: int = 0
    #: the tag's record and intent as the grant left them (None: the use case reads)
    item: tuple[TagRecord | None, PendingPush | None] | None = None
    commits: int = 0

    @property
    def lost(self) -> bool:
        return self.leases.holders.get(self.key) != (self.owner, self.token)

    def remaining(self) -> float:
        return 0.0 if self.lost else max(0.0, self.expires_at - self.leases.clock())

    def fence(self) -> Fence:
        return Fence(self.key, self.owner, self.token)

    def tag_item(self, ref: ImageRef) -> tuple[TagRecord | None, PendingPush | None] | None:
        return self.item

    async def renew(self) -> None:
        self.renewals += 1
        if self.lost:
            raise LeaseLost(self.key)
        self.expires_at = self.leases.clock() + self.lease_seconds

    async def commit(self, record: TagRecord, *, history: HistoryEntry) -> tuple[HistoryEntry, ...]:
        store = self.leases.store
        assert store is not None, "World attaches the records"
        if self.released:
            raise LeaseLost(self.key)
        carried = await store.put(record, fence=self.fence(), history=history)
        self.commits += 1
        await self.release()
        return carried

    async def release(self, *, drop_intent: bool = False) -> None:
        if not self.released and not self.lost:
            if drop_intent and self.leases.store is not None:
                self.leases.store.pending.pop(self.key, None)
            del self.leases.holders[self.key]
        self.released = True


class FakeLeases:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.holders: dict[str, tuple[str, int]] = {}
        self.tokens: dict[str, int] = {}
        self.granted: list[FakeLease] = []
        self.busy: set[str] = set()
        #: when set, each grant carries the tag's record and intent, as the real one does
        self.records: FakeRecords | None = None
        #: where grants write intents and commits write records (World sets it)
        self.store: FakeRecords | None = None

    async def acquire(
        self, key: str, *, timeout: float, intent: PendingPush | None = None
    ) -> FakeLease:
        if key in self.busy or key in self.holders:
            raise LeaseTimeout(key, holder="someone", expires_at=None, retry_after=1.0)
        if intent is not None and self.store is not None:
            self.store.pending.setdefault(key, intent)  # where the item holds none
        token = self.tokens.get(key, 100) + 1
        self.tokens[key] = token
        owner = f"owner-{token}"
        self.holders[key] = (owner, token)
        lease = FakeLease(self, key, owner, token, waited_ms=1.5)
        lease.expires_at = self.clock() + lease.lease_seconds
        if self.records is not None:
            lease.item = (self.records.items.get(key), self.records.pending.get(key))
        self.granted.append(lease)
        return lease

    def steal(self, key: str) -> None:
        """Another holder takes the key over (the lease ran out)."""
        token = self.tokens.get(key, 100) + 1
        self.tokens[key] = token
        self.holders[key] = ("thief", token)

    def held(self) -> list[str]:
        return [key for key, lease in self.holders.items() if lease[0] != "thief"]


@dataclass
class PutCall:
    ref: ImageRef
    manifest: str
    media_type: str | None
    digest: str
    timeout: float


@dataclass
class FakeRegistry:
    tags: dict[ImageRef, str] = field(default_factory=dict)
    images: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    immutable: set[str] = field(default_factory=set)
    failures: list[PushError] = field(default_factory=list)
    puts: list[PutCall] = field(default_factory=list)
    during_put: Callable[[], None] | None = None
    #: called after a put landed (a crash right after ECR accepted the write)
    after_put: Callable[[], None] | None = None
    land_put: bool = True
    reserved: list[tuple[ImageRef, str]] = field(default_factory=list)
    #: the tags ``tag_digest`` was asked about, in order
    reads: list[ImageRef] = field(default_factory=list)

    async def put_image(
        self,
        ref: ImageRef,
        *,
        manifest: str,
        media_type: str | None,
        digest: str,
        timeout: float,
    ) -> PutStatus:
        self.puts.append(PutCall(ref, manifest, media_type, digest, timeout))
        if self.during_put is not None:
            self.during_put()
        if self.failures:
            raise self.failures.pop(0)
        if not self.land_put:
            return PutStatus.PUSHED
        current = self.tags.get(ref)
        if current == digest:
            return PutStatus.ALREADY_EXISTS
        if current is not None and ref.repository in self.immutable:
            return PutStatus.ALREADY_EXISTS
        self.images[(ref.repository, digest)] = (manifest, media_type)
        self.tags[ref] = digest
        if self.after_put is not None:
            self.after_put()
        return PutStatus.PUSHED

    async def reserve(self, ref: ImageRef, digest: str) -> None:
        self.reserved.append((ref, digest))

    async def tag_digest(self, ref: ImageRef) -> str | None:
        self.reads.append(ref)
        return self.tags.get(ref)

    async def manifest(self, repository: str, digest: str) -> tuple[str, str | None] | None:
        return self.images.get((repository, digest))

    async def ping(self) -> None:
        return None


class FakeRecords:
    def __init__(self, leases: FakeLeases, history: FakeHistory | None = None) -> None:
        self.leases = leases
        self.history = history
        self.items: dict[str, TagRecord] = {}
        self.pending: dict[str, PendingPush] = {}
        #: the history entry each item carries (the last record write's)
        self.carried: dict[str, HistoryEntry] = {}
        self.writes = 0
        self.intent_writes = 0
        #: record writes of these digests fail with the error (a value the table refuses)
        self.refused: dict[str, PushError] = {}
        #: the next intent writes fail with these errors
        self.intent_failures: list[PushError] = []

    async def get(self, ref: ImageRef) -> TagRecord | None:
        return self.items.get(ref.key)

    async def read(self, ref: ImageRef) -> tuple[TagRecord | None, PendingPush | None]:
        return self.items.get(ref.key), self.pending.get(ref.key)

    def _check(self, key: str, fence: Fence) -> None:
        if self.leases.holders.get(fence.key) != (fence.owner, fence.token):
            raise LeaseLost(fence.key)
        current = self.items.get(key)
        if current is not None and current.token > fence.token:
            raise LeaseLost(fence.key)
        pending = self.pending.get(key)
        if pending is not None and pending.token is not None and pending.token > fence.token:
            raise LeaseLost(fence.key)

    async def put(
        self, record: TagRecord, *, fence: Fence, history: HistoryEntry | None = None
    ) -> tuple[HistoryEntry, ...]:
        key = record.ref.key
        self._check(key, fence)
        if record.digest in self.refused:
            raise self.refused[record.digest]
        self.writes += 1
        self.items[key] = record
        self.pending.pop(key, None)
        if history is None:
            return ()
        previous = self.carried.get(key)
        self.carried[key] = history
        return () if previous is None else (previous,)

    async def put_pending(self, ref: ImageRef, pending: PendingPush, *, fence: Fence) -> None:
        self._check(ref.key, fence)
        if self.intent_failures:
            raise self.intent_failures.pop(0)
        self.intent_writes += 1
        self.pending[ref.key] = pending

    async def clear_pending(self, ref: ImageRef, *, fence: Fence) -> None:
        self._check(ref.key, fence)
        self.pending.pop(ref.key, None)

    async def ping(self) -> None:
        return None


class FakeHistory:
    def __init__(self) -> None:
        self.entries: list[HistoryEntry] = []

    async def append(self, entry: HistoryEntry) -> None:
        """Idempotent, as the real history's content keys make it: one entry appended
        twice (the same object handed on) is stored once."""
        if not any(entry is stored for stored in self.entries):
            self.entries.append(entry)

    async def page(self, ref: ImageRef, *, limit: int, cursor: str | None) -> HistoryPage:
        mine = [e for e in reversed(self.entries) if e.ref == ref]
        start = int(cursor or 0)
        items = mine[start : start + limit]
        more = start + limit < len(mine)
        return HistoryPage(items=items, next_cursor=str(start + limit) if more else None)

    async def ping(self) -> None:
        return None


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def manifest(n: int = 0) -> str:
    """A distinct small OCI manifest per ``n``."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"digest": f"sha256:{n:064x}", "size": n},
            "layers": [],
        }
    )


def request(
    n: int = 0, *, sequence: int | None = None, repository: str = "team/app", tag: str = "v1"
) -> PushRequest:
    return PushRequest.create(
        repository=repository,
        tag=tag,
        manifest=manifest(n),
        sequence=sequence,
        default_wait_seconds=5.0,
        max_wait_seconds=60.0,
    )


class World:
    """The use case over fakes, with handles on every fake."""

    def __init__(self, policy: PushPolicy | None = None) -> None:
        self.clock = FakeClock()
        self.leases = FakeLeases(self.clock)
        self.registry = FakeRegistry()
        self.history = FakeHistory()
        self.records = FakeRecords(self.leases, self.history)
        self.leases.store = self.records
        self.policy = policy or PushPolicy(
            ecr_timeout_seconds=10.0, lease_margin_seconds=2.0, attempts=4
        )
        self.service = PushService(
            registry=self.registry,
            leases=self.leases,
            records=self.records,
            history=self.history,
            policy=self.policy,
            clock=self.clock,
            sleep=self.clock.sleep,
            jitter=lambda: 0.5,
        )

    async def push(self, req: PushRequest) -> PushResult:
        return await self.service.push(req, caller="ci", request_id="req-1")


SETTINGS = Settings(
    default_wait_seconds=5.0, max_wait_seconds=60.0, log_format="console", auth="off"
)


class FakeLayers(EcrLayers):
    """Puts by digest into the fake registry's images (the front door's blob calls are
    not faked: its tests run on moto)."""

    def __init__(self, registry: FakeRegistry) -> None:  # no ECR client
        self.registry = registry

    async def put_by_digest(
        self, repository: str, manifest: str, media_type: str, digest: str
    ) -> PutStatus:
        if (repository, digest) in self.registry.images:
            return PutStatus.ALREADY_EXISTS
        self.registry.images[(repository, digest)] = (manifest, media_type)
        return PutStatus.PUSHED


def services_of(world: World) -> Services:
    return Services(
        settings=SETTINGS,
        push=world.service,
        registry=world.registry,
        records=world.records,
        history=world.history,
        metrics=Metrics(),
        layers=FakeLayers(world.registry),
    )
