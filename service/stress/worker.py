"""A worker process of a multi-process run: ``python -m service.stress.worker CONFIG NAME``.

Reads push specs (JSON lines) on stdin and runs each through its own push service
(``service.domain.push.PushService`` over aioboto3, configured from ``PUSHGATE_*`` and
``AWS_ENDPOINT_URL_*``); writes events (JSON lines) on stdout:

- ``acquired``: a lease was granted (token, start, trusted_until);
- ``pausing``: the spec asked this process to stop itself here (SIGSTOP; a spec's
  ``pause`` is ``acquired`` (its intent written by the acquire), ``fence`` (before a
  fenced write beside the lease), ``renew``, ``put`` or ``commit`` (after PutImage,
  before the record write that releases), or ``crash_after_put`` to SIGKILL itself
  once ECR accepted its PutImage);
- ``hold`` / ``write``: a lease holding period, an accepted PutImage (``record``);
- ``done``: the request's outcome.

Fault tests SIGKILL and SIGSTOP these processes; the parent re-dispatches what a
killed process left unfinished.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from contextvars import ContextVar
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from service.stress.harness import (
    Counters,
    Faults,
    Jitter,
    PushSpec,
    current_worker,
    instrument_ecr_async,
)
from service.stress.record import Attempt, Hold, Recorder, TagWrite

if TYPE_CHECKING:
    from service.stress.modes import RecordingLease

_spec: ContextVar[PushSpec | None] = ContextVar("stress_spec", default=None)


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class StreamingRecorder(Recorder):
    """Sends holds and writes to the parent as they happen."""

    def hold(self, hold: Hold) -> None:
        emit({"event": "hold", "hold": asdict(hold)})

    def write(self, write: TagWrite) -> None:
        emit({"event": "write", "write": asdict(write)})


def _pause_if_asked(point: str) -> None:
    spec = _spec.get()
    if spec is not None and spec.pause == point:
        _spec.set(None)  # once per request
        emit({"event": "pausing", "point": point, "at": time.time()})
        os.kill(os.getpid(), signal.SIGSTOP)


def _on_lease(kind: str, lease: RecordingLease) -> None:
    if kind == "acquired":
        emit(
            {
                "event": "acquired",
                "key": lease.key,
                "token": lease.token,
                "start": lease.start,
                "trusted_until": lease.trusted_until,
            }
        )
    _pause_if_asked(kind)


async def serve(config: dict[str, Any], name: str) -> None:
    from service.adapters.aws import open_clients  # noqa: PLC0415
    from service.settings import Settings  # noqa: PLC0415
    from service.stress.modes import push_once, push_service  # noqa: PLC0415

    settings = Settings()
    recorder = StreamingRecorder(immutable=False, sequences={})
    counters = Counters()
    rng = random.Random(f"{config['seed']}-{name}")
    current_worker.set(name)
    async with open_clients(settings) as clients:
        instrument_ecr_async(
            clients.ecr,
            jitter=Jitter(float(config["jitter_ms"]), rng.randrange(1 << 30)),
            recorder=recorder,
            counters=counters,
        )
        Faults(
            dynamodb=float(config["dynamodb_faults"]),
            ecr_put=float(config["ecr_faults"]),
            seed=rng.randrange(1 << 30),
            counters=counters,
        ).install(dynamodb=clients.dynamodb, ecr=clients.ecr, aio=True)

        def before_put(**_: Any) -> None:
            _pause_if_asked("put")

        def after_put(http_response: Any, **_: Any) -> None:
            # a crash after ECR accepted the write, before the record is written
            spec = _spec.get()
            accepted = http_response.status_code == 200  # noqa: PLR2004 - HTTP OK
            if accepted and spec is not None and spec.pause == "crash_after_put":
                os.kill(os.getpid(), signal.SIGKILL)

        clients.ecr.meta.events.register("before-send.ecr.PutImage", before_put)
        # after instrument_ecr_async's handler, so the accepted write is reported first
        clients.ecr.meta.events.register("after-call.ecr.PutImage", after_put)
        service = push_service(settings, clients, recorder, on_event=_on_lease)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            spec = PushSpec.from_json(json.loads(line))
            _spec.set(spec)
            attempt = Attempt(
                spec.request_id, name, spec.key, spec.sequence, spec.digest, time.time()
            )
            deadline = time.time() + float(config["request_deadline_seconds"])
            try:
                await push_once(service, spec, attempt, settings, deadline=deadline, rng=rng)
            except Exception as exc:  # noqa: BLE001 - every attempt ends in an outcome
                attempt.ended, attempt.outcome, attempt.error = time.time(), "error", repr(exc)
            emit({"event": "done", "attempt": asdict(attempt)})


def main() -> None:
    import logging  # noqa: PLC0415

    import structlog  # noqa: PLC0415

    # stdout carries events: logs go to stderr, errors only
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    asyncio.run(serve(json.loads(sys.argv[1]), sys.argv[2]))


if __name__ == "__main__":
    main()
