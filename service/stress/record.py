"""The attempt log of a stress run: what every push did, with wall-clock times.

A run records four kinds of facts, each stamped with ``time.time()`` (all workers run
on one host, so their clocks agree):

- :class:`Attempt`: one push as its caller saw it (request id, worker, repo:tag,
  sequence, digest, start/end, outcome, fencing token). Retries of one request share
  its ``request_id``; a request whose worker died is re-dispatched as a new attempt.
- :class:`Hold`: one lease holding period ``[start, end]`` with its token, as the
  holder saw it: from the grant's return to the release call, cut at the moment the
  holder stopped trusting the lease if it was lost. It is a subset of the period the
  lease table granted, so two overlapping holds are a real violation.
- :class:`TagWrite`: a ``PutImage`` that ECR accepted (or a push that the service's
  history says moved the tag): the tag named ``digest`` at some instant of
  ``[sent, received]``.
- :class:`Observation`: a read of the tag: it named ``digest`` (None: no such tag)
  at some instant of ``[sent, received]``.

:class:`Recorder` collects them from many threads; :class:`History` is the frozen,
JSON-serializable result the invariant checks read.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

#: Outcomes a caller treats as success.
SUCCESS = frozenset({"pushed", "unchanged", "superseded"})
#: Outcomes after which the caller believes the tag names its digest.
WINNING = frozenset({"pushed", "unchanged"})
TAG_IMMUTABLE = "tag_immutable"


@dataclass
class Attempt:
    request_id: str
    worker: str
    key: str
    sequence: int
    digest: str
    started: float
    ended: float | None = None
    outcome: str | None = None  # pushed | unchanged | superseded | tag_immutable | error
    error: str | None = None  # error code when outcome is "error" (or a retried error)
    token: int | None = None
    waited_ms: float | None = None
    tries: int = 0

    @property
    def done(self) -> bool:
        return self.outcome is not None and self.ended is not None


@dataclass(frozen=True)
class Hold:
    key: str
    token: int
    start: float
    end: float
    worker: str
    lost: bool = False


@dataclass(frozen=True)
class TagWrite:
    key: str
    digest: str
    sent: float
    received: float
    worker: str
    token: int | None = None


@dataclass(frozen=True)
class Observation:
    key: str
    digest: str | None
    sent: float
    received: float


@dataclass(frozen=True)
class History:
    """Everything a run recorded, and what it planned."""

    immutable: bool
    #: request id -> key, for every request the run dispatched
    requests: dict[str, str]
    #: digest -> sequence of every manifest of the plan
    sequences: dict[str, int]
    attempts: list[Attempt] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    writes: list[TagWrite] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    #: key -> digests of every image carrying the tag at the end
    final: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
        return cls(
            immutable=bool(data["immutable"]),
            requests=dict(data["requests"]),
            sequences={str(k): int(v) for k, v in data["sequences"].items()},
            attempts=[Attempt(**a) for a in data.get("attempts", [])],
            holds=[Hold(**h) for h in data.get("holds", [])],
            writes=[TagWrite(**w) for w in data.get("writes", [])],
            observations=[Observation(**o) for o in data.get("observations", [])],
            final={str(k): list(v) for k, v in data.get("final", {}).items()},
        )


class Recorder:
    """Thread-safe collector of a run's facts."""

    def __init__(self, *, immutable: bool, sequences: dict[str, int]) -> None:
        self.immutable = immutable
        self.sequences = dict(sequences)
        self._lock = threading.Lock()
        self._requests: dict[str, str] = {}
        self._attempts: list[Attempt] = []
        self._holds: list[Hold] = []
        self._writes: list[TagWrite] = []
        self._observations: list[Observation] = []
        self._final: dict[str, list[str]] = {}

    def start(
        self,
        *,
        request_id: str,
        worker: str,
        key: str,
        sequence: int,
        digest: str,
        started: float,
    ) -> Attempt:
        attempt = Attempt(request_id, worker, key, sequence, digest, started)
        with self._lock:
            self._requests[request_id] = key
            self._attempts.append(attempt)
        return attempt

    def add_attempt(self, attempt: Attempt) -> None:
        """An attempt recorded elsewhere (a worker process)."""
        with self._lock:
            self._requests[attempt.request_id] = attempt.key
            self._attempts.append(attempt)

    def hold(self, hold: Hold) -> None:
        with self._lock:
            self._holds.append(hold)

    def write(self, write: TagWrite) -> None:
        with self._lock:
            self._writes.append(write)

    def observe(self, observation: Observation) -> None:
        with self._lock:
            self._observations.append(observation)

    def set_final(self, final: dict[str, list[str]]) -> None:
        with self._lock:
            self._final = {k: list(v) for k, v in final.items()}

    def counts(self) -> tuple[int, int]:
        """(finished attempts, all attempts), for progress bars."""
        with self._lock:
            return sum(1 for a in self._attempts if a.done), len(self._attempts)

    def history(self) -> History:
        with self._lock:
            return History(
                immutable=self.immutable,
                requests=dict(self._requests),
                sequences=dict(self.sequences),
                attempts=[Attempt(**asdict(a)) for a in self._attempts],
                holds=list(self._holds),
                writes=list(self._writes),
                observations=list(self._observations),
                final={k: list(v) for k, v in self._final.items()},
            )
