"""A stress run's configuration and the state its modes share.

``modes`` runs a ``Run`` in-process; ``processes`` runs it through ``pushgate serve``
processes and worker processes. Both take what they share from here, so neither
imports the other's module back.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from service.stress.harness import REGION, Counters, Dispatcher, Faults, Jitter, PushSpec
from service.stress.record import Attempt, Recorder

if TYPE_CHECKING:
    from service.settings import Settings

Mode = Literal["raw", "lease", "pushgate", "service"]
MODES: tuple[Mode, ...] = ("raw", "lease", "pushgate", "service")


@dataclass(frozen=True)
class RunConfig:
    """One stress run. Times in seconds unless named ``_ms``."""

    mode: Mode = "raw"
    workers: int = 10
    tags: int = 4
    pushes: int = 200
    jitter_ms: float = 20.0
    immutable: bool = False
    seed: int = 1
    check_then_act: bool = False
    copies: int = 2
    reruns: int = 1
    lease_seconds: float = 10.0
    instances: int = 2
    deadline_seconds: float = 600.0
    request_deadline_seconds: float = 120.0
    dynamodb_faults: float = 0.0
    ecr_faults: float = 0.0
    switch_interval: float | None = None
    observe: bool = True
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if self.workers < 1 or self.tags < 1 or self.pushes < 1 or self.instances < 1:
            raise ValueError("workers, tags, pushes and instances must be >= 1")
        if not (0 <= self.dynamodb_faults < 1 and 0 <= self.ecr_faults < 1):
            raise ValueError("fault rates must be in [0, 1)")

    @property
    def repository(self) -> str:
        return f"stress-{self.run_id}"

    @property
    def tag_names(self) -> list[str]:
        return [f"t{i}" for i in range(self.tags)]


@dataclass
class Run:
    """A run in progress: what the modes share."""

    config: RunConfig
    endpoint: str
    plan: list[PushSpec]
    dispatcher: Dispatcher
    recorder: Recorder
    counters: Counters
    jitter: Jitter
    faults: Faults

    def start(self, spec: PushSpec, worker: str) -> Attempt:
        return self.recorder.start(
            request_id=spec.request_id,
            worker=worker,
            key=spec.key,
            sequence=spec.sequence,
            digest=spec.digest,
            started=time.time(),
        )


def finish(attempt: Attempt, outcome: str, error: str | None = None) -> None:
    attempt.ended = time.time()
    if error is not None:
        attempt.error = error
    attempt.outcome = outcome  # last: an attempt is done once it has an outcome


def stress_settings(config: RunConfig, endpoint: str | None) -> Settings:
    """Service settings for a run: its own tables, short leases, quiet logs."""
    from service.settings import Settings  # noqa: PLC0415 - pydantic only when needed

    lease = config.lease_seconds
    return Settings(
        region=REGION,
        lease_table=f"stress-{config.run_id}-leases",
        history_table=f"stress-{config.run_id}-history",
        lease_seconds=lease,
        lease_margin_seconds=min(2.0, lease / 5),
        ecr_timeout_seconds=min(10.0, lease / 2),
        default_wait_seconds=min(120.0, config.request_deadline_seconds),
        max_wait_seconds=120.0,
        dynamodb_endpoint_url=endpoint,
        ecr_endpoint_url=endpoint,
        auth="off",
        log_level="warning",
    )
