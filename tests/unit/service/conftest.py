from __future__ import annotations

import json

import pytest

from service.domain.models import PushRequest
from service.domain.push import PushPolicy, PushService
from tests.unit.service.fakes import FakeClock, FakeHistory, FakeLeases, FakeRecords, FakeRegistry

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
        self.leases = FakeLeases()
        self.registry = FakeRegistry()
        self.records = FakeRecords(self.leases)
        self.history = FakeHistory()
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

    async def push(self, req: PushRequest):
        return await self.service.push(req, caller="ci", request_id="req-1")


@pytest.fixture
def world() -> World:
    return World()
